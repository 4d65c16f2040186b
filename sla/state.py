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
