"""How tickets' later changes move their clocks (docs/sla.md "Clock semantics"): reopen (continue or restart),
retroactive starts when a policy starts to match, cancellation when one stops matching, retargeting on a priority
change, OLA hand-over on a team change and custom metrics' start states.

Every entry point runs inside the ticket service's (or the policy service's) transaction, after the ticket row is
locked, locks the clocks it changes (`select_for_update`, by pk) and is idempotent: what is already in the ledger is
not written twice. Nothing here ever records a breach that the ledger did not reach.
"""

from datetime import datetime
from typing import Any

from sla import replay as clock_replay
from sla import services
from sla.models import Clock, ClockEvent, ClockOutcome, ClockSegment, SlaPolicy, SlaTarget
from sla.services import _Calendars, _figures, _finish, _lock_open_clocks, _plan_timer, _set_deadlines
from tickets import events as ticket_events
from tickets.models import Ticket, TicketEvent
from tickets.state import FINAL_STATES, OPEN_STATES, TicketState

Key = tuple[int, int | None]  # (target id, team id) — one open clock each


def _wanted(ticket: Ticket) -> dict[Key, SlaTarget]:
    """Every target of the policies matching `ticket` now, keyed like the clocks."""
    wanted: dict[Key, SlaTarget] = {}
    for policy in services.matching_policies(ticket):
        team_id = policy.team_id if policy.kind == SlaPolicy.Kind.OLA else None
        for target in policy.targets.all():
            target.policy = policy
            wanted[(target.pk, team_id)] = target
    return wanted


def _taken(ticket: Ticket) -> set[Key]:
    """Keys that already have their clock: open ones, and finished ones except those a hand-over stopped (the team may
    come back) and cancelled ones (a policy that stopped matching and matches again is rebuilt)."""
    rows = Clock.objects.filter(ticket=ticket).exclude(state=Clock.State.CANCELLED)
    rows = rows.exclude(state__in=(Clock.State.MET, Clock.State.BREACHED), stop_reason=Clock.StopReason.TEAM_CHANGED)
    return set(rows.values_list("target_id", "team_id"))


# --- the ticket's history, for retroactive starts ------------------------------------------------------------------


class History:
    """The ticket's status history, first public agent replies and team arrivals, read once (one query)."""

    def __init__(self, ticket: Ticket) -> None:
        self.states: list[tuple[datetime, str]] = [(ticket.created_at, TicketState.NEW)]
        self.agent_replies: list[datetime] = []
        self.team_joins: list[tuple[datetime, int | None]] = []
        rows = TicketEvent.objects.filter(
            ticket=ticket,
            kind__in=(TicketEvent.Kind.STATE_CHANGED, TicketEvent.Kind.COMMENTED, TicketEvent.Kind.TEAM_CHANGED),
        ).order_by("at", "id")
        for at, kind, data, is_internal in rows.values_list("at", "kind", "data", "is_internal"):
            if kind == TicketEvent.Kind.STATE_CHANGED:
                self.states.append((at, data.get("to", "")))
            elif kind == TicketEvent.Kind.COMMENTED and data.get("by_agent") and not is_internal:
                self.agent_replies.append(at)
            elif kind == TicketEvent.Kind.TEAM_CHANGED:
                self.team_joins.append((at, data.get("to")))
        self.created_at = ticket.created_at

    def joined(self, team_id: int | None) -> datetime:
        """When the ticket last arrived in `team_id` (its creation if it never moved there)."""
        return next((at for at, to in reversed(self.team_joins) if to == team_id), self.created_at)

    def first_reply(self, after: datetime) -> datetime | None:
        return next((at for at in self.agent_replies if at >= after), None)

    def entered(self, states: list[str], after: datetime) -> datetime | None:
        """The first instant at or after `after` the ticket was in one of `states`."""
        if clock_replay.state_at(self.states, after) in states:
            return after
        return next((at for at, state in self.states if at > after and state in states), None)


