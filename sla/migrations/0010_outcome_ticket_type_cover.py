"""Copy the ticket's type onto `ClockOutcome` (a snapshot when the clock finished, like its priority and category), so
the dashboards' type filter needs no join through a million clocks to a million tickets, and replace the plain
`(finished_at)` index with one that INCLUDEs every column the dashboards aggregate (an index-only scan of the period;
bench/dashboards.py). Existing rows are filled from their tickets in one UPDATE."""

from django.db import migrations, models

BACKFILL = """
UPDATE sla_clockoutcome o
   SET ticket_type = k.type
  FROM sla_clock c JOIN tickets_ticket k ON k.id = c.ticket_id
 WHERE c.id = o.clock_id
"""


class Migration(migrations.Migration):
    dependencies = [
        ("sla", "0009_outcome_metric_started_at"),
        ("tickets", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="clockoutcome", name="ticket_type", field=models.CharField(max_length=16, null=True)
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
        migrations.AlterField(model_name="clockoutcome", name="ticket_type", field=models.CharField(max_length=16)),
        migrations.RemoveIndex(model_name="clockoutcome", name="sla_outcome_finished"),
        migrations.AddIndex(
            model_name="clockoutcome",
            index=models.Index(
                fields=("finished_at",),
                name="sla_outcome_finished_cover",
                include=(
                    "metric",
                    "met",
                    "business_seconds_used",
                    "started_at",
                    "team",
                    "category",
                    "priority",
                    "policy",
                    "ticket_type",
                ),
            ),
        ),
    ]
