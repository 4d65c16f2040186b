"""The built-in 24×7 calendar: business time is wall time (ranges and holidays are ignored)."""

from django.db import migrations

BUILTIN_NAME = "24×7"


def create_builtin(apps, schema_editor):
    Calendar = apps.get_model("sla", "Calendar")
    if not Calendar.objects.filter(is_24x7=True).exists():
        Calendar.objects.create(name=BUILTIN_NAME, time_zone="UTC", is_24x7=True)


def remove_builtin(apps, schema_editor):
    apps.get_model("sla", "Calendar").objects.filter(is_24x7=True).delete()


class Migration(migrations.Migration):
    dependencies = [("sla", "0001_calendars")]

    operations = [migrations.RunPython(create_builtin, remove_builtin)]
