"""The clock ledger (issue 5): pure figures from segments, and scenarios through the real ticket services with frozen
time (the `sla` subscribers run inside every ticket service)."""

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from sla import services
from sla.calendar import BusinessCalendar, WeeklyRange
from sla.models import Calendar, Clock, ClockEvent, ClockOutcome, ClockSegment, SlaPolicy, SlaTarget
from sla.state import PAUSED, RUNNING, Segment, figures
from tickets import events as ticket_events
from tickets import services as ticket_services
from tickets.models import Ticket

LONDON = ZoneInfo("Europe/London")
ALWAYS = BusinessCalendar.always_open()
OFFICE = BusinessCalendar(zone=LONDON, ranges=tuple(WeeklyRange(day, time(9), time(17)) for day in range(5)))
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # London is on UTC in early March
HOUR = 3600


def at(hours: float, base: datetime = MONDAY_10) -> datetime:
    return base + timedelta(hours=hours)


# --- pure figures --------------------------------------------------------------------------------------------------


def test_figures_running_24x7() -> None:
    result = figures([Segment(RUNNING, at(0))], ALWAYS, target_seconds=4 * HOUR, now=at(1))
    assert (result.elapsed, result.paused, result.remaining, result.due_at) == (HOUR, 0, 3 * HOUR, at(4))


def test_figures_pause_pushes_due_by_paused_time_24x7() -> None:
    ledger = [Segment(RUNNING, at(0), at(1)), Segment(PAUSED, at(1), at(1.5)), Segment(RUNNING, at(1.5))]
    result = figures(ledger, ALWAYS, target_seconds=4 * HOUR, now=at(2))
    assert (result.elapsed, result.paused, result.remaining, result.due_at) == (
        int(1.5 * HOUR),
        1800,
        int(2.5 * HOUR),
        at(4.5),
    )


def test_figures_paused_clock_has_no_due_instant() -> None:
    ledger = [Segment(RUNNING, at(0), at(1)), Segment(PAUSED, at(1))]
    result = figures(ledger, ALWAYS, target_seconds=4 * HOUR, now=at(3))
    assert (result.elapsed, result.paused, result.remaining, result.due_at) == (HOUR, 2 * HOUR, 3 * HOUR, None)


def test_figures_breach_instant_in_a_closed_segment() -> None:
    ledger = [Segment(RUNNING, at(0), at(1)), Segment(PAUSED, at(1), at(2)), Segment(RUNNING, at(2), at(5))]
    result = figures(ledger, ALWAYS, target_seconds=2 * HOUR, now=at(9))
    assert (result.elapsed, result.remaining, result.due_at) == (4 * HOUR, 0, at(3))
    assert result.is_over


def test_figures_office_hours_skip_nights_and_weekends() -> None:
    friday_16 = datetime(2026, 3, 6, 16, 0, tzinfo=UTC)
    result = figures([Segment(RUNNING, friday_16)], OFFICE, target_seconds=2 * HOUR, now=friday_16 + timedelta(hours=3))
    assert result.elapsed == HOUR  # 16:00–17:00 only
    assert result.due_at == datetime(2026, 3, 9, 10, 0, tzinfo=UTC)  # Monday 10:00


def test_figures_office_pause_pushes_due_by_paused_business_time() -> None:
    monday_16 = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    ledger = [
        Segment(RUNNING, monday_16, monday_16 + timedelta(minutes=30)),
        Segment(PAUSED, monday_16 + timedelta(minutes=30), datetime(2026, 3, 3, 9, 15, tzinfo=UTC)),
        Segment(RUNNING, datetime(2026, 3, 3, 9, 15, tzinfo=UTC)),
    ]
    result = figures(ledger, OFFICE, target_seconds=2 * HOUR, now=datetime(2026, 3, 3, 9, 15, tzinfo=UTC))
    assert (result.elapsed, result.paused) == (1800, 2700)  # 16:30–17:00 and 09:00–09:15
    # unpaused it was due Tuesday 10:00; the 45 business minutes paused push it to 10:45
    assert result.due_at == datetime(2026, 3, 3, 10, 45, tzinfo=UTC)


