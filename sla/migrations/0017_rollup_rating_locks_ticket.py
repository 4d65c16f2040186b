"""The rating trigger locks the rating's ticket before it reads the ticket's resolved day and filters (found in
review): without it, a rating written while another transaction moved or cleared the ticket's resolution (both
commit, neither waits for the other: the rating's foreign key check only takes a KEY SHARE lock) was counted on the
old day by one trigger while the other moved the ticket without it. With the lock the two take turns, so each
trigger reads the other's committed result. The services already lock the ticket; this covers every other writer."""

# Constant SQL assembled from the literals below; nothing user-supplied.
# ruff: noqa: S608

from importlib import import_module

from django.db import migrations

# The rollup columns as migration 0015 created them (a migration's constants do not change).
_ROLLUPS = import_module("sla.migrations.0015_report_rollups")
TICKET_COLUMNS = _ROLLUPS.TICKET_COLUMNS
NO_HOURS = _ROLLUPS.NO_HOURS


def _rating_add(lock: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION sla_rollup_rating_add(ticket bigint, score integer, sign integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t tickets_ticket;
BEGIN
    SELECT * INTO t FROM tickets_ticket WHERE id = ticket{lock};
    IF NOT FOUND OR t.resolved_at IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO sla_ticketday ({TICKET_COLUMNS})
    SELECT z.name, (t.resolved_at AT TIME ZONE z.name)::date, 'resolved', t.team_id, t.category_id, t.priority,
        t.type, t.is_confidential, t.sla_policy_ids, 0, sign, sign * score, {NO_HOURS}
    FROM sla_reportzone z;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("sla", "0016_outcome_metric_cover")]

    operations = [migrations.RunSQL(_rating_add(" FOR NO KEY UPDATE"), _rating_add(""))]
