"""Batch firing (`clocks_fire_overdue`, used by the reconciler and by an eta task that finds a wave of overdue clocks)
writes exactly what firing each clock alone (`clock_fire_due`) writes, in a number of statements that does not grow
with the batch."""

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from sla import services
from sla.models import Calendar, Clock, ClockEvent, SlaPolicy, SlaTarget
from tickets.state import TicketState

MONDAY_9 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # London is on UTC in early March
HOUR = 3600


def _policy(calendar: Calendar) -> None:
    policy = SlaPolicy.objects.create(name="Office", calendar=calendar)
    SlaTarget.objects.create(
        policy=policy, metric=SlaTarget.Metric.RESOLUTION, warning_percents=[50, 75, 90],
        p1_seconds=4 * HOUR, p2_seconds=4 * HOUR, p3_seconds=4 * HOUR, p4_seconds=4 * HOUR,
    )  # fmt: skip


def _office() -> Calendar:
    return services.calendar_create(
        actor=None, name="London office", time_zone="Europe/London", ranges=[(d, time(9), time(17)) for d in range(5)]
    )


def _picture(clock_ids: list[int]) -> dict[int, Any]:
    clocks = {c.pk: c for c in Clock.objects.filter(pk__in=clock_ids)}
    return {
        clock_id: (
            clocks[clock_id].next_deadline_at,
            clocks[clock_id].due_at,
            clocks[clock_id].breached_at,
            sorted(
                ClockEvent.objects.filter(clock_id=clock_id, kind__in=("warned", "breached")).values_list(
                    "kind", "threshold", "at", "data"
                )
            ),
        )
        for clock_id in clock_ids
    }


@pytest.mark.django_db
def test_a_batch_fires_exactly_what_each_clock_fired_alone_would(desk, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    # given: office-hours clocks started at different times, one paused for an hour, one already warned at 50 %
    _policy(_office())
    with time_machine.travel(MONDAY_9, tick=False) as traveller:
        tickets = []
        for n in range(6):
            traveller.move_to(MONDAY_9 + timedelta(minutes=40 * n))
            tickets.append(desk.ticket(title=f"Ticket {n}"))
        traveller.move_to(MONDAY_9 + timedelta(hours=4, minutes=10))
        clock_ids = [Clock.objects.get(ticket=ticket).pk for ticket in tickets]
        services.clock_fire_due(clock_id=clock_ids[0])
        paused = tickets[5]
        from tickets import services as ticket_services

        ticket_services.ticket_transition(actor=desk.agent, ticket=paused, to_state=TicketState.IN_PROGRESS)
        ticket_services.ticket_transition(
            actor=desk.agent, ticket=paused, to_state=TicketState.PENDING, pending_reason="awaiting_requester"
        )
        traveller.move_to(MONDAY_9 + timedelta(hours=5, minutes=10))
        ticket_services.ticket_transition(actor=desk.agent, ticket=paused, to_state=TicketState.IN_PROGRESS)
        now = MONDAY_9 + timedelta(hours=6, minutes=30)
        traveller.move_to(now)

        # when: each fired alone (then undone), and all fired as one batch
        with django_capture_on_commit_callbacks(execute=False), transaction.atomic():
            for clock_id in clock_ids:
                services.clock_fire_due(clock_id=clock_id, now=now)
            alone = _picture(clock_ids)
            transaction.set_rollback(True)
        with django_capture_on_commit_callbacks(execute=False):
            counts = services.clocks_fire_overdue(now=now)

    # then: the same rows, and the case covers warnings, breaches and a pause
    assert _picture(clock_ids) == alone
    kinds = {(kind, threshold) for *_fields, events in alone.values() for kind, threshold, _at, _data in events}
    assert kinds == {("warned", 50), ("warned", 75), ("warned", 90), ("breached", 100)}
    assert counts == {"fired": 5, "failed": 0}  # the first clock fired everything (breach at 13:00) at 13:10


@pytest.mark.django_db
@pytest.mark.parametrize("size", [5, 40])
def test_batch_firing_costs_the_same_statements_at_any_size(desk, size, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    always = Calendar.objects.get(is_24x7=True)
    _policy(always)
    with time_machine.travel(MONDAY_9, tick=False) as traveller:
        for n in range(size):
            desk.ticket(title=f"Ticket {n}")
        traveller.move_to(MONDAY_9 + timedelta(hours=5))
        with django_capture_on_commit_callbacks(execute=False), CaptureQueriesContext(connection) as queries:
            counts = services.clocks_fire_overdue(batch_size=100)
    assert counts == {"fired": size, "failed": 0}
    # savepoint, lock the batch, segments, fired thresholds, escalation levels, calendar + ranges + holidays, insert,
    # update, release
    assert len(queries) == 11


@pytest.mark.django_db
def test_a_clock_that_cannot_be_fired_is_counted_once_and_the_others_fire(
    desk, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    # given: four overdue office-hours clocks; the earliest one's calendar then loses all its working hours
    broken_calendar = services.calendar_create(
        actor=None, name="Broken", time_zone="UTC", ranges=[(d, time(9), time(17)) for d in range(5)]
    )
    policy = SlaPolicy.objects.create(name="Broken", calendar=broken_calendar, precedence=1)
    policy.categories.add(desk.vpn)
    SlaTarget.objects.create(
        policy=policy, metric=SlaTarget.Metric.RESOLUTION, warning_percents=[],
        p1_seconds=HOUR, p2_seconds=HOUR, p3_seconds=HOUR, p4_seconds=HOUR,
    )  # fmt: skip
    _policy(_office())
    with time_machine.travel(MONDAY_9, tick=False) as traveller:
        broken = desk.ticket(title="Broken calendar", category=desk.vpn)
        others = [desk.ticket(title=f"Fine {n}") for n in range(3)]
        broken_calendar.working_ranges.all().delete()
        traveller.move_to(MONDAY_9 + timedelta(hours=6))
        broken_clock = Clock.objects.get(ticket=broken)
        assert broken_clock.target.policy == policy
        assert broken_clock.next_deadline_at == MONDAY_9 + timedelta(hours=1)

        # when: batches of two, the broken clock first
        with django_capture_on_commit_callbacks(execute=False):
            counts = services.clocks_reconcile(batch_size=2)

    # then: it failed once (not once per batch), untouched; the three others fired
    assert counts == {"fired": 3, "failed": 1, "planned": 0}
    assert ClockEvent.objects.filter(clock=broken_clock, kind__in=("warned", "breached")).count() == 0
    assert Clock.objects.filter(ticket__in=others, breached_at=MONDAY_9 + timedelta(hours=4)).count() == 3