def test_figures_reject_an_open_segment_before_the_last() -> None:
    with pytest.raises(ValueError, match="last segment"):
        figures([Segment(RUNNING, at(0)), Segment(PAUSED, at(1))][::-1], ALWAYS, target_seconds=1, now=at(2))


# --- scenarios through the ticket services -------------------------------------------------------------------------


@pytest.fixture
def clock_time() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


def make_policy(
    name: str = "Standard",
    *,
    calendar: Calendar | None = None,
    first_response: int | None = HOUR,
    resolution: int | None = 4 * HOUR,
    **fields,  # type: ignore[no-untyped-def]
) -> SlaPolicy:
    categories = fields.pop("categories", ())
    policy = SlaPolicy.objects.create(name=name, calendar=calendar or Calendar.objects.get(is_24x7=True), **fields)
    policy.categories.set(categories)
    for metric, seconds in (
        (SlaTarget.Metric.FIRST_RESPONSE, first_response),
        (SlaTarget.Metric.RESOLUTION, resolution),
    ):
        if seconds is not None:
            SlaTarget.objects.create(
                policy=policy,
                metric=metric,
                p1_seconds=seconds,
                p2_seconds=seconds,
                p3_seconds=seconds,
                p4_seconds=seconds,
            )
    return policy


def clock(ticket: Ticket, metric: str, **filters) -> Clock:  # type: ignore[no-untyped-def]
    return Clock.objects.get(ticket=ticket, target__metric=metric, **filters)


def segments(c: Clock) -> list[tuple[str, datetime, datetime | None]]:
    return [(s.kind, s.start, s.end) for s in ClockSegment.objects.filter(clock=c).order_by("start", "id")]


def event_kinds(c: Clock) -> list[str]:
    return list(ClockEvent.objects.filter(clock=c).order_by("at", "id").values_list("kind", flat=True))


FIRST = SlaTarget.Metric.FIRST_RESPONSE
RESOLUTION = SlaTarget.Metric.RESOLUTION


def test_ticket_without_a_matching_policy_gets_no_clock_and_everything_works(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy("VPN only", categories=[desk.vpn])
    make_policy("Inactive", is_active=False)
    ticket = desk.ticket()
    ticket_services.comment_add(actor=desk.agent, ticket=ticket, body="Looking")
    ticket_services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state="pending", pending_reason="awaiting_vendor"
    )
    ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="resolved")
    ticket_services.ticket_transition(actor=desk.requester, ticket=ticket, to_state="closed")
    assert not Clock.objects.exists()


