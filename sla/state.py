"""Clock figures from the ledger: pure Python, no ORM (DESIGN.md §4).

A clock's ledger is its segments, `[start, end)` in UTC, each `running` or `paused`, in time order; at most the last
one is open (`end is None`, read up to `now`). With a `BusinessCalendar` they give every figure:

- `elapsed`: business seconds inside the running segments (only running time counts toward the target);
- `paused`: business seconds inside the paused segments (the amount the due instant has been pushed back);
- `remaining`: `target - elapsed`, never below zero;
- `due_at`: the instant the target is (or was) reached: walk the running segments in order until their business
  seconds add up to the target; inside the open running segment that is `calendar.due_at(segment.start, target -
  elapsed_before_it)`. When the target has not been reached and the clock is not running (the last segment is paused
  or closed), there is no due instant: `None`.

So a pause pushes the due instant back by exactly the business time it lasted, and a breach instant in the past (a
clock stopped after its target) is still exact to the second.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sla.calendar import BusinessCalendar, require_aware

RUNNING = "running"
PAUSED = "paused"


@dataclass(frozen=True)
class Segment:
    kind: str  # RUNNING or PAUSED
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True)
class ClockFigures:
    elapsed: int
    paused: int
    remaining: int
    due_at: datetime | None

    @property
    def is_over(self) -> bool:
        return self.remaining == 0 and self.due_at is not None


def figures(
    segments: Sequence[Segment], calendar: BusinessCalendar, *, target_seconds: int, now: datetime
) -> ClockFigures:
    """Every figure of a clock with `segments` (time order) against `target_seconds`, read at `now`."""
    if target_seconds < 0:
        raise ValueError("target_seconds must not be negative")
    now = require_aware(now, "now")
    elapsed = 0
    paused = 0
    due: datetime | None = None
    for index, segment in enumerate(segments):
        if segment.end is None and index != len(segments) - 1:
            raise ValueError("only the last segment may be open")
        start = require_aware(segment.start, "segment start")
        end = now if segment.end is None else require_aware(segment.end, "segment end")
        end = max(end, start)
        seconds = calendar.business_seconds(start, end)
        if segment.kind == PAUSED:
            paused += seconds
            continue
        if segment.kind != RUNNING:
            raise ValueError(f"unknown segment kind {segment.kind!r}")
        if due is None and (segment.end is None or elapsed + seconds >= target_seconds):
            # The target is reached inside this running segment, or the segment is still running: either way the
            # due instant is where the remaining target lands from the segment's start.
            due = calendar.due_at(start, target_seconds - elapsed) if elapsed < target_seconds else start
        elapsed += seconds
    return ClockFigures(elapsed=elapsed, paused=paused, remaining=max(target_seconds - elapsed, 0), due_at=due)


# --- what the desk shows of a clock without its ledger (the queue "Due" column) ---------------------------------------


def due_state(
    *,
    clock_state: str,
    due_at: datetime | None,
    next_deadline_at: datetime | None,
    has_warned: bool,
    now: datetime,
) -> str:
    """The SLA panel's colour (`ok`, `warning`, `breached`, `paused`) of an open clock from its stored, indexed
    columns alone, so a list reads it in the same query as its rows.

    A running clock is `breached` once its due instant has passed (before any timer marks it), `warning` once its
    first warning has fired or the earliest unfired threshold (`next_deadline_at`: the first warning while none has
    fired) has passed, else `ok`. The panel reaches the same answer from the ledger."""
    if clock_state == PAUSED:
        return "paused"
    if due_at is not None and due_at <= now:
        return "breached"
    if has_warned or (next_deadline_at is not None and next_deadline_at <= now):
        return "warning"
    return "ok"


# --- Explain: how the due instant was derived ------------------------------------------------------------------------


@dataclass(frozen=True)
class DueStep:
    """One working window the remaining target is laid across: `[start, end)` in UTC, `seconds` of it used."""

    start: datetime
    end: datetime
    seconds: int


@dataclass(frozen=True)
class DueDerivation:
    """`due_at = anchor + remaining business seconds laid across the calendar's windows` (sla.state.figures).

    `anchor` is the start of the running segment in which the target is (or will be) reached, `elapsed_before` the
    business seconds of the running segments before it, `remaining` = target − elapsed_before. `steps` are the first
    windows used (at most `max_steps`); `more_steps`/`more_seconds` count the ones left out, whose seconds still add
    up to `remaining`. No anchor (None): the target was not reached and the clock is not running (paused or stopped
    early), so there is no due instant; `remaining` is then what is left when it runs again."""

    target: int
    elapsed: int
    paused: int
    elapsed_before: int
    remaining: int
    anchor: datetime | None
    due_at: datetime | None
    steps: tuple[DueStep, ...]
    more_steps: int
    more_seconds: int


def derive_due(
    segments: Sequence[Segment],
    calendar: BusinessCalendar,
    *,
    target_seconds: int,
    now: datetime,
    max_steps: int = 6,
) -> DueDerivation:
    """The derivation of `figures(...).due_at`, step by step (same inputs, same rules, same result)."""
    result = figures(segments, calendar, target_seconds=target_seconds, now=now)
    now = require_aware(now, "now")
    elapsed_before = 0
    anchor: datetime | None = None
    for segment in segments:
        if segment.kind != RUNNING:
            continue
        start = require_aware(segment.start, "segment start")
        end = max(now if segment.end is None else require_aware(segment.end, "segment end"), start)
        seconds = calendar.business_seconds(start, end)
        if segment.end is None or elapsed_before + seconds >= target_seconds:
            anchor = start
            break
        elapsed_before += seconds
    if anchor is None or elapsed_before >= target_seconds:
        # No due instant, or the target was already reached at the start of a segment: nothing to lay out.
        remaining = max(target_seconds - elapsed_before, 0) if anchor is not None else result.remaining
        return DueDerivation(
            target=target_seconds,
            elapsed=result.elapsed,
            paused=result.paused,
            elapsed_before=elapsed_before if anchor is not None else result.elapsed,
            remaining=remaining,
            anchor=anchor,
            due_at=result.due_at,
            steps=(),
            more_steps=0,
            more_seconds=0,
        )
    remaining = target_seconds - elapsed_before
    steps: list[DueStep] = []
    more_steps = more_seconds = 0
    if result.due_at is not None:
        for window_start, window_end in calendar.working_intervals(anchor.replace(microsecond=0), result.due_at):
            seconds = int((window_end - window_start).total_seconds())
            if len(steps) < max_steps:
                steps.append(DueStep(window_start, window_end, seconds))
            else:
                more_steps += 1
                more_seconds += seconds
    return DueDerivation(
        target=target_seconds,
        elapsed=result.elapsed,
        paused=result.paused,
        elapsed_before=elapsed_before,
        remaining=remaining,
        anchor=anchor,
        due_at=result.due_at,
        steps=tuple(steps),
        more_steps=more_steps,
        more_seconds=more_seconds,
    )
