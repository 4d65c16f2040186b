"""The dashboard figures (sla/reports.py) over a known history (tests/sla/dashboard_data.py), asserted exactly."""

from datetime import UTC, date, datetime, timedelta

import pytest

from sla import reports
from sla.forms import DashboardFilterForm
from sla.reports import OutcomeFigures
from tests.sla.dashboard_data import HOUR, NOW, PERIOD, at, build_history

pytestmark = pytest.mark.django_db


def report_query(user, params=None):  # type: ignore[no-untyped-def]
    from security import permissions

    scope = permissions.sla_dashboard_team_scope(user)
    options = reports.options(scope_team_ids=scope, include_confidential=permissions.can_see_confidential(user))
    form = DashboardFilterForm({**PERIOD, **(params or {})}, user=user, options=options, now=NOW)
    assert form.is_valid(), form.errors
    return form.report_query()


@pytest.fixture
def history(desk):  # type: ignore[no-untyped-def]
    return build_history(desk)


def counts(row: OutcomeFigures) -> tuple[int, int, int, int, int]:
    return (
        row.first_response_met,
        row.first_response_finished,
        row.resolution_met,
        row.resolution_finished,
        row.breaches,
    )


def times(row: OutcomeFigures) -> tuple[float | None, ...]:
    return (
        row.first_response_business_p50,
        row.first_response_business_p90,
        row.first_response_wall_p50,
        row.first_response_wall_p90,
        row.resolution_business_p50,
        row.resolution_business_p90,
        row.resolution_wall_p50,
        row.resolution_wall_p90,
    )


def test_totals_of_the_period_for_a_manager(desk, history) -> None:  # type: ignore[no-untyped-def]
    q = report_query(desk.manager)
    assert (q.start, q.end) == (at(0, 0), at(3, 0))
    totals = reports.outcome_totals(q)
    # first response: T1 met, T2 breached, T3 met, T5 met; resolution: T1 met, T2 breached, T3 met
    assert counts(totals) == (3, 4, 2, 3, 2)
    assert (totals.first_response_compliance, totals.resolution_compliance) == (75.0, 66.7)
    # first response [600, 900, 1800, 7200] s: median (900 + 1800) / 2, p90 at rank 2.7 = 1800 + 0.7 × 5400;
    # resolution business [7200, 7200, 18000], wall [7200, 14400, 18000] (T3 paused two hours): p90 at rank 1.8
    assert times(totals) == (1350.0, 5580.0, 1350.0, 5580.0, 7200.0, 15840.0, 14400.0, 17280.0)


def test_live_figures_and_lists(desk, history) -> None:  # type: ignore[no-untyped-def]
    q = report_query(desk.manager)
    live = reports.live_figures(q)
    # T4 breached both targets (timers fired Tuesday); T5's resolution passed 75 % at 11:30; T6 is at 66 %
    assert (live.at_risk_tickets, live.breached_tickets) == (1, 1)
    rows = [(row.list, row.number, row.metric, row.breached_at, row.due_at) for row in reports.clock_lists(q)]
    t4, t5 = history.tickets["T4"].number, history.tickets["T5"].number
    assert rows == [
        # a breached clock keeps running (it still finishes at resolution); its due instant is the breach instant
        ("breached", t4, "first_response", at(1, 10), at(1, 10)),
        ("breached", t4, "resolution", at(1, 13), at(1, 13)),
        ("at_risk", t5, "resolution", None, at(2, 12.5)),
    ]


def test_a_running_clock_past_its_due_instant_is_breached_before_its_timer_fires(desk, history) -> None:  # type: ignore[no-untyped-def]
    # T6's first response is due at 12:20; at 12:21 the timer has not run yet
    from dataclasses import replace

    q = replace(report_query(desk.manager), now=at(2, 12 + 21 / 60))
    assert reports.live_figures(q).breached_tickets == 2


