"""Property tests of `sla.calendar` against a brute-force per-minute oracle.

The oracle knows nothing of `fold` or transitions: it lists every UTC minute of a week around a DST day with the
local wall-clock reading, and maps a boundary wall time to the first minute whose reading is at or past it (the
documented rule). Ranges, holidays and DST transitions all sit on minute boundaries, so a minute is either wholly
working or not, and business seconds between arbitrary second-precision instants follow exactly.
"""

import bisect
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla.calendar import SEARCH_HORIZON_DAYS, BusinessCalendar, NoWorkingTime, WeeklyRange

# (zone, a local date worth testing around): spring and autumn DST days, Lord Howe's 30-minute shifts, a year end.
SCENARIOS = [
    ("Europe/London", date(2026, 3, 29)),
    ("Europe/London", date(2026, 10, 25)),
    ("America/New_York", date(2026, 3, 8)),
    ("America/New_York", date(2026, 11, 1)),
    ("Australia/Lord_Howe", date(2026, 4, 5)),
    ("Australia/Lord_Howe", date(2026, 10, 4)),
    ("Europe/London", date(2026, 12, 31)),
    ("America/New_York", date(2025, 12, 31)),
]
# Minutes after local midnight around which the scenarios' clocks jump (00:00 to 03:00, every quarter hour).
NEAR_TRANSITIONS = list(range(0, 181, 15))
WINDOW_DAYS_BEFORE = 3
WINDOW_DAYS_AFTER = 4

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@cache
def wall_clock(zone_name: str, anchor: date) -> tuple[datetime, list[datetime], list[datetime]]:
    """First UTC minute of the window, each minute's local wall reading, and the running maximum of the readings."""
    zone = ZoneInfo(zone_name)
    first = datetime.combine(anchor - timedelta(days=WINDOW_DAYS_BEFORE), time(), tzinfo=UTC)
    minutes = (WINDOW_DAYS_BEFORE + WINDOW_DAYS_AFTER) * 1440
    readings = [(first + timedelta(minutes=i)).astimezone(zone).replace(tzinfo=None) for i in range(minutes)]
    running, highest = [], readings[0]
    for reading in readings:
        highest = max(highest, reading)
        running.append(highest)
    return first, readings, running


def oracle_working_minutes(calendar: BusinessCalendar, zone_name: str, anchor: date) -> bytearray:
    first, _readings, running = wall_clock(zone_name, anchor)
    working = bytearray(len(running))

    def first_minute_reading(local: datetime) -> int:
        return bisect.bisect_left(running, local)

    day = anchor - timedelta(days=WINDOW_DAYS_BEFORE + 1)
    while day <= anchor + timedelta(days=WINDOW_DAYS_AFTER):
        if day not in calendar.holiday_dates:
            for working_range in calendar.ranges:
                if working_range.weekday != day.weekday():
                    continue
                local_start = datetime.combine(day, working_range.start)
                end_day = day if working_range.end > working_range.start else day + timedelta(days=1)
                local_end = datetime.combine(end_day, working_range.end)
                for index in range(first_minute_reading(local_start), first_minute_reading(local_end)):
                    working[index] = 1
        day += timedelta(days=1)
    return working


