"""Rebuild every stored SLA figure by replaying the ledger (DESIGN.md §4, docs/sla.md "Rebuild").

The truth is each clock's segments and threshold events with its calendar; `Clock.next_deadline_at`, `due_at`,
`breached_at`, the met/breached state of a finished clock and its `ClockOutcome` row are stored only for indexing
and reporting. `clocks_rebuild` recomputes them in keyset batches (a constant number of queries per batch) and either
reports the differences (`dry_run`) or writes them back. Idempotent: a second run finds nothing.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from sla import escalation
from sla import state as clock_state
from sla.models import Clock, ClockEvent, ClockOutcome, ClockSegment
from sla.services import _Calendars, _plan_timer, _thresholds, note_ticket_policy, thresholds_due

REBUILD_BATCH_SIZE = 500
CLOCK_FIELDS = ("state", "next_deadline_at", "due_at", "breached_at")
OUTCOME_FIELDS = (
    "met",
    "business_seconds_used",
    "target_seconds",
    "finished_at",
    "is_after_reopen",
    "metric",
    "started_at",
)


@dataclass(frozen=True)
class Difference:
    clock_id: int
    field: str
    stored: Any
    rebuilt: Any

    def __str__(self) -> str:
        return f"clock {self.clock_id}: {self.field} stored {self.stored!r}, ledger says {self.rebuilt!r}"


@dataclass
class RebuildReport:
    clocks: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def clocks_changed(self) -> int:
        return len({difference.clock_id for difference in self.differences})


def _rebuilt(
    clock: Clock,
    ledger: list[clock_state.Segment],
    fired: dict[tuple[str, int], datetime],
    calendars: _Calendars,
    now: datetime,
    levels: list[int],
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The stored figures the ledger implies: clock fields, and the outcome's (None: the clock has no outcome).
    `levels` are the target's escalation percents (read once per batch)."""
    calendar = calendars.get(clock.target.policy.calendar_id)
    read_at = clock.finished_at or now
    figures = clock_state.figures(ledger, calendar, target_seconds=clock.target_seconds, now=read_at)
    breach_at = fired.get((ClockEvent.Kind.BREACHED.value, 100))
    values: dict[str, Any] = {
        "state": str(clock.state),
        "next_deadline_at": None,
        "due_at": None,
        "breached_at": breach_at,
    }
    if clock.state == Clock.State.RUNNING:
        instants = [
            (kind, percent, seconds, clock_state.figures(ledger, calendar, target_seconds=seconds, now=now).due_at)
            for kind, percent, seconds in _thresholds(clock, levels)
        ]
        _none, values["next_deadline_at"], values["due_at"] = thresholds_due(instants, set(fired), None)
    if clock.state not in (Clock.State.MET, Clock.State.BREACHED):
        return values, None
    met = figures.elapsed <= clock.target_seconds and breach_at is None
    values["state"] = (Clock.State.MET if met else Clock.State.BREACHED).value
    if not met:
        values["breached_at"] = breach_at or figures.due_at
    outcome = {
        "met": met,
        "business_seconds_used": figures.elapsed,
        "target_seconds": clock.target_seconds,
        "finished_at": clock.finished_at,
        "is_after_reopen": (ClockEvent.Kind.REOPENED.value, 0) in fired,
        "metric": clock.target.metric,
        "started_at": clock.started_at,
    }
    return values, outcome