def test_groups_by_team_category_priority_policy_day_and_week(desk, history) -> None:  # type: ignore[no-untyped-def]
    q = report_query(desk.manager)
    by_team = {row.label: counts(row) for row in reports.outcome_figures(q, "team")}
    assert by_team == {"Desktop support": (1, 2, 1, 2, 2), "Network": (2, 2, 1, 1, 0)}
    by_category = {row.label: (row.breaches, row.finished) for row in reports.outcome_figures(q, "category")}
    assert by_category == {"Laptop": (2, 4), "VPN": (0, 3)}
    by_priority = [(row.label, counts(row)) for row in reports.outcome_figures(q, "priority")]
    assert by_priority == [("P3", (3, 4, 2, 3, 2))]
    by_policy = [(row.label, counts(row)) for row in reports.outcome_figures(q, "policy")]
    assert by_policy == [("Standard", (3, 4, 2, 3, 2))]
    by_day = [(row.key, counts(row)) for row in reports.outcome_figures(q, "day")]
    assert by_day == [(date(2026, 3, 2), (2, 3, 2, 3, 2)), (date(2026, 3, 4), (1, 1, 0, 0, 0))]
    by_week = [(row.key, counts(row)) for row in reports.outcome_figures(q, "week")]
    assert by_week == [(date(2026, 3, 2), (3, 4, 2, 3, 2))]


