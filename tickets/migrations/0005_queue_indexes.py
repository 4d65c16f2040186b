# Indexes behind the desk queues (issue #4): a category filter sorted by newest activity, the "My teams' unassigned"
# queue, and the priority sort. Built CONCURRENTLY so a table with millions of tickets keeps taking writes meanwhile;
# that needs a non-atomic migration (each statement commits on its own).

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tickets", "0004_confidential_index"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="ticket",
            index=models.Index(
                models.F("category"),
                models.OrderBy(models.F("updated_at"), descending=True),
                models.OrderBy(models.F("id"), descending=True),
                name="tickets_category_upd",
            ),
        ),
        AddIndexConcurrently(
            model_name="ticket",
            index=models.Index(
                models.F("team"),
                models.OrderBy(models.F("updated_at"), descending=True),
                models.OrderBy(models.F("id"), descending=True),
                condition=models.Q(
                    ("assignee__isnull", True), ("state__in", ["new", "assigned", "in_progress", "pending"])
                ),
                name="tickets_unassigned_open_upd",
            ),
        ),
        AddIndexConcurrently(
            model_name="ticket",
            index=models.Index(fields=["priority", "id"], name="tickets_priority_id"),
        ),
    ]