def clocks_rebuild(
    *,
    ticket_ids: Iterable[int] | None = None,
    dry_run: bool = False,
    batch_size: int = REBUILD_BATCH_SIZE,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> RebuildReport:
    """Replay the ledger of every clock (or those of `ticket_ids`) and repair the stored figures; with `dry_run` only
    report them. Each batch is one transaction with its clocks locked (by pk); `progress(n)` is called after each
    batch with the number of clocks in it. A repaired running clock gets its timer re-planned."""
    now = now or timezone.now()
    report = RebuildReport()
    calendars = _Calendars()
    after = 0
    ticket_filter = list(ticket_ids) if ticket_ids is not None else None
    while True:
        with transaction.atomic():
            rows = Clock.objects.select_related("target__policy", "ticket").filter(pk__gt=after)
            if ticket_filter is not None:
                rows = rows.filter(ticket_id__in=ticket_filter)
            if not dry_run:
                rows = rows.select_for_update(of=("self",))
            batch = list(rows.order_by("pk")[:batch_size])
            if not batch:
                return report
            missing_policies = _rebuild_batch(batch, calendars, now, dry_run, report)
        if not dry_run:
            # After the batch's commit, without its clock locks: the ticket services lock a ticket before its
            # clocks, so updating tickets while holding clocks could deadlock with them. A repair: one UPDATE each.
            for ticket_id, policy_id in sorted(missing_policies):
                note_ticket_policy(ticket_id, policy_id)
        report.clocks += len(batch)
        if progress is not None:
            progress(len(batch))
        if len(batch) < batch_size:
            return report
        after = batch[-1].pk


def _rebuild_batch(
    batch: list[Clock], calendars: _Calendars, now: datetime, dry_run: bool, report: RebuildReport
) -> set[tuple[int, int]]:
    """Repair one locked batch; returns the (ticket, policy) pairs missing from `Ticket.sla_policy_ids`, which the
    caller adds once the batch has committed."""
    ids = [clock.pk for clock in batch]
    ledgers: dict[int, list[clock_state.Segment]] = defaultdict(list)
    for clock_id, kind, start, end in (
        ClockSegment.objects.filter(clock_id__in=ids).order_by("clock_id", "start", "id").values_list(
            "clock_id", "kind", "start", "end"
        )
    ):  # fmt: skip
        ledgers[clock_id].append(clock_state.Segment(kind=kind, start=start, end=end))
    fired: dict[int, dict[tuple[str, int], datetime]] = defaultdict(dict)
    for clock_id, kind, threshold, at in ClockEvent.objects.filter(
        clock_id__in=ids,
        kind__in=(
            ClockEvent.Kind.WARNED,
            ClockEvent.Kind.BREACHED,
            ClockEvent.Kind.ESCALATED,
            ClockEvent.Kind.REOPENED,
        ),
    ).values_list("clock_id", "kind", "threshold", "at"):
        fired[clock_id].setdefault((kind, threshold or 0), at)
    outcomes = {outcome.clock_id: outcome for outcome in ClockOutcome.objects.filter(clock_id__in=ids)}
    running = (clock.target_id for clock in batch if clock.state == Clock.State.RUNNING)
    levels = escalation.escalation_percents_by_target(running)  # no query when nothing runs
    changed_clocks: list[Clock] = []
    changed_fields: set[str] = set()
    to_create: list[ClockOutcome] = []
    to_delete: list[int] = []
    to_update: list[ClockOutcome] = []
    outcome_fields: set[str] = set()
    missing_policies: set[tuple[int, int]] = set()
    for clock in batch:
        policy_id = clock.target.policy_id
        if policy_id not in clock.ticket.sla_policy_ids and (clock.ticket_id, policy_id) not in missing_policies:
            missing_policies.add((clock.ticket_id, policy_id))
            report.differences.append(
                Difference(clock.pk, "ticket.sla_policy_ids", clock.ticket.sla_policy_ids, policy_id)
            )
        values, expected = _rebuilt(
            clock, ledgers[clock.pk], fired[clock.pk], calendars, now, levels.get(clock.target_id, [])
        )
        clock_changed = False
        for name in CLOCK_FIELDS:
            if getattr(clock, name) != values[name]:
                report.differences.append(Difference(clock.pk, name, getattr(clock, name), values[name]))
                setattr(clock, name, values[name])
                changed_fields.add(name)
                clock_changed = True
        if clock_changed:
            changed_clocks.append(clock)
        outcome = outcomes.get(clock.pk)
        if expected is None and outcome is not None:
            report.differences.append(Difference(clock.pk, "outcome", outcome.pk, None))
            to_delete.append(outcome.pk)
        elif expected is not None and outcome is None:
            report.differences.append(Difference(clock.pk, "outcome", None, expected))
            to_create.append(
                ClockOutcome(
                    clock=clock,
                    team_id=clock.team_id if clock.team_id is not None else clock.ticket.team_id,
                    priority=clock.ticket.priority,
                    category_id=clock.ticket.category_id,
                    policy_id=clock.target.policy_id,
                    ticket_type=clock.ticket.type,
                    **expected,
                )
            )
        elif expected is not None and outcome is not None:
            fields = [name for name in OUTCOME_FIELDS if getattr(outcome, name) != expected[name]]
            for name in fields:
                report.differences.append(
                    Difference(clock.pk, f"outcome.{name}", getattr(outcome, name), expected[name])
                )
                setattr(outcome, name, expected[name])
            if fields:
                to_update.append(outcome)
                outcome_fields.update(fields)
    if dry_run:
        return missing_policies
    if to_delete:
        ClockOutcome.objects.filter(pk__in=to_delete).delete()
    if to_create:
        ClockOutcome.objects.bulk_create(to_create)
    if to_update:
        ClockOutcome.objects.bulk_update(to_update, sorted(outcome_fields))
    if changed_clocks:
        Clock.objects.bulk_update(changed_clocks, sorted(changed_fields))
        for clock in changed_clocks:
            _plan_timer(clock, now)
    return missing_policies
