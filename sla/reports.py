"""Aggregate reads for the SLA dashboards, the report API and the CSV export (issue 7, docs/dashboards.md).

Every figure is one aggregate SQL statement over indexed columns (`FILTER`, `percentile_cont`, `date_trunc`,
`GROUPING SETS`); nothing loops over tickets or outcomes in Python. Python only fills empty days into a series and
shapes rows for templates. The statements are built from a small set of conditions so that every figure of a view uses
exactly the same rows:

- finished-clock figures (compliance, breaches, medians, the trend, the team and category tables) read
  `ClockOutcome` rows whose `finished_at` is in the period (`_outcome_conditions`: the one place to add a condition
  such as `NOT o.superseded` for every outcome figure);
- live figures (at risk, breached now, the lists) read open `Clock` rows (running or paused) at `now`;
- ticket figures (created, resolved, backlog, arrivals, CSAT) read `Ticket` rows.

The period is `[start, end)` in UTC, built from local dates in the viewer's zone; days and weeks are cut in that zone.
"""

# Statements are assembled from constant fragments in this module; every value is a bound parameter.
# ruff: noqa: S608

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.utils import load_backend

from sla import rollups
from sla.models import HOURS
from tickets.state import OPEN_STATES, TicketState

logger = logging.getLogger(__name__)

FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"
# At risk: an open clock whose 75 % warning fired (`ClockEvent(warned, threshold >= 75)`), not yet breached.
AT_RISK_PERCENT = 75
LIST_LIMIT = 20
GROUP_BYS = ("team", "category", "priority", "policy", "day", "week")
# Backlog age buckets: (label, lower bound in days); the last is open-ended.
AGE_BUCKETS: tuple[tuple[str, int], ...] = (
    ("< 1 day", 0),
    ("1–3 days", 1),
    ("3–7 days", 3),
    ("7–30 days", 7),
    ("30+ days", 30),
)
OPEN_STATE_ORDER: tuple[str, ...] = tuple(s for s in TicketState.values if s in OPEN_STATES)
CSV_CHUNK_ROWS = 2000
# Sort memory for a report's statements (see `report_transaction`): a quarter's outcomes sort in about 20 MB.
REPORT_WORK_MEM = "64MB"
# Instants are counted per quarter hour of UTC first and the quarter hours then put into local days and hours: zone
# offsets are whole numbers of quarter hours (India +5:30, Nepal +5:45, Chatham +12:45) and change on a quarter hour,
# so a quarter hour of UTC does not straddle a local day or hour, and converting a few thousand quarter hours is far
# cheaper than converting every row. `_quarter_hours_align` checks both for the period; a zone and period that would
# not align (a few zones changed offset at 00:01 local time) is converted row by row.
QUARTER_HOUR = "date_bin('15 minutes', {column}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"


@dataclass(frozen=True)
class ReportQuery:
    """One validated view of the dashboards: the period, the zone it was cut in, and the filters.

    `scope_team_ids` None means every team (managers); a set limits every figure to those teams (leads).
    `include_confidential` False leaves out confidential tickets and the outcomes of confidential categories."""

    start: datetime
    end: datetime
    first_day: date
    last_day: date
    zone: ZoneInfo
    now: datetime
    bucket: str = "day"
    scope_team_ids: frozenset[int] | None = None
    include_confidential: bool = False
    team_id: int | None = None
    category_id: int | None = None
    priority: int | None = None
    ticket_type: str | None = None
    policy_id: int | None = None
    # Counts come from the zone's daily rollups (sla/rollups.py) when they are ready; `report_transaction` sets it.
    rollups: bool = False
    # A statement may run on a second connection beside the request's (`beside`); `report_transaction` sets it.
    concurrent: bool = False

    @property
    def zone_name(self) -> str:
        return str(self.zone.key)


# --- conditions ------------------------------------------------------------------------------------------------------