def test_created_ticket_opens_one_clock_per_target_of_each_matching_policy(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy("Generic", precedence=50)
    best = make_policy("Laptops", precedence=10, categories=[desk.laptop], ticket_types=["incident"], priorities=[3])
    make_policy("P1 only", precedence=1, priorities=[1])
    ola = make_policy(
        "Desktop OLA", kind=SlaPolicy.Kind.OLA, team=desk.desktop, first_response=None, resolution=2 * HOUR
    )
    make_policy("Network OLA", kind=SlaPolicy.Kind.OLA, team=desk.network)
    ticket = desk.ticket()
    assert ticket.priority == 3
    clocks = Clock.objects.filter(ticket=ticket).select_related("target__policy").order_by("pk")
    assert sorted((c.target.policy.name, c.target.metric, c.team_id) for c in clocks) == [
        ("Desktop OLA", RESOLUTION, desk.desktop.pk),
        ("Laptops", FIRST, None),
        ("Laptops", RESOLUTION, None),
    ]
    first = clock(ticket, FIRST, target__policy=best)
    assert (first.state, first.started_at, first.target_seconds, first.next_deadline_at) == (
        Clock.State.RUNNING,
        MONDAY_10,
        HOUR,
        at(0.5),  # the first timer threshold: the 50 % warning
    )
    assert segments(first) == [(RUNNING, MONDAY_10, None)]
    assert event_kinds(first) == ["started"]
    assert clock(ticket, RESOLUTION, target__policy=ola).next_deadline_at == at(1)


def test_pause_and_resume_keep_exact_paused_seconds_and_push_the_deadline(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    ticket = desk.ticket()
    resolution = clock(ticket, RESOLUTION)
    assert resolution.next_deadline_at == at(2)  # the 50 % warning of 4 h
    clock_time.move_to(at(1))
    ticket_services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state="pending", pending_reason="awaiting_vendor"
    )
    resolution.refresh_from_db()
    assert (resolution.state, resolution.next_deadline_at) == (Clock.State.PAUSED, None)
    resumed = at(1, MONDAY_10 + timedelta(seconds=1237))  # paused for 20 min 37 s
    clock_time.move_to(resumed)
    ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="in_progress")
    resolution.refresh_from_db()
    assert resolution.state == Clock.State.RUNNING
    assert resolution.next_deadline_at == at(2) + (resumed - at(1))
    assert segments(resolution) == [(RUNNING, MONDAY_10, at(1)), (PAUSED, at(1), resumed), (RUNNING, resumed, None)]
    assert event_kinds(resolution) == ["started", "paused", "resumed"]
    # the first-response clock had used its whole hour when paused and no timer fired here: its earliest unfired
    # threshold (the 50 % warning) stays where it was reached, overdue, so the reconciler fires it at once
    assert clock(ticket, FIRST).next_deadline_at == at(0.5)


def test_office_hours_pause_pushes_the_deadline_by_the_paused_business_time(desk) -> None:  # type: ignore[no-untyped-def]
    office = services.calendar_create(
        actor=None, name="London office", time_zone="Europe/London", ranges=[(d, time(9), time(17)) for d in range(5)]
    )
    make_policy(calendar=office, first_response=None, resolution=2 * HOUR)
    monday_16 = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    with time_machine.travel(monday_16, tick=False) as traveller:
        ticket = desk.ticket()
        assert clock(ticket, RESOLUTION).next_deadline_at == datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 50 %
        traveller.move_to(monday_16 + timedelta(minutes=30))
        ticket_services.ticket_transition(
            actor=desk.agent, ticket=ticket, to_state="pending", pending_reason="awaiting_vendor"
        )
        traveller.move_to(datetime(2026, 3, 3, 9, 15, tzinfo=UTC))
        ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="in_progress")
    assert clock(ticket, RESOLUTION).next_deadline_at == datetime(2026, 3, 3, 9, 45, tzinfo=UTC)


