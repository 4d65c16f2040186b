"""Explain: the pure derivation of a due instant (sla.state.derive_due), the calendar windows and holidays a stretch
used (sla.calendar.calendar_usage), and the queue's colour from stored columns (sla.state.due_state)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sla.calendar import BusinessCalendar, WeeklyRange, WindowRun, calendar_usage
from sla.state import PAUSED, RUNNING, DueStep, Segment, derive_due, due_state, figures

LONDON = ZoneInfo("Europe/London")
HOUR = 3600
NINE_TO_FIVE = ((time(9), time(17)),)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def office_hours(**kwargs: object) -> BusinessCalendar:
    ranges = tuple(WeeklyRange(day, time(9), time(17)) for day in range(5))
    return BusinessCalendar(zone=LONDON, ranges=ranges, **kwargs)  # type: ignore[arg-type]


# --- due_state: the queue's colour without the ledger ----------------------------------------------------------------

NOW = utc(2026, 1, 9, 12)


@pytest.mark.parametrize(
    ("clock_state", "due_at", "next_deadline_at", "has_warned", "expected"),
    [
        (RUNNING, NOW + timedelta(hours=1), NOW + timedelta(minutes=1), False, "ok"),
        (RUNNING, NOW + timedelta(hours=1), NOW, False, "warning"),  # the first warning's instant has come
        (RUNNING, NOW + timedelta(hours=1), NOW + timedelta(minutes=30), True, "warning"),  # 50 % fired, 75 % to come
        (RUNNING, NOW, NOW, True, "breached"),  # at the instant itself, before any timer
        (RUNNING, NOW - timedelta(seconds=1), None, True, "breached"),
        (RUNNING, NOW + timedelta(hours=1), NOW + timedelta(hours=1), False, "ok"),  # no warnings configured
        (PAUSED, None, None, True, "paused"),
    ],
)
def test_due_state_from_the_stored_columns(clock_state, due_at, next_deadline_at, has_warned, expected) -> None:  # type: ignore[no-untyped-def]
    assert (
        due_state(
            clock_state=clock_state, due_at=due_at, next_deadline_at=next_deadline_at, has_warned=has_warned, now=NOW
        )
        == expected
    )


# --- derive_due ------------------------------------------------------------------------------------------------------


def test_derivation_lays_the_target_across_friday_afternoon_and_monday_morning() -> None:
    calendar = office_hours()
    ledger = [Segment(RUNNING, utc(2026, 1, 9, 15))]  # Friday 15:00 GMT

    derivation = derive_due(ledger, calendar, target_seconds=4 * HOUR, now=utc(2026, 1, 9, 16))

    assert derivation.anchor == utc(2026, 1, 9, 15)
    assert (derivation.elapsed, derivation.paused, derivation.elapsed_before, derivation.remaining) == (
        HOUR,
        0,
        0,
        4 * HOUR,
    )
    assert derivation.steps == (
        DueStep(utc(2026, 1, 9, 15), utc(2026, 1, 9, 17), 2 * HOUR),
        DueStep(utc(2026, 1, 12, 9), utc(2026, 1, 12, 11), 2 * HOUR),
    )
    assert derivation.due_at == utc(2026, 1, 12, 11)
    assert (derivation.more_steps, derivation.more_seconds) == (0, 0)


def test_derivation_after_a_pause_starts_from_the_current_run() -> None:
    calendar = office_hours()
    ledger = [
        Segment(RUNNING, utc(2026, 1, 9, 15), utc(2026, 1, 9, 16)),
        Segment(PAUSED, utc(2026, 1, 9, 16), utc(2026, 1, 12, 10)),
        Segment(RUNNING, utc(2026, 1, 12, 10)),
    ]

    derivation = derive_due(ledger, calendar, target_seconds=4 * HOUR, now=utc(2026, 1, 12, 10, 30))

    # Paused: Friday 16–17 and Monday 9–10 are business hours; the weekend is not.
    assert (derivation.elapsed, derivation.paused, derivation.elapsed_before, derivation.remaining) == (
        HOUR + 1800,
        2 * HOUR,
        HOUR,
        3 * HOUR,
    )
    assert derivation.anchor == utc(2026, 1, 12, 10)
    assert derivation.steps == (DueStep(utc(2026, 1, 12, 10), utc(2026, 1, 12, 13), 3 * HOUR),)
    assert derivation.due_at == utc(2026, 1, 12, 13)


def test_a_paused_clock_has_no_due_instant_and_keeps_its_remaining_time() -> None:
    ledger = [
        Segment(RUNNING, utc(2026, 1, 9, 15), utc(2026, 1, 9, 16)),
        Segment(PAUSED, utc(2026, 1, 9, 16)),
    ]

    derivation = derive_due(ledger, office_hours(), target_seconds=4 * HOUR, now=utc(2026, 1, 12, 10))

    assert (derivation.anchor, derivation.due_at, derivation.steps) == (None, None, ())
    assert (derivation.elapsed, derivation.elapsed_before, derivation.remaining, derivation.paused) == (
        HOUR,
        HOUR,
        3 * HOUR,
        2 * HOUR,
    )


def test_a_target_reached_in_a_closed_segment_is_derived_from_that_segment() -> None:
    calendar = BusinessCalendar.always_open()
    ledger = [
        Segment(RUNNING, utc(2026, 1, 9, 10), utc(2026, 1, 9, 11)),
        Segment(PAUSED, utc(2026, 1, 9, 11), utc(2026, 1, 9, 12)),
        Segment(RUNNING, utc(2026, 1, 9, 12), utc(2026, 1, 9, 15)),  # resolved at 15:00, two hours late
    ]

    derivation = derive_due(ledger, calendar, target_seconds=2 * HOUR, now=utc(2026, 1, 9, 15))

    assert derivation.anchor == utc(2026, 1, 9, 12)
    assert (derivation.elapsed_before, derivation.remaining) == (HOUR, HOUR)
    assert derivation.steps == (DueStep(utc(2026, 1, 9, 12), utc(2026, 1, 9, 13), HOUR),)
    assert derivation.due_at == utc(2026, 1, 9, 13)


def test_long_layouts_are_capped_and_the_rest_is_summed() -> None:
    ledger = [Segment(RUNNING, utc(2026, 1, 5, 9))]  # Monday 09:00

    derivation = derive_due(ledger, office_hours(), target_seconds=80 * HOUR, now=utc(2026, 1, 5, 9), max_steps=3)

    assert len(derivation.steps) == 3
    assert (derivation.more_steps, derivation.more_seconds) == (7, 7 * 8 * HOUR)
    assert derivation.due_at == utc(2026, 1, 16, 17)  # ten working days later


@settings(max_examples=60, deadline=None)
@given(
    start_minutes=st.integers(min_value=0, max_value=14 * 24 * 60),
    target_minutes=st.integers(min_value=1, max_value=60 * 60),
    pause_minutes=st.integers(min_value=0, max_value=3 * 24 * 60),
    run_minutes=st.integers(min_value=0, max_value=24 * 60),
)
def test_derivation_always_matches_the_figures(start_minutes, target_minutes, pause_minutes, run_minutes) -> None:  # type: ignore[no-untyped-def]
    calendar = office_hours(holiday_dates=frozenset({date(2026, 1, 12)}))
    start = utc(2026, 1, 1) + timedelta(minutes=start_minutes)
    paused_at = start + timedelta(minutes=run_minutes)
    resumed_at = paused_at + timedelta(minutes=pause_minutes)
    ledger = [Segment(RUNNING, start, paused_at), Segment(PAUSED, paused_at, resumed_at), Segment(RUNNING, resumed_at)]
    now = resumed_at + timedelta(minutes=1)
    target = target_minutes * 60

    derivation = derive_due(ledger, calendar, target_seconds=target, now=now, max_steps=4)
    expected = figures(ledger, calendar, target_seconds=target, now=now)

    assert derivation.due_at == expected.due_at
    assert (derivation.elapsed, derivation.paused) == (expected.elapsed, expected.paused)
    assert derivation.elapsed_before + derivation.remaining == target
    assert sum(step.seconds for step in derivation.steps) + derivation.more_seconds == derivation.remaining


# --- calendar_usage --------------------------------------------------------------------------------------------------


def test_usage_collapses_identical_working_days_and_lists_holidays_that_removed_hours() -> None:
    # Easter 2026: Good Friday 3 April and Easter Monday 6 April; a holiday on Saturday 4 April removes nothing.
    holidays = frozenset({date(2026, 4, 3), date(2026, 4, 4), date(2026, 4, 6)})
    calendar = office_hours(holiday_dates=holidays)

    usage = calendar_usage(calendar, utc(2026, 3, 30, 10, 30), utc(2026, 4, 14, 11))  # Mon 11:30 BST … Tue 12:00 BST

    assert usage.runs == (
        WindowRun(date(2026, 3, 30), date(2026, 3, 30), 1, ((time(11, 30), time(17)),), 5 * HOUR + 1800),
        WindowRun(date(2026, 3, 31), date(2026, 4, 2), 3, NINE_TO_FIVE, 3 * 8 * HOUR),
        WindowRun(date(2026, 4, 7), date(2026, 4, 10), 4, NINE_TO_FIVE, 4 * 8 * HOUR),
        WindowRun(date(2026, 4, 13), date(2026, 4, 13), 1, NINE_TO_FIVE, 8 * HOUR),
        WindowRun(date(2026, 4, 14), date(2026, 4, 14), 1, ((time(9), time(12)),), 3 * HOUR),
    )
    assert usage.holidays == (date(2026, 4, 3), date(2026, 4, 6))
    assert (usage.more_runs, usage.more_holidays, usage.is_truncated, usage.is_24x7) == (0, 0, False, False)
    total = sum(run.seconds for run in usage.runs)
    assert total == calendar.business_seconds(utc(2026, 3, 30, 10, 30), utc(2026, 4, 14, 11))


def test_usage_caps_runs_and_holidays() -> None:
    holidays = frozenset(date(2026, 1, day) for day in (6, 13, 20, 27))  # every Tuesday in January
    calendar = office_hours(holiday_dates=holidays)

    usage = calendar_usage(calendar, utc(2026, 1, 5), utc(2026, 2, 2), max_runs=2, max_holidays=1)

    assert [(run.first_day, run.days) for run in usage.runs] == [(date(2026, 1, 5), 1), (date(2026, 1, 7), 3)]
    assert usage.more_runs == 6  # Mon and Wed–Fri in each of the three later weeks; the stretch ends at 2 Feb 00:00
    assert usage.more_seconds == 3 * 4 * 8 * HOUR
    assert (usage.holidays, usage.more_holidays) == ((date(2026, 1, 6),), 3)


def test_usage_of_a_24x7_calendar_or_an_empty_stretch_lists_nothing() -> None:
    always = calendar_usage(BusinessCalendar.always_open(), utc(2026, 1, 1), utc(2026, 2, 1))
    empty = calendar_usage(office_hours(), utc(2026, 1, 10), utc(2026, 1, 11))  # a Saturday

    assert (always.is_24x7, always.runs) == (True, ())
    assert (empty.is_24x7, empty.runs, empty.holidays) == (False, (), ())


def test_holiday_names_come_from_the_calendar_then_the_country_then_a_default() -> None:
    from sla.models import Calendar
    from sla.selectors import _holiday_names

    days = [date(2026, 12, 24), date(2026, 12, 25), date(2027, 1, 1), date(2027, 1, 4)]
    explicit = {date(2026, 12, 24): "Office closed", date(2027, 1, 4): ""}
    english = Calendar(name="London", time_zone="Europe/London", holiday_country="GB", holiday_subdivision="ENG")
    assert _holiday_names(english, days, explicit) == (
        (date(2026, 12, 24), "Office closed"),
        (date(2026, 12, 25), "Christmas Day"),
        (date(2027, 1, 1), "New Year's Day"),  # another year of the package, built once for it
        (date(2027, 1, 4), "Holiday"),  # the calendar's own holiday without a name
    )
    without_country = Calendar(name="Plain", time_zone="UTC")
    assert _holiday_names(without_country, days[1:2], {}) == ((date(2026, 12, 25), "Holiday"),)