@dataclass
class _Sql:
    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, condition: str, *params: Any) -> None:
        self.conditions.append(condition)
        self.params.extend(params)

    @property
    def where(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "TRUE"


def _outcome_conditions(q: ReportQuery, *, rollup: bool = False) -> _Sql:
    """Outcomes in the period and the view. Aliases: o outcome (or with `rollup` its daily rollup `sla_outcomeday`,
    which names its columns alike), cat category and k ticket (joined only for names and the CSV, see
    `_outcome_from`).

    Confidential categories are left out by their ids, which Postgres collects once per statement (an InitPlan),
    rather than by joining every outcome to its category: the join cost a sixth of a percentile branch."""
    sql = _Sql()
    if rollup:
        sql.add("o.zone = %s", q.zone_name)
        sql.add("o.day >= %s", q.first_day)
        sql.add("o.day <= %s", q.last_day)
    else:
        sql.add("o.finished_at >= %s", q.start)
        sql.add("o.finished_at < %s", q.end)
    if q.scope_team_ids is not None:
        sql.add("o.team_id = ANY(%s)", sorted(q.scope_team_ids))
    if not q.include_confidential:
        sql.add("o.category_id <> ALL(ARRAY(SELECT id FROM tickets_category WHERE is_confidential))")
    if q.team_id is not None:
        sql.add("o.team_id = %s", q.team_id)
    if q.category_id is not None:
        sql.add("o.category_id = %s", q.category_id)
    if q.priority is not None:
        sql.add("o.priority = %s", q.priority)
    if q.policy_id is not None:
        sql.add("o.policy_id = %s", q.policy_id)
    if q.ticket_type is not None:
        sql.add("o.ticket_type = %s", q.ticket_type)
    return sql


def _outcome_from(*, with_category: bool = False, with_ticket: bool = False) -> str:
    """The outcomes, with their category when its name is wanted. The outcome carries its metric, start, team,
    priority, category, policy and ticket type, so the clock (and through it the ticket) is joined only when the
    ticket's number is wanted (the CSV)."""
    tables = "sla_clockoutcome o"
    if with_category:
        tables += " JOIN tickets_category cat ON cat.id = o.category_id"
    if with_ticket:
        tables += " JOIN sla_clock c ON c.id = o.clock_id JOIN tickets_ticket k ON k.id = c.ticket_id"
    return tables


def _ticket_conditions(q: ReportQuery, *, clock_team: bool = False, policy_column: str | None = None) -> _Sql:
    """Tickets in the view (not the period: callers add their own instant column). Alias k ticket.

    `clock_team`: the team is the clock's (alias c) for an OLA clock, else the ticket's. Written as an OR rather than
    `COALESCE(c.team_id, k.team_id)` so that Postgres can estimate it from each column's statistics: misjudging a
    team's open clocks as a handful made it hash-join every open ticket instead of walking the ordered lists' index."""
    sql = _Sql()

    def team_is(condition: str, value: Any) -> None:
        if clock_team:
            sql.add(f"(c.team_id {condition} OR (c.team_id IS NULL AND k.team_id {condition}))", value, value)
        else:
            sql.add(f"k.team_id {condition}", value)

    if q.scope_team_ids is not None:
        team_is("= ANY(%s)", sorted(q.scope_team_ids))
    if not q.include_confidential:
        sql.add("NOT k.is_confidential")
    if q.team_id is not None:
        team_is("= %s", q.team_id)
    if q.category_id is not None:
        sql.add("k.category_id = %s", q.category_id)
    if q.priority is not None:
        sql.add("k.priority = %s", q.priority)
    if q.ticket_type is not None:
        sql.add("k.type = %s", q.ticket_type)
    if q.policy_id is not None and policy_column is not None:
        sql.add(f"{policy_column} = %s", q.policy_id)
    elif q.policy_id is not None:
        # "has a clock of this policy": the SLA engine records each policy it opens a clock of on the ticket, and the
        # report indexes carry that list, so this is a check of the index entry, not a probe of the ticket's clocks.
        sql.add("k.sla_policy_ids @> ARRAY[%s]::bigint[]", q.policy_id)
    return sql


@contextmanager
def report_transaction(q: ReportQuery) -> Iterator[ReportQuery]:
    """Run a view's statements in one transaction with Postgres's JIT off and room to sort in memory, and give the
    view back with `rollups` set when the viewer's zone has ready rollups (sla/rollups.py).

    The statements are estimated as costly at a million rows, so Postgres would JIT-compile each one, which costs more
    (150–200 ms a statement, measured by bench/dashboards.py) than running them; and the percentiles sort every
    outcome of the period, which spills to disk under the default 4 MB `work_mem`. Both settings end with the
    transaction (`set_config(..., true)` is `SET LOCAL`); they and the zone's state are one statement. A zone without
    rollups is counted from the raw rows (the same figures, more slowly) and a worker is asked to fill it.

    `concurrent` is set when `REPORT_CONCURRENT_STATEMENTS` is on and no transaction was open before this one: a
    caller's open transaction may hold writes that only its own connection sees, so then every statement runs here.
    Concurrent views also turn off parallel query on both connections: the two connections already keep two cores
    busy, and parallel workers on top of them made a view slower, not faster (docs/benchmarks.md)."""
    concurrent = settings.REPORT_CONCURRENT_STATEMENTS and not connection.in_atomic_block
    started: list[_Beside[Any]] = []
    enclosing = getattr(_started, "sides", None)
    _started.sides = started
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('jit', 'off', true), set_config('work_mem', %s, true),"
                    " set_config('max_parallel_workers_per_gather',"
                    " CASE WHEN %s THEN '0' ELSE current_setting('max_parallel_workers_per_gather') END, true),"
                    " (SELECT is_ready FROM sla_reportzone WHERE name = %s)",
                    [REPORT_WORK_MEM, concurrent, q.zone_name],
                )
                zone_ready = cursor.fetchone()[3]
            if zone_ready is None:
                rollups.request_zone(q.zone_name)
            yield replace(q, rollups=bool(zone_ready), concurrent=concurrent)
    finally:
        _started.sides = enclosing
        # A statement the request never asked for (it failed first) still ends, and closes its connection, before the
        # report does: nothing outlives the report.
        for side in started:
            side.join()


# The statements `beside` started in this thread's current report transaction.
_started = threading.local()
# Seconds to wait for the second connection (libpq `connect_timeout`) unless the database settings give their own.
SIDE_CONNECT_TIMEOUT = 3


Params = ParamSpec("Params")
Result = TypeVar("Result")


def beside(
    function: Callable[Concatenate[ReportQuery, Params], Result],
    q: ReportQuery,
    *args: Params.args,
    **kwargs: Params.kwargs,
) -> Callable[[], Result]:
    """Start `function(q, ...)` on a second database connection, in a thread of its own, while the caller goes on with
    the request's connection; the returned callable waits for its result (or raises its error).

    A dashboard view's statements are independent reads and, under READ COMMITTED, each already reads its own
    snapshot, so running two at once changes no figure; on two cores a view then takes about as long as its slower
    half instead of the sum. Without `q.concurrent` (see `report_transaction`) it runs here, now."""
    if not q.concurrent:
        value = function(q, *args, **kwargs)
        return lambda: value
    return _Beside(lambda: function(replace(q, concurrent=False), *args, **kwargs)).result