def test_agent_public_reply_stops_first_response_but_requester_reply_and_note_do_not(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    policy = make_policy()
    ticket = desk.ticket()
    clock_time.move_to(at(0.25))
    ticket_services.comment_add(actor=desk.requester, ticket=ticket, body="Any news?")
    ticket_services.comment_add(actor=desk.agent, ticket=ticket, body="Checking", is_internal=True)
    assert clock(ticket, FIRST).state == Clock.State.RUNNING
    clock_time.move_to(at(0.5))
    ticket_services.comment_add(actor=desk.agent, ticket=ticket, body="On it")
    first = clock(ticket, FIRST)
    assert (first.state, first.finished_at, first.next_deadline_at, first.breached_at) == (
        Clock.State.MET,
        at(0.5),
        None,
        None,
    )
    assert event_kinds(first) == ["started", "met"]
    outcome = ClockOutcome.objects.get(clock=first)
    assert (outcome.met, outcome.business_seconds_used, outcome.target_seconds) == (True, 1800, HOUR)
    assert (outcome.team_id, outcome.priority, outcome.category_id, outcome.policy_id, outcome.finished_at) == (
        desk.desktop.pk,
        3,
        desk.laptop.pk,
        policy.pk,
        at(0.5),
    )
    assert clock(ticket, RESOLUTION).state == Clock.State.RUNNING
    # a second agent reply changes nothing
    clock_time.move_to(at(0.75))
    ticket_services.comment_add(actor=desk.agent, ticket=ticket, body="Still on it")
    assert ClockOutcome.objects.count() == 1


def test_resolving_without_a_reply_stops_both_clocks(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    ticket = desk.ticket()
    clock_time.move_to(at(0.5))
    ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="resolved")
    for metric in (FIRST, RESOLUTION):
        c = clock(ticket, metric)
        assert (c.state, c.finished_at) == (Clock.State.MET, at(0.5))
        assert ClockOutcome.objects.get(clock=c).business_seconds_used == 1800
    # reopening and closing later does not touch the finished clocks (v1: the resolution clock stops at resolved)
    ticket_services.ticket_transition(actor=desk.requester, ticket=ticket, to_state="closed")
    assert ClockOutcome.objects.count() == 2
    assert set(Clock.objects.values_list("state", flat=True)) == {Clock.State.MET}


def test_over_target_is_breached_at_the_instant_the_target_was_reached(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    ticket = desk.ticket()
    clock_time.move_to(at(0.5))
    ticket_services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state="pending", pending_reason="awaiting_vendor"
    )
    clock_time.move_to(at(3))
    ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="in_progress")
    clock_time.move_to(at(4))
    ticket_services.comment_add(actor=desk.agent, ticket=ticket, body="Sorry for the wait")
    first = clock(ticket, FIRST)
    # 30 min running, 2 h 30 min paused, then 30 more minutes reach the hour at 03:30 after creation
    assert (first.state, first.breached_at, first.finished_at) == (Clock.State.BREACHED, at(3.5), at(4))
    breach = ClockEvent.objects.get(clock=first, kind=ClockEvent.Kind.BREACHED)
    assert (breach.at, breach.threshold) == (at(3.5), 100)
    outcome = ClockOutcome.objects.get(clock=first)
    assert (outcome.met, outcome.business_seconds_used, outcome.target_seconds) == (False, int(1.5 * HOUR), HOUR)


@pytest.mark.parametrize("final", ["cancelled", "closed"])
def test_cancelled_or_closed_ticket_stops_all_clocks_without_outcome(desk, clock_time, final) -> None:  # type: ignore[no-untyped-def]
    make_policy(first_response=HOUR)
    # an OLA whose resolution clock stays open past `resolved` is impossible in v1; a custom pause state shows the
    # cancel path for a paused clock
    ticket = desk.ticket()
    clock_time.move_to(at(0.5))
    ticket_services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state="pending", pending_reason="awaiting_vendor"
    )
    clock_time.move_to(at(1))
    if final == "cancelled":
        ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="cancelled", reason="Duplicate")
        for c in Clock.objects.filter(ticket=ticket):
            assert (c.state, c.finished_at, c.next_deadline_at) == (Clock.State.CANCELLED, at(1), None)
            assert event_kinds(c)[-1] == "cancelled"
            assert segments(c)[-1] == (PAUSED, at(0.5), at(1))
        assert not ClockOutcome.objects.exists()
    else:
        ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="resolved")
        clock_time.move_to(at(2))
        ticket_services.ticket_transition(actor=desk.requester, ticket=ticket, to_state="closed")
        assert not Clock.objects.filter(ticket=ticket, state__in=Clock.OPEN_STATES).exists()


