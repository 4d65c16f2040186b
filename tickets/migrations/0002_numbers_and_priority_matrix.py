"""Ticket number sequences (one per type, gap-tolerant and concurrency-safe) and the default priority matrix."""

from django.db import migrations

from tickets.state import DEFAULT_PRIORITY_MATRIX


def load_matrix(apps, schema_editor):
    entry = apps.get_model("tickets", "PriorityMatrixEntry")
    for (impact, urgency), priority in DEFAULT_PRIORITY_MATRIX.items():
        entry.objects.update_or_create(impact=int(impact), urgency=int(urgency), defaults={"priority": int(priority)})


class Migration(migrations.Migration):
    dependencies = [("tickets", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=[
                "CREATE SEQUENCE IF NOT EXISTS tickets_incident_number_seq",
                "CREATE SEQUENCE IF NOT EXISTS tickets_request_number_seq",
            ],
            reverse_sql=[
                "DROP SEQUENCE IF EXISTS tickets_incident_number_seq",
                "DROP SEQUENCE IF EXISTS tickets_request_number_seq",
            ],
        ),
        migrations.RunPython(load_matrix, migrations.RunPython.noop),
    ]