def clock_start_retroactive(
    *, ticket: Ticket, target: SlaTarget, team_id: int | None, now: datetime, calendars: _Calendars, reason: str
) -> Clock | None:
    """Open a clock of `target` as if it had been there all along: from the ticket's creation (an OLA: from when the
    ticket arrived in the team; a custom metric: from when it first entered a start state), with the ledger rebuilt
    from the status history (`sla.replay`). Thresholds the ledger already reached are recorded at their own instants
    (a breach at the instant the target was reached); a clock that a reply, a resolution or a stop state already
    stopped is written finished, with its outcome. Returns None when a custom metric never started."""
    history = History(ticket)
    start = history.joined(team_id) if team_id is not None else history.created_at
    if target.metric == SlaTarget.Metric.CUSTOM and target.start_states:
        entered = history.entered(target.start_states, start)
        if entered is None:
            return None
        start = entered
    result = clock_replay.replay(
        start=start,
        history=history.states,
        metric=target.metric,
        pause_states=target.pause_states,
        stop_states=target.stop_states,
        on_reopen=target.on_reopen,
        first_reply_at=history.first_reply(start),
    )
    last = result.segments[-1]
    clock = Clock.objects.create(
        ticket=ticket,
        target=target,
        team_id=team_id,
        state=Clock.State.PAUSED if last.kind == ClockSegment.Kind.PAUSED else Clock.State.RUNNING,
        started_at=result.start,
        target_seconds=target.seconds_for(ticket.priority),
    )
    services.note_ticket_policy(ticket.pk, target.policy_id)
    ClockSegment.objects.bulk_create(
        ClockSegment(clock=clock, kind=segment.kind, start=segment.start, end=segment.end)
        for segment in result.segments
    )
    ClockEvent.objects.bulk_create(
        [
            ClockEvent(
                clock=clock,
                kind=ClockEvent.Kind.STARTED,
                at=result.start,
                data={
                    "policy_id": target.policy_id,
                    "target_seconds": clock.target_seconds,
                    "priority": ticket.priority,
                    "retroactive": True,
                    "reason": reason,
                    "recorded_at": now.isoformat(),
                },
            ),
            *(ClockEvent(clock=clock, kind=kind, at=at, data={"state": state}) for kind, at, state in result.events),
        ]
    )
    if result.stopped_at is not None:
        _finish(clock, result.stopped_at, calendars, ticket=ticket, reason=result.stop_reason)
        return clock
    services._fire_thresholds(clock, calendars, now)  # also sets next_deadline_at and due_at
    clock.save(update_fields=["next_deadline_at", "due_at", "breached_at"])
    _plan_timer(clock, now)
    return clock


def clocks_sync(*, ticket: Ticket, at: datetime, calendars: _Calendars, reason: str) -> None:
    """Bring an open ticket's clocks in line with the policies that match it now: open clocks of targets that no
    longer apply are **cancelled** (no outcome, never a breach: the ticket is measured by the policy that applies
    now, which starts retroactively and so covers its whole life), and targets that now apply but have no clock start
    retroactively. A resolved, closed or cancelled ticket is left alone (a reopen syncs it)."""
    if ticket.state not in OPEN_STATES:
        return
    wanted = _wanted(ticket)
    for clock in _lock_open_clocks(ticket.pk):
        if (clock.target_id, clock.team_id) not in wanted:
            _finish(clock, at, calendars, ticket=ticket, cancel=True, reason=Clock.StopReason.NO_LONGER_MATCHES)
    taken = _taken(ticket)
    for (target_id, team_id), target in sorted(wanted.items(), key=lambda item: (item[0][0], item[0][1] or 0)):
        if (target_id, team_id) in taken:
            continue
        clock_start_retroactive(
            ticket=ticket, target=target, team_id=team_id, now=at, calendars=calendars, reason=reason
        )


# --- reopen --------------------------------------------------------------------------------------------------------


