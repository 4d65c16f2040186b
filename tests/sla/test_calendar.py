"""Worked examples of the calendar rules in `sla/calendar.py` (the properties are in test_calendar_properties.py)."""

import time as wall_time
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from sla.calendar import (
    BusinessCalendar,
    CountryHolidays,
    NoWorkingTime,
    WeeklyRange,
    format_duration,
    parse_duration,
)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
HOUR = 3600


def office_hours(zone: ZoneInfo, **kwargs: object) -> BusinessCalendar:
    ranges = tuple(WeeklyRange(day, time(9), time(17)) for day in range(5))
    return BusinessCalendar(zone=zone, ranges=ranges, **kwargs)  # type: ignore[arg-type]


def every_day(zone: ZoneInfo, start: time, end: time, **kwargs: object) -> BusinessCalendar:
    return BusinessCalendar(zone=zone, ranges=tuple(WeeklyRange(day, start, end) for day in range(7)), **kwargs)  # type: ignore[arg-type]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_office_hours_friday_afternoon_to_monday() -> None:
    calendar = office_hours(LONDON)
    # Friday 2026-01-09 16:00 GMT + 2 h → Monday 10:00
    assert calendar.due_at(utc(2026, 1, 9, 16), 2 * HOUR) == utc(2026, 1, 12, 10)
    assert calendar.business_seconds(utc(2026, 1, 9, 16), utc(2026, 1, 12, 10)) == 2 * HOUR


def test_due_at_the_end_of_a_range_is_that_end_not_the_next_morning() -> None:
    calendar = office_hours(LONDON)
    assert calendar.due_at(utc(2026, 1, 9, 9), 8 * HOUR) == utc(2026, 1, 9, 17)


def test_office_hours_are_eight_hours_on_both_dst_days_but_move_in_utc() -> None:
    calendar = every_day(LONDON, time(9), time(17))
    for day in (date(2026, 3, 29), date(2026, 10, 25)):
        ((start, end),) = calendar.day_intervals(day)
        assert end - start == timedelta(hours=8)
    assert calendar.day_intervals(date(2026, 3, 29))[0][0] == utc(2026, 3, 29, 8)  # 09:00 BST
    assert calendar.day_intervals(date(2026, 3, 28))[0][0] == utc(2026, 3, 28, 9)  # 09:00 GMT


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        (LONDON, date(2026, 3, 29), 3),  # 01:00 → 02:00 skipped
        (LONDON, date(2026, 10, 25), 5),  # 01:00–02:00 twice
        (NEW_YORK, date(2026, 3, 8), 3),
        (NEW_YORK, date(2026, 11, 1), 5),
        (LORD_HOWE, date(2026, 10, 4), 3.5),  # 02:00 → 02:30 skipped
        (LORD_HOWE, date(2026, 4, 5), 4.5),  # 01:30–02:00 twice
    ],
)
def test_a_range_over_the_transition_lasts_the_real_elapsed_time(zone: ZoneInfo, day: date, hours: float) -> None:
    calendar = every_day(zone, time(0), time(4))
    ((start, end),) = calendar.day_intervals(day)
    assert (end - start).total_seconds() == hours * HOUR


def test_a_range_inside_the_skipped_hour_is_empty_and_one_overlapping_it_starts_when_it_ends() -> None:
    calendar = BusinessCalendar(
        zone=LONDON,
        ranges=(WeeklyRange(6, time(1, 15), time(1, 45)), WeeklyRange(6, time(1, 30), time(2, 30))),
    )
    # 01:15–01:45 never happens; 01:30–02:30 is 02:00–02:30 BST = 01:00–01:30 UTC
    assert calendar.day_intervals(date(2026, 3, 29)) == ((utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 30)),)


def test_a_repeated_time_counts_its_first_occurrence_once() -> None:
    calendar = BusinessCalendar(zone=LONDON, ranges=(WeeklyRange(6, time(1), time(1, 30)),))
    # 01:00–01:30 BST only, not again at 01:00–01:30 GMT
    assert calendar.day_intervals(date(2026, 10, 25)) == ((utc(2026, 10, 25, 0), utc(2026, 10, 25, 0, 30)),)


def test_night_shift_crosses_midnight_and_a_holiday_keeps_the_part_of_the_evening_before() -> None:
    # Friday 22:00 – Saturday 06:00; Saturday ranges 22:00–06:00 too; Saturday 2026-01-10 is a holiday
    calendar = BusinessCalendar(
        zone=LONDON,
        ranges=(WeeklyRange(4, time(22), time(6)), WeeklyRange(5, time(22), time(6))),
        holiday_dates=frozenset({date(2026, 1, 10)}),
    )
    intervals = list(calendar.working_intervals(utc(2026, 1, 9), utc(2026, 1, 12)))
    assert intervals == [(utc(2026, 1, 9, 22), utc(2026, 1, 10, 6))]


def test_a_whole_day_range_and_adjacent_days_merge() -> None:
    calendar = every_day(UTC_ZONE, time(0), time(0))
    assert list(calendar.working_intervals(utc(2026, 1, 1, 5), utc(2026, 1, 4, 7))) == [
        (utc(2026, 1, 1, 5), utc(2026, 1, 4, 7))
    ]


UTC_ZONE = ZoneInfo("UTC")


