"""Writes for service level management: calendars, and the clock ledger the ticket event subscribers keep
(bottom of the module; docs/sla.md "Clocks"). Every calendar write is audited (`security.audit.audit_record`) as the
last step of its own transaction; only administrators (or the system, `actor=None`) may change calendars."""

import logging
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import DateTimeField, F, Func, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from itsm.errors import PermissionDenied, ValidationFailed
from itsm.events import publish, subscribe
from itsm.queue import enqueue_on_commit
from security import permissions
from security.audit import audit_record, snapshot
from security.models import Team, User
from sla import escalation
from sla import events as sla_events
from sla import state as clock_state
from sla.models import (
    Calendar,
    Clock,
    ClockEvent,
    ClockOutcome,
    ClockSegment,
    Holiday,
    SlaPolicy,
    SlaTarget,
    WorkingRange,
)
from sla.selectors import BusinessCalendars
from tickets import events as ticket_events
from tickets.models import Ticket
from tickets.state import FINAL_STATES, OPEN_STATES, TicketState

logger = logging.getLogger(__name__)

CALENDAR_AUDIT_FIELDS = ("name", "time_zone", "is_24x7", "holiday_country", "holiday_subdivision")
WORKING_RANGE_AUDIT_FIELDS = ("calendar", "weekday", "start_time", "end_time")
HOLIDAY_AUDIT_FIELDS = ("calendar", "date", "name")
CALENDAR_UPDATABLE_FIELDS = frozenset({"name", "time_zone", "holiday_country", "holiday_subdivision"})


def _require_admin(actor: User | None) -> None:
    if actor is not None and not permissions.can_manage_users(actor):
        raise PermissionDenied("Only administrators may change calendars.")


def _clean(obj: Calendar | WorkingRange | Holiday | SlaPolicy | SlaTarget, message: str, **kwargs: Any) -> None:
    try:
        obj.full_clean(**kwargs)
    except ValidationError as exc:
        raise ValidationFailed(message, fields=exc.message_dict) from exc


def _calendar_snapshot(calendar: Calendar) -> dict[str, Any]:
    data = snapshot(calendar, CALENDAR_AUDIT_FIELDS)
    data["working_ranges"] = [
        [r.weekday, r.start_time.isoformat(), r.end_time.isoformat()]
        for r in calendar.working_ranges.order_by("weekday", "start_time")
    ]
    data["holidays"] = [[h.date.isoformat(), h.name] for h in calendar.holidays.order_by("date")]
    return data


@transaction.atomic
def calendar_create(
    *,
    actor: User | None,
    name: str,
    time_zone: str,
    holiday_country: str = "",
    holiday_subdivision: str = "",
    ranges: Sequence[tuple[int, time, time]] = (),
    holidays: Sequence[tuple[date, str]] = (),
) -> Calendar:
    """Create a calendar with its weekly ranges `(weekday, start, end)` and explicit holidays `(date, name)`.

    Invalid input (unknown zone or country, a taken name, duplicate ranges or dates) raises `ValidationFailed` and
    writes nothing. One audit row `calendar.create` holds the whole calendar."""
    _require_admin(actor)
    calendar = Calendar(
        name=name.strip(),
        time_zone=time_zone,
        holiday_country=holiday_country.strip().upper(),
        holiday_subdivision=holiday_subdivision.strip().upper(),
    )
    _clean(calendar, "The calendar is not valid.")
    try:
        with transaction.atomic():
            calendar.save(force_insert=True)
    except IntegrityError as exc:  # a concurrent create with the same name
        raise ValidationFailed("The calendar is not valid.", fields={"name": ["The name is taken."]}) from exc
    _add_children(calendar, ranges, holidays)
    audit_record(actor=actor, action="calendar.create", obj=calendar, after=_calendar_snapshot(calendar))
    return calendar


POLICY_AUDIT_FIELDS = ("name", "kind", "is_active", "precedence", "ticket_types", "priorities", "team", "calendar")


@transaction.atomic
def policy_create(
    *,
    actor: User | None,
    name: str,
    calendar: Calendar,
    targets: Sequence[tuple[str, tuple[int, int, int, int]]],
    kind: str = SlaPolicy.Kind.SLA,
    precedence: int = 100,
    ticket_types: Sequence[str] = (),
    priorities: Sequence[int] = (),
    team: Team | None = None,
) -> SlaPolicy:
    """Create a policy with its targets `(metric, (p1, p2, p3, p4) seconds)`. Admin-only (or the system); validated
    with `full_clean`, audited as one `sla_policy.create` row. Clocks open for tickets created from now on."""
    _require_admin(actor)
    policy = SlaPolicy(
        name=name.strip(), kind=kind, precedence=precedence, ticket_types=list(ticket_types),
        priorities=list(priorities), team=team, calendar=calendar,
    )  # fmt: skip
    _clean(policy, "The policy is not valid.")
    policy.save(force_insert=True)
    for metric, (p1, p2, p3, p4) in targets:
        target = SlaTarget(policy=policy, metric=metric, p1_seconds=p1, p2_seconds=p2, p3_seconds=p3, p4_seconds=p4)
        _clean(target, "The target is not valid.", exclude=["policy"])
        target.save(force_insert=True)
    after = snapshot(policy, POLICY_AUDIT_FIELDS)
    after["targets"] = [[metric, list(seconds)] for metric, seconds in targets]
    audit_record(actor=actor, action="sla_policy.create", obj=policy, after=after)
    return policy


POLICY_UPDATABLE_FIELDS = frozenset(
    {"name", "kind", "precedence", "ticket_types", "priorities", "team", "calendar", "is_active"}
)
CANCEL_BATCH_SIZE = 1000


