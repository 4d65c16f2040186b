"""Business-time maths: pure Python, no ORM, no I/O (DESIGN.md §4).

A `BusinessCalendar` turns weekly LOCAL wall-clock ranges into UTC intervals, one local date at a time, and answers:

- `working_intervals(start, end)`: the working time inside `[start, end)` as sorted, merged, clipped UTC intervals;
- `business_seconds(start, end, paused=())`: whole business seconds in `[start, end)` minus the paused intervals;
- `due_at(start, seconds)`: the earliest instant at which `seconds` business seconds have elapsed after `start`;
- `next_working_instant(at)`: the first working instant at or after `at`.

Every input must be an aware datetime (naive ones raise `ValueError`); every output is in UTC.

Rules (each one tested in tests/sla/test_calendar_*.py):

- **A range belongs to the local date it starts on.** `end <= start` means the range ends on the next local date
  (`22:00–06:00` is a night shift, `00:00–00:00` a whole day). A holiday removes the ranges that *start* on that date;
  a range starting the evening before a holiday keeps its hours after midnight.
- **Wall-clock boundaries, real elapsed time.** A boundary wall time `t` maps to *the first instant at which the
  local clock reads `t` or later*. So an ambiguous time (the repeated hour when clocks fall back) maps to its first
  occurrence (`fold=0`), and a time that does not exist (the hour skipped when clocks spring forward) maps to the
  instant the gap ends. A range spanning a transition therefore lasts one real hour less (spring) or more (autumn):
  09:00–17:00 is 8 h every day, 00:00–04:00 is 3 h on the London spring day and 5 h on the autumn day, and a range
  inside the skipped hour is empty. Lord Howe's 30-minute shift works the same way.
- **Whole seconds.** `business_seconds` truncates every instant (start, end, pause boundaries) to the whole second
  before measuring, so the result is an exact `int`; `due_at` truncates `start` the same way and returns a
  whole-second instant, so `business_seconds(start, due_at(start, s)) == s`.
- **24×7.** When `is_24x7` is set, ranges and holidays are ignored and business time is wall time.
- **Bounded search.** `due_at` and `next_working_instant` walk day by day (O(days), never O(minutes)) and give up
  after `SEARCH_HORIZON_DAYS`, raising `NoWorkingTime`; a calendar without any range raises it at once.
"""

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holidays_package

Interval = tuple[datetime, datetime]

SEARCH_HORIZON_DAYS = 3 * 366
_DAY_CACHE_LIMIT = 4096
ONE_SECOND = timedelta(seconds=1)


class NoWorkingTime(ValueError):
    """The calendar has no working time at all, or none within the search horizon."""


@dataclass(frozen=True)
class WeeklyRange:
    """Working hours on one weekday (Monday = 0), in local wall-clock time; `end <= start` ends on the next day."""

    weekday: int
    start: time
    end: time

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), not {self.weekday}")
        for value in (self.start, self.end):
            if value.tzinfo is not None or value.microsecond:
                raise ValueError("range boundaries are naive wall-clock times in whole seconds")

    def local_bounds(self, day: date) -> tuple[datetime, datetime]:
        """The naive local start and end of this range when it starts on `day`."""
        start = datetime.combine(day, self.start)
        end_day = day if self.end > self.start else day + timedelta(days=1)
        return start, datetime.combine(end_day, self.end)


class CountryHolidays:
    """Public holidays of a country (and optional subdivision) from the `holidays` package, as a `date -> bool`
    callable. Each year is resolved once, on first use, and cached. Unknown codes raise `ValueError`."""

    def __init__(self, country: str, subdivision: str = "") -> None:
        self.country = country
        self.subdivision = subdivision
        try:
            holidays_package.country_holidays(country, subdiv=subdivision or None, years=())
        except NotImplementedError as exc:  # the package's way of saying "unknown country or subdivision"
            raise ValueError(str(exc)) from exc
        self._years: dict[int, frozenset[date]] = {}

    def dates(self, year: int) -> frozenset[date]:
        if year not in self._years:
            found = holidays_package.country_holidays(self.country, subdiv=self.subdivision or None, years=year)
            self._years[year] = frozenset(found.keys())
        return self._years[year]

    def __call__(self, day: date) -> bool:
        return day in self.dates(day.year)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CountryHolidays) and (self.country, self.subdivision) == (
            other.country,
            other.subdivision,
        )

    def __hash__(self) -> int:
        return hash((self.country, self.subdivision))

    def __repr__(self) -> str:
        return f"CountryHolidays({self.country!r}, {self.subdivision!r})"