def test_year_boundary() -> None:
    calendar = office_hours(NEW_YORK, holiday_dates=frozenset({date(2026, 1, 1)}))
    # Wednesday 2025-12-31 16:00 EST + 3 h: 1 h on the 31st, the 1st is a holiday, 2 h on Friday the 2nd
    start = datetime(2025, 12, 31, 16, tzinfo=NEW_YORK)
    assert calendar.due_at(start, 3 * HOUR) == datetime(2026, 1, 2, 11, tzinfo=NEW_YORK).astimezone(UTC)


def test_country_holidays_on_a_weekend_and_their_substitute_day() -> None:
    holidays = CountryHolidays("GB", "ENG")
    # 2026-12-26 (Boxing Day) is a Saturday; the substitute bank holiday is Monday the 28th
    assert holidays(date(2026, 12, 25))
    assert holidays(date(2026, 12, 28))
    assert not holidays(date(2026, 12, 29))
    calendar = office_hours(LONDON, holiday_rule=holidays)
    # Thursday 24th 16:00 + 2 h → 1 h on the 24th, then Tuesday the 29th 10:00
    assert calendar.due_at(utc(2026, 12, 24, 16), 2 * HOUR) == utc(2026, 12, 29, 10)


def test_unknown_country_or_subdivision_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="XX"):
        CountryHolidays("XX")
    with pytest.raises(ValueError, match="NOPE"):
        CountryHolidays("GB", "NOPE")


def test_24x7_is_wall_time_and_ignores_holidays() -> None:
    calendar = BusinessCalendar(zone=LONDON, is_24x7=True, holiday_dates=frozenset({date(2026, 3, 29)}))
    start = utc(2026, 3, 28, 12)
    assert calendar.due_at(start, 86_400) == utc(2026, 3, 29, 12)
    assert calendar.business_seconds(start, utc(2026, 3, 29, 12)) == 86_400
    assert calendar.next_working_instant(start) == start


def test_seconds_are_whole_instants_truncated() -> None:
    calendar = BusinessCalendar.always_open()
    start = utc(2026, 1, 1, 9).replace(microsecond=999_999)
    assert calendar.business_seconds(start, utc(2026, 1, 1, 9, 0, 1).replace(microsecond=1)) == 1
    assert calendar.due_at(start, 1) == utc(2026, 1, 1, 9, 0, 1)


def test_paused_intervals_are_subtracted() -> None:
    calendar = office_hours(LONDON)
    paused = [(utc(2026, 1, 9, 12), utc(2026, 1, 12, 10)), (utc(2026, 1, 12, 9, 30), utc(2026, 1, 12, 9, 45))]
    # Friday 09:00 → Monday 12:00 is 11 h; paused Friday 12:00–17:00 and Monday 09:00–10:00 (overlaps merged)
    assert calendar.business_seconds(utc(2026, 1, 9, 9), utc(2026, 1, 12, 12), paused) == 5 * HOUR


def test_next_working_instant() -> None:
    calendar = office_hours(LONDON)
    assert calendar.next_working_instant(utc(2026, 1, 9, 18)) == utc(2026, 1, 12, 9)
    assert calendar.next_working_instant(utc(2026, 1, 9, 10)) == utc(2026, 1, 9, 10)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.business_seconds(datetime(2026, 1, 1), utc(2026, 1, 2)),  # noqa: DTZ001
        lambda c: c.due_at(datetime(2026, 1, 1), 5),  # noqa: DTZ001
        lambda c: list(c.working_intervals(utc(2026, 1, 1), datetime(2026, 1, 2))),  # noqa: DTZ001
        lambda c: c.next_working_instant(datetime(2026, 1, 1)),  # noqa: DTZ001
        lambda c: c.business_seconds(utc(2026, 1, 2), utc(2026, 1, 1)),
        lambda c: c.due_at(utc(2026, 1, 1), -1),
    ],
)
def test_bad_input_is_a_value_error(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies per input
        call(office_hours(LONDON))


def test_no_working_time_is_reported_quickly() -> None:
    with pytest.raises(NoWorkingTime, match="no working hours"):
        BusinessCalendar(zone=LONDON).due_at(utc(2026, 1, 1), 1)
    every_day_off = office_hours(LONDON, holiday_rule=lambda day: True)
    started = wall_time.perf_counter()
    with pytest.raises(NoWorkingTime, match="1098 days"):
        every_day_off.due_at(utc(2026, 1, 1), 1)
    with pytest.raises(NoWorkingTime):
        every_day_off.next_working_instant(utc(2026, 1, 1))
    assert wall_time.perf_counter() - started < 1


def test_due_at_walks_days_not_minutes() -> None:
    calendar = office_hours(NEW_YORK)
    started = wall_time.perf_counter()
    due = calendar.due_at(utc(2026, 1, 1), 250 * 8 * HOUR)  # about a year of working days
    assert wall_time.perf_counter() - started < 0.5
    assert calendar.business_seconds(utc(2026, 1, 1), due) == 250 * 8 * HOUR


@pytest.mark.parametrize(
    ("text", "seconds"), [("8h", 28_800), ("2d", 172_800), ("90m", 5_400), ("1h 30m", 5_400), ("45", 45)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "h", "8x", "8h tomorrow", "-5m"])
def test_parse_duration_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