def _policy_snapshot(policy: SlaPolicy) -> dict[str, Any]:
    data = snapshot(policy, POLICY_AUDIT_FIELDS)
    data["categories"] = sorted(policy.categories.values_list("pk", flat=True))
    data["targets"] = [
        [t.metric, t.name, [t.p1_seconds, t.p2_seconds, t.p3_seconds, t.p4_seconds], list(t.pause_states),
         list(t.warning_percents), t.on_reopen, list(t.start_states), list(t.stop_states)]
        for t in policy.targets.order_by("metric", "name", "pk")
    ]  # fmt: skip
    return data


@transaction.atomic
def policy_update(
    *,
    actor: User | None,
    policy: SlaPolicy,
    categories: Sequence[Any] | None = None,
    targets: Sequence[tuple[str, tuple[int, int, int, int]]] | None = None,
    **changes: Any,
) -> SlaPolicy:
    """Edit a policy: its fields (`POLICY_UPDATABLE_FIELDS`), its categories, and the durations of its targets
    `(metric, (p1, p2, p3, p4))` (a metric it lacks is added). Admin-only (or the system); locks the policy row;
    unchanged input is a no-op. Otherwise one `sla_policy.update` audit row (before/after, targets and categories
    included), then `policy_clocks_reset`: the policy's open clocks are cancelled (never a breach) and, after commit,
    every open ticket is re-synced in batches (`sla.clocks_resync`), which starts what matches now retroactively."""
    unknown = set(changes) - POLICY_UPDATABLE_FIELDS
    if unknown:
        raise ValidationFailed(f"Unknown policy fields: {', '.join(sorted(unknown))}.")
    _require_admin(actor)
    policy = SlaPolicy.objects.select_for_update().get(pk=policy.pk)
    before = _policy_snapshot(policy)
    for name, value in changes.items():
        setattr(policy, name, value.strip() if name == "name" else value)
    _clean(policy, "The policy is not valid.")
    policy.save()
    if categories is not None:
        policy.categories.set(categories)
    for metric, (p1, p2, p3, p4) in targets or ():
        target = policy.targets.filter(metric=metric).first() or SlaTarget(policy=policy, metric=metric)
        target.p1_seconds, target.p2_seconds, target.p3_seconds, target.p4_seconds = p1, p2, p3, p4
        _clean(target, "The target is not valid.", exclude=["policy"])
        target.save()
    after = _policy_snapshot(policy)
    if after == before:
        return policy
    audit_record(actor=actor, action="sla_policy.update", obj=policy, before=before, after=after)
    _policy_clocks_reset(policy, timezone.now())
    return policy


@transaction.atomic
def policy_deactivate(*, actor: User | None, policy: SlaPolicy) -> SlaPolicy:
    """Deactivate a policy (admin-only, audited as `sla_policy.update`): its open clocks are cancelled, never
    breached, and the policies that match instead start retroactively on open tickets. A no-op when inactive."""
    return policy_update(actor=actor, policy=policy, is_active=False)


@transaction.atomic
def policy_clocks_reset(*, actor: User | None, policy: SlaPolicy) -> int:
    """Cancel the policy's open clocks and re-sync open tickets after commit, for an edit made elsewhere (the admin's
    target inlines). Admin-only, audited as `sla_policy.clocks_reset`. Returns the number of clocks cancelled."""
    _require_admin(actor)
    policy = SlaPolicy.objects.select_for_update().get(pk=policy.pk)
    cancelled = _policy_clocks_reset(policy, timezone.now())
    audit_record(actor=actor, action="sla_policy.clocks_reset", obj=policy, after={"cancelled": cancelled})
    return cancelled


def _policy_clocks_reset(policy: SlaPolicy, at: datetime) -> int:
    """Cancel every open clock of `policy` at `at` with set-based SQL in batches of `CANCEL_BATCH_SIZE` (a few
    queries per batch whatever the count): the open segment closes, `ClockEvent(cancelled)`, state `cancelled`,
    no outcome. Then send `sla.clocks_resync` after commit."""
    from sla.tasks import clocks_resync_task  # the tasks module imports this one

    cancelled = 0
    while True:
        ids = list(
            Clock.objects.select_for_update(of=("self",))
            .filter(target__policy=policy, state__in=Clock.OPEN_STATES)
            .order_by("pk")
            .values_list("pk", flat=True)[:CANCEL_BATCH_SIZE]
        )
        if not ids:
            break
        ClockSegment.objects.filter(clock_id__in=ids, end__isnull=True).update(
            end=Greatest(F("start"), Value(at, output_field=DateTimeField()))
        )
        ClockEvent.objects.bulk_create(
            ClockEvent(
                clock_id=clock_id,
                kind=ClockEvent.Kind.CANCELLED,
                at=at,
                data={"reason": Clock.StopReason.POLICY_CHANGED.value},
            )
            for clock_id in ids
        )
        Clock.objects.filter(pk__in=ids).update(
            state=Clock.State.CANCELLED,
            finished_at=at,
            next_deadline_at=None,
            due_at=None,
            stop_reason=Clock.StopReason.POLICY_CHANGED,
        )
        cancelled += len(ids)
    enqueue_on_commit(clocks_resync_task)
    logger.info("sla.policy_clocks_reset", extra={"policy_id": policy.pk, "cancelled": cancelled})
    return cancelled


RESYNC_BATCH_SIZE = 200


def clocks_resync(*, batch_size: int = RESYNC_BATCH_SIZE, now: datetime | None = None) -> int:
    """Re-sync every open ticket's clocks with the policies that match it now (`sla.lifecycle.clocks_sync`): cancel
    what no longer matches, start what matches retroactively. Keyset batches by ticket id, each batch in its own
    transaction with its tickets locked (by pk, like the ticket services). Idempotent: a second run writes nothing.
    Returns the number of tickets looked at."""
    from sla import lifecycle

    seen = 0
    after = 0
    while True:
        with transaction.atomic():
            batch = list(
                Ticket.objects.select_for_update()
                .filter(state__in=OPEN_STATES, pk__gt=after)
                .order_by("pk")[:batch_size]
            )
            calendars = _Calendars()
            at = now or timezone.now()
            for ticket in batch:
                lifecycle.clocks_sync(ticket=ticket, at=at, calendars=calendars, reason="policy_changed")
        seen += len(batch)
        if len(batch) < batch_size:
            return seen
        after = batch[-1].pk