def require_aware(value: datetime, name: str = "datetime") -> datetime:
    """`value` in UTC; a naive datetime raises `ValueError`."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def truncate_to_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of `intervals` (adjacent ones joined, empty ones dropped)."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


@dataclass(frozen=True)
class BusinessCalendar:
    """Working time of one calendar. Immutable and hashable; per-date intervals are cached on the instance.

    `holiday_dates` are explicit local dates; `holiday_rule` (e.g. `CountryHolidays`) answers for any other date.
    """

    zone: ZoneInfo
    ranges: tuple[WeeklyRange, ...] = ()
    holiday_dates: frozenset[date] = frozenset()
    holiday_rule: Callable[[date], bool] | None = None
    is_24x7: bool = False
    _days: dict[date, tuple[Interval, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @classmethod
    def always_open(cls, zone: ZoneInfo | None = None) -> "BusinessCalendar":
        return cls(zone=zone or ZoneInfo("UTC"), is_24x7=True)

    # --- per-date building blocks ---------------------------------------------------------------------------

    def is_holiday(self, day: date) -> bool:
        return day in self.holiday_dates or (self.holiday_rule is not None and self.holiday_rule(day))

    def boundary(self, local: datetime) -> datetime:
        """The first UTC instant at which the local clock reads `local` (naive wall time) or later."""
        first = local.replace(tzinfo=self.zone)  # fold=0: the earlier of two readings of a repeated time
        candidate = first.astimezone(UTC)
        if candidate.astimezone(self.zone).replace(tzinfo=None) == local:
            return candidate
        # `local` falls in a spring-forward gap: the clock jumps over it at the transition, which lies between the
        # readings with the post-transition offset (fold=1, earlier) and the pre-transition one (fold=0, later).
        # Transitions are on whole seconds; bisect to it (a dozen steps, only for boundaries inside a gap).
        before = local.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        after_offset = candidate.astimezone(self.zone).utcoffset()
        low, high = int(before.timestamp()), int(candidate.timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, UTC).astimezone(self.zone).utcoffset() == after_offset:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, UTC)

    def day_intervals(self, day: date) -> tuple[Interval, ...]:
        """UTC intervals of the ranges that start on local date `day` (merged, sorted; empty on a holiday)."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        if self.is_holiday(day):
            result: tuple[Interval, ...] = ()
        else:
            weekday = day.weekday()
            result = tuple(
                merge_intervals(
                    (self.boundary(local_start), self.boundary(local_end))
                    for working_range in self.ranges
                    if working_range.weekday == weekday
                    for local_start, local_end in [working_range.local_bounds(day)]
                )
            )
        if len(self._days) >= _DAY_CACHE_LIMIT:
            self._days.clear()
        self._days[day] = result
        return result

    def _local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    def _intervals_from(self, start: datetime, *, days: int) -> Iterator[Interval]:
        """Working intervals (merged, sorted) that end after `start`, walking at most `days` local dates."""
        # A range starting the day before may run past midnight (and ranges are at most 24 wall-clock hours).
        day = self._local_date(start) - timedelta(days=1)
        pending: Interval | None = None
        for _ in range(days + 1):
            for interval_start, interval_end in self.day_intervals(day):
                if interval_end <= start:
                    continue
                if pending is not None and interval_start <= pending[1]:
                    pending = (pending[0], max(pending[1], interval_end))
                    continue
                if pending is not None:
                    yield pending
                pending = (max(interval_start, start), interval_end)
            day += timedelta(days=1)
        if pending is not None:
            yield pending

    def _check_has_ranges(self) -> None:
        if not self.is_24x7 and not self.ranges:
            raise NoWorkingTime("the calendar has no working hours at all")

    # --- public queries -------------------------------------------------------------------------------------

    def working_intervals(self, start: datetime, end: datetime) -> Iterator[Interval]:
        """The working time within `[start, end)` as sorted, merged UTC intervals clipped to the bounds."""
        start, end = require_aware(start, "start"), require_aware(end, "end")
        if end <= start:
            return
        if self.is_24x7:
            yield (start, end)
            return
        days = (self._local_date(end) - self._local_date(start)).days + 1
        for interval_start, interval_end in self._intervals_from(start, days=days):
            if interval_start >= end:
                return
            yield (interval_start, min(interval_end, end))

    def business_seconds(self, start: datetime, end: datetime, paused: Sequence[Interval] = ()) -> int:
        """Whole business seconds in `[start, end)` outside the `paused` intervals (any order, may overlap).

        Every instant is truncated to the whole second first. `end` before `start` raises `ValueError`.
        """
        start = truncate_to_second(require_aware(start, "start"))
        end = truncate_to_second(require_aware(end, "end"))
        if end < start:
            raise ValueError("end must not be before start")
        pauses = merge_intervals(
            (
                max(truncate_to_second(require_aware(pause_start, "paused start")), start),
                min(truncate_to_second(require_aware(pause_end, "paused end")), end),
            )
            for pause_start, pause_end in paused
        )
        total = timedelta()
        index = 0
        for work_start, work_end in self.working_intervals(start, end):
            total += work_end - work_start
            while index < len(pauses) and pauses[index][1] <= work_start:
                index += 1
            probe = index
            while probe < len(pauses) and pauses[probe][0] < work_end:
                overlap_start, overlap_end = max(work_start, pauses[probe][0]), min(work_end, pauses[probe][1])
                if overlap_end > overlap_start:
                    total -= overlap_end - overlap_start
                probe += 1
        return int(total.total_seconds())

    def due_at(self, start: datetime, seconds: int) -> datetime:
        """The earliest instant at which `seconds` business seconds have elapsed after `start` (truncated to the
        whole second). `seconds == 0` gives `start` itself. Raises `NoWorkingTime` past `SEARCH_HORIZON_DAYS`."""
        start = truncate_to_second(require_aware(start, "start"))
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise ValueError(f"seconds must be a non-negative integer, not {seconds!r}")
        if seconds == 0:
            return start
        if self.is_24x7:
            return start + timedelta(seconds=seconds)
        self._check_has_ranges()
        remaining = timedelta(seconds=seconds)
        for work_start, work_end in self._intervals_from(start, days=SEARCH_HORIZON_DAYS):
            length = work_end - work_start
            if remaining <= length:
                return work_start + remaining
            remaining -= length
        raise NoWorkingTime(f"{seconds} business seconds do not fit within {SEARCH_HORIZON_DAYS} days of {start}")

    def next_working_instant(self, at: datetime) -> datetime:
        """`at` itself when it is working time, else the start of the next working interval (UTC)."""
        at = require_aware(at, "at")
        if self.is_24x7:
            return at
        self._check_has_ranges()
        for work_start, _work_end in self._intervals_from(at, days=SEARCH_HORIZON_DAYS):
            return work_start
        raise NoWorkingTime(f"no working time within {SEARCH_HORIZON_DAYS} days of {at}")


