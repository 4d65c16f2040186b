"""SLA timers (docs/sla.md "Timers"): `next_deadline_at` walks the warning and breach thresholds, `clock_fire_due`
fires each threshold once at its exact instant, and the reconciler fires overdue clocks and plans the rest."""

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine

from sla import services
from sla.models import Calendar, Clock, ClockEvent, ClockOutcome, SlaPolicy, SlaTarget
from sla.tasks import fire_due_clock_task, reconcile_task
from tickets import services as ticket_services
from tickets.models import Ticket

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # London is on UTC in early March
HOUR = 3600
RESOLUTION = SlaTarget.Metric.RESOLUTION


def at(hours: float, base: datetime = MONDAY_10) -> datetime:
    return base + timedelta(hours=hours)


@pytest.fixture
def clock_time() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


def make_policy(
    *, calendar: Calendar | None = None, seconds: int = 4 * HOUR, warnings: tuple[int, ...] = (50, 75, 90)
) -> SlaPolicy:
    policy = SlaPolicy.objects.create(name="Standard", calendar=calendar or Calendar.objects.get(is_24x7=True))
    SlaTarget.objects.create(
        policy=policy,
        metric=RESOLUTION,
        p1_seconds=seconds,
        p2_seconds=seconds,
        p3_seconds=seconds,
        p4_seconds=seconds,
        warning_percents=list(warnings),
    )
    return policy


def resolution_clock(ticket: Ticket) -> Clock:
    return Clock.objects.get(ticket=ticket, target__metric=RESOLUTION)


def thresholds(c: Clock) -> list[tuple[str, int | None, datetime]]:
    rows = ClockEvent.objects.filter(clock=c, kind__in=("warned", "breached")).order_by("at", "threshold")
    return [(e.kind, e.threshold, e.at) for e in rows]


def office_calendar() -> Calendar:
    return services.calendar_create(
        actor=None, name="London office", time_zone="Europe/London", ranges=[(d, time(9), time(17)) for d in range(5)]
    )