def clocks_reopen(*, ticket: Ticket, at: datetime, calendars: _Calendars) -> None:
    """A resolved ticket is reopened at `at`. For each (target, team) whose latest clock was stopped by the
    resolution and still applies (first-response clocks stay finished):

    - `continue` (default): the same clock runs again. A PAUSED segment `[resolved, reopened)` is added, then the
      open segment (running, or paused when the ticket reopens into a pause state); its `ClockOutcome` is deleted
      (the `met`/`breached` event stays in the ledger, and the outcome written at the next finish has
      `is_after_reopen`), a recorded breach stays (`breached_at`), `ClockEvent(reopened)` records the earlier result.
    - `restart`: a new clock starts at `at`; the old one keeps its outcome.

    Then anything else that matches now starts (`clocks_sync`)."""
    wanted = _wanted(ticket)
    open_keys = {(c.target_id, c.team_id) for c in _lock_open_clocks(ticket.pk)}
    latest: dict[Key, Clock] = {}
    rows = (
        Clock.objects.select_for_update(of=("self",))
        .select_related("target__policy")
        .filter(ticket=ticket, state__in=(Clock.State.MET, Clock.State.BREACHED))
        .exclude(target__metric=SlaTarget.Metric.FIRST_RESPONSE)
        .order_by("pk")
    )
    for clock in rows:
        latest[(clock.target_id, clock.team_id)] = clock
    for key, clock in latest.items():
        if clock.stop_reason != Clock.StopReason.RESOLVED or key in open_keys or key not in wanted:
            continue
        target = clock.target
        if target.on_reopen == SlaTarget.OnReopen.RESTART:
            services.clock_open(
                ticket=ticket, target=target, team_id=clock.team_id, at=at, calendars=calendars,
                data={"restart_of": clock.pk},
            )  # fmt: skip
            continue
        _continue(clock, ticket=ticket, at=at, calendars=calendars)
    clocks_sync(ticket=ticket, at=at, calendars=calendars, reason="reopened")


def _continue(clock: Clock, *, ticket: Ticket, at: datetime, calendars: _Calendars) -> None:
    resolved_at = clock.finished_at or at
    at = max(at, resolved_at)
    paused = ticket.state in clock.target.pause_states
    ClockSegment.objects.create(clock=clock, kind=ClockSegment.Kind.PAUSED, start=resolved_at, end=at)
    ClockSegment.objects.create(
        clock=clock, kind=ClockSegment.Kind.PAUSED if paused else ClockSegment.Kind.RUNNING, start=at
    )
    outcome = ClockOutcome.objects.filter(clock=clock).first()
    previous: dict[str, Any] = {"state": clock.state, "resolved_at": resolved_at.isoformat()}
    if outcome is not None:
        previous["business_seconds_used"] = outcome.business_seconds_used
        outcome.delete()
    ClockEvent.objects.create(clock=clock, kind=ClockEvent.Kind.REOPENED, at=at, data=previous)
    clock.state = Clock.State.PAUSED if paused else Clock.State.RUNNING
    clock.finished_at = None
    clock.stop_reason = ""
    new_seconds = clock.target.seconds_for(ticket.priority)
    if new_seconds != clock.target_seconds:
        # the priority changed while the ticket was resolved (no open clock to retarget then)
        ClockEvent.objects.create(
            clock=clock,
            kind=ClockEvent.Kind.RETARGETED,
            at=at,
            data={"from_seconds": clock.target_seconds, "to_seconds": new_seconds, "to_priority": ticket.priority},
        )
        clock.target_seconds = new_seconds
        services._fire_thresholds(clock, calendars, at)
    _set_deadlines(clock, calendars, at)
    clock.save(
        update_fields=[
            "state",
            "finished_at",
            "stop_reason",
            "target_seconds",
            "next_deadline_at",
            "due_at",
            "breached_at",
        ]
    )
    _plan_timer(clock)


# --- custom metrics ------------------------------------------------------------------------------------------------


def has_custom_start(ticket_state: str) -> bool:
    return SlaTarget.objects.filter(
        metric=SlaTarget.Metric.CUSTOM, policy__is_active=True, start_states__contains=[ticket_state]
    ).exists()


def custom_clocks_start(*, ticket: Ticket, at: datetime, calendars: _Calendars) -> None:
    """Start, at `at`, the custom clocks whose start states include the state the ticket just entered (once per
    (target, team): a custom clock that ran already does not start again)."""
    if ticket.state in FINAL_STATES or not has_custom_start(ticket.state):
        return
    taken = _taken(ticket)
    for (target_id, team_id), target in _wanted(ticket).items():
        if target.metric != SlaTarget.Metric.CUSTOM or ticket.state not in target.start_states:
            continue
        if (target_id, team_id) not in taken:
            services.clock_open(ticket=ticket, target=target, team_id=team_id, at=at, calendars=calendars)