# --- durations as people type them ------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+)\s*([dhms])", re.IGNORECASE)
_DURATION_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration(text: str) -> int:
    """Seconds in a duration such as `8h`, `2d`, `90m`, `1h 30m` or a bare number of seconds.

    `d` is 24 hours of business time (as ServiceNow schedules count it), not a working day. Raises `ValueError`.
    """
    cleaned = text.strip().lower()
    if cleaned.isdigit():
        return int(cleaned)
    parts = _DURATION_PART.findall(cleaned)
    if not parts or _DURATION_PART.sub("", cleaned).strip():
        raise ValueError(f"not a duration: {text!r} (use e.g. 8h, 2d, 90m, 1h 30m)")
    return sum(int(amount) * _DURATION_UNITS[unit.lower()] for amount, unit in parts)


def format_duration(seconds: int) -> str:
    """`93784` → `1d 2h 3m 4s`; zero → `0s`."""
    parts = []
    for unit, size in _DURATION_UNITS.items():
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts) or "0s"


# --- Explain: the working windows and holidays a stretch of time used --------------------------------------------

EXPLAIN_MAX_DAYS = 400


@dataclass(frozen=True)
class WindowRun:
    """Consecutive local dates (`first_day`..`last_day`, every one of them working) whose working windows read the
    same on the local clock: `windows` as `(start, end)` wall times, `end` on the next day when it is not after
    `start`. `seconds` is their business time in total (DST days included as they really are)."""

    first_day: date
    last_day: date
    days: int
    windows: tuple[tuple[time, time], ...]
    seconds: int