class _Beside(Generic[Result]):
    """One statement's thread and connection (see `beside`).

    - The connection is opened for the statement and closed after it: a few milliseconds, spent while the request's
      own statements run.
    - It starts with the settings `report_transaction` gives a concurrent view (JIT off, `work_mem`, no parallel
      workers) as libpq connection options, so it needs no statement of its own to set them. Like the request's, it
      reads at READ COMMITTED (Django's default): each statement its own snapshot.
    - Its statements are added to the request connection's query log, when that one is logged, once the result is
      collected (tests and benchmarks count them).
    - When the second connection cannot be opened for any reason (the server is at `max_connections`, a pooler
      refuses the options, a timeout), a warning is logged and the work runs on the request's connection instead,
      one statement after the other. An error of the work itself is raised in the request's thread."""

    def __init__(self, work: Callable[[], Result]) -> None:
        self._work = work
        self._log = connection.queries_logged
        self._settings = connection.settings_dict
        self._value: Result | None = None
        self._error: BaseException | None = None
        self._unconnected = False
        self._queries: list[dict[str, Any]] = []
        self._collected = False
        self._thread = threading.Thread(target=self._run, name="report-beside", daemon=True)
        self._thread.start()
        started = getattr(_started, "sides", None)
        if started is not None:
            started.append(self)

    def _run(self) -> None:
        side = None
        try:
            options = dict(self._settings.get("OPTIONS", {}))
            options.setdefault("connect_timeout", SIDE_CONNECT_TIMEOUT)
            options["options"] = " ".join(
                [
                    options.get("options", ""),
                    "-c jit=off",
                    f"-c work_mem={REPORT_WORK_MEM}",
                    "-c max_parallel_workers_per_gather=0",
                ]
            ).strip()
            side = load_backend(self._settings["ENGINE"]).DatabaseWrapper(
                {**self._settings, "OPTIONS": options}, DEFAULT_DB_ALIAS
            )
            side.force_debug_cursor = self._log
            connections[DEFAULT_DB_ALIAS] = side
            side.ensure_connection()
        except BaseException:  # noqa: BLE001 - whatever kept it from connecting, the request's connection does the work
            logger.warning("reports.beside_unconnected", exc_info=True)
            self._unconnected = True
            if side is not None:
                self._close(side)
            return
        try:
            self._value = self._work()
        except BaseException as error:  # noqa: BLE001 - raised again in the request's thread by `result`
            self._error = error
        finally:
            self._queries = list(side.queries_log)
            self._close(side)

    @staticmethod
    def _close(side: Any) -> None:
        try:
            side.close()
        except Exception:  # noqa: BLE001 - a connection that will not close cleanly is gone all the same
            logger.warning("reports.beside_close_failed", exc_info=True)
        finally:
            del connections[DEFAULT_DB_ALIAS]

    def join(self) -> None:
        self._thread.join()

    def result(self) -> Result:
        self._thread.join()
        if not self._collected:
            self._collected = True
            if self._unconnected:
                self._value = self._work()
            elif connection.queries_logged:
                connection.queries_log.extend(self._queries)
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when there was no error


def _fetch(statement: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall())


# --- finished clocks -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeFigures:
    """Finished-clock figures of one group (or of the whole view). Durations in seconds; None when nothing finished."""

    key: Any
    label: str
    first_response_finished: int
    first_response_met: int
    resolution_finished: int
    resolution_met: int
    breaches: int
    first_response_business_p50: float | None
    first_response_business_p90: float | None
    first_response_wall_p50: float | None
    first_response_wall_p90: float | None
    resolution_business_p50: float | None
    resolution_business_p90: float | None
    resolution_wall_p50: float | None
    resolution_wall_p90: float | None

    @property
    def finished(self) -> int:
        return self.first_response_finished + self.resolution_finished

    @property
    def met(self) -> int:
        return self.first_response_met + self.resolution_met

    @property
    def first_response_compliance(self) -> float | None:
        return percent(self.first_response_met, self.first_response_finished)

    @property
    def resolution_compliance(self) -> float | None:
        return percent(self.resolution_met, self.resolution_finished)

    @property
    def compliance(self) -> float | None:
        return percent(self.met, self.finished)


def percent(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100.0 * part / whole, 1)


_GROUP_COLUMNS: dict[str, tuple[str, str, str]] = {
    # group_by: (key expression, label expression, extra join)
    "team": ("o.team_id", "tm.name", " LEFT JOIN security_team tm ON tm.id = o.team_id"),
    "category": ("o.category_id", "cat.name", ""),
    "priority": ("o.priority", "NULL::text", ""),
    "policy": ("o.policy_id", "p.name", " JOIN sla_slapolicy p ON p.id = o.policy_id"),
    "day": ("(o.finished_at AT TIME ZONE %s)::date", "NULL::text", ""),
    "week": ("date_trunc('week', o.finished_at AT TIME ZONE %s)::date", "NULL::text", ""),
}

_COUNTS_SELECT = """
    count(*) FILTER (WHERE metric = 'first_response') AS c0,
    count(*) FILTER (WHERE metric = 'first_response' AND met) AS c1,
    count(*) FILTER (WHERE metric = 'resolution') AS c2,
    count(*) FILTER (WHERE metric = 'resolution' AND met) AS c3,
    count(*) FILTER (WHERE NOT met) AS c4
"""

_FIGURES_SELECT = (
    _COUNTS_SELECT
    + """,
    percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY business) FILTER (WHERE metric = 'first_response'),
    percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY wall) FILTER (WHERE metric = 'first_response'),
    percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY business) FILTER (WHERE metric = 'resolution'),
    percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY wall) FILTER (WHERE metric = 'resolution')
"""
)


def _pair(values: list[Any] | None) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    # Interpolation leaves float noise (5580.000000000001); a tenth of a second is plenty.
    return round(float(values[0]), 1), round(float(values[1]), 1)


_PERCENTILES = (
    "percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY business),"
    " percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY wall)"
)

# Wall-clock duration as a float: percentiles sort it, and computing and sorting numeric (what `extract` gives)
# costs more than float8 (`date_part`), which holds a microsecond duration of up to 285 years exactly.
_WALL = "date_part('epoch', o.finished_at - o.started_at) AS wall"