def test_thresholds_fire_at_their_exact_instants_24x7(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    ticket = desk.ticket()
    c = resolution_clock(ticket)
    assert c.next_deadline_at == at(2)

    # just before the 50 % warning: nothing
    assert services.clock_fire_due(clock_id=c.pk, now=at(2) - timedelta(seconds=1)) == []
    # at it: the warning, and the next deadline is the 75 % one
    assert services.clock_fire_due(clock_id=c.pk, now=at(2)) == ["warned:50"]
    c.refresh_from_db()
    assert c.next_deadline_at == at(3)

    # a late wake-up fires everything due, each at its own instant, and keeps the clock running
    assert services.clock_fire_due(clock_id=c.pk, now=at(5)) == ["warned:75", "warned:90", "breached:100"]
    c.refresh_from_db()
    assert (c.state, c.breached_at, c.next_deadline_at) == (Clock.State.RUNNING, at(4), None)
    assert thresholds(c) == [
        ("warned", 50, at(2)),
        ("warned", 75, at(3)),
        ("warned", 90, at(3.6)),
        ("breached", 100, at(4)),
    ]


def test_office_hours_thresholds_skip_the_night(desk) -> None:  # type: ignore[no-untyped-def]
    make_policy(calendar=office_calendar(), seconds=2 * HOUR, warnings=(75,))
    monday_16 = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    with time_machine.travel(monday_16, tick=False):
        ticket = desk.ticket()
    c = resolution_clock(ticket)
    warn = datetime(2026, 3, 3, 9, 30, tzinfo=UTC)  # 1 h on Monday, 30 min on Tuesday
    breach = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    assert c.next_deadline_at == warn

    assert services.clock_fire_due(clock_id=c.pk, now=datetime(2026, 3, 2, 23, 0, tzinfo=UTC)) == []
    assert services.clock_fire_due(clock_id=c.pk, now=warn) == ["warned:75"]
    c.refresh_from_db()
    assert c.next_deadline_at == breach
    assert services.clock_fire_due(clock_id=c.pk, now=breach) == ["breached:100"]
    c.refresh_from_db()
    assert (c.state, c.breached_at, c.next_deadline_at) == (Clock.State.RUNNING, breach, None)
    assert thresholds(c) == [("warned", 75, warn), ("breached", 100, breach)]


def test_firing_twice_writes_each_threshold_once(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy(warnings=())
    c = resolution_clock(desk.ticket())
    assert c.next_deadline_at == at(4)

    assert services.clock_fire_due(clock_id=c.pk, now=at(4)) == ["breached:100"]
    assert services.clock_fire_due(clock_id=c.pk, now=at(6)) == []
    clock_time.move_to(at(7))
    fire_due_clock_task(c.pk)  # a duplicate message

    assert thresholds(c) == [("breached", 100, at(4))]


def test_resolving_after_a_fired_breach_does_not_write_it_twice(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy(warnings=())
    ticket = desk.ticket()
    c = resolution_clock(ticket)
    services.clock_fire_due(clock_id=c.pk, now=at(4))

    clock_time.move_to(at(5))
    ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="resolved")

    c.refresh_from_db()
    assert (c.state, c.breached_at, c.finished_at) == (Clock.State.BREACHED, at(4), at(5))
    assert thresholds(c) == [("breached", 100, at(4))]
    assert ClockOutcome.objects.get(clock=c).met is False


def test_paused_or_gone_clock_fires_nothing_and_resume_shifts_the_next_deadline(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy(warnings=(50,))
    ticket = desk.ticket()
    c = resolution_clock(ticket)
    assert c.due_at == at(4)
    clock_time.move_to(at(1))
    ticket_services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state="pending", pending_reason="awaiting_vendor"
    )

    assert services.clock_fire_due(clock_id=c.pk, now=at(9)) == []
    assert services.clock_fire_due(clock_id=c.pk + 1000) == []
    c.refresh_from_db()
    assert (c.state, c.next_deadline_at, c.due_at, thresholds(c)) == (Clock.State.PAUSED, None, None, [])

    clock_time.move_to(at(3))  # paused 2 h: the 50 % warning moves from 12:00 to 14:00, the breach to 16:00
    ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="in_progress")
    c.refresh_from_db()
    assert (c.next_deadline_at, c.due_at) == (at(4), at(6))
    assert services.clock_fire_due(clock_id=c.pk, now=at(4)) == ["warned:50"]
    c.refresh_from_db()
    assert c.due_at == at(6)


def test_a_deadline_inside_the_horizon_is_planned_after_commit(
    desk, clock_time, django_capture_on_commit_callbacks, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.SLA_TIMER_HORIZON_SECONDS = 120
    make_policy(seconds=200, warnings=(50,))  # warning at +100 s (inside), breach at +200 s (outside)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ticket = desk.ticket()
    c = resolution_clock(ticket)
    assert c.next_deadline_at == MONDAY_10 + timedelta(seconds=100)
    sent = _sent(callbacks)
    assert sent == [((c.pk,), {"eta": MONDAY_10 + timedelta(seconds=100)})]


def _sent(callbacks) -> list[tuple[tuple[object, ...], dict[str, object]]]:  # type: ignore[no-untyped-def]
    """Run captured on-commit callbacks with `apply_async` recorded instead of sent to the broker."""
    recorded: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def record(args: tuple[object, ...] = (), **options: object) -> None:
        recorded.append((tuple(args), options))

    original = fire_due_clock_task.apply_async
    fire_due_clock_task.apply_async = record  # type: ignore[method-assign]
    try:
        for callback in callbacks:
            callback()
    finally:
        fire_due_clock_task.apply_async = original  # type: ignore[method-assign]
    return recorded


def test_a_far_deadline_is_left_to_the_reconciler(desk, clock_time, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    make_policy()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        desk.ticket()
    assert _sent(callbacks) == []


def test_reconciler_fires_overdue_clocks_and_plans_soon_due_ones(
    desk, clock_time, django_capture_on_commit_callbacks, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.SLA_TIMER_HORIZON_SECONDS = 120
    make_policy(seconds=HOUR, warnings=())
    overdue = [resolution_clock(desk.ticket(title=f"Overdue {n}")) for n in range(3)]
    clock_time.move_to(at(0.5))
    soon = resolution_clock(desk.ticket(title="Soon"))
    clock_time.move_to(at(1.45))
    later = resolution_clock(desk.ticket(title="Later"))
    now = at(1.5) - timedelta(seconds=60)  # the first three are overdue, "Soon" is due in 60 s
    clock_time.move_to(now)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        counts = services.clocks_reconcile(batch_size=2)
    assert counts == {"fired": 3, "planned": 1, "failed": 0}
    assert _sent(callbacks) == [((soon.pk,), {"eta": at(1.5)})]
    for c in overdue:
        c.refresh_from_db()
        assert (c.breached_at, c.next_deadline_at, thresholds(c)) == (at(1), None, [("breached", 100, at(1))])
    later.refresh_from_db()
    assert thresholds(later) == []

    # a second pass finds nothing overdue left to fire
    with django_capture_on_commit_callbacks(execute=False):
        assert reconcile_task() == {"fired": 0, "planned": 1, "failed": 0}
    assert ClockEvent.objects.filter(kind="breached").count() == 3


def test_beat_runs_the_reconciler_every_30_seconds_on_the_timers_queue(settings) -> None:  # type: ignore[no-untyped-def]
    entry = settings.CELERY_BEAT_SCHEDULE["sla-reconcile"]
    assert (entry["task"], entry["schedule"], entry["options"]["queue"]) == ("sla.reconcile", 30.0, "timers")
    assert fire_due_clock_task.name == "sla.fire_due_clock"
