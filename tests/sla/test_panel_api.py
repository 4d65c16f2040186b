"""The desk SLA panel, `GET /api/v1/tickets/{number}/sla/` and the policy/clock admin (issue 5), with frozen time."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from sla import selectors
from sla.models import Calendar, Clock, ClockSegment, SlaPolicy, SlaTarget
from tests.web.conftest import signed_in
from tickets import services as ticket_services
from tickets.models import Ticket
from tickets.state import PendingReason, TicketState

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HOUR = 3600


def make_policy(name: str = "Standard", *, first_response: int = HOUR, resolution: int = 4 * HOUR) -> SlaPolicy:
    policy = SlaPolicy.objects.create(name=name, calendar=Calendar.objects.get(is_24x7=True), precedence=len(name))
    for metric, seconds in (
        (SlaTarget.Metric.FIRST_RESPONSE, first_response),
        (SlaTarget.Metric.RESOLUTION, resolution),
    ):
        SlaTarget.objects.create(
            policy=policy, metric=metric, p1_seconds=seconds, p2_seconds=seconds, p3_seconds=seconds, p4_seconds=seconds
        )
    return policy


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def page(desk, ticket: Ticket, user=None):  # type: ignore[no-untyped-def]
    return signed_in(user or desk.agent).get(f"/desk/tickets/{ticket.number}/")


def api(desk, ticket: Ticket, user=None):  # type: ignore[no-untyped-def]
    return signed_in(user or desk.agent).get(f"/api/v1/tickets/{ticket.number}/sla/")


def clock_items(content: str) -> dict[str, str]:
    """Metric label → the `<li>` of that clock."""
    items = re.findall(r'<li class="sla-clock.*?</li>', content, re.S)
    return {re.search(r"<strong>(.*?)</strong>", item).group(1): item for item in items}  # type: ignore[union-attr]


def test_running_clocks_show_ok_warning_and_due_in_both_zones(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    ticket = desk.ticket()
    desk.agent.time_zone = "America/New_York"
    desk.agent.save(update_fields=["time_zone"])
    frozen.shift(timedelta(minutes=45))

    items = clock_items(page(desk, ticket).content.decode())

    first, resolution = items["First response"], items["Resolution"]
    assert 'data-state="warning"' in first  # 45 of 60 minutes ≥ the 50 % warning
    assert "sla-clock--warning" in first
    assert 'data-remaining-seconds="900"' in first
    assert "15 m left" in first
    assert 'data-ticks="true"' in first
    assert 'data-state="ok"' in resolution
    assert "3 h 15 m left" in resolution
    # Due at 14:00 UTC: 09:00 EST for the viewer, and 14:00 GMT in the calendar's zone.
    assert "2 Mar 2026 09:00 EST" in resolution
    assert "2 Mar 2026 14:00 UTC" in resolution
    assert "<summary>Explain</summary>" in resolution


def test_pending_pauses_the_clock(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    ticket = desk.ticket()
    ticket_services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent)
    frozen.shift(timedelta(minutes=10))
    ticket_services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state=TicketState.PENDING, pending_reason=PendingReason.AWAITING_REQUESTER
    )
    frozen.shift(timedelta(minutes=30))

    resolution = clock_items(page(desk, ticket).content.decode())["Resolution"]

    assert 'data-state="paused"' in resolution
    assert 'data-ticks="false"' in resolution
    assert "sla-clock--paused" in resolution
    assert ">paused<" in resolution


def test_past_target_is_breached_and_agent_reply_meets_first_response(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy(first_response=HOUR, resolution=2 * HOUR)
    ticket = desk.ticket()
    frozen.shift(timedelta(minutes=20))
    ticket_services.comment_add(actor=desk.agent, ticket=ticket, body="On it")
    frozen.shift(timedelta(hours=2, minutes=15))  # the resolution target passed at T0 + 2 h
    ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=TicketState.RESOLVED)
    frozen.shift(timedelta(hours=1))

    items = clock_items(page(desk, ticket).content.decode())

    assert 'data-state="met"' in items["First response"]
    assert "sla-clock--met" in items["First response"]
    assert 'data-state="breached"' in items["Resolution"]
    assert "sla-clock--breached" in items["Resolution"]
    assert "overdue by 35 m" in items["Resolution"]
    assert 'data-ticks="false"' in items["Resolution"]


def test_overdue_running_clock_is_breached_before_any_timer(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    ticket = desk.ticket()
    frozen.shift(timedelta(minutes=95))

    first = clock_items(page(desk, ticket).content.decode())["First response"]

    assert 'data-state="breached"' in first
    assert "overdue by 35 m" in first
    assert 'data-remaining-seconds="-2100"' in first


def test_requester_and_outsiders_never_see_the_clocks(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    ticket = desk.ticket()

    portal = signed_in(desk.requester).get(f"/portal/tickets/{ticket.number}/")
    assert b"sla-panel" not in portal.content
    assert selectors.clocks_for_ticket(user=desk.requester, ticket=ticket, now=T0) == []
    assert api(desk, ticket, desk.requester).status_code == 404
    assert b"sla-panel" in page(desk, ticket).content


def test_api_fields_and_exact_numbers(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    ticket = desk.ticket()
    ticket_services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent)
    frozen.shift(timedelta(minutes=30))
    ticket_services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state=TicketState.PENDING, pending_reason=PendingReason.AWAITING_REQUESTER
    )
    frozen.shift(timedelta(minutes=20))
    ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=TicketState.IN_PROGRESS)
    frozen.shift(timedelta(minutes=10))

    response = api(desk, ticket)

    assert response.status_code == 200
    clocks = {clock["metric"]: clock for clock in response.json()["clocks"]}
    resolution = clocks["resolution"]
    assert resolution == {
        "policy": "Standard",
        "kind": "sla",
        "team": None,
        "metric": "resolution",
        "state": "ok",
        "clock_state": "running",
        "started_at": "2026-03-02T10:00:00Z",
        "due_at": "2026-03-02T14:20:00Z",
        "target_business_seconds": 4 * HOUR,
        "elapsed_business_seconds": 40 * 60,
        "remaining_business_seconds": 4 * HOUR - 40 * 60,
        "paused_seconds": 20 * 60,
        "breached_at": None,
        "met_at": None,
        "finished_at": None,
        "time_zone": "UTC",
        "segments": [
            {
                "kind": "running",
                "start": "2026-03-02T10:00:00Z",
                "end": "2026-03-02T10:30:00Z",
                "business_seconds": 1800,
            },
            {
                "kind": "paused",
                "start": "2026-03-02T10:30:00Z",
                "end": "2026-03-02T10:50:00Z",
                "business_seconds": 1200,
            },
            {"kind": "running", "start": "2026-03-02T10:50:00Z", "end": None, "business_seconds": 600},
        ],
        # The derivation: 4 h − 30 m elapsed before the current run, laid from 10:50 (24×7: one window).
        "explain": {
            "calendar": "24×7",
            "target_business_seconds": 4 * HOUR,
            "elapsed_business_seconds": 40 * 60,
            "paused_seconds": 20 * 60,
            "elapsed_before_anchor": 30 * 60,
            "remaining_from_anchor": 4 * HOUR - 30 * 60,
            "anchor": "2026-03-02T10:50:00Z",
            "due_at": "2026-03-02T14:20:00Z",
            "steps": [
                {"start": "2026-03-02T10:50:00Z", "end": "2026-03-02T14:20:00Z", "business_seconds": 4 * HOUR - 1800}
            ],
            "more_steps": 0,
            "more_steps_seconds": 0,
            "is_24x7": True,
            "working_days": [],
            "more_working_day_runs": 0,
            "more_working_day_seconds": 0,
            "holidays": [],
            "more_holidays": 0,
            "until": "2026-03-02T14:20:00Z",
        },
    }
    assert clocks["first_response"]["state"] == "warning"  # 40 of 60 minutes: pending paused it too
    assert clocks["first_response"]["elapsed_business_seconds"] == 40 * 60


def test_api_hidden_and_missing_tickets_are_the_same_404(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    hidden = desk.ticket(category=desk.phishing)
    other = desk.ticket(requester=desk.other_requester)

    missing = signed_in(desk.agent).get("/api/v1/tickets/INC-999999/sla/")
    forbidden = api(desk, hidden)
    mine_not = api(desk, other, desk.requester)

    assert missing.status_code == forbidden.status_code == mine_not.status_code == 404
    assert missing.json() == forbidden.json() == mine_not.json()
    assert api(desk, hidden, desk.security_agent).status_code == 200


# --- query counts ----------------------------------------------------------------------------------------------------


def add_segments(ticket: Ticket, pairs: int) -> None:
    """Give every clock of the ticket `pairs` more closed running/paused segments before its open one."""
    for clock in Clock.objects.filter(ticket=ticket):
        open_segment = ClockSegment.objects.get(clock=clock, end__isnull=True)
        start = open_segment.start
        rows = []
        for index in range(pairs):
            base = start - timedelta(minutes=2 * (pairs - index))
            rows.append(ClockSegment(clock=clock, kind="running", start=base, end=base + timedelta(minutes=1)))
            rows.append(
                ClockSegment(
                    clock=clock, kind="paused", start=base + timedelta(minutes=1), end=base + timedelta(minutes=2)
                )
            )
        ClockSegment.objects.bulk_create(rows)


@pytest.mark.parametrize("url", ["/desk/tickets/{}/", "/api/v1/tickets/{}/sla/"])
def test_queries_do_not_grow_with_clocks_or_segments(desk, frozen, url) -> None:  # type: ignore[no-untyped-def]
    calendar = Calendar.objects.get(is_24x7=True)
    policy = SlaPolicy.objects.create(name="Standard", calendar=calendar)
    SlaTarget.objects.create(
        policy=policy, metric="resolution", p1_seconds=HOUR, p2_seconds=HOUR, p3_seconds=HOUR, p4_seconds=HOUR
    )
    few = desk.ticket()  # one clock
    SlaTarget.objects.create(
        policy=policy, metric="first_response", p1_seconds=HOUR, p2_seconds=HOUR, p3_seconds=HOUR, p4_seconds=HOUR
    )
    ola = SlaPolicy.objects.create(name="Desktop OLA", kind=SlaPolicy.Kind.OLA, team=desk.desktop, calendar=calendar)
    SlaTarget.objects.create(
        policy=ola, metric="resolution", p1_seconds=HOUR, p2_seconds=HOUR, p3_seconds=HOUR, p4_seconds=HOUR
    )
    many = desk.ticket()  # three clocks
    add_segments(few, 1)  # 3 segments
    add_segments(many, 10)  # 21 segments each
    assert Clock.objects.filter(ticket=few).count() == 1
    assert Clock.objects.filter(ticket=many).count() == 3
    client = signed_in(desk.agent)
    counts = []
    for ticket in (few, many):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url.format(ticket.number))
        assert response.status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1], counts
    # Session, user, memberships; ticket; clocks; segments (24×7: no ranges or holidays to load). The page adds team
    # members, timeline and attachments (no timeline names to look up here).
    assert counts[0] == (6 if url.startswith("/api/") else 9), counts


# --- admin -----------------------------------------------------------------------------------------------------------


def test_admin_changelists_load(desk, frozen) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    ticket = desk.ticket()
    ticket_services.comment_add(actor=desk.agent, ticket=ticket, body="On it")
    client = Client()
    client.force_login(desk.admin)
    clock = Clock.objects.filter(ticket=ticket).first()
    assert clock is not None
    policy = SlaPolicy.objects.get()

    for name in ("slapolicy", "clock", "clockoutcome"):
        response = client.get(reverse(f"admin:sla_{name}_changelist"))
        assert response.status_code == 200, name
    assert client.get(reverse("admin:sla_slapolicy_change", args=[policy.pk])).status_code == 200
    assert client.get(reverse("admin:sla_clock_change", args=[clock.pk])).status_code == 200
    assert (
        client.get(reverse("admin:sla_slapolicy_changelist") + "?kind=sla&is_active__exact=1&q=Stan").status_code == 200
    )