@dataclass(frozen=True)
class CalendarUsage:
    """What a calendar contributed between two instants: runs of identical working days (the first `max_runs`;
    `more_runs`/`more_seconds` for the rest), and the holidays that removed working hours (the first `max_holidays`).
    `is_truncated`: the stretch was longer than `EXPLAIN_MAX_DAYS` and only its start was read."""

    is_24x7: bool
    runs: tuple[WindowRun, ...]
    more_runs: int
    more_seconds: int
    holidays: tuple[date, ...]
    more_holidays: int
    is_truncated: bool


def calendar_usage(
    calendar: BusinessCalendar, start: datetime, end: datetime, *, max_runs: int = 10, max_holidays: int = 10
) -> CalendarUsage:
    """The working windows inside `[start, end)` grouped by local date (the date each range starts on, as the
    calendar counts them), collapsed into runs, and the holidays in between that fell on a day with working hours."""
    start, end = require_aware(start, "start"), require_aware(end, "end")
    if calendar.is_24x7 or end <= start:
        return CalendarUsage(calendar.is_24x7, (), 0, 0, (), 0, False)
    first_day = calendar._local_date(start) - timedelta(days=1)
    last_day = calendar._local_date(end)
    is_truncated = (last_day - first_day).days > EXPLAIN_MAX_DAYS
    if is_truncated:
        last_day = first_day + timedelta(days=EXPLAIN_MAX_DAYS)
    weekdays_with_hours = {working_range.weekday for working_range in calendar.ranges}
    runs: list[WindowRun] = []
    holidays: list[date] = []
    day = first_day
    while day <= last_day:
        if calendar.is_holiday(day) and day.weekday() in weekdays_with_hours and day > first_day:
            holidays.append(day)
        clipped = [
            (max(window_start, start), min(window_end, end))
            for window_start, window_end in calendar.day_intervals(day)
            if window_end > start and window_start < end
        ]
        if clipped:
            walls = tuple(
                (window_start.astimezone(calendar.zone).time(), window_end.astimezone(calendar.zone).time())
                for window_start, window_end in clipped
            )
            seconds = int(sum((window_end - window_start).total_seconds() for window_start, window_end in clipped))
            previous = runs[-1] if runs else None
            if previous is not None and previous.windows == walls and previous.last_day == day - timedelta(days=1):
                runs[-1] = WindowRun(previous.first_day, day, previous.days + 1, walls, previous.seconds + seconds)
            else:
                runs.append(WindowRun(day, day, 1, walls, seconds))
        day += timedelta(days=1)
    shown = runs[:max_runs]
    rest = runs[max_runs:]
    return CalendarUsage(
        is_24x7=False,
        runs=tuple(shown),
        more_runs=len(rest),
        more_seconds=sum(run.seconds for run in rest),
        holidays=tuple(holidays[:max_holidays]),
        more_holidays=max(len(holidays) - max_holidays, 0),
        is_truncated=is_truncated,
    )