# --- subscribers ---------------------------------------------------------------------------------------------------


def on_priority_changed(event: ticket_events.PriorityChanged) -> None:
    """Cancel what no longer matches and start what now matches (retroactively), then retarget every open clock to
    the new priority's duration (`clock_retarget`)."""
    ticket = Ticket.objects.get(pk=event.ticket_id)
    calendars = _Calendars()
    clocks_sync(ticket=ticket, at=event.at, calendars=calendars, reason="priority_changed")
    for clock in _lock_open_clocks(ticket.pk):
        clock_retarget(clock, ticket=ticket, event=event, calendars=calendars)


def clock_retarget(
    clock: Clock, *, ticket: Ticket, event: ticket_events.PriorityChanged, calendars: _Calendars
) -> bool:
    """Give an open clock the target of the ticket's new priority. The ledger is untouched (the elapsed time is kept),
    so the due instant moves; `ClockEvent(retargeted)` records the seconds, priorities and due instants from/to.
    Thresholds the ledger has already passed under the new target are recorded at the instants they were reached (so
    a breach is dated when it happened, not when the priority changed); a breach recorded before stays (a longer
    target does not undo it). Returns False when the duration does not change."""
    new_seconds = clock.target.seconds_for(ticket.priority)
    if new_seconds == clock.target_seconds:
        return False
    old_seconds, old_due = clock.target_seconds, _figures(clock, calendars, event.at).due_at
    clock.target_seconds = new_seconds
    new_due = _figures(clock, calendars, event.at).due_at
    ClockEvent.objects.create(
        clock=clock,
        kind=ClockEvent.Kind.RETARGETED,
        at=event.at,
        data={
            "from_seconds": old_seconds,
            "to_seconds": new_seconds,
            "from_priority": event.from_priority,
            "to_priority": event.to_priority,
            "from_due_at": old_due.isoformat() if old_due else None,
            "to_due_at": new_due.isoformat() if new_due else None,
        },
    )
    services._fire_thresholds(clock, calendars, event.at)  # also sets next_deadline_at and due_at
    clock.save(update_fields=["target_seconds", "next_deadline_at", "due_at", "breached_at"])
    _plan_timer(clock, event.at)
    return True


def on_team_changed(event: ticket_events.TeamChanged) -> None:
    """OLA hand-over: the old team's open OLA clocks stop at the change (met or breached, with a `ClockOutcome` for
    that team); the new team's OLA policies start at the change instant (not retroactively: the new team's time
    starts when it gets the ticket), paused if the ticket is in a pause state. A resolved ticket starts nothing until
    it is reopened."""
    ticket = Ticket.objects.get(pk=event.ticket_id)
    calendars = _Calendars()
    if event.from_team_id is not None:
        for clock in _lock_open_clocks(ticket.pk, team_id=event.from_team_id):
            _finish(clock, event.at, calendars, ticket=ticket, reason=Clock.StopReason.TEAM_CHANGED)
    if event.to_team_id is None or ticket.state not in OPEN_STATES:
        return
    open_keys = {(c.target_id, c.team_id) for c in _lock_open_clocks(ticket.pk)}
    for (target_id, team_id), target in _wanted(ticket).items():
        if team_id != event.to_team_id or (target_id, team_id) in open_keys:
            continue
        if target.metric == SlaTarget.Metric.CUSTOM and target.start_states and ticket.state not in target.start_states:
            continue
        services.clock_open(
            ticket=ticket, target=target, team_id=team_id, at=event.at, calendars=calendars,
            data={"handed_over_from_team_id": event.from_team_id},
        )  # fmt: skip


def on_category_changed(event: ticket_events.CategoryChanged) -> None:
    ticket = Ticket.objects.get(pk=event.ticket_id)
    clocks_sync(ticket=ticket, at=event.at, calendars=_Calendars(), reason="category_changed")
