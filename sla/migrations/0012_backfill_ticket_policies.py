"""Fill `Ticket.sla_policy_ids` (tickets 0010) from the clocks already opened: each ticket gets the policies of its
clocks, in one UPDATE. From now on the SLA engine appends a policy when it opens a clock (`note_ticket_policy`)."""

from django.db import migrations

BACKFILL = """
UPDATE tickets_ticket k
   SET sla_policy_ids = p.ids
  FROM (SELECT c.ticket_id, array_agg(DISTINCT t.policy_id ORDER BY t.policy_id) AS ids
          FROM sla_clock c JOIN sla_slatarget t ON t.id = c.target_id
         GROUP BY c.ticket_id) AS p
 WHERE p.ticket_id = k.id
"""


class Migration(migrations.Migration):
    dependencies = [
        ("sla", "0011_dashboard_list_indexes"),
        ("tickets", "0010_ticket_sla_policy_ids"),
    ]

    operations = [migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop)]