def _add_children(
    calendar: Calendar, ranges: Sequence[tuple[int, time, time]], holidays: Sequence[tuple[date, str]]
) -> None:
    working_ranges = [WorkingRange(calendar=calendar, weekday=w, start_time=s, end_time=e) for w, s, e in ranges]
    holiday_rows = [Holiday(calendar=calendar, date=d, name=n) for d, n in holidays]
    if len({(r.weekday, r.start_time) for r in working_ranges}) != len(working_ranges):
        raise ValidationFailed("Two ranges start at the same time on the same day.")
    if len({h.date for h in holiday_rows}) != len(holiday_rows):
        raise ValidationFailed("A holiday date is listed twice.")
    rows: list[WorkingRange | Holiday] = [*working_ranges, *holiday_rows]
    for row in rows:
        _clean(row, "A range or holiday is not valid.", exclude=["calendar"], validate_unique=False)
    WorkingRange.objects.bulk_create(working_ranges)
    Holiday.objects.bulk_create(holiday_rows)


@transaction.atomic
def calendar_update(
    *,
    actor: User | None,
    calendar: Calendar,
    ranges: Sequence[tuple[int, time, time]] | None = None,
    holidays: Sequence[tuple[date, str]] | None = None,
    **changes: Any,
) -> Calendar:
    """Change a calendar's fields (`name`, `time_zone`, `holiday_country`, `holiday_subdivision`) and, when given,
    replace its ranges and/or holidays. Locks the calendar row; returns it unchanged (no audit row) when nothing
    changes; otherwise writes one `calendar.update` audit row with the before and after pictures."""
    unknown = set(changes) - CALENDAR_UPDATABLE_FIELDS
    if unknown:
        raise ValidationFailed(f"Unknown calendar fields: {', '.join(sorted(unknown))}.")
    _require_admin(actor)
    calendar = Calendar.objects.select_for_update().get(pk=calendar.pk)
    before = _calendar_snapshot(calendar)
    changed = [name for name, value in changes.items() if getattr(calendar, name) != value]
    for name in changed:
        setattr(calendar, name, changes[name])
    if changed:
        _clean(calendar, "The calendar is not valid.")
        try:
            with transaction.atomic():
                calendar.save(update_fields=changed)
        except IntegrityError as exc:
            raise ValidationFailed("The calendar is not valid.", fields={"name": ["The name is taken."]}) from exc
    if ranges is not None:
        calendar.working_ranges.all().delete()
        _add_children(calendar, ranges, ())
    if holidays is not None:
        calendar.holidays.all().delete()
        _add_children(calendar, (), holidays)
    after = _calendar_snapshot(calendar)
    if after == before:
        return calendar
    audit_record(actor=actor, action="calendar.update", obj=calendar, before=before, after=after)
    return calendar


# --- clocks (issue 5): the ledger written by the ticket event subscribers -------------------------------------------
#
# Every handler runs inside the ticket service's transaction (itsm.events.publish), locks the ticket's open clocks
# (`select_for_update`, ordered by pk) and is idempotent: a change that is already in the ledger is a no-op.


# `BusinessCalendar`s by calendar id, built once per handler call (sla.selectors.BusinessCalendars).
_Calendars = BusinessCalendars


def _ledger(clock: Clock) -> list[clock_state.Segment]:
    return [
        clock_state.Segment(kind=segment.kind, start=segment.start, end=segment.end)
        for segment in clock.segments.order_by("start", "id")
    ]


def _figures(clock: Clock, calendars: _Calendars, now: datetime) -> clock_state.ClockFigures:
    calendar = calendars.get(clock.target.policy.calendar_id)
    return clock_state.figures(_ledger(clock), calendar, target_seconds=clock.target_seconds, now=now)


def matching_policies(ticket: Ticket) -> list[SlaPolicy]:
    """The active policies that apply to `ticket`: the best SLA (lowest precedence, then lowest id) and every OLA of
    the ticket's team. Empty match lists mean "any"."""
    candidates = (
        SlaPolicy.objects.filter(is_active=True)
        .filter(Q(ticket_types=[]) | Q(ticket_types__contains=[ticket.type]))
        .filter(Q(priorities=[]) | Q(priorities__contains=[ticket.priority]))
        .filter(Q(kind=SlaPolicy.Kind.SLA) | Q(kind=SlaPolicy.Kind.OLA, team_id=ticket.team_id))
        .prefetch_related("categories", "targets")
        .order_by("precedence", "id")
    )
    chosen: list[SlaPolicy] = []
    has_sla = False
    for policy in candidates:
        category_ids = {category.pk for category in policy.categories.all()}
        if category_ids and ticket.category_id not in category_ids:
            continue
        if policy.kind == SlaPolicy.Kind.SLA:
            if has_sla:
                continue
            has_sla = True
        chosen.append(policy)
    return chosen


def _lock_open_clocks(ticket_id: int, **filters: Any) -> list[Clock]:
    return list(
        Clock.objects.select_for_update(of=("self",))
        .select_related("target__policy")
        .filter(ticket_id=ticket_id, state__in=Clock.OPEN_STATES, **filters)
        .order_by("pk")
    )


def _open_segment(clock: Clock) -> ClockSegment | None:
    return clock.segments.filter(end__isnull=True).first()


def _switch_segment(clock: Clock, kind: str, at: datetime) -> datetime:
    """Close the open segment at `at` (never before its start) and open a `kind` one there; returns the instant."""
    current = _open_segment(clock)
    if current is not None:
        at = max(at, current.start)
        current.end = at
        current.save(update_fields=["end"])
    ClockSegment.objects.create(clock=clock, kind=kind, start=at)
    return at


