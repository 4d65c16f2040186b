from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Count, F, Q
from django.utils import timezone

from security.audit import ChainBreak, audit_verify
from security.models import AuditLog, User
from tickets import services
from tickets.models import Ticket, TicketEvent
from tickets.state import TicketState

pytestmark = pytest.mark.django_db


def bulk(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("seed_bulk", "--no-progress", "--requesters", "40", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_seed_bulk_creates_exactly_the_tickets_asked_for_with_their_events():
    # when: batches that do not divide the total
    output, notes = bulk("--tickets", "2000", "--batch", "700", "--seed", "3")

    # then
    assert Ticket.objects.count() == 2000
    assert TicketEvent.objects.count() == 2000
    assert not Ticket.objects.annotate(event_count=Count("events")).exclude(event_count=1).exists()
    assert TicketEvent.objects.filter(kind=TicketEvent.Kind.CREATED, at=F("ticket__created_at")).count() == 2000
    assert "Added 2000 tickets" in output
    assert "not audited" in notes


def test_seed_bulk_rows_satisfy_the_ticket_rules():
    # when
    bulk("--tickets", "2000", "--batch", "700")

    # then
    tickets = Ticket.objects.all()
    now = timezone.now()
    assert set(tickets.values_list("state", flat=True)) == set(TicketState.values)
    assert not tickets.filter(Q(state=TicketState.PENDING) & Q(pending_reason="")).exists()
    assert not tickets.filter(~Q(state=TicketState.PENDING) & ~Q(pending_reason="")).exists()
    assert not tickets.filter(state=TicketState.ASSIGNED, assignee__isnull=True).exists()
    assert not tickets.filter(state__in=["resolved", "closed"], resolved_at__isnull=True).exists()
    assert not tickets.filter(state="closed", closed_at__isnull=True).exists()
    assert not tickets.filter(closed_at__lt=F("resolved_at")).exists()
    assert not tickets.filter(Q(created_at__gt=now) | Q(updated_at__gt=now) | Q(updated_at__lt=F("created_at")))
    assert not tickets.filter(priority_is_overridden=True, priority_override_reason="").exists()
    assert not tickets.filter(is_confidential=True).exclude(team__is_security=True).exists()
    assert tickets.filter(is_confidential=True).exists()
    # assignees belong to the ticket's team
    assert not tickets.filter(assignee__isnull=False).exclude(assignee__memberships__team=F("team")).exists()
    # numbers are unique and match the type
    assert tickets.values("number").distinct().count() == 2000
    assert not tickets.filter(type="incident").exclude(number__startswith="INC-").exists()
    assert not tickets.filter(type="request").exclude(number__startswith="REQ-").exists()
    # requesters come from the bulk pool, which nobody can sign in with
    pool = User.objects.filter(email__endswith="@bulk.example.org")
    assert pool.count() == 40
    assert not pool.filter(password__startswith="md5").exists()
    assert not any(user.has_usable_password() for user in pool)
    assert not tickets.exclude(requester__in=pool).exists()


def test_tickets_created_after_a_bulk_load_do_not_collide():
    # given
    bulk("--tickets", "2000", "--batch", "1000")
    bulk_numbers = set(Ticket.objects.values_list("number", flat=True))
    requester = User.objects.filter(email__endswith="@bulk.example.org").first()
    assert requester is not None

    # when
    incident = services.ticket_create(actor=requester, title="After the load", category=_category("incident"))
    request = services.ticket_create(actor=requester, title="After the load too", category=_category("request"))

    # then
    assert incident.number not in bulk_numbers
    assert request.number not in bulk_numbers
    last_incident = max(n for n in bulk_numbers if n.startswith("INC-"))
    assert int(incident.number[4:]) > int(last_incident[4:])


def _category(ticket_type: str):  # type: ignore[no-untyped-def]
    from tickets.models import Category

    return Category.objects.filter(default_type=ticket_type, is_confidential=False, parent__isnull=False).first()


def test_seed_bulk_records_one_audit_row_and_keeps_the_chain_valid():
    # when
    bulk("--tickets", "500")

    # then
    rows = AuditLog.objects.filter(action="seed.bulk")
    assert rows.count() == 1
    row = rows.get()
    assert row.after is not None
    assert row.after["tickets"] == 500
    assert row.actor_id is None
    assert not AuditLog.objects.filter(action__startswith="ticket.").exists()
    assert not [result for result in audit_verify() if isinstance(result, ChainBreak)]


def test_seed_bulk_creates_a_directory_when_there_is_none_and_is_deterministic():
    # when
    bulk("--tickets", "300", "--seed", "5")
    first = list(Ticket.objects.order_by("id").values_list("title", "state", "category__slug", "priority"))
    Ticket.objects.all().delete()
    bulk("--tickets", "300", "--seed", "5")
    second = list(Ticket.objects.order_by("id").values_list("title", "state", "category__slug", "priority"))

    # then
    assert len(first) == 300
    assert first == second
    assert User.objects.filter(email="admin@desk.example.org").exists()  # the demo directory


def test_timestamp_text_matches_the_datetime_it_stands_for():
    from datetime import UTC, datetime

    from tickets.management.commands.seed_bulk import DAY, TimestampText

    now = int(datetime(2026, 3, 29, 1, 30, 5, tzinfo=UTC).timestamp())
    text = TimestampText(now // DAY - 800, now // DAY + 1)

    for seconds in (now, now - 1, now - 86_399, now - 700 * DAY + 12_345):
        expected = datetime.fromtimestamp(seconds, tz=UTC)
        assert datetime.fromisoformat(text(seconds).replace(" ", "T")) == expected