def test_flow_arrivals_backlog_and_satisfaction(desk, history) -> None:  # type: ignore[no-untyped-def]
    q = report_query(desk.manager)
    flow = reports.flow(q)
    assert flow.days == [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
    assert (flow.created, flow.resolved) == ([3, 1, 2], [3, 0, 0])
    # ISO weekday (1 = Monday), local hour
    assert flow.arrivals == {(1, 10): 1, (1, 11): 1, (1, 12): 1, (2, 9): 1, (3, 8): 1, (3, 11): 1}
    # open now: T4 new, 27 h old; T5 in progress 3.5 h; T6 new 40 min
    assert reports.backlog(q) == {("new", 1): 1, ("new", 0): 1, ("in_progress", 0): 1}
    csat = reports.satisfaction(q)
    assert (csat.resolved, csat.rated, csat.average, csat.response_rate) == (3, 2, 3.5, 66.7)
    assert flow.satisfaction == csat  # the page takes CSAT from the flow statement, the API from its own


def test_filters_narrow_every_figure(desk, history) -> None:  # type: ignore[no-untyped-def]
    q = report_query(desk.manager, {"team": str(desk.network.pk)})
    assert counts(reports.outcome_totals(q)) == (2, 2, 1, 1, 0)
    assert reports.live_figures(q) == reports.LiveFigures(at_risk_tickets=1, breached_tickets=0)
    assert reports.satisfaction(q) == reports.flow(q).satisfaction == reports.Satisfaction(1, 1, 2.0)
    q = report_query(desk.manager, {"category": str(desk.laptop.pk), "type": "incident", "priority": "3"})
    assert counts(reports.outcome_totals(q)) == (1, 2, 1, 2, 2)
    assert reports.flow(q).created == [2, 1, 1]
    q = report_query(desk.manager, {"type": "request"})
    assert counts(reports.outcome_totals(q)) == (0, 0, 0, 0, 0)
    assert reports.outcome_totals(q).first_response_compliance is None
    assert reports.flow(q).created == [0, 0, 0]
    q = report_query(desk.manager, {"policy": str(history.policy.pk)})
    assert counts(reports.outcome_totals(q)) == (3, 4, 2, 3, 2)
    assert reports.satisfaction(q).resolved == reports.flow(q).satisfaction.resolved == 3
    assert reports.flow(q).created == [3, 1, 2]  # every ticket has a clock of the one policy
    # a policy without clocks: no ticket has one (Ticket.sla_policy_ids, written when a clock opens)
    from sla.models import SlaPolicy

    idle = SlaPolicy.objects.create(name="Idle", calendar=history.policy.calendar, is_active=False)
    q = report_query(desk.manager, {"policy": str(idle.pk)})
    assert (reports.flow(q).created, reports.backlog(q), reports.satisfaction(q).resolved) == ([0, 0, 0], {}, 0)
    q = report_query(desk.manager, {"range": "today"})
    assert (q.first_day, q.last_day) == (date(2026, 3, 4), date(2026, 3, 4))
    assert counts(reports.outcome_totals(q)) == (1, 1, 0, 0, 0)


def test_a_lead_sees_only_their_teams(desk, history) -> None:  # type: ignore[no-untyped-def]
    q = report_query(desk.lead)
    assert q.scope_team_ids == frozenset({desk.desktop.pk})
    assert counts(reports.outcome_totals(q)) == (1, 2, 1, 2, 2)
    assert [row.label for row in reports.outcome_figures(q, "team")] == ["Desktop support"]
    assert reports.live_figures(q) == reports.LiveFigures(at_risk_tickets=0, breached_tickets=1)
    assert {row.number for row in reports.clock_lists(q)} == {history.tickets["T4"].number}
    assert reports.satisfaction(q) == reports.flow(q).satisfaction == reports.Satisfaction(2, 1, 5.0)
    assert reports.flow(q).created == [2, 1, 1]
    assert len(list(reports.outcome_rows(q))) == 4


def test_days_are_cut_in_the_viewers_zone(desk, history) -> None:  # type: ignore[no-untyped-def]
    # Tokyo is UTC+9: the period runs from Sunday 15:00 UTC to Wednesday 15:00 UTC; T2 and T3 were resolved Monday
    # 16:00 UTC, which is Tuesday 01:00 there
    desk.manager.time_zone = "Asia/Tokyo"
    desk.manager.save(update_fields=["time_zone"])
    q = report_query(desk.manager)
    assert (q.start, q.end) == (at(-1, 15), at(2, 15))
    flow = reports.flow(q)
    assert (flow.created, flow.resolved) == ([3, 1, 2], [1, 2, 0])
    assert flow.arrivals == {(1, 19): 1, (1, 20): 1, (1, 21): 1, (2, 18): 1, (3, 17): 1, (3, 20): 1}
    # T1's resolution (Monday 21:00 there) and every Monday-UTC outcome stay on Monday, T5's reply is Wednesday
    by_day = [(row.key, row.finished) for row in reports.outcome_figures(q, "day")]
    assert by_day == [(date(2026, 3, 2), 4), (date(2026, 3, 3), 2), (date(2026, 3, 4), 1)]


def test_csv_rows_are_every_outcome_of_the_view(desk, history) -> None:  # type: ignore[no-untyped-def]
    q = report_query(desk.manager)
    rows = list(reports.outcome_rows(q, chunk_rows=2))
    assert len(rows) == 7
    t1 = history.tickets["T1"].number
    assert rows[0] == (
        rows[0][0],
        t1,
        "incident",
        "first_response",
        "Standard",
        "Desktop support",
        "Laptop",
        3,
        True,
        1800,
        3600,
        1800,
        "2026-03-02T10:00:00",
        "2026-03-02T10:30:00",
    )


def test_one_statement_for_several_groupings_gives_the_same_figures_as_one_each(desk, history) -> None:  # type: ignore[no-untyped-def]
    q = report_query(desk.manager)
    together = reports.outcome_figure_sets(q, ["day", "team", "category", "priority", "policy"])
    assert together[None] == reports.outcome_figures(q)
    for group_by in ("day", "team", "category", "priority", "policy"):
        alone = reports.outcome_figures(q, group_by)
        assert alone == together[group_by]
        assert sum(row.finished for row in alone) == together[None][0].finished == 7


def test_the_page_counts_groups_without_their_percentiles_and_the_same_counts(desk, history) -> None:  # type: ignore[no-untyped-def]
    q = report_query(desk.manager)
    full = reports.outcome_figure_sets(q, ["day", "team", "category"])
    page = reports.outcome_figure_sets(q, ["day", "team", "category"], group_percentiles=False)
    assert page[None] == full[None]  # the whole view: counts and percentiles
    for group_by in ("day", "team", "category"):
        assert [(row.key, row.label, counts(row)) for row in page[group_by]] == [
            (row.key, row.label, counts(row)) for row in full[group_by]
        ]
        assert all(set(times(row)) == {None} for row in page[group_by])


@pytest.mark.parametrize(
    "zone", ["Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns", "Australia/Lord_Howe", "Pacific/Chatham"]
)
def test_quarter_hour_counting_matches_row_by_row_conversion_in_odd_zones(  # type: ignore[no-untyped-def]
    desk, history, monkeypatch, zone
) -> None:
    desk.manager.time_zone = zone
    desk.manager.save(update_fields=["time_zone"])
    q = report_query(desk.manager)
    assert reports._quarter_hours_align(q)
    fast_flow = reports.flow(q)
    fast = reports.outcome_figure_sets(q, ["day", "week", "team"], group_percentiles=False)
    monkeypatch.setattr(reports, "_quarter_hours_align", lambda q: False)
    assert reports.flow(q) == fast_flow
    assert reports.outcome_figure_sets(q, ["day", "week", "team"], group_percentiles=False) == fast
    assert sum(fast_flow.arrivals.values()) == sum(fast_flow.created)


def _period(zone: str, first: date, last: date) -> reports.ReportQuery:
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from sla.forms import local_midnight

    tz = ZoneInfo(zone)
    return reports.ReportQuery(
        start=local_midnight(first, tz),
        end=local_midnight(last + timedelta(days=1), tz),
        first_day=first,
        last_day=last,
        zone=tz,
        now=datetime(2026, 11, 24, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("zone", "first", "last", "aligned"),
    [
        ("Europe/London", date(2025, 1, 1), date(2026, 12, 31), True),  # two DST changes a year, on the hour
        ("Asia/Kolkata", date(2025, 1, 1), date(2026, 12, 31), True),  # +5:30
        ("Australia/Lord_Howe", date(2025, 1, 1), date(2026, 12, 31), True),  # a half-hour DST shift
        ("Pacific/Chatham", date(2025, 1, 1), date(2026, 12, 31), True),  # +12:45 / +13:45
        ("America/St_Johns", date(2012, 1, 1), date(2012, 12, 31), True),  # changes at 02:00 local since 2011
        ("America/St_Johns", date(2010, 11, 1), date(2010, 11, 30), False),  # changed at 00:01 local until 2011
        ("America/Moncton", date(2005, 4, 1), date(2005, 4, 30), False),  # the same until 2006
        ("Antarctica/Casey", date(2022, 9, 1), date(2022, 10, 31), False),  # changed at 00:01 local in 2022
    ],
)
def test_quarter_hour_counting_is_used_only_where_it_is_exact(zone, first, last, aligned) -> None:  # type: ignore[no-untyped-def]
    """Where `_quarter_hours_align` says yes, Postgres itself puts every instant of the period (every 7 minutes,
    across the offset changes) in the same local day and hour whether converted alone or by its UTC quarter hour;
    where it says no, some instant would land elsewhere. Checks the guard against Postgres's own time zone data."""
    from django.db import connection

    q = _period(zone, first, last)
    assert reports._quarter_hours_align(q) is aligned
    binned = reports.QUARTER_HOUR.format(column="x")  # the module's constant fragment
    series = "generate_series(%s::timestamptz, %s::timestamptz - interval '1 second', interval '7 minutes') AS x"
    apart = f"date_trunc('hour', x AT TIME ZONE %s) <> date_trunc('hour', {binned} AT TIME ZONE %s)"
    statement = f"SELECT count(*) FROM {series} WHERE {apart}"  # noqa: S608 - module constants, values bound
    with connection.cursor() as cursor:
        cursor.execute(statement, [q.start, q.end, zone, zone])
        misplaced = cursor.fetchone()[0]
    assert (misplaced == 0) is aligned


def test_lists_are_the_first_rows_of_every_open_clock_in_order_whatever_the_limit(desk, history) -> None:  # type: ignore[no-untyped-def]
    """The lists read ordered indexes in three parts (breached; not yet due; without a due instant) and merge them:
    against the definition over every open clock, for each limit."""
    from sla.models import Clock, ClockEvent

    t5, t6 = history.tickets["T5"], history.tickets["T6"]
    target = history.policy.targets.get(metric="resolution")
    # OLA-like extra clocks on the open tickets, one per team (the open-clock constraint is per ticket, target, team)
    shapes = [
        ("running", at(2, 14), None, True),  # due later than T5's resolution, warned: at risk
        ("running", at(2, 12.25), None, True),  # due sooner: first at risk
        ("running", at(2, 11), None, False),  # past due, timer not fired yet: breached
        ("running", None, None, True),  # running without a due instant (a calendar that never gets there): last
        ("paused", None, None, True),  # paused (no due instant while paused): last, by id
        ("paused", None, at(1, 20), False),  # breached, then paused: still breached
    ]
    for index, (state, due_at, breached_at, warned) in enumerate(shapes):
        clock = Clock.objects.create(
            ticket=t5 if index % 2 else t6, target=target, team=[desk.desktop, desk.network, desk.security][index % 3],
            state=state, started_at=at(2, 8), target_seconds=4 * HOUR, due_at=due_at, breached_at=breached_at,
        )  # fmt: skip
        if warned:
            ClockEvent.objects.create(clock=clock, kind="warned", at=at(2, 11), threshold=75)
    q = report_query(desk.manager)
    open_clocks = list(Clock.objects.filter(state__in=("running", "paused")).select_related("ticket"))

    def is_breached(clock: Clock) -> bool:
        return clock.breached_at is not None or (
            clock.state == "running" and clock.due_at is not None and clock.due_at <= NOW
        )

    warned = set(ClockEvent.objects.filter(kind="warned", threshold__gte=75).values_list("clock_id", flat=True))
    breached = sorted(
        (clock for clock in open_clocks if is_breached(clock)), key=lambda c: (c.breached_at or c.due_at, c.pk)
    )
    at_risk = sorted(
        (clock for clock in open_clocks if not is_breached(clock) and clock.pk in warned),
        key=lambda c: (c.due_at is None, c.due_at or NOW, c.pk),
    )
    assert (len(breached), len(at_risk)) == (4, 5)
    for limit in range(1, 7):
        rows = [(row.list, row.number, row.due_at, row.breached_at) for row in reports.clock_lists(q, limit=limit)]
        assert rows == [
            *(("breached", c.ticket.number, c.due_at, c.breached_at) for c in breached[:limit]),
            *(("at_risk", c.ticket.number, c.due_at, c.breached_at) for c in at_risk[:limit]),
        ]


@pytest.mark.parametrize(
    ("zone", "linked", "summer_offset"),
    [
        ("CET", "Europe/Brussels", 2),
        ("MET", "Europe/Brussels", 2),
        ("EET", "Europe/Athens", 3),
        ("WET", "Europe/Lisbon", 1),
    ],
)
def test_zones_postgres_reads_as_abbreviations_are_cut_in_the_zone_they_link_to(  # type: ignore[no-untyped-def]
    desk, zone, linked, summer_offset
) -> None:
    """Postgres reads "CET" as the abbreviation (+1 all year) while Python's zone has summer time: a ticket raised at
    00:30 local time on a summer Saturday would be counted by Postgres on Friday, outside the Saturday the period
    was cut for. Such viewers' reports are cut in the zone the name links to, which both read alike."""
    import time_machine

    from security import permissions

    saturday = date(2026, 7, 11)
    raised = datetime(2026, 7, 11, 0, 30, tzinfo=UTC) - timedelta(hours=summer_offset)
    with time_machine.travel(raised, tick=False):
        desk.ticket(title="Raised after local midnight")
    desk.manager.time_zone = zone
    desk.manager.save(update_fields=["time_zone"])
    options = reports.options(
        scope_team_ids=permissions.sla_dashboard_team_scope(desk.manager),
        include_confidential=permissions.can_see_confidential(desk.manager),
    )
    period = {"range": "custom", "from": saturday.isoformat(), "to": saturday.isoformat()}
    form = DashboardFilterForm(period, user=desk.manager, options=options, now=datetime(2026, 7, 12, tzinfo=UTC))
    assert form.is_valid(), form.errors
    q = form.report_query()
    assert q.zone_name == linked
    assert q.start == datetime(2026, 7, 11, tzinfo=UTC) - timedelta(hours=summer_offset)
    flow = reports.flow(q)
    assert flow.days == [saturday]
    assert flow.created == [1]
    assert flow.arrivals == {(saturday.isoweekday(), 0): 1}


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("America/Santiago", date(2026, 9, 6)),  # clocks go from Saturday 24:00 to Sunday 01:00
        ("America/Havana", date(2026, 3, 8)),
        ("Asia/Beirut", date(2026, 3, 29)),
        ("America/Sao_Paulo", date(2018, 11, 4)),
    ],
)
def test_a_day_whose_midnight_is_skipped_is_cut_where_postgres_starts_and_ends_it(db, zone, day) -> None:  # type: ignore[no-untyped-def]
    """The period starts at `local_midnight`, which for a midnight that does not exist is the instant the clocks
    jump (Python's fold=0), and Postgres (which counts rows into local days, and fills the rollups) puts that very
    instant first in the day, and the one before it in the day before."""
    from django.db import connection

    q = _period(zone, day, day)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ((%s::timestamptz - interval '1 microsecond') AT TIME ZONE %s)::date,"
            " (%s::timestamptz AT TIME ZONE %s)::date,"
            " ((%s::timestamptz - interval '1 microsecond') AT TIME ZONE %s)::date,"
            " (%s::timestamptz AT TIME ZONE %s)::date",
            [q.start, zone, q.start, zone, q.end, zone, q.end, zone],
        )
        assert cursor.fetchone() == (day - timedelta(days=1), day, day, day + timedelta(days=1))
    assert q.end.astimezone(UTC) - q.start.astimezone(UTC) == timedelta(hours=23)