def clocks_start(*, ticket: Ticket, at: datetime) -> list[Clock]:
    """Open one running clock per target of every matching policy (idempotent: a target that already has a clock on
    this ticket, in any state, is skipped). A ticket no policy matches gets none."""
    policies = matching_policies(ticket)
    if not policies:
        return []
    existing = set(Clock.objects.filter(ticket=ticket).values_list("target_id", "team_id"))
    calendars = _Calendars()
    opened = []
    for policy in policies:
        team_id = policy.team_id if policy.kind == SlaPolicy.Kind.OLA else None
        for target in policy.targets.all():
            if (target.pk, team_id) in existing or not starts_in(target, ticket.state):
                continue
            opened.append(clock_open(ticket=ticket, target=target, team_id=team_id, at=at, calendars=calendars))
    return opened


def starts_in(target: SlaTarget, ticket_state: str) -> bool:
    """Whether a clock of `target` starts when a ticket is (or enters) `ticket_state`: first response and resolution
    start at creation; a custom metric starts on entering one of its `start_states` (empty: at creation)."""
    if target.metric != SlaTarget.Metric.CUSTOM:
        return ticket_state == TicketState.NEW
    if not target.start_states:
        return ticket_state == TicketState.NEW
    return ticket_state in target.start_states


def note_ticket_policy(ticket_id: int, policy_id: int) -> bool:
    """Record on the ticket that a clock of `policy_id` was opened on it (`Ticket.sla_policy_ids`, what the
    dashboards' policy filter reads for ticket figures). One UPDATE, a no-op when the policy is already there; every
    place that opens a clock calls it. Returns whether the ticket changed."""
    changed = (
        Ticket.objects.filter(pk=ticket_id)
        .exclude(sla_policy_ids__contains=[policy_id])
        .update(
            sla_policy_ids=Func(
                F("sla_policy_ids"),
                Value(policy_id),
                function="array_append",
                output_field=ArrayField(models.BigIntegerField()),
            )
        )
    )
    return changed > 0


def clock_open(
    *,
    ticket: Ticket,
    target: SlaTarget,
    team_id: int | None,
    at: datetime,
    calendars: _Calendars,
    data: dict[str, Any] | None = None,
) -> Clock:
    """Open one clock of `target` from `at`: running, or paused when the ticket is in one of the target's pause
    states; `started` event, deadlines stored and the timer planned. The caller checks there is no open clock for the
    same (target, team) (the partial unique index would refuse it)."""
    target_seconds = target.seconds_for(ticket.priority)
    paused = ticket.state in target.pause_states
    clock = Clock.objects.create(
        ticket=ticket,
        target=target,
        team_id=team_id,
        state=Clock.State.PAUSED if paused else Clock.State.RUNNING,
        started_at=at,
        target_seconds=target_seconds,
    )
    note_ticket_policy(ticket.pk, target.policy_id)
    kind = ClockSegment.Kind.PAUSED if paused else ClockSegment.Kind.RUNNING
    ClockSegment.objects.create(clock=clock, kind=kind, start=at)
    _set_deadlines(clock, calendars, at)
    clock.save(update_fields=["next_deadline_at", "due_at"])
    _plan_timer(clock)
    ClockEvent.objects.create(
        clock=clock,
        kind=ClockEvent.Kind.STARTED,
        at=at,
        data={
            "policy_id": target.policy_id,
            "target_seconds": target_seconds,
            "priority": ticket.priority,
            **(data or {}),
        },
    )
    return clock


def _pause(clock: Clock, at: datetime, state_name: str) -> None:
    if clock.state != Clock.State.RUNNING:
        return
    at = _switch_segment(clock, ClockSegment.Kind.PAUSED, at)
    clock.state = Clock.State.PAUSED
    _set_deadlines(clock, None, at)
    clock.save(update_fields=["state", "next_deadline_at", "due_at"])
    ClockEvent.objects.create(clock=clock, kind=ClockEvent.Kind.PAUSED, at=at, data={"state": state_name})


def _resume(clock: Clock, at: datetime, state_name: str, calendars: _Calendars) -> None:
    if clock.state != Clock.State.PAUSED:
        return
    at = _switch_segment(clock, ClockSegment.Kind.RUNNING, at)
    clock.state = Clock.State.RUNNING
    _set_deadlines(clock, calendars, at)
    clock.save(update_fields=["state", "next_deadline_at", "due_at"])
    _plan_timer(clock)
    ClockEvent.objects.create(clock=clock, kind=ClockEvent.Kind.RESUMED, at=at, data={"state": state_name})


def clock_publish(
    event_type: type[sla_events.ClockEventBase], clock: Clock, *, at: datetime, threshold: int, due_at: datetime | None
) -> None:
    """Publish a typed SLA event (sla/events.py) for `clock`, inside the caller's transaction."""
    publish(
        event_type(
            at=at,
            actor_id=None,
            ticket_id=clock.ticket_id,
            clock_id=clock.pk,
            policy=clock.target.policy.name,
            metric=clock.target.name or clock.target.metric,
            threshold=threshold,
            due_at=due_at,
        )
    )


