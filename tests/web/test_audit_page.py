"""The audit log page: admins and security officers only, confidential ticket rows only for security."""

import pytest
from django.test import Client

from security import services as security_services
from security.models import AuditLog


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["requester", "agent", "lead", "manager"])
def test_audit_log_is_not_found_for_everyone_else(desk, who):
    response = signed_in(getattr(desk, who)).get("/security/audit/")

    assert response.status_code == 404


def test_admin_sees_changes_newest_first_and_filters_by_object(desk):
    ticket = desk.ticket()
    security_services.membership_set(actor=None, user=desk.requester, team=desk.network)

    response = signed_in(desk.admin).get("/security/audit/")
    by_ticket = signed_in(desk.admin).get(f"/security/audit/?object_type=tickets.ticket&object_id={ticket.pk}")

    assert response.status_code == 200
    rows = list(response.context["page"].rows)
    assert [row.action for row in rows[:2]] == ["membership.create", "ticket.create"]
    assert [row.seq for row in rows] == sorted((row.seq for row in rows), reverse=True)
    assert [row.action for row in by_ticket.context["page"].rows] == ["ticket.create"]


def test_confidential_ticket_rows_are_hidden_from_a_non_security_admin(desk):
    secret = desk.ticket(category=desk.phishing, title="Phishing from ceo-lookalike.example")

    admin_rows = signed_in(desk.admin).get("/security/audit/").context["page"].rows
    officer_page = signed_in(desk.security_officer).get("/security/audit/")

    assert str(secret.pk) not in [row.object_id for row in admin_rows if row.object_type == "tickets.ticket"]
    assert b"ceo-lookalike" in officer_page.content
    assert AuditLog.objects.filter(object_type="tickets.ticket", object_id=str(secret.pk)).count() == 1


def test_audit_log_pages_by_sequence(desk):
    for number in range(5):
        desk.ticket(title=f"Ticket {number}")
    client = signed_in(desk.admin)

    first = client.get("/security/audit/?action=ticket.create&before=")
    everything = [row.seq for row in AuditLog.objects.filter(action="ticket.create").order_by("-seq")]
    page_one = client.get("/security/audit/", {"action": "ticket.create"}).context["page"]

    assert first.status_code == 200
    assert [row.seq for row in page_one.rows] == everything


def test_audit_log_costs_the_same_queries_at_two_sizes(desk, django_assert_num_queries):
    client = signed_in(desk.security_officer)
    client.get("/security/audit/")  # warm the session and permission caches
    with django_assert_num_queries(4) as small:
        client.get("/security/audit/")
    for number in range(30):
        desk.ticket(title=f"Ticket {number}")
    with django_assert_num_queries(len(small.captured_queries)):
        client.get("/security/audit/")


def test_garbage_filters_do_not_crash(desk):
    response = signed_in(desk.admin).get("/security/audit/?before=abc&actor=x&object_id=" + "9" * 500)

    assert response.status_code == 200