def outcome_figure_sets(
    q: ReportQuery, group_bys: Sequence[str] = (), *, group_percentiles: bool = True
) -> dict[str | None, list[OutcomeFigures]]:
    """Finished-clock figures for the whole view (under None, one row) and per group for each of `group_bys`
    (`GROUP_BYS`), in ONE statement: the outcomes are read once and aggregated by `GROUPING SETS`. Groups come
    ordered by key; days and weeks only where something finished (see `series_days`).

    `group_percentiles=False` leaves the groups' percentiles None (the page shows percentiles for the whole view
    only): the groups are then counted in one pass (per quarter hour for days and weeks) and only the whole view's
    outcomes are sorted, instead of sorting every outcome four times per grouping."""
    if group_bys and not group_percentiles:
        return _group_counts_and_totals(q, group_bys)
    where = _outcome_conditions(q)
    columns = [
        "o.metric AS metric",
        "o.met AS met",
        "o.business_seconds_used AS business",
        _WALL,
    ]
    params: list[Any] = []
    joins = ""
    for index, group_by in enumerate(group_bys):
        key, label, join = _GROUP_COLUMNS[group_by]
        columns += [f"{key} AS k{index}", f"{label} AS l{index}"]
        params += [q.zone_name] * key.count("%s")
        if join not in joins:
            joins += join
    keys = "".join(f"k{index}, l{index}, " for index in range(len(group_bys)))
    sets = ", ".join(["()", *(f"(k{index}, l{index})" for index in range(len(group_bys)))])
    grouping = f"GROUPING({', '.join(f'k{index}' for index in range(len(group_bys)))})" if group_bys else "0"
    statement = (
        f"SELECT {grouping}, {keys}{_FIGURES_SELECT}"
        f" FROM (SELECT {', '.join(columns)} FROM {_outcome_from(with_category='category' in group_bys)}{joins}"
        f" WHERE {where.where}) AS outcomes"
        f" GROUP BY GROUPING SETS ({sets}) ORDER BY {', '.join(str(n) for n in range(1, 2 + 2 * len(group_bys)))}"
    )
    return _figure_rows(group_bys, _fetch(statement, params + where.params))


def _figure_rows(group_bys: Sequence[str], rows: list[tuple[Any, ...]]) -> dict[str | None, list[OutcomeFigures]]:
    """Rows of (GROUPING mask, key and label per grouping, the five counts, the four percentile pairs) by grouping."""
    # GROUPING() has one bit per key, the first key the highest; a set leaves its own key's bit 0.
    everything = (1 << len(group_bys)) - 1
    set_of_mask: dict[int, str | None] = {everything: None}
    for index, group_by in enumerate(group_bys):
        set_of_mask[everything ^ (1 << (len(group_bys) - 1 - index))] = group_by
    found: dict[str | None, list[OutcomeFigures]] = {None: [], **{group_by: [] for group_by in group_bys}}
    offset = 1 + 2 * len(group_bys)
    for row in rows:
        group = set_of_mask[row[0]]
        position = group_bys.index(group) if group is not None else None
        group_key = None if position is None else row[1 + 2 * position]
        group_label = None if position is None else row[2 + 2 * position]
        figures = row[offset:]
        fr_business, fr_wall, res_business, res_wall = (_pair(values) for values in figures[5:9])
        found[group].append(
            OutcomeFigures(
                key=group_key,
                label=_label(group, group_key, group_label),
                first_response_finished=figures[0],
                first_response_met=figures[1],
                resolution_finished=figures[2],
                resolution_met=figures[3],
                breaches=figures[4],
                first_response_business_p50=fr_business[0],
                first_response_business_p90=fr_business[1],
                first_response_wall_p50=fr_wall[0],
                first_response_wall_p90=fr_wall[1],
                resolution_business_p50=res_business[0],
                resolution_business_p90=res_business[1],
                resolution_wall_p50=res_wall[0],
                resolution_wall_p90=res_wall[1],
            )
        )
    return found


# group_by: (the key read from each outcome, the group's key from it ({g}), its label ({i} numbers the join), join)
_COUNT_GROUP_COLUMNS: dict[str, tuple[str, str, str, str]] = {
    "team": ("o.team_id", "{g}", "tm{i}.name", " LEFT JOIN security_team tm{i} ON tm{i}.id = {g}"),
    "category": ("o.category_id", "{g}", "cat{i}.name", " LEFT JOIN tickets_category cat{i} ON cat{i}.id = {g}"),
    "priority": ("o.priority", "{g}", "NULL::text", ""),
    "policy": ("o.policy_id", "{g}", "p{i}.name", " LEFT JOIN sla_slapolicy p{i} ON p{i}.id = {g}"),
    "day": (QUARTER_HOUR.format(column="o.finished_at"), "({g} AT TIME ZONE %s)::date", "NULL::text", ""),
    "week": (
        QUARTER_HOUR.format(column="o.finished_at"),
        "date_trunc('week', {g} AT TIME ZONE %s)::date",
        "NULL::text",
        "",
    ),
}


# The counts from finished-clock rows (one per outcome) or from daily rollup rows (a count per key).
_COUNTS_OF_ROLLUPS = """
    COALESCE(sum(finished) FILTER (WHERE metric = 'first_response'), 0) AS c0,
    COALESCE(sum(met) FILTER (WHERE metric = 'first_response'), 0) AS c1,
    COALESCE(sum(finished) FILTER (WHERE metric = 'resolution'), 0) AS c2,
    COALESCE(sum(met) FILTER (WHERE metric = 'resolution'), 0) AS c3,
    COALESCE(sum(finished - met), 0) AS c4
"""
# A key whose rows cancel out (an outcome moved to another day or team, not yet compacted) is no group at all.
_ROLLUP_GROUPS_HAVING = " HAVING sum(finished) <> 0"
_ROLLUP_DAY_KEYS = {"day": ("o.day", "{g}"), "week": ("date_trunc('week', o.day)::date", "{g}")}


