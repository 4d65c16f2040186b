"""Replaying a ticket's history into one clock's ledger: pure Python, no ORM (docs/sla.md "Retroactive start").

When a policy starts to match a ticket late (a category, priority or type change, a policy edit), its clocks start
retroactively: the ledger is rebuilt from the ticket's status history as if the clock had been there from `start`,
so the paused time so far is kept and a first response or resolution that already happened stops it.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sla.state import PAUSED, RUNNING, Segment

RESOLVED = "resolved"
FINAL = frozenset({"closed", "cancelled"})


@dataclass(frozen=True)
class Replayed:
    start: datetime  # the clock's start (later than asked when a restart-on-reopen target was reopened)
    segments: tuple[Segment, ...]  # time order; the last is open unless `stopped_at`
    events: tuple[tuple[str, datetime, str], ...] = field(default=())  # (paused|resumed|reopened, at, state)
    stopped_at: datetime | None = None
    stop_reason: str = ""  # resolved | first_reply | stop_state


def state_at(history: Sequence[tuple[datetime, str]], instant: datetime) -> str:
    """The ticket state at `instant` from `history` ((at, state entered), time order, starting with creation)."""
    current = history[0][1]
    for at, state in history:
        if at > instant:
            break
        current = state
    return current


def replay(
    *,
    start: datetime,
    history: Sequence[tuple[datetime, str]],
    metric: str,
    pause_states: Sequence[str],
    stop_states: Sequence[str] = (RESOLVED,),
    on_reopen: str = "continue",
    first_reply_at: datetime | None = None,
) -> Replayed:
    """The ledger one clock of `metric` would have from `start` given the ticket's `history`.

    - a state in `pause_states` pauses it, any other open state runs it;
    - first response stops at `first_reply_at` (the first public agent reply at or after `start`) or at resolved;
    - resolution (and a custom metric that `resolved` stops) stops at resolved; a later reopen continues it with
      `[resolved, reopen)` paused (`on_reopen="continue"`) or restarts it from the reopen (`"restart"`); a resolved
      interval that is never reopened stops it at the resolution;
    - a custom metric stops for good at any other of its `stop_states`.
    """
    is_custom = metric == "custom"
    stops = set(stop_states) if is_custom else {RESOLVED}
    reply = first_reply_at if metric == "first_response" and first_reply_at and first_reply_at >= start else None

    def kind_for(state: str) -> str:
        return PAUSED if state in pause_states or state == RESOLVED else RUNNING

    state = state_at(history, start)
    clock_start = start
    open_kind = kind_for(state)
    open_start = start
    closed: list[Segment] = []
    events: list[tuple[str, datetime, str]] = []
    resolved_at: datetime | None = start if state in stops and state == RESOLVED else None
    if state in stops and state != RESOLVED:
        return Replayed(start, (Segment(open_kind, start, start),), (), start, "stop_state")
    if metric == "first_response" and state == RESOLVED:
        return Replayed(start, (Segment(open_kind, start, start),), (), start, "resolved")

    def stopped(at: datetime, reason: str) -> Replayed:
        segments = (*closed, Segment(open_kind, open_start, max(at, open_start)))
        return Replayed(clock_start, segments, tuple(events), max(at, open_start), reason)

    for at, new_state in history:
        if at <= start:
            continue
        if reply is not None and reply <= at:
            return stopped(reply, "first_reply")
        if new_state in FINAL:
            break
        if new_state in stops:
            if new_state != RESOLVED:
                return stopped(at, "stop_state")
            if metric == "first_response":
                return stopped(at, "resolved")
            resolved_at = at
        elif resolved_at is not None and on_reopen == "restart" and new_state not in FINAL:
            clock_start, closed, events = at, [], []
            open_kind, open_start, resolved_at = kind_for(new_state), at, None
            continue
        reopened = False
        if resolved_at is not None and new_state not in stops:
            events.append(("reopened", at, new_state))
            resolved_at, reopened = None, True
        kind = kind_for(new_state)
        if kind != open_kind:
            closed.append(Segment(open_kind, open_start, at))
            if not reopened and new_state != RESOLVED:
                events.append(("paused" if kind == PAUSED else "resumed", at, new_state))
            open_kind, open_start = kind, at
    if reply is not None:
        return stopped(reply, "first_reply")
    if resolved_at is not None:
        # still resolved: the clock stopped at the resolution (drop the waiting segment)
        if open_start == resolved_at and closed:
            last = closed.pop()
            open_kind, open_start = last.kind, last.start
        return stopped(resolved_at, "resolved")
    return Replayed(clock_start, (*closed, Segment(open_kind, open_start)), tuple(events))