def oracle_seconds(calendar: BusinessCalendar, zone_name: str, anchor: date, start: datetime, end: datetime) -> int:
    first, _readings, _running = wall_clock(zone_name, anchor)
    working = oracle_working_minutes(calendar, zone_name, anchor)
    start_second = int((start - first).total_seconds())
    end_second = int((end - first).total_seconds())
    total = 0
    for minute in range(start_second // 60, -(-end_second // 60)):
        if working[minute]:
            total += max(0, min(end_second, minute * 60 + 60) - max(start_second, minute * 60))
    return total


@st.composite
def calendars(draw: st.DrawFn, *, allow_empty: bool = False) -> tuple[BusinessCalendar, str, date]:
    zone_name, anchor = draw(st.sampled_from(SCENARIOS))
    # Quarter-hour starts hit the transition hours (01:00, 01:30, 02:00, 02:30 …) often; any length up to a day.
    ranges = draw(
        st.lists(
            st.builds(
                lambda weekday, start, length: WeeklyRange(
                    weekday,
                    time(start // 60, start % 60),
                    time(((start + length) % 1440) // 60, (start + length) % 60),
                ),
                st.one_of(st.just(anchor.weekday()), st.integers(0, 6)),
                st.one_of(st.sampled_from(NEAR_TRANSITIONS), st.integers(0, 95).map(lambda quarter: quarter * 15)),
                st.one_of(st.sampled_from([15, 30, 45, 60, 90]), st.integers(1, 1440)),
            ),
            min_size=0 if allow_empty else 1,
            max_size=5,
        )
    )
    holidays = draw(st.frozensets(st.integers(-2, 3).map(lambda offset: anchor + timedelta(days=offset)), max_size=2))
    return BusinessCalendar(zone=ZoneInfo(zone_name), ranges=tuple(ranges), holiday_dates=holidays), zone_name, anchor


def instants(anchor: date) -> st.SearchStrategy[datetime]:
    """Second-precision instants from two days before the anchor to three days after (inside the oracle's window)."""
    base = datetime.combine(anchor - timedelta(days=2), time(), tzinfo=UTC)
    return st.integers(0, 5 * 86_400).map(lambda offset: base + timedelta(seconds=offset))


@PROPERTY_SETTINGS
@given(data=st.data(), setup=calendars(allow_empty=True))
def test_business_seconds_equals_the_oracle(data: st.DataObject, setup: tuple[BusinessCalendar, str, date]) -> None:
    calendar, zone_name, anchor = setup
    start, end = sorted([data.draw(instants(anchor)), data.draw(instants(anchor))])
    window_start = datetime.combine(anchor - timedelta(days=2), time(), tzinfo=UTC)
    window_end = window_start + timedelta(days=5)

    assert calendar.business_seconds(start, end) == oracle_seconds(calendar, zone_name, anchor, start, end)
    assert calendar.business_seconds(window_start, window_end) == oracle_seconds(
        calendar, zone_name, anchor, window_start, window_end
    )


@PROPERTY_SETTINGS
@given(data=st.data(), setup=calendars())
def test_due_at_is_the_earliest_instant_with_that_many_seconds(
    data: st.DataObject, setup: tuple[BusinessCalendar, str, date]
) -> None:
    calendar, _zone_name, anchor = setup
    start = data.draw(instants(anchor))
    seconds = data.draw(st.integers(0, 86_400))

    try:
        due = calendar.due_at(start, seconds)
    except NoWorkingTime:  # a quarter of an hour a week does not add up to a day within the search horizon
        assert calendar.business_seconds(start, start + timedelta(days=SEARCH_HORIZON_DAYS)) < seconds
        return

    assert calendar.business_seconds(start, due) == seconds
    if seconds:
        assert calendar.business_seconds(start, due - timedelta(seconds=1)) == seconds - 1


@PROPERTY_SETTINGS
@given(data=st.data(), setup=calendars())
def test_due_at_is_monotone_in_seconds(data: st.DataObject, setup: tuple[BusinessCalendar, str, date]) -> None:
    calendar, _zone_name, anchor = setup
    start = data.draw(instants(anchor))
    smaller, larger = sorted([data.draw(st.integers(0, 36_000)), data.draw(st.integers(0, 36_000))])

    def due_or_none(seconds: int) -> datetime | None:
        try:
            return calendar.due_at(start, seconds)
        except NoWorkingTime:
            return None

    earlier, later = due_or_none(smaller), due_or_none(larger)
    if earlier is None:
        assert later is None
    elif later is not None:
        assert earlier <= later


@PROPERTY_SETTINGS
@given(data=st.data(), setup=calendars(allow_empty=True))
def test_business_seconds_is_additive(data: st.DataObject, setup: tuple[BusinessCalendar, str, date]) -> None:
    calendar, _zone_name, anchor = setup
    first, middle, last = sorted(data.draw(instants(anchor)) for _ in range(3))

    whole = calendar.business_seconds(first, last)

    assert whole == calendar.business_seconds(first, middle) + calendar.business_seconds(middle, last)


@PROPERTY_SETTINGS
@given(data=st.data(), setup=calendars(allow_empty=True))
def test_paused_time_is_subtracted_once(data: st.DataObject, setup: tuple[BusinessCalendar, str, date]) -> None:
    calendar, _zone_name, anchor = setup
    start, pause_start, pause_end, end = sorted(data.draw(instants(anchor)) for _ in range(4))
    # The same pause twice, and overlapping itself, still counts once.
    paused = [(pause_start, pause_end), (pause_start, pause_end)]

    result = calendar.business_seconds(start, end, paused)

    assert result == calendar.business_seconds(start, end) - calendar.business_seconds(pause_start, pause_end)


@PROPERTY_SETTINGS
@given(data=st.data(), setup=calendars())
def test_working_intervals_are_sorted_merged_and_clipped(
    data: st.DataObject, setup: tuple[BusinessCalendar, str, date]
) -> None:
    calendar, _zone_name, anchor = setup
    start, end = sorted([data.draw(instants(anchor)), data.draw(instants(anchor))])

    intervals = list(calendar.working_intervals(start, end))

    for (_first_start, first_end), (second_start, _second_end) in zip(intervals, intervals[1:], strict=False):
        assert first_end < second_start
    for interval_start, interval_end in intervals:
        assert start <= interval_start < interval_end <= end
        assert interval_start.tzinfo is UTC
    if intervals:
        assert calendar.next_working_instant(start) == intervals[0][0]


@pytest.mark.parametrize(("zone_name", "anchor"), SCENARIOS)
def test_oracle_agrees_on_a_whole_week_of_office_hours(zone_name: str, anchor: date) -> None:
    # given office hours and a night shift, every day of the window
    ranges = tuple(WeeklyRange(day, time(9), time(17)) for day in range(5)) + (
        WeeklyRange(5, time(22), time(6)),
        WeeklyRange(6, time(0, 30), time(3)),
    )
    calendar = BusinessCalendar(zone=ZoneInfo(zone_name), ranges=ranges, holiday_dates=frozenset({anchor}))
    start = datetime.combine(anchor - timedelta(days=2), time(), tzinfo=UTC)
    end = start + timedelta(days=5)

    assert calendar.business_seconds(start, end) == oracle_seconds(calendar, zone_name, anchor, start, end)


@pytest.mark.parametrize(("zone_name", "anchor"), SCENARIOS)
def test_oracle_agrees_for_every_boundary_near_the_transition(zone_name: str, anchor: date) -> None:
    # given ranges starting at every quarter hour from 00:00 to 03:00 of the anchor day, of several lengths
    window_start = datetime.combine(anchor - timedelta(days=2), time(), tzinfo=UTC)
    window_end = window_start + timedelta(days=5)
    for start_minute in NEAR_TRANSITIONS:
        for length in (15, 30, 45, 60, 90, 180, 1440):
            end_minute = (start_minute + length) % 1440
            working_range = WeeklyRange(
                anchor.weekday(), time(start_minute // 60, start_minute % 60), time(end_minute // 60, end_minute % 60)
            )
            calendar = BusinessCalendar(zone=ZoneInfo(zone_name), ranges=(working_range,))

            expected = oracle_seconds(calendar, zone_name, anchor, window_start, window_end)

            assert calendar.business_seconds(window_start, window_end) == expected, working_range