def _group_counts_and_totals(q: ReportQuery, group_bys: Sequence[str]) -> dict[str | None, list[OutcomeFigures]]:
    """The groups' and the whole view's counts (outcomes read once, counted per raw key by GROUPING SETS, then the
    quarter hours summed into local days or weeks and the labels joined on the few groups) and, in the same
    statement, the whole view's percentiles.

    With `q.rollups` the counts are summed from the zone's daily rollups instead (already in local days). The
    percentiles always read the outcomes, since they need every duration: one branch per metric, each sorting its
    own durations (two sorts of half the rows each cost about two thirds of four filtered sorts over all of them)."""
    where = _outcome_conditions(q)
    group_where = _outcome_conditions(q, rollup=q.rollups)
    aligned = q.rollups or _quarter_hours_align(q)
    raw: list[str] = []
    raw_params: list[Any] = []
    outer: list[str] = []
    outer_params: list[Any] = []
    joins = ""
    for index, group_by in enumerate(group_bys):
        key, group_key, label, join = _COUNT_GROUP_COLUMNS[group_by]
        if group_by in _ROLLUP_DAY_KEYS and q.rollups:
            key, group_key = _ROLLUP_DAY_KEYS[group_by]
        elif group_by in ("day", "week") and not aligned:
            key, group_key = _GROUP_COLUMNS[group_by][0], "{g}"
        raw.append(f"{key} AS r{index}")
        raw_params += [q.zone_name] * key.count("%s")
        outer += [f"{group_key.format(g=f'g.r{index}')} AS k{index}", f"{label.format(i=index)} AS l{index}"]
        outer_params += [q.zone_name] * group_key.count("%s")
        joins += join.format(i=index, g=f"g.r{index}")
    keys = ", ".join(f"r{index}" for index in range(len(group_bys)))
    sets = ", ".join([*(f"(r{index})" for index in range(len(group_bys))), "()"])
    sums = ", ".join(f"sum(g.c{n})::bigint" for n in range(5))
    positions = ", ".join(str(n) for n in range(1, 2 + 2 * len(group_bys)))
    no_keys = "NULL, NULL, " * len(group_bys)
    everything = (1 << len(group_bys)) - 1
    having = ""
    if q.rollups:
        counts = _COUNTS_OF_ROLLUPS
        having = _ROLLUP_GROUPS_HAVING
        counted = (
            f"SELECT {', '.join(raw)}, o.metric AS metric, o.finished AS finished, o.met AS met FROM sla_outcomeday o"
        )
    else:
        counts = _COUNTS_SELECT
        counted = f"SELECT {', '.join(raw)}, o.metric AS metric, o.met AS met FROM {_outcome_from()}"
    statement = (
        f"SELECT g.mask, {', '.join(outer)}, {sums}, NULL::float8[], NULL::float8[], NULL::float8[], NULL::float8[]"
        f" FROM (SELECT GROUPING({keys}) AS mask, {keys}, {counts}"
        f" FROM ({counted} WHERE {group_where.where}) AS s GROUP BY GROUPING SETS ({sets}){having}) AS g{joins}"
        f" GROUP BY {positions}"
        + "".join(
            f" UNION ALL SELECT {everything}, {no_keys}NULL, NULL, NULL, NULL, NULL, {pairs}"
            f" FROM (SELECT o.business_seconds_used AS business, {_WALL} FROM {_outcome_from()}"
            f" WHERE {where.where} AND o.metric = %s) AS outcomes"
            for pairs in (f"{_PERCENTILES}, NULL, NULL", f"NULL, NULL, {_PERCENTILES}")
        )
        + f" ORDER BY {positions}"
    )
    params = [
        *outer_params, *raw_params, *group_where.params,
        *where.params, FIRST_RESPONSE,
        *where.params, RESOLUTION,
    ]  # fmt: skip
    rows = _fetch(statement, params)
    # The whole view comes in three rows (counts, first-response and resolution percentiles), or two when nothing
    # finished and the rollups have no counts row: one row of the first value found in each column.
    groups = [row for row in rows if row[0] != everything]
    parts = [row for row in rows if row[0] == everything]
    width = len(parts[0])
    found: list[Any] = [next((part[n] for part in parts if part[n] is not None), None) for n in range(width)]
    counts_at = 1 + 2 * len(group_bys)
    found[counts_at : counts_at + 5] = [count or 0 for count in found[counts_at : counts_at + 5]]
    return _figure_rows(group_bys, [*groups, tuple(found)])


def _quarter_hours_align(q: ReportQuery) -> bool:
    """Whether counting per quarter hour of UTC (`QUARTER_HOUR`) and converting the quarter hours gives exact local
    days and hours for the viewer's zone over the period: the zone's offset is a whole number of quarter hours
    throughout, and every change of offset happens on a UTC quarter hour. Most zones qualify; a few changed at
    00:01 local time (Newfoundland until 2011, Moncton until 2006, Gaza, Casey), and those periods are converted row
    by row. Samples the offset every 12 hours (offsets never change twice in 12 hours) and bisects each change to
    the second: a few thousand `utcoffset` calls for a two-year period."""
    step = timedelta(hours=12)
    instant = q.start
    offset = _offset(q.zone, instant)
    while instant < q.end:
        following = min(instant + step, q.end)
        next_offset = _offset(q.zone, following)
        if offset % 900 or next_offset % 900:
            return False
        if next_offset != offset and _seconds_since_2000(_offset_change(q.zone, instant, following)) % 900:
            return False
        instant, offset = following, next_offset
    return True


_EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)


def _offset(zone: ZoneInfo, instant: datetime) -> int:
    return int(instant.astimezone(zone).utcoffset().total_seconds())  # type: ignore[union-attr]  # zone-aware


