"""Copy each outcome's metric and clock start onto `ClockOutcome`, so the dashboards aggregate outcomes without
joining every clock (bench/dashboards.py at 1M outcomes). Existing rows are filled from their clocks in one UPDATE."""

from django.db import migrations, models

BACKFILL = """
UPDATE sla_clockoutcome o
   SET metric = t.metric, started_at = c.started_at
  FROM sla_clock c JOIN sla_slatarget t ON t.id = c.target_id
 WHERE c.id = o.clock_id
"""


class Migration(migrations.Migration):
    dependencies = [
        ("sla", "0008_merge_dashboard_indexes"),
    ]

    operations = [
        migrations.AddField(model_name="clockoutcome", name="metric", field=models.CharField(max_length=32, null=True)),
        migrations.AddField(model_name="clockoutcome", name="started_at", field=models.DateTimeField(null=True)),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
        migrations.AlterField(model_name="clockoutcome", name="metric", field=models.CharField(max_length=32)),
        migrations.AlterField(model_name="clockoutcome", name="started_at", field=models.DateTimeField()),
    ]