def _finish(
    clock: Clock, at: datetime, calendars: _Calendars, *, ticket: Ticket, cancel: bool = False, reason: str = ""
) -> None:
    """Close the clock at `at` for `reason` (a `Clock.StopReason`): `cancelled` (no outcome), or `met` / `breached`
    with its `ClockOutcome`. Met when the business seconds it ran are within the target and no breach was recorded
    before (a breach, once recorded, is final: a later retarget to a longer target does not undo it). A breach is
    recorded at the instant the target was reached, once (`ClockEvent(breached, threshold=100)` may already exist
    from a timer); `sla.breached` is published when the breach is written here, `sla.met` when met."""
    current = _open_segment(clock)
    if current is not None:
        at = max(at, current.start)
        current.end = at
        current.save(update_fields=["end"])
    clock.next_deadline_at = None
    clock.due_at = None
    clock.finished_at = at
    clock.stop_reason = reason
    if cancel:
        clock.state = Clock.State.CANCELLED
        clock.save(update_fields=["state", "next_deadline_at", "due_at", "finished_at", "stop_reason"])
        ClockEvent.objects.create(clock=clock, kind=ClockEvent.Kind.CANCELLED, at=at, data={"reason": reason})
        return
    figures = _figures(clock, calendars, at)
    met = figures.elapsed <= clock.target_seconds and clock.breached_at is None
    data = {"elapsed": figures.elapsed, "paused": figures.paused, "target_seconds": clock.target_seconds}
    if met:
        clock.state = Clock.State.MET
        ClockEvent.objects.create(clock=clock, kind=ClockEvent.Kind.MET, at=at, data=data)
        clock_publish(sla_events.ClockMet, clock, at=at, threshold=100, due_at=figures.due_at)
    else:
        clock.state = Clock.State.BREACHED
        clock.breached_at = clock.breached_at or figures.due_at
        if not ClockEvent.objects.filter(clock=clock, kind=ClockEvent.Kind.BREACHED, threshold=100).exists():
            breached_at = clock.breached_at or at
            ClockEvent.objects.create(
                clock=clock, kind=ClockEvent.Kind.BREACHED, at=breached_at, threshold=100, data=data
            )
            clock_publish(sla_events.ClockBreached, clock, at=breached_at, threshold=100, due_at=breached_at)
    clock.save(update_fields=["state", "next_deadline_at", "due_at", "finished_at", "breached_at", "stop_reason"])
    ClockOutcome.objects.create(
        clock=clock,
        met=met,
        business_seconds_used=figures.elapsed,
        target_seconds=clock.target_seconds,
        team_id=clock.team_id if clock.team_id is not None else ticket.team_id,
        priority=ticket.priority,
        category_id=ticket.category_id,
        policy_id=clock.target.policy_id,
        finished_at=at,
        is_after_reopen=ClockEvent.objects.filter(clock=clock, kind=ClockEvent.Kind.REOPENED).exists(),
        metric=clock.target.metric,
        started_at=clock.started_at,
        ticket_type=ticket.type,
    )


def on_ticket_created(event: ticket_events.TicketCreated) -> None:
    ticket = Ticket.objects.get(pk=event.ticket_id)
    clocks_start(ticket=ticket, at=event.at)


def on_status_changed(event: ticket_events.StatusChanged) -> None:
    """Pause, resume or finish the ticket's open clocks, continue or restart resolved ones on a reopen, and start the
    custom clocks whose start state the ticket enters (see docs/sla.md "Clocks")."""
    from sla import lifecycle

    clocks = _lock_open_clocks(event.ticket_id)
    to_state = event.to_state
    reopening = event.from_state == TicketState.RESOLVED and to_state in OPEN_STATES
    if not clocks and not reopening and not lifecycle.has_custom_start(to_state):
        return
    ticket = Ticket.objects.get(pk=event.ticket_id)
    calendars = _Calendars()
    for clock in clocks:
        target = clock.target
        if target.metric == SlaTarget.Metric.CUSTOM and to_state in target.stop_states:
            # an explicit stop state wins, even closed (a custom "time to close" ends met or breached, not cancelled)
            reason = Clock.StopReason.RESOLVED if to_state == TicketState.RESOLVED else Clock.StopReason.STOP_STATE
            _finish(clock, event.at, calendars, ticket=ticket, reason=reason)
        elif to_state in FINAL_STATES:
            _finish(clock, event.at, calendars, ticket=ticket, cancel=True, reason=Clock.StopReason.TICKET_FINAL)
        elif to_state == TicketState.RESOLVED and target.metric != SlaTarget.Metric.CUSTOM:
            _finish(clock, event.at, calendars, ticket=ticket, reason=Clock.StopReason.RESOLVED)
        elif to_state in target.pause_states or to_state == TicketState.RESOLVED:
            # a custom clock that resolving does not stop waits, paused, for a reopen (or is cancelled at closure)
            _pause(clock, event.at, to_state)
        else:
            _resume(clock, event.at, to_state, calendars)
    if reopening:
        lifecycle.clocks_reopen(ticket=ticket, at=event.at, calendars=calendars)
    lifecycle.custom_clocks_start(ticket=ticket, at=event.at, calendars=calendars)


def on_public_reply(event: ticket_events.PublicReplyAdded) -> None:
    """An agent's public reply stops the first-response clocks; a requester's reply does not."""
    if not event.by_agent:
        return
    clocks = _lock_open_clocks(event.ticket_id, target__metric=SlaTarget.Metric.FIRST_RESPONSE)
    if not clocks:
        return
    ticket = Ticket.objects.get(pk=event.ticket_id)
    calendars = _Calendars()
    for clock in clocks:
        _finish(clock, event.at, calendars, ticket=ticket, reason=Clock.StopReason.FIRST_REPLY)


def register_subscribers() -> None:
    """Called from `SlaConfig.ready()`."""
    from sla import lifecycle

    subscribe(ticket_events.TicketCreated, on_ticket_created)
    subscribe(ticket_events.StatusChanged, on_status_changed)
    subscribe(ticket_events.PublicReplyAdded, on_public_reply)
    subscribe(ticket_events.PriorityChanged, lifecycle.on_priority_changed)
    subscribe(ticket_events.TeamChanged, lifecycle.on_team_changed)
    subscribe(ticket_events.CategoryChanged, lifecycle.on_category_changed)


# --- timers (issue 5, DESIGN.md §3 step 4): warnings and breaches fired at their instant -----------------------------
#
# `next_deadline_at` is the earliest threshold (a warning at each `warning_percents` of the target, the breach at
# 100 %) that has no `ClockEvent` yet, while the clock runs; None otherwise. Whenever it is (re)computed and falls
# inside the horizon, an eta task is sent after commit; the reconciler (`clocks_reconcile`, celery-beat) re-plans
# whatever a lost message missed. Firing locks the clock row and checks the ledger, so a duplicate message is a no-op.

