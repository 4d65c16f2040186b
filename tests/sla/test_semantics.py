"""Clock semantics (docs/sla.md "Clock semantics"), each as a scenario through the real ticket services with frozen
time: retargeting on a priority change, OLA hand-over, reopen (continue / restart), the typed SLA events, a policy
that starts or stops matching later, and custom metrics. Exact segments, events and outcomes."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from itsm.events import DomainEvent, subscribe, unsubscribe
from sla import events as sla_events
from sla import services
from sla.models import Calendar, Clock, ClockEvent, ClockOutcome, ClockSegment, SlaPolicy, SlaTarget
from sla.state import PAUSED, RUNNING
from tickets import services as ticket_services
from tickets.models import Ticket

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HOUR = 3600
FIRST = SlaTarget.Metric.FIRST_RESPONSE
RESOLUTION = SlaTarget.Metric.RESOLUTION


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def clock_time() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def published() -> Iterator[list[DomainEvent]]:
    seen: list[DomainEvent] = []
    subscribe(sla_events.ClockEventBase, seen.append)
    yield seen
    unsubscribe(sla_events.ClockEventBase, seen.append)


def make_policy(
    name: str,
    *,
    first_response: tuple[int, int, int, int] | None = None,
    resolution: tuple[int, int, int, int] | None = None,
    warnings: tuple[int, ...] = (50, 75, 90),
    on_reopen: str = "continue",
    **fields,  # type: ignore[no-untyped-def]
) -> SlaPolicy:
    categories = fields.pop("categories", ())
    policy = SlaPolicy.objects.create(name=name, calendar=Calendar.objects.get(is_24x7=True), **fields)
    policy.categories.set(categories)
    for metric, seconds in ((FIRST, first_response), (RESOLUTION, resolution)):
        if seconds is not None:
            p1, p2, p3, p4 = seconds
            SlaTarget.objects.create(
                policy=policy, metric=metric, p1_seconds=p1, p2_seconds=p2, p3_seconds=p3, p4_seconds=p4,
                warning_percents=list(warnings), on_reopen=on_reopen,
            )  # fmt: skip
    return policy


def flat(seconds: int) -> tuple[int, int, int, int]:
    return (seconds, seconds, seconds, seconds)


def clocks(ticket: Ticket, metric: str = RESOLUTION, **filters) -> list[Clock]:  # type: ignore[no-untyped-def]
    return list(Clock.objects.filter(ticket=ticket, target__metric=metric, **filters).order_by("pk"))


def segments(c: Clock) -> list[tuple[str, datetime, datetime | None]]:
    return [(s.kind, s.start, s.end) for s in ClockSegment.objects.filter(clock=c).order_by("start", "id")]


def events(c: Clock) -> list[tuple[str, datetime, int | None]]:
    return [(e.kind, e.at, e.threshold) for e in ClockEvent.objects.filter(clock=c).order_by("at", "id")]


def pending(desk, ticket: Ticket) -> None:  # type: ignore[no-untyped-def]
    ticket_services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state="pending", pending_reason="awaiting_vendor"
    )


def transition(desk, ticket: Ticket, to_state: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
    ticket_services.ticket_transition(actor=kwargs.pop("actor", desk.agent), ticket=ticket, to_state=to_state, **kwargs)


# --- 3. priority change: retarget ----------------------------------------------------------------------------------


def test_priority_change_retargets_keeping_elapsed_time_and_moving_the_due_instant(  # type: ignore[no-untyped-def]
    desk, clock_time, published
) -> None:
    make_policy("Standard", resolution=(1 * HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR))
    ticket = desk.ticket()
    assert ticket.priority == 3
    clock_time.move_to(at(0.5))
    pending(desk, ticket)
    clock_time.move_to(at(1))
    transition(desk, ticket, "in_progress")
    [c] = clocks(ticket)
    assert (c.target_seconds, c.due_at) == (4 * HOUR, at(4.5))

    # when: P3 → P2 at 12:00, 1.5 h used
    clock_time.move_to(at(2))
    ticket_services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=2, reason="VIP")

    # then: 2 h target, the same ledger, due 30 min from now; the warnings the new target already passed are dated
    c.refresh_from_db()
    assert (c.state, c.target_seconds, c.due_at, c.breached_at) == (Clock.State.RUNNING, 2 * HOUR, at(2.5), None)
    assert c.next_deadline_at == at(2) + timedelta(seconds=int(0.9 * 2 * HOUR) - int(1.5 * HOUR))  # the 90 % warning
    assert segments(c) == [(RUNNING, at(0), at(0.5)), (PAUSED, at(0.5), at(1)), (RUNNING, at(1), None)]
    retargeted = ClockEvent.objects.get(clock=c, kind=ClockEvent.Kind.RETARGETED)
    assert (retargeted.at, retargeted.data) == (
        at(2),
        {
            "from_seconds": 4 * HOUR,
            "to_seconds": 2 * HOUR,
            "from_priority": 3,
            "to_priority": 2,
            "from_due_at": at(4.5).isoformat(),
            "to_due_at": at(2.5).isoformat(),
        },
    )
    # 50 % of 2 h (1 h of running time) was reached at 11:30, 75 % (1 h 30) at 12:00
    assert events(c)[-3:] == [("warned", at(1.5), 50), ("retargeted", at(2), None), ("warned", at(2), 75)]
    assert [(type(e).__name__, e.at, e.threshold, e.due_at) for e in published] == [
        ("ClockWarned", at(1.5), 50, at(2.5)),
        ("ClockWarned", at(2), 75, at(2.5)),
    ]


def test_retarget_past_the_new_target_records_the_breach_when_it_was_reached(desk, clock_time, published) -> None:  # type: ignore[no-untyped-def]
    make_policy("Standard", resolution=(1 * HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR), warnings=())
    ticket = desk.ticket()
    clock_time.move_to(at(0.5))
    pending(desk, ticket)
    clock_time.move_to(at(1))
    transition(desk, ticket, "in_progress")
    clock_time.move_to(at(2))
    ticket_services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=1, reason="Outage")
    [c] = clocks(ticket)
    # 30 min before the pause + 30 min after it: the hour was reached at 11:30
    assert (c.state, c.target_seconds, c.breached_at, c.due_at, c.next_deadline_at) == (
        Clock.State.RUNNING,
        HOUR,
        at(1.5),
        at(1.5),
        None,
    )
    assert [k for k, _a, _t in events(c)] == ["started", "paused", "resumed", "breached", "retargeted"]
    assert ClockEvent.objects.get(clock=c, kind="breached").at == at(1.5)
    [breach] = published
    assert (breach.name, breach.at, breach.clock_id, breach.policy, breach.metric, breach.threshold) == (
        "sla.breached",
        at(1.5),
        c.pk,
        "Standard",
        "resolution",
        100,
    )
    # back to P4: the target is longer, but the breach stands (no un-breach) and the resolution is breached
    clock_time.move_to(at(3))
    ticket_services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=4, reason="Workaround")
    c.refresh_from_db()
    assert (c.target_seconds, c.breached_at, c.due_at) == (8 * HOUR, at(1.5), at(8.5))
    transition(desk, ticket, "resolved")
    outcome = ClockOutcome.objects.get(clock=c)
    assert (outcome.met, outcome.business_seconds_used, outcome.target_seconds, outcome.priority) == (
        False,
        int(2.5 * HOUR),
        8 * HOUR,
        4,
    )
    assert ClockEvent.objects.filter(clock=c, kind="breached").count() == 1


def test_retarget_of_a_paused_clock_keeps_it_paused_without_deadline(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy("Standard", resolution=(1 * HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR))
    ticket = desk.ticket()
    clock_time.move_to(at(0.25))
    pending(desk, ticket)
    clock_time.move_to(at(1))
    ticket_services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=1, reason="Outage")
    [c] = clocks(ticket)
    assert (c.state, c.target_seconds, c.due_at, c.next_deadline_at, c.breached_at) == (
        Clock.State.PAUSED,
        HOUR,
        None,
        None,
        None,
    )
    clock_time.move_to(at(2))
    transition(desk, ticket, "in_progress")
    c.refresh_from_db()
    assert c.due_at == at(2.75)  # 45 of the 60 minutes left


# --- 4. OLA hand-over ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moved", "met", "used", "breached_at"), [(1.5, True, int(1.5 * HOUR), None), (2.5, False, int(2.5 * HOUR), 2)]
)
def test_team_change_stops_the_old_teams_ola_and_starts_the_new_teams(  # type: ignore[no-untyped-def]
    desk, clock_time, published, moved, met, used, breached_at
) -> None:
    sla = make_policy("Standard", resolution=flat(8 * HOUR))
    desktop_ola = make_policy("Desktop OLA", kind="ola", team=desk.desktop, resolution=flat(2 * HOUR), warnings=())
    network_ola = make_policy("Network OLA", kind="ola", team=desk.network, resolution=flat(3 * HOUR))
    ticket = desk.ticket()
    clock_time.move_to(at(moved))
    ticket_services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=None, team=desk.network)

    [old] = clocks(ticket, target__policy=desktop_ola)
    assert (old.state, old.finished_at, old.stop_reason, old.team_id) == (
        Clock.State.MET if met else Clock.State.BREACHED,
        at(moved),
        "team_changed",
        desk.desktop.pk,
    )
    assert old.breached_at == (None if breached_at is None else at(breached_at))
    outcome = ClockOutcome.objects.get(clock=old)
    assert (outcome.met, outcome.business_seconds_used, outcome.team_id, outcome.finished_at) == (
        met,
        used,
        desk.desktop.pk,
        at(moved),
    )
    [new] = clocks(ticket, target__policy=network_ola)
    assert (new.state, new.started_at, new.team_id, new.target_seconds, new.due_at) == (
        Clock.State.RUNNING,
        at(moved),
        desk.network.pk,
        3 * HOUR,
        at(moved + 3),
    )
    assert segments(new) == [(RUNNING, at(moved), None)]
    assert ClockEvent.objects.get(clock=new, kind="started").data["handed_over_from_team_id"] == desk.desktop.pk
    # the SLA toward the requester is not a team's: it keeps running
    [sla_clock] = clocks(ticket, target__policy=sla)
    assert (sla_clock.state, segments(sla_clock)) == (Clock.State.RUNNING, [(RUNNING, at(0), None)])
    assert [e.name for e in published] == ["sla.met" if met else "sla.breached"]
    ids = Ticket.objects.get(pk=ticket.pk).sla_policy_ids
    assert sorted(ids) == sorted([sla.pk, desktop_ola.pk, network_ola.pk])  # each once


def test_team_change_back_and_forth_gives_each_stint_its_own_ola_clock(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    desktop_ola = make_policy("Desktop OLA", kind="ola", team=desk.desktop, resolution=flat(2 * HOUR))
    ticket = desk.ticket()
    clock_time.move_to(at(0.5))
    ticket_services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=None, team=desk.network)
    clock_time.move_to(at(1))
    ticket_services.ticket_assign(actor=desk.network_agent, ticket=ticket, assignee=None, team=desk.desktop)
    first, second = clocks(ticket, target__policy=desktop_ola)
    assert (first.state, first.finished_at, second.state, second.started_at) == (
        Clock.State.MET,
        at(0.5),
        Clock.State.RUNNING,
        at(1),
    )


def test_team_change_while_pending_starts_the_new_ola_paused(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    network_ola = make_policy("Network OLA", kind="ola", team=desk.network, resolution=flat(3 * HOUR))
    ticket = desk.ticket()
    pending(desk, ticket)
    clock_time.move_to(at(1))
    ticket_services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=None, team=desk.network)
    [new] = clocks(ticket, target__policy=network_ola)
    assert (new.state, new.due_at, new.next_deadline_at, segments(new)) == (
        Clock.State.PAUSED,
        None,
        None,
        [(PAUSED, at(1), None)],
    )


# --- 1. reopen -----------------------------------------------------------------------------------------------------


def test_reopen_continues_the_resolution_clock_with_the_resolved_interval_paused(desk, clock_time, published) -> None:  # type: ignore[no-untyped-def]
    make_policy("Standard", first_response=flat(HOUR), resolution=flat(4 * HOUR), warnings=())
    ticket = desk.ticket()
    clock_time.move_to(at(0.25))
    ticket_services.comment_add(actor=desk.agent, ticket=ticket, body="On it")
    clock_time.move_to(at(1))
    transition(desk, ticket, "resolved")
    [c] = clocks(ticket)
    first_outcome = ClockOutcome.objects.get(clock=c)
    assert (first_outcome.met, first_outcome.business_seconds_used) == (True, HOUR)

    # when: the requester reopens two hours later
    clock_time.move_to(at(3))
    transition(desk, ticket, "in_progress", actor=desk.requester, reason="Still broken")

    # then: the same clock runs again, [resolved, reopened) paused, its outcome gone until it finishes again
    c.refresh_from_db()
    assert (c.state, c.finished_at, c.stop_reason, c.due_at) == (Clock.State.RUNNING, None, "", at(6))
    assert segments(c) == [(RUNNING, at(0), at(1)), (PAUSED, at(1), at(3)), (RUNNING, at(3), None)]
    assert events(c) == [("started", at(0), None), ("met", at(1), None), ("reopened", at(3), None)]
    assert ClockEvent.objects.get(clock=c, kind="reopened").data == {
        "state": "met",
        "resolved_at": at(1).isoformat(),
        "business_seconds_used": HOUR,
    }
    assert not ClockOutcome.objects.filter(clock=c).exists()
    [first] = clocks(ticket, FIRST)
    assert (first.state, ClockOutcome.objects.filter(clock=first).count()) == (Clock.State.MET, 1)

    # resolved again: one outcome for the clock, 2 h used in all (the resolved interval did not count)
    clock_time.move_to(at(4))
    transition(desk, ticket, "resolved")
    outcome = ClockOutcome.objects.get(clock=c)
    assert (outcome.met, outcome.business_seconds_used, outcome.finished_at, outcome.is_after_reopen) == (
        True,
        2 * HOUR,
        at(4),
        True,
    )
    assert ClockOutcome.objects.filter(clock__ticket=ticket).count() == 2
    assert [e.name for e in published] == ["sla.met", "sla.met", "sla.met"]


def test_reopen_of_a_breached_clock_keeps_the_breach(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy("Standard", resolution=flat(HOUR), warnings=())
    ticket = desk.ticket()
    clock_time.move_to(at(2))
    transition(desk, ticket, "resolved")
    clock_time.move_to(at(3))
    transition(desk, ticket, "in_progress", reason="Not fixed")
    [c] = clocks(ticket)
    assert (c.state, c.breached_at, c.due_at, c.next_deadline_at) == (Clock.State.RUNNING, at(1), at(1), None)
    clock_time.move_to(at(4))
    transition(desk, ticket, "resolved")
    c.refresh_from_db()
    assert (c.state, c.breached_at) == (Clock.State.BREACHED, at(1))
    assert ClockEvent.objects.filter(clock=c, kind="breached").count() == 1
    assert ClockOutcome.objects.get(clock=c).business_seconds_used == 3 * HOUR


def test_reopen_restart_starts_a_new_clock_and_the_old_keeps_its_outcome(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy("Standard", resolution=flat(4 * HOUR), on_reopen="restart")
    ticket = desk.ticket()
    clock_time.move_to(at(1))
    transition(desk, ticket, "resolved")
    clock_time.move_to(at(3))
    transition(desk, ticket, "in_progress", reason="Not fixed")
    old, new = clocks(ticket)
    assert (old.state, old.finished_at, ClockOutcome.objects.get(clock=old).business_seconds_used) == (
        Clock.State.MET,
        at(1),
        HOUR,
    )
    assert (new.state, new.started_at, new.due_at, segments(new)) == (
        Clock.State.RUNNING,
        at(3),
        at(7),
        [(RUNNING, at(3), None)],
    )
    assert ClockEvent.objects.get(clock=new, kind="started").data["restart_of"] == old.pk
    # a second resolve/reopen restarts from the newest clock only
    clock_time.move_to(at(4))
    transition(desk, ticket, "resolved")
    clock_time.move_to(at(5))
    transition(desk, ticket, "in_progress", reason="Again")
    assert [c.state for c in clocks(ticket)] == [Clock.State.MET, Clock.State.MET, Clock.State.RUNNING]
    assert ClockOutcome.objects.filter(clock__ticket=ticket).count() == 2


# --- 7. typed events from the timers -------------------------------------------------------------------------------


def test_timer_firing_publishes_typed_warning_and_breach_events(desk, clock_time, published) -> None:  # type: ignore[no-untyped-def]
    make_policy("Standard", resolution=flat(4 * HOUR), warnings=(50,))
    ticket = desk.ticket()
    [c] = clocks(ticket)
    assert services.clock_fire_due(clock_id=c.pk, now=at(5)) == ["warned:50", "breached:100"]
    assert services.clock_fire_due(clock_id=c.pk, now=at(5)) == []
    assert [(e.name, e.at, e.ticket_id, e.clock_id, e.policy, e.metric, e.threshold, e.due_at) for e in published] == [
        ("sla.warning", at(2), ticket.pk, c.pk, "Standard", "resolution", 50, at(4)),
        ("sla.breached", at(4), ticket.pk, c.pk, "Standard", "resolution", 100, at(4)),
    ]
    # the clock stops breached at resolution without a second breach event
    clock_time.move_to(at(6))
    transition(desk, ticket, "resolved")
    assert [e.name for e in published] == ["sla.warning", "sla.breached"]


# --- 2. a policy that starts or stops matching later ---------------------------------------------------------------


def test_category_change_cancels_the_old_sla_and_starts_the_new_one_retroactively(desk, clock_time, published) -> None:  # type: ignore[no-untyped-def]
    generic = make_policy("Generic", precedence=50, first_response=flat(4 * HOUR), resolution=flat(8 * HOUR))
    vpn = make_policy(
        "VPN", precedence=10, categories=[desk.vpn], first_response=flat(HOUR), resolution=flat(HOUR), warnings=(50,)
    )
    ticket = desk.ticket()
    clock_time.move_to(at(0.25))
    ticket_services.comment_add(actor=desk.agent, ticket=ticket, body="Looking")
    clock_time.move_to(at(0.5))
    pending(desk, ticket)
    clock_time.move_to(at(1))
    transition(desk, ticket, "in_progress")
    clock_time.move_to(at(2))
    published.clear()

    ticket_services.ticket_change_category(actor=desk.agent, ticket=ticket, category=desk.vpn)

    # the generic resolution clock no longer applies: cancelled, no outcome, no breach
    [old] = clocks(ticket, target__policy=generic)
    assert (old.state, old.finished_at, old.stop_reason, old.breached_at) == (
        Clock.State.CANCELLED,
        at(2),
        "no_longer_matches",
        None,
    )
    assert not ClockOutcome.objects.filter(clock=old).exists()
    # its first response (met at the reply) stays a result
    [old_first] = clocks(ticket, FIRST, target__policy=generic)
    assert old_first.state == Clock.State.MET
    # the VPN resolution clock runs as if from creation, the pending half-hour kept as paused
    [new] = clocks(ticket, target__policy=vpn)
    assert (new.started_at, new.state, new.target_seconds) == (at(0), Clock.State.RUNNING, HOUR)
    assert segments(new) == [(RUNNING, at(0), at(0.5)), (PAUSED, at(0.5), at(1)), (RUNNING, at(1), None)]
    # its thresholds are dated when the ledger reached them: 30 min at 10:30, the hour at 11:30
    assert (new.breached_at, new.due_at, new.next_deadline_at) == (at(1.5), at(1.5), None)
    assert events(new) == [
        ("started", at(0), None),
        ("paused", at(0.5), None),
        ("warned", at(0.5), 50),
        ("resumed", at(1), None),
        ("breached", at(1.5), 100),
    ]
    assert ClockEvent.objects.get(clock=new, kind="started").data["retroactive"] is True
    # the VPN first response was answered by the 10:15 reply: finished met, with its outcome
    [new_first] = clocks(ticket, FIRST, target__policy=vpn)
    assert (new_first.state, new_first.finished_at, new_first.stop_reason) == (Clock.State.MET, at(0.25), "first_reply")
    assert ClockOutcome.objects.get(clock=new_first).business_seconds_used == 900
    assert [e.name for e in published] == ["sla.met", "sla.warning", "sla.breached"]
    # the ticket records both policies it had clocks of (the dashboards' policy filter), the cancelled one included
    assert sorted(Ticket.objects.get(pk=ticket.pk).sla_policy_ids) == sorted([generic.pk, vpn.pk])
    # a second identical sync changes nothing
    count = ClockEvent.objects.count()
    ticket_services.ticket_change_category(actor=desk.agent, ticket=ticket, category=desk.vpn)
    assert ClockEvent.objects.count() == count


def test_priority_change_that_makes_a_policy_match_starts_it_retroactively(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy("P1 only", priorities=[1], resolution=flat(4 * HOUR))
    ticket = desk.ticket()
    assert not Clock.objects.filter(ticket=ticket).exists()
    clock_time.move_to(at(1))
    ticket_services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=1, reason="Outage")
    [c] = clocks(ticket)
    assert Ticket.objects.get(pk=ticket.pk).sla_policy_ids == [c.target.policy_id]
    assert (c.started_at, c.state, c.due_at, segments(c)) == (
        at(0),
        Clock.State.RUNNING,
        at(4),
        [(RUNNING, at(0), None)],
    )
    # and back: the policy no longer matches, its clock is cancelled
    clock_time.move_to(at(2))
    ticket_services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=None)
    c.refresh_from_db()
    assert (c.state, c.stop_reason, c.due_at) == (Clock.State.CANCELLED, "no_longer_matches", None)


# --- 6. custom metrics ---------------------------------------------------------------------------------------------


def test_custom_metric_starts_pauses_and_stops_on_its_states(desk, clock_time, published) -> None:  # type: ignore[no-untyped-def]
    policy = make_policy("Security")
    target = SlaTarget.objects.create(
        policy=policy, metric="custom", name="Time to contain", p1_seconds=HOUR, p2_seconds=HOUR,
        p3_seconds=2 * HOUR, p4_seconds=2 * HOUR, start_states=["in_progress"], stop_states=["resolved"],
        pause_states=["pending"], warning_percents=[],
    )  # fmt: skip
    ticket = desk.ticket()
    assert not Clock.objects.filter(ticket=ticket).exists()
    clock_time.move_to(at(0.5))
    transition(desk, ticket, "in_progress")
    [c] = Clock.objects.filter(ticket=ticket, target=target)
    assert (c.state, c.started_at, c.due_at) == (Clock.State.RUNNING, at(0.5), at(2.5))
    clock_time.move_to(at(1))
    pending(desk, ticket)
    clock_time.move_to(at(1.5))
    transition(desk, ticket, "in_progress")  # entering a start state again does not start a second clock
    clock_time.move_to(at(2))
    transition(desk, ticket, "resolved")
    c.refresh_from_db()
    assert (c.state, c.finished_at, c.stop_reason) == (Clock.State.MET, at(2), "resolved")
    assert segments(c) == [(RUNNING, at(0.5), at(1)), (PAUSED, at(1), at(1.5)), (RUNNING, at(1.5), at(2))]
    assert ClockOutcome.objects.get(clock=c).business_seconds_used == HOUR
    assert [(e.name, e.metric) for e in published] == [("sla.met", "Time to contain")]
    assert Clock.objects.filter(ticket=ticket).count() == 1


def test_custom_metric_with_an_explicit_final_stop_state_ends_met_not_cancelled(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    policy = make_policy("Confirmation")
    target = SlaTarget.objects.create(
        policy=policy, metric="custom", name="Time to confirm", p1_seconds=HOUR, p2_seconds=HOUR,
        p3_seconds=HOUR, p4_seconds=HOUR, start_states=["resolved"], stop_states=["closed"], pause_states=[],
    )  # fmt: skip
    ticket = desk.ticket()
    clock_time.move_to(at(1))
    transition(desk, ticket, "resolved")
    clock_time.move_to(at(1.5))
    transition(desk, ticket, "closed", actor=desk.requester)
    [c] = Clock.objects.filter(ticket=ticket, target=target)
    assert (c.state, c.started_at, c.finished_at, c.stop_reason) == (Clock.State.MET, at(1), at(1.5), "stop_state")
    assert ClockOutcome.objects.get(clock=c).business_seconds_used == 1800


def test_reopen_after_a_priority_change_while_resolved_retargets_the_continued_clock(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    make_policy("Standard", resolution=(HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR), warnings=(50,))
    ticket = desk.ticket()
    clock_time.move_to(at(1))
    transition(desk, ticket, "resolved")
    clock_time.move_to(at(2))
    ticket_services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=2, reason="VIP")
    [c] = clocks(ticket)
    assert (c.state, c.target_seconds) == (Clock.State.MET, 4 * HOUR)  # finished clocks are not retargeted
    clock_time.move_to(at(3))
    transition(desk, ticket, "in_progress", reason="Not fixed")
    c.refresh_from_db()
    assert (c.state, c.target_seconds, c.due_at, c.next_deadline_at) == (Clock.State.RUNNING, 2 * HOUR, at(4), at(4))
    assert [(k, a, t) for k, a, t in events(c)] == [
        ("started", at(0), None),
        ("met", at(1), None),
        ("warned", at(1), 50),
        ("reopened", at(3), None),
        ("retargeted", at(3), None),
    ]


def test_team_change_while_resolved_starts_the_new_teams_ola_on_reopen_from_its_arrival(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    desktop_ola = make_policy("Desktop OLA", kind="ola", team=desk.desktop, resolution=flat(2 * HOUR))
    network_ola = make_policy("Network OLA", kind="ola", team=desk.network, resolution=flat(3 * HOUR))
    ticket = desk.ticket()
    clock_time.move_to(at(1))
    transition(desk, ticket, "resolved")
    clock_time.move_to(at(2))
    ticket_services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=None, team=desk.network)
    assert not clocks(ticket, target__policy=network_ola)  # a resolved ticket starts nothing
    clock_time.move_to(at(3))
    transition(desk, ticket, "in_progress", actor=desk.requester, reason="Still broken")
    [old] = clocks(ticket, target__policy=desktop_ola)
    assert (old.state, old.finished_at, ClockOutcome.objects.get(clock=old).team_id) == (
        Clock.State.MET,
        at(1),
        desk.desktop.pk,
    )
    [new] = clocks(ticket, target__policy=network_ola)
    assert (new.state, new.started_at, new.team_id, new.due_at) == (Clock.State.RUNNING, at(2), desk.network.pk, at(6))
    assert segments(new) == [(PAUSED, at(2), at(3)), (RUNNING, at(3), None)]
    assert events(new) == [("started", at(2), None), ("reopened", at(3), None)]


def test_a_clock_has_a_due_instant_only_while_it_runs(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    """The database refuses a due instant on a clock that does not run ("Breaching soon" and the dashboards read
    running clocks by `due_at` alone); pausing clears it and resuming sets it again."""
    from django.db import IntegrityError, transaction

    make_policy("Standard", resolution=flat(8 * HOUR))
    ticket = desk.ticket()
    [clock] = clocks(ticket)
    assert (clock.state, clock.due_at) == (Clock.State.RUNNING, at(8))
    pending(desk, ticket)
    clock.refresh_from_db()
    assert (clock.state, clock.due_at) == (Clock.State.PAUSED, None)
    with pytest.raises(IntegrityError), transaction.atomic():
        Clock.objects.filter(pk=clock.pk).update(due_at=at(8))
    clock_time.move_to(at(1))
    transition(desk, ticket, "in_progress")
    clock.refresh_from_db()
    assert (clock.state, clock.due_at) == (Clock.State.RUNNING, at(9))