def _offset_change(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first whole second in (before, after] with `after`'s offset: the one change in between (changes happen on
    whole seconds)."""
    target = _offset(zone, after)
    low, high = int(before.timestamp()), int(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(zone, datetime.fromtimestamp(middle, UTC)) == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _seconds_since_2000(instant: datetime) -> float:
    return (instant - _EPOCH_2000).total_seconds()


def outcome_figures(q: ReportQuery, group_by: str | None = None) -> list[OutcomeFigures]:
    """Finished-clock figures for the whole view (one row, key None) or per group, in one statement."""
    if group_by is None:
        return outcome_figure_sets(q)[None]
    return outcome_figure_sets(q, [group_by])[group_by]


def _label(group_by: str | None, key: Any, label: str | None) -> str:
    if group_by is None:
        return "All"
    if group_by == "team" and key is None:
        return "No team"
    if group_by == "priority":
        return f"P{key}"
    if group_by in ("day", "week"):
        return key.isoformat()
    return str(label)


def outcome_totals(q: ReportQuery) -> OutcomeFigures:
    return outcome_figures(q)[0]


# --- live clocks -----------------------------------------------------------------------------------------------------


def _open_clock_conditions(q: ReportQuery, *, running_with_due: bool = False) -> _Sql:
    """Open clocks of tickets in the view. Aliases c clock, k ticket, t target (the policy filter; see
    `_open_clock_from`).

    An OLA clock belongs to its team, an SLA clock to the ticket's; the policy is the clock's own. Open clocks belong
    to open tickets (resolving finishes them, closing or cancelling cancels them); saying so lets Postgres read the
    tickets from the small covering index of open tickets instead of the whole table.

    `running_with_due`: the caller selects clocks by due instant, which only running clocks have (a check constraint),
    so the state condition is left out: with it Postgres multiplied the two conditions' shares, expected a few dozen
    clocks not yet due instead of thousands, and sorted a bitmap scan instead of reading `sla_clock_due` in order."""
    sql = _ticket_conditions(q, clock_team=True, policy_column="t.policy_id")
    if not running_with_due:
        sql.conditions.insert(0, "c.state IN ('running', 'paused')")
    sql.conditions.insert(0, "k.state IN ('new', 'assigned', 'in_progress', 'pending')")
    return sql


def _open_clock_from(q: ReportQuery, *, names: bool) -> str:
    """The open clocks with their ticket; with `names` their target (the metric) and team (its name) for the lists,
    else their target only for the policy filter."""
    tables = "sla_clock c JOIN tickets_ticket k ON k.id = c.ticket_id"
    if names or q.policy_id is not None:
        tables += " JOIN sla_slatarget t ON t.id = c.target_id"
    if names:
        tables += " LEFT JOIN security_team tm ON tm.id = COALESCE(c.team_id, k.team_id)"
    return tables


# Breached now: the breach timer fired, or (between its instant and the timer, at most a reconciler pass) a running
# clock's due instant has passed. At risk: the 75 % warning fired and the clock is not breached.
_IS_BREACHED = "(c.breached_at IS NOT NULL OR (c.state = 'running' AND c.due_at <= %s))"
_IS_WARNED = (
    "EXISTS (SELECT 1 FROM sla_clockevent e WHERE e.clock_id = c.id AND e.kind = 'warned' AND e.threshold >= %s)"
)


@dataclass(frozen=True)
class LiveFigures:
    at_risk_tickets: int
    breached_tickets: int


def live_figures(q: ReportQuery) -> LiveFigures:
    """Tickets with at least one open clock at risk now / breached now (a ticket may count in both)."""
    where = _open_clock_conditions(q)
    # The warning is looked up only for clocks that are not breached (CASE evaluates lazily): most open clocks of a
    # large backlog are breached, and each lookup is an index probe.
    statement = (
        "SELECT count(DISTINCT ticket_id) FILTER (WHERE is_at_risk),"
        " count(DISTINCT ticket_id) FILTER (WHERE is_breached)"
        f" FROM (SELECT c.ticket_id, {_IS_BREACHED} AS is_breached,"
        f" CASE WHEN {_IS_BREACHED} THEN false ELSE {_IS_WARNED} END AS is_at_risk"
        f" FROM {_open_clock_from(q, names=False)} WHERE {where.where}) AS open_clocks"
    )
    row = _fetch(statement, [q.now, q.now, AT_RISK_PERCENT, *where.params])[0]
    return LiveFigures(at_risk_tickets=row[0], breached_tickets=row[1])


@dataclass(frozen=True)
class ClockRow:
    list: str  # breached | at_risk
    number: str
    title: str
    team: str | None
    priority: int
    metric: str
    state: str
    due_at: datetime | None
    breached_at: datetime | None


def clock_lists(q: ReportQuery, limit: int = LIST_LIMIT) -> list[ClockRow]:
    """The breached clocks (longest overdue first) and the at-risk clocks (soonest due first), `limit` each.

    Each list walks an ordered index and stops after `limit` rows, whatever the number of open clocks: the breached
    list `sla_clock_open_overdue` (`COALESCE(breached_at, due_at), id` over open clocks); the at-risk list the clocks
    not yet due from `sla_clock_due` (`due_at, id`; only running clocks have a due instant), then the open clocks
    without one (paused, or a calendar that never reaches the target) from `sla_clock_open_undue`, by id."""
    where = _open_clock_conditions(q)
    due_where = _open_clock_conditions(q, running_with_due=True)
    columns = (
        "k.number AS number, k.title AS title, tm.name AS team, k.priority AS priority, t.metric AS metric,"
        " c.state AS state, c.due_at AS due_at, c.breached_at AS breached_at"
    )
    from_where = f"FROM {_open_clock_from(q, names=True)} WHERE {where.where}"
    due_from_where = f"FROM {_open_clock_from(q, names=True)} WHERE {due_where.where}"
    statement = (
        "SELECT list, number, title, team, priority, metric, state, due_at, breached_at FROM ("
        f"(SELECT 'breached' AS list, COALESCE(c.breached_at, c.due_at) AS o1, c.id AS o2, {columns} {from_where}"
        f" AND {_IS_BREACHED} ORDER BY COALESCE(c.breached_at, c.due_at), c.id LIMIT %s)"
        # Running clocks not yet due (a clock has a due instant only while it runs), then those without one.
        f" UNION ALL (SELECT 'at_risk', c.due_at, c.id, {columns} {due_from_where} AND c.due_at > %s"
        f" AND c.breached_at IS NULL AND {_IS_WARNED} ORDER BY c.due_at, c.id LIMIT %s)"
        f" UNION ALL (SELECT 'at_risk', c.due_at, c.id, {columns} {from_where} AND c.due_at IS NULL"
        f" AND c.breached_at IS NULL AND {_IS_WARNED} ORDER BY c.id LIMIT %s)"
        ") AS lists ORDER BY list DESC, o1 NULLS LAST, o2"
    )
    params = [
        *where.params, q.now, limit,
        *due_where.params, q.now, AT_RISK_PERCENT, limit,
        *where.params, AT_RISK_PERCENT, limit,
    ]  # fmt: skip
    rows = [ClockRow(*row) for row in _fetch(statement, params)]
    breached = [row for row in rows if row.list == "breached"]
    return breached + [row for row in rows if row.list == "at_risk"][:limit]


# --- tickets ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Satisfaction:
    resolved: int
    rated: int
    average: float | None

    @property
    def response_rate(self) -> float | None:
        return percent(self.rated, self.resolved)


def _resolved_rows(q: ReportQuery) -> tuple[str, list[Any]]:
    """FROM and WHERE of the tickets resolved in the period with their rating (one at most): the rows behind the
    resolved series and CSAT, for both `satisfaction` and `flow`."""
    where = _ticket_conditions(q)
    return (
        "FROM tickets_ticket k LEFT JOIN tickets_satisfactionrating r ON r.ticket_id = k.id"
        f" WHERE k.resolved_at >= %s AND k.resolved_at < %s AND {where.where}",
        [q.start, q.end, *where.params],
    )


def _satisfaction(resolved: int, rated: int, score_sum: int | None) -> Satisfaction:
    average = None if not rated or score_sum is None else round(score_sum / rated, 2)
    return Satisfaction(resolved=resolved, rated=rated, average=average)


def satisfaction(q: ReportQuery) -> Satisfaction:
    """CSAT over the tickets resolved in the period: the average score of their ratings and the share rated. (The
    page takes it from `flow`, which reads the same rows.)"""
    if q.rollups:
        where = _ticket_day_conditions(q)
        statement = (
            "SELECT COALESCE(sum(k.tickets), 0), COALESCE(sum(k.rated), 0), sum(k.score) FROM sla_ticketday k"
            f" WHERE {where.where} AND k.kind = 'resolved'"
        )
        resolved, rated, score_sum = _fetch(statement, where.params)[0]
        return _satisfaction(resolved, rated, score_sum)
    rows, params = _resolved_rows(q)
    resolved, rated, score_sum = _fetch(f"SELECT count(*), count(r.id), sum(r.score) {rows}", params)[0]
    return _satisfaction(resolved, rated, score_sum)


@dataclass(frozen=True)
class Flow:
    """Created and resolved per local day (every day of the period, zeros included), arrivals by ISO weekday
    (1 Monday … 7 Sunday) and local hour, and CSAT over the resolved tickets (as `satisfaction`)."""

    days: list[date]
    created: list[int]
    resolved: list[int]
    arrivals: dict[tuple[int, int], int]
    satisfaction: Satisfaction


def _ticket_day_conditions(q: ReportQuery) -> _Sql:
    """The zone's daily ticket rollups (`sla_ticketday`, alias k, named like the ticket's columns) of the period and
    the view."""
    sql = _ticket_conditions(q)
    sql.conditions[:0] = ["k.zone = %s", "k.day >= %s", "k.day <= %s"]
    sql.params[:0] = [q.zone_name, q.first_day, q.last_day]
    return sql


# Arrivals by weekday and hour from the rollups' hour columns: summed per weekday, then one row per hour.
_ARRIVAL_HOURS = ", ".join(f"({hour}, s.{column})" for hour, column in enumerate(HOURS))
_ARRIVAL_SUMS = ", ".join(f"sum(k.{column}) AS {column}" for column in HOURS)


def _flow_of_rollups(q: ReportQuery) -> Flow:
    where = _ticket_day_conditions(q)
    statement = (
        "SELECT k.kind, k.day, NULL::int, NULL::int, sum(k.tickets)::bigint, sum(k.rated)::bigint,"
        f" sum(k.score)::bigint FROM sla_ticketday k WHERE {where.where} GROUP BY 1, 2"
        " HAVING sum(k.tickets) <> 0 OR sum(k.rated) <> 0"
        " UNION ALL SELECT 'created', NULL, s.dow, h.hour, h.arrivals, 0, 0"
        f" FROM (SELECT extract(isodow FROM k.day)::int AS dow, {_ARRIVAL_SUMS} FROM sla_ticketday k"
        f" WHERE {where.where} AND k.kind = 'created' GROUP BY 1) AS s"
        f" CROSS JOIN LATERAL (VALUES {_ARRIVAL_HOURS}) AS h(hour, arrivals) WHERE h.arrivals <> 0"
    )
    return _flow(q, _fetch(statement, [*where.params, *where.params]))


def flow(q: ReportQuery) -> Flow:
    if q.rollups:
        return _flow_of_rollups(q)
    where = _ticket_conditions(q)
    resolved_rows, resolved_params = _resolved_rows(q)
    zone = q.zone_name
    if _quarter_hours_align(q):
        # Count per quarter hour of UTC (a cheap bin of each index entry), then put the few thousand quarter hours
        # into local days, weekdays and hours.
        statement = (
            f"WITH quarters AS (SELECT 'created' AS kind, {QUARTER_HOUR.format(column='k.created_at')} AS b,"
            " count(*) AS n, 0::bigint AS rated, 0::bigint AS score FROM tickets_ticket k"
            f" WHERE k.created_at >= %s AND k.created_at < %s AND {where.where} GROUP BY 2"
            f" UNION ALL SELECT 'resolved', {QUARTER_HOUR.format(column='k.resolved_at')}, count(*), count(r.id),"
            f" sum(r.score) {resolved_rows} GROUP BY 2)"
            " SELECT kind, (b AT TIME ZONE %s)::date, NULL::int, NULL::int, sum(n)::bigint, sum(rated)::bigint,"
            " sum(score)::bigint FROM quarters GROUP BY 1, 2"
            " UNION ALL SELECT kind, NULL, extract(isodow FROM b AT TIME ZONE %s)::int,"
            " extract(hour FROM b AT TIME ZONE %s)::int, sum(n)::bigint, 0, 0 FROM quarters WHERE kind = 'created'"
            " GROUP BY 1, 3, 4"
        )
        params = [q.start, q.end, *where.params, *resolved_params, zone, zone, zone]
        return _flow(q, _fetch(statement, params))
    statement = (
        "SELECT 'created', day, dow, hour, count(*), 0, 0 FROM ("
        " SELECT (k.created_at AT TIME ZONE %s)::date AS day,"
        " extract(isodow FROM k.created_at AT TIME ZONE %s)::int AS dow,"
        " extract(hour FROM k.created_at AT TIME ZONE %s)::int AS hour"
        f" FROM tickets_ticket k WHERE k.created_at >= %s AND k.created_at < %s AND {where.where}"
        ") AS arrivals GROUP BY GROUPING SETS ((day), (dow, hour))"
        " UNION ALL SELECT 'resolved', (k.resolved_at AT TIME ZONE %s)::date, NULL, NULL, count(*), count(r.id),"
        f" sum(r.score) {resolved_rows} GROUP BY 2"
    )
    params = [zone, zone, zone, q.start, q.end, *where.params, zone, *resolved_params]
    return _flow(q, _fetch(statement, params))


def _flow(q: ReportQuery, rows: list[tuple[Any, ...]]) -> Flow:
    """Rows of (created | resolved, local day, or for arrivals weekday and hour, count, rated, score sum) as the
    series."""
    created: dict[date, int] = {}
    resolved: dict[date, int] = {}
    arrivals: dict[tuple[int, int], int] = {}
    rated = 0
    score_sum: int | None = None
    for kind, day, dow, hour, count, day_rated, day_score in rows:
        if kind == "resolved":
            resolved[day] = count
            rated += day_rated
            if day_score is not None:
                score_sum = (score_sum or 0) + day_score
        elif day is not None:
            created[day] = count
        else:
            arrivals[(dow, hour)] = count
    days = series_days(q.first_day, q.last_day, "day")
    return Flow(
        days=days,
        created=[created.get(day, 0) for day in days],
        resolved=[resolved.get(day, 0) for day in days],
        arrivals=arrivals,
        satisfaction=_satisfaction(sum(resolved.values()), rated, score_sum),
    )


def backlog(q: ReportQuery) -> dict[tuple[str, int], int]:
    """Open tickets now by (state, age bucket index into `AGE_BUCKETS`), age from creation."""
    where = _ticket_conditions(q)
    # Youngest first: the first matching WHEN is the narrowest bucket.
    cases = " ".join(
        f"WHEN k.created_at > %s THEN {index - 1}" for index, (_label, days) in enumerate(AGE_BUCKETS) if days
    )
    bounds = [q.now - timedelta(days=days) for _label, days in AGE_BUCKETS if days]
    statement = (
        f"SELECT k.state, CASE {cases} ELSE {len(AGE_BUCKETS) - 1} END AS bucket, count(*) FROM tickets_ticket k"
        f" WHERE k.state = ANY(%s) AND {where.where} GROUP BY 1, 2"
    )
    rows = _fetch(statement, [*bounds, list(OPEN_STATE_ORDER), *where.params])
    return {(state, bucket): count for state, bucket, count in rows}


# --- filter choices --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    teams: list[tuple[int, str]]
    categories: list[tuple[int, str]]
    policies: list[tuple[int, str]]


def options(*, scope_team_ids: frozenset[int] | None, include_confidential: bool) -> Options:
    """The teams, categories and policies a viewer may filter on, in one statement."""
    team_where = "TRUE" if scope_team_ids is None else "id = ANY(%s)"
    category_where = "TRUE" if include_confidential else "NOT is_confidential"
    statement = (
        f"SELECT 'team', id, name FROM security_team WHERE {team_where}"
        f" UNION ALL SELECT 'category', id, name FROM tickets_category WHERE {category_where}"
        " UNION ALL SELECT 'policy', id, name FROM sla_slapolicy ORDER BY 1, 3, 2"
    )
    params: list[Any] = [] if scope_team_ids is None else [sorted(scope_team_ids)]
    found: dict[str, list[tuple[int, str]]] = {"team": [], "category": [], "policy": []}
    for kind, pk, name in _fetch(statement, params):
        found[kind].append((pk, name))
    return Options(teams=found["team"], categories=found["category"], policies=found["policy"])


# --- series and export -----------------------------------------------------------------------------------------------


def series_days(first: date, last: date, bucket: str) -> list[date]:
    """Every day (or every Monday of a week) from `first` to `last`, for series that show empty buckets as 0."""
    if bucket == "week":
        first = first - timedelta(days=first.weekday())
        step = timedelta(days=7)
    else:
        step = timedelta(days=1)
    days = []
    day = first
    while day <= last:
        days.append(day)
        day += step
    return days


CSV_COLUMNS = (
    "outcome_id",
    "ticket",
    "ticket_type",
    "metric",
    "policy",
    "team",
    "category",
    "priority",
    "met",
    "business_seconds_used",
    "target_seconds",
    "wall_seconds",
    "started_at",
    "finished_at",
)


def outcome_rows(q: ReportQuery, chunk_rows: int = CSV_CHUNK_ROWS) -> Iterator[tuple[Any, ...]]:
    """Every outcome of the view (the rows behind the finished-clock figures), oldest first, through a server-side
    cursor fetched `chunk_rows` at a time: memory stays constant whatever the count. Instants in the viewer's zone."""
    where = _outcome_conditions(q)
    statement = (
        "SELECT o.id, k.number, o.ticket_type, o.metric, p.name, tm.name, cat.name, o.priority, o.met,"
        " o.business_seconds_used, o.target_seconds, extract(epoch FROM o.finished_at - o.started_at)::bigint,"
        " to_char(o.started_at AT TIME ZONE %s, 'YYYY-MM-DD\"T\"HH24:MI:SS'),"
        " to_char(o.finished_at AT TIME ZONE %s, 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        f" FROM {_outcome_from(with_category=True, with_ticket=True)}"
        " JOIN sla_slapolicy p ON p.id = o.policy_id LEFT JOIN security_team tm ON tm.id = o.team_id"
        f" WHERE {where.where} ORDER BY o.finished_at, o.id"
    )
    cursor = connection.chunked_cursor()
    try:
        cursor.execute(statement, [q.zone_name, q.zone_name, *where.params])
        while True:
            rows = cursor.fetchmany(chunk_rows)
            if not rows:
                return
            yield from rows
    finally:
        cursor.close()