# A firing batch holds its clock rows locked until it commits: small enough that a ticket change waiting on one of
# them waits well under a second.
RECONCILE_BATCH_SIZE = 100


def timer_horizon() -> timedelta:
    return timedelta(seconds=settings.SLA_TIMER_HORIZON_SECONDS)


def _thresholds(clock: Clock, escalation_percents: Sequence[int] | None = None) -> list[tuple[str, int, int]]:
    """`(kind, percent, business seconds)` of every threshold of `clock`: the warnings (rounded up to the second, so
    a warning never fires before its percentage is reached), the breach, then the escalation levels (read from the
    database unless the caller passes the target's `escalation_percents`)."""
    target = clock.target_seconds
    warnings = [
        (ClockEvent.Kind.WARNED.value, percent, -(-target * percent // 100))
        for percent in sorted(clock.target.warning_percents)
    ]
    levels = escalation.escalation_thresholds(clock, escalation_percents)
    return [*warnings, (ClockEvent.Kind.BREACHED.value, 100, target), *levels]


def _fired_thresholds(clock: Clock) -> set[tuple[str, int]]:
    rows = ClockEvent.objects.filter(
        clock=clock, kind__in=(ClockEvent.Kind.WARNED, ClockEvent.Kind.BREACHED, ClockEvent.Kind.ESCALATED)
    )
    return {(kind, threshold) for kind, threshold in rows.values_list("kind", "threshold") if threshold is not None}


def _threshold_instants(
    clock: Clock, calendars: _Calendars, now: datetime
) -> list[tuple[str, int, int, datetime | None]]:
    """Every threshold with the instant the ledger reaches it (None when it has not and the clock is not running)."""
    ledger = _ledger(clock)
    calendar = calendars.get(clock.target.policy.calendar_id)
    return [
        (kind, percent, seconds, clock_state.figures(ledger, calendar, target_seconds=seconds, now=now).due_at)
        for kind, percent, seconds in _thresholds(clock)
    ]


def _set_deadlines(clock: Clock, calendars: _Calendars | None, now: datetime) -> None:
    """Store the indexed instants of a clock from its ledger: `next_deadline_at`, the earliest threshold that has not
    fired, and `due_at`, the breach instant (past once breached). Both are None unless the clock runs."""
    if clock.state != Clock.State.RUNNING or calendars is None:
        clock.next_deadline_at = None
        clock.due_at = None
        return
    _none, clock.next_deadline_at, clock.due_at = thresholds_due(
        _threshold_instants(clock, calendars, now), _fired_thresholds(clock), None
    )


def _plan_timer(clock: Clock, now: datetime | None = None) -> None:
    """Send `sla.fire_due_clock` with `eta=next_deadline_at` after commit when the deadline is inside the horizon
    (overdue included: the eta is then in the past and the task runs at once)."""
    deadline = clock.next_deadline_at
    if clock.state != Clock.State.RUNNING or deadline is None:
        return
    if deadline > (now or timezone.now()) + timer_horizon():
        return
    from sla.tasks import fire_due_clock_task  # the tasks module imports this one

    enqueue_on_commit(fire_due_clock_task, clock.pk, eta=deadline)


@transaction.atomic
def clock_fire_due(*, clock_id: int, now: datetime | None = None) -> list[str]:
    """Fire every threshold of a running clock whose instant is at or before `now` and that has not fired yet:
    `ClockEvent(warned, threshold=p)` at the warning's instant, `ClockEvent(breached, threshold=100)` at the breach
    instant with `breached_at` set to it. The clock keeps running (it still stops met/breached at resolution, and
    `_finish` does not write the breach twice). Recomputes `next_deadline_at` and plans its timer. Returns what fired,
    as `"warned:50"` / `"breached:100"`; a gone, paused or finished clock fires nothing."""
    now = now or timezone.now()
    clock = Clock.objects.select_for_update(of=("self",)).select_related("target__policy").filter(pk=clock_id).first()
    if clock is None or clock.state != Clock.State.RUNNING:
        return []
    calendars = _Calendars()
    escalations: list[tuple[int, datetime]] = []
    written = _fire_thresholds(clock, calendars, now, escalations)  # also sets next_deadline_at and due_at
    clock.save(update_fields=["next_deadline_at", "due_at", "breached_at"])
    _plan_timer(clock, now)
    # Escalation actions last: they may change the ticket, whose subscribers may change this clock.
    for percent, instant in escalations:
        escalation.clock_escalate(clock=clock, percent=percent, at=instant, now=now)
    if written:
        logger.info("sla.clock_fired", extra={"clock_id": clock.pk, "fired": written})
    return written


Threshold = tuple[str, int, int, datetime | None]  # (kind, percent, business seconds, instant the ledger reaches it)
Reached = tuple[str, int, int, datetime]  # a threshold whose instant has come


def thresholds_due(
    instants: Sequence[Threshold],
    fired: set[tuple[str, int]],
    fire_until: datetime | None,
    *,
    escalations: bool = True,
) -> tuple[list[Reached], datetime | None, datetime | None]:
    """The one rule for firing a running clock's thresholds, shared by the single and batch timer paths and by
    `sla_rebuild`: every threshold reached at or before `fire_until` that has not fired fires (escalation levels only
    when `escalations`; `fire_until=None` fires nothing); `next_deadline_at` is the earliest instant of the rest
    (a passed one included: its timer fires it at once) and `due_at` the breach instant.
    Returns (the thresholds to fire in order, next_deadline_at, due_at)."""
    due_at = next((instant for kind, _p, _s, instant in instants if kind == ClockEvent.Kind.BREACHED.value), None)
    to_fire: list[Reached] = [
        (kind, percent, seconds, instant)
        for kind, percent, seconds, instant in instants
        if fire_until is not None
        and instant is not None
        and instant <= fire_until
        and (kind, percent) not in fired
        and (escalations or kind != ClockEvent.Kind.ESCALATED.value)
    ]
    done = fired | {(kind, percent) for kind, percent, _s, _i in to_fire}
    next_deadline_at = min(
        (instant for kind, percent, _s, instant in instants if instant is not None and (kind, percent) not in done),
        default=None,
    )
    return to_fire, next_deadline_at, due_at


def _fire_thresholds(
    clock: Clock, calendars: _Calendars, now: datetime, escalations: list[tuple[int, datetime]] | None = None
) -> list[str]:
    """Write every threshold of a running clock reached at or before `now` that has not fired: the `ClockEvent` at
    its own instant and the typed event (`sla.warning` / `sla.breached`); a breach sets `clock.breached_at` (the
    caller saves the clock). Returns what fired, as `"warned:50"` / `"breached:100"` / `"escalated:150"`.

    Escalation levels fire only when the caller passes `escalations` (the timer path, `clock_fire_due`, which runs
    their actions once the clock is saved); `(percent, instant)` of each is appended to it. Elsewhere (retarget,
    retroactive start, reopen) they stay unfired, so `next_deadline_at` lands on their passed instant and the timer
    planned for it fires them, with their actions, right after commit.

    Sets the running clock's `next_deadline_at` and `due_at` from the same figures, as `_set_deadlines` would."""
    to_fire, next_deadline_at, due_at = thresholds_due(
        _threshold_instants(clock, calendars, now), _fired_thresholds(clock), now, escalations=escalations is not None
    )
    written: list[str] = []
    for kind, percent, seconds, instant in to_fire:
        ClockEvent.objects.create(
            clock=clock,
            kind=kind,
            at=instant,
            threshold=percent,
            data={"business_seconds": seconds, "target_seconds": clock.target_seconds},
        )
        if kind == ClockEvent.Kind.BREACHED:
            clock.breached_at = instant
            clock_publish(sla_events.ClockBreached, clock, at=instant, threshold=percent, due_at=due_at)
        elif kind == ClockEvent.Kind.ESCALATED:
            assert escalations is not None  # noqa: S101 - skipped above otherwise
            escalations.append((percent, instant))
        else:
            clock_publish(sla_events.ClockWarned, clock, at=instant, threshold=percent, due_at=due_at)
        written.append(f"{kind}:{percent}")
    running = clock.state == Clock.State.RUNNING
    clock.next_deadline_at = next_deadline_at if running else None
    clock.due_at = due_at if running else None
    return written


def clocks_reconcile(*, now: datetime | None = None, batch_size: int = RECONCILE_BATCH_SIZE) -> dict[str, int]:
    """Re-plan the timers from Postgres (celery-beat, DESIGN.md §3 step 4): running clocks whose `next_deadline_at`
    is at or before `now + horizon`, in deadline order (the partial index). Returns counts: clocks that `fired`
    something, eta tasks `planned`, firings that `failed`.

    Safe with several reconcilers at once (two beat instances, a worker's start-up pass, a wave's sweep): overdue
    clocks are taken `batch_size` at a time with `SELECT … FOR UPDATE SKIP LOCKED` and fired in that batch's
    transaction, so a clock another reconciler (or an eta task, or a ticket service) holds is skipped, never waited
    for and never fired twice; whoever holds it fires it or re-plans it. A batch is fired in a constant number of
    statements (`_fire_locked`); one broken clock (e.g. a calendar without hours) is logged and skipped. Clocks due
    later inside the horizon get an eta task without locking (a duplicate eta task is a no-op)."""
    now = now or timezone.now()
    counts = clocks_fire_overdue(now=now, batch_size=batch_size)
    counts["planned"] = clocks_plan_soon(now=now, batch_size=batch_size)
    return counts


def clock_timer_fire(*, clock_id: int, now: datetime | None = None) -> list[str]:
    """What the eta task `sla.fire_due_clock` does. A message for a clock with nothing left to fire (a duplicate, a
    stale message for a paused, finished or gone clock) costs one query. Otherwise the clock is fired by
    `clock_fire_due` (waiting for its lock, so a ticket change in flight is never skipped), and when other clocks are
    overdue too (a wave of deadlines in the same second) they are fired right away in batches
    (`clocks_fire_overdue`), so the rest of the wave's messages find nothing to do. Returns what fired on this clock."""
    now = now or timezone.now()
    if not Clock.objects.filter(pk=clock_id, state=Clock.State.RUNNING, next_deadline_at__isnull=False).exists():
        return []
    fired = clock_fire_due(clock_id=clock_id, now=now)
    if Clock.objects.filter(state=Clock.State.RUNNING, next_deadline_at__lte=now).exists():
        clocks_fire_overdue(now=now)
    return fired


def clocks_fire_overdue(*, now: datetime | None = None, batch_size: int = RECONCILE_BATCH_SIZE) -> dict[str, int]:
    """Fire every running clock whose `next_deadline_at <= now` that no other transaction holds (see
    `clocks_reconcile`), `batch_size` clocks per transaction. Returns `{"fired": n, "failed": n}`."""
    now = now or timezone.now()
    counts = {"fired": 0, "failed": 0}
    after: tuple[datetime, int] | None = None
    while True:
        with transaction.atomic():
            rows = (
                Clock.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("target__policy")
                .filter(state=Clock.State.RUNNING, next_deadline_at__lte=now)
            )
            if after is not None:  # keyset: a clock that failed stays overdue and must not be taken again
                rows = rows.filter(Q(next_deadline_at__gt=after[0]) | Q(next_deadline_at=after[0], pk__gt=after[1]))
            batch = list(rows.order_by("next_deadline_at", "pk")[:batch_size])
            if len(batch) == batch_size and batch[-1].next_deadline_at is not None:
                after = (batch[-1].next_deadline_at, batch[-1].pk)  # before firing moves the deadlines
            if batch:
                _fire_locked(batch, now, counts)
        if len(batch) < batch_size:
            return counts


def _fire_locked(clocks: list[Clock], now: datetime, counts: dict[str, int]) -> None:
    """`clock_fire_due` for a batch of clocks this transaction holds locked, in a constant number of statements:
    one read of their segments, one of their fired thresholds, one insert of the new events, one update of the
    clocks (plus the calendars, once each). Same rules: every unfired threshold at or before `now` fires at its
    instant, the breach sets `breached_at`, and `next_deadline_at`/`due_at` are recomputed and the next timer planned.
    The typed events (`sla.warning`, `sla.breached`) are published and escalation levels run their actions once the
    clocks are saved, as in `clock_fire_due` (their subscribers and actions cost queries of their own).
    A clock whose figures cannot be computed (a calendar without hours) is logged, counted as failed and left as is."""
    ids = [clock.pk for clock in clocks]
    ledgers: dict[int, list[clock_state.Segment]] = {clock_id: [] for clock_id in ids}
    for segment in ClockSegment.objects.filter(clock_id__in=ids).order_by("clock_id", "start", "id"):
        ledgers[segment.clock_id].append(clock_state.Segment(kind=segment.kind, start=segment.start, end=segment.end))
    fired: dict[int, set[tuple[str, int]]] = {clock_id: set() for clock_id in ids}
    rows = ClockEvent.objects.filter(
        clock_id__in=ids,
        kind__in=(ClockEvent.Kind.WARNED, ClockEvent.Kind.BREACHED, ClockEvent.Kind.ESCALATED),
        threshold__isnull=False,
    ).values_list("clock_id", "kind", "threshold")
    for clock_id, kind, threshold in rows:
        if threshold is not None:
            fired[clock_id].add((kind, threshold))
    levels = escalation.escalation_percents_by_target(clock.target_id for clock in clocks)
    calendars = _Calendars()
    events: list[ClockEvent] = []
    changed: list[Clock] = []
    escalations: list[tuple[Clock, int, datetime]] = []
    for clock in clocks:
        try:
            calendar = calendars.get(clock.target.policy.calendar_id)
            instants = [
                (kind, percent, seconds, clock_state.figures(ledgers[clock.pk], calendar, target_seconds=seconds,
                                                             now=now).due_at)
                for kind, percent, seconds in _thresholds(clock, levels.get(clock.target_id, []))
            ]  # fmt: skip
        except Exception:
            logger.exception("sla.reconcile_fire_failed", extra={"clock_id": clock.pk})
            counts["failed"] += 1
            continue
        to_fire, next_deadline_at, due_at = thresholds_due(instants, fired[clock.pk], now)
        for kind, percent, seconds, instant in to_fire:
            events.append(
                ClockEvent(
                    clock=clock, kind=kind, at=instant, threshold=percent,
                    data={"business_seconds": seconds, "target_seconds": clock.target_seconds},
                )
            )  # fmt: skip
            if kind == ClockEvent.Kind.BREACHED:
                clock.breached_at = instant
                clock_publish(sla_events.ClockBreached, clock, at=instant, threshold=percent, due_at=due_at)
            elif kind == ClockEvent.Kind.ESCALATED:
                escalations.append((clock, percent, instant))
            else:
                clock_publish(sla_events.ClockWarned, clock, at=instant, threshold=percent, due_at=due_at)
        clock.next_deadline_at = next_deadline_at
        clock.due_at = due_at
        changed.append(clock)
        counts["fired"] += bool(to_fire)
    ClockEvent.objects.bulk_create(events)
    _update_instants(changed)
    for clock in changed:
        _plan_timer(clock, now)
    # Escalation actions last, as in `clock_fire_due`: they may change the ticket, whose subscribers may change clocks.
    for clock, percent, instant in escalations:
        escalation.clock_escalate(clock=clock, percent=percent, at=instant, now=now)
    if events:
        logger.info("sla.clocks_fired", extra={"clocks": len(changed), "events": len(events)})


def _update_instants(clocks: list[Clock]) -> None:
    """One `UPDATE … FROM (VALUES …)` of the clocks' `next_deadline_at`, `due_at` and `breached_at` (Django's
    `bulk_update` builds a CASE per row and field, which cost most of a batch's time)."""
    if not clocks:
        return
    rows = ", ".join(["(%s::bigint, %s::timestamptz, %s::timestamptz, %s::timestamptz)"] * len(clocks))
    params: list[Any] = []
    for clock in clocks:
        params += [clock.pk, clock.next_deadline_at, clock.due_at, clock.breached_at]
    table = connection.ops.quote_name(Clock._meta.db_table)
    sql = (
        f"UPDATE {table} AS clock SET next_deadline_at = v.next_deadline_at, due_at = v.due_at, "  # noqa: S608
        f"breached_at = v.breached_at FROM (VALUES {rows}) AS v(id, next_deadline_at, due_at, breached_at) "
        "WHERE clock.id = v.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def clocks_plan_soon(*, now: datetime | None = None, batch_size: int = RECONCILE_BATCH_SIZE) -> int:
    """Send an eta task for every running clock due after `now` and within the horizon; returns how many."""
    now = now or timezone.now()
    from sla.tasks import fire_due_clock_task  # the tasks module imports this one

    planned = 0
    after: tuple[datetime, int] | None = None
    while True:
        rows = Clock.objects.filter(
            state=Clock.State.RUNNING, next_deadline_at__gt=now, next_deadline_at__lte=now + timer_horizon()
        )
        if after is not None:
            rows = rows.filter(Q(next_deadline_at__gt=after[0]) | Q(next_deadline_at=after[0], pk__gt=after[1]))
        page = rows.order_by("next_deadline_at", "pk").values_list("next_deadline_at", "pk")[:batch_size]
        batch = [(deadline, clock_id) for deadline, clock_id in page if deadline is not None]
        for deadline, clock_id in batch:
            enqueue_on_commit(fire_due_clock_task, clock_id, eta=deadline)
        planned += len(batch)
        if len(batch) < batch_size:
            return planned
        after = batch[-1]