def test_closing_cancels_clocks_still_open(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    """A clock still open when the ticket reaches a final state (e.g. one whose pause states include resolved in a
    later version) is cancelled, never breached."""
    make_policy()
    ticket = desk.ticket()
    clock_time.move_to(at(0.5))
    services.on_status_changed(
        ticket_events.StatusChanged(
            at=at(0.5), actor_id=None, ticket_id=ticket.pk, from_state="resolved", to_state="closed"
        )
    )
    assert set(Clock.objects.values_list("state", flat=True)) == {Clock.State.CANCELLED}
    assert not ClockOutcome.objects.exists()


def test_the_same_event_twice_changes_nothing(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    ticket = desk.ticket()
    services.on_ticket_created(ticket_events.TicketCreated(at=MONDAY_10, actor_id=None, ticket_id=ticket.pk))
    assert Clock.objects.filter(ticket=ticket).count() == 2
    pause = ticket_events.StatusChanged(
        at=at(1), actor_id=None, ticket_id=ticket.pk, from_state="in_progress", to_state="pending"
    )
    resume = ticket_events.StatusChanged(
        at=at(2), actor_id=None, ticket_id=ticket.pk, from_state="pending", to_state="in_progress"
    )
    reply = ticket_events.PublicReplyAdded(at=at(3), actor_id=None, ticket_id=ticket.pk, comment_id=0, by_agent=True)
    for event in (pause, pause, resume, resume):
        with transaction.atomic():
            services.on_status_changed(event)
    for _ in range(2):
        with transaction.atomic():
            services.on_public_reply(reply)
    resolution = clock(ticket, RESOLUTION)
    assert segments(resolution) == [(RUNNING, MONDAY_10, at(1)), (PAUSED, at(1), at(2)), (RUNNING, at(2), None)]
    assert event_kinds(resolution) == ["started", "paused", "resumed"]
    # the first response ran its whole hour before the pause: breached at that instant (at(1)), stopped at the reply
    first = clock(ticket, FIRST)
    assert event_kinds(first) == ["started", "paused", "breached", "resumed"]
    assert (first.state, first.breached_at, first.finished_at) == (Clock.State.BREACHED, at(1), at(3))
    assert ClockOutcome.objects.count() == 1


def test_ledger_constraints(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    ticket = desk.ticket()
    first = clock(ticket, FIRST)
    with pytest.raises(IntegrityError), transaction.atomic():
        Clock.objects.create(
            ticket=ticket, target=first.target, started_at=MONDAY_10, target_seconds=1, state=Clock.State.PAUSED
        )
    ClockEvent.objects.create(clock=first, kind=ClockEvent.Kind.WARNED, at=at(0.5), threshold=50)
    with pytest.raises(IntegrityError), transaction.atomic():
        ClockEvent.objects.create(clock=first, kind=ClockEvent.Kind.WARNED, at=at(0.6), threshold=50)
    with pytest.raises(IntegrityError), transaction.atomic():
        ClockEvent.objects.create(clock=first, kind=ClockEvent.Kind.BREACHED, at=at(0.6))
    with pytest.raises(IntegrityError), transaction.atomic():
        ClockSegment.objects.create(clock=first, kind=RUNNING, start=at(1))  # a second open segment


def test_policy_and_target_validation(desk) -> None:  # type: ignore[no-untyped-def]
    calendar = Calendar.objects.get(is_24x7=True)
    with pytest.raises(ValidationError) as excinfo:
        SlaPolicy(name="OLA", kind=SlaPolicy.Kind.OLA, calendar=calendar).full_clean()
    assert excinfo.value.error_dict["team"][0].code == "ola_without_team"
    with pytest.raises(ValidationError) as excinfo:
        SlaPolicy(name="X", calendar=calendar, priorities=[7]).full_clean()
    assert "priorities" in excinfo.value.error_dict
    policy = make_policy(first_response=None, resolution=None)
    target = SlaTarget(
        policy=policy,
        metric=RESOLUTION,
        p1_seconds=0,
        p2_seconds=1,
        p3_seconds=1,
        p4_seconds=1,
        pause_states=["closed"],
    )
    with pytest.raises(ValidationError) as excinfo:
        target.full_clean()
    assert set(excinfo.value.error_dict) >= {"p1_seconds", "pause_states"}
    assert SlaTarget(p1_seconds=1, p2_seconds=2, p3_seconds=3, p4_seconds=4).seconds_for(3) == 3
