"""Daily rollups behind the dashboards' counts (docs/dashboards.md "Rollups").

The dashboards cut days in the viewer's time zone, so the rollups are kept per zone (`ReportZone`): `OutcomeDay`
counts finished clocks and `TicketDay` counts tickets created (per local hour too, for the arrivals heatmap) and
resolved (with their ratings) per local day and per every column the dashboards filter on. At a million tickets a
day of a zone holds a few hundred rows where the raw tables hold thousands, so a period's counts read 16× fewer rows.

- **Maintained by Postgres.** Triggers (migration `sla/0015`) add rows for every listed zone whenever a ticket,
  rating or outcome is written, in the writer's own transaction: whatever writes (services, the admin, COPY, a
  repair), the rollups change with the rows, and a rolled-back change leaves them untouched. Rows are only ever
  inserted (+1 for the new key, -1 for the old one), so concurrent writers never wait on a shared counter row.
- **Filled per zone.** `fill_zone` lists a zone and counts it from the raw rows in one transaction that holds
  ticket, rating and outcome writes (a `SHARE` lock) until it commits, so no change is counted twice or missed: a
  write that lands before the lock is in the count; one after it is added by the triggers, which list the zone from
  then on. Writers wait for the duration (seconds at a million tickets, once per zone). Reports use a zone's rollups
  only once it is ready; until then they count the raw rows, which gives the same figures more slowly.
- **Compacted.** `compact` folds each key's rows into one (celery-beat, every few minutes), so a busy day keeps a
  few hundred rows however often its tickets change.
- **Checked.** The tests compare every rollup-based figure with the same figure from the raw rows, across zones,
  after updates, reopenings, ratings, compaction and a refill.

Percentiles and the live figures do not come from here: a median cannot be summed from daily parts, and open clocks
change by the second.
"""

# Statements are assembled from constant fragments in this module; every value is a bound parameter.
# ruff: noqa: S608

import logging
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.cache import cache
from django.db import OperationalError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone
from redis.exceptions import RedisError

from itsm.queue import enqueue_on_commit
from sla.models import HOURS, ReportZone

logger = logging.getLogger(__name__)

# One advisory lock key for filling and compacting (they must not interleave: a compaction that read a zone's rows
# before a refill replaced them would add them back).
ROLLUP_LOCK = 7_300_001
# Filling waits this long for the tables' writers, then gives up and retries: a writer that already holds one table
# and waits for another one the fill has locked would otherwise deadlock with it.
LOCK_TIMEOUT = "500ms"
LOCK_ATTEMPTS = 20
# A zone's fill is asked for at most this often (the first view in the zone, and again if it is still not ready).
FILL_REQUEST_SECONDS = 300
# Local days counted per statement while filling (the progress step).
FILL_DAYS = 28

TICKET_COLUMNS = (
    "zone, day, kind, team_id, category_id, priority, type, is_confidential, sla_policy_ids, tickets, rated, score, "
    + ", ".join(HOURS)
)
TICKET_KEY = "zone, day, kind, team_id, category_id, priority, type, is_confidential, sla_policy_ids"
TICKET_SUMS = "tickets, rated, score, " + ", ".join(HOURS)
OUTCOME_KEY = "zone, day, team_id, category_id, priority, policy_id, ticket_type, metric"
OUTCOME_SUMS = "finished, met"

Progress = Callable[[str, int, int], None]


def zone_state(name: str) -> bool | None:
    """True when the zone's rollups are ready, False while listed but not yet filled, None when not listed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT is_ready FROM sla_reportzone WHERE name = %s", [name])
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


def request_zone(name: str) -> None:
    """Ask a worker to fill the zone (after the current transaction commits), at most once per
    `FILL_REQUEST_SECONDS` whatever the number of views meanwhile (a Redis key; if Redis cannot say, ask anyway:
    filling a ready zone is a no-op)."""
    from sla.tasks import fill_report_zone_task  # noqa: PLC0415 - tasks import this module

    try:
        first = cache.add(f"rollups:fill-requested:{name}", 1, timeout=FILL_REQUEST_SECONDS)
    except RedisError:
        first = True
    if first:
        enqueue_on_commit(fill_report_zone_task, name)


def fill_zone(name: str, *, refill: bool = False, progress: Progress | None = None) -> bool:
    """List the zone and count its rollups from the raw rows (see the module). Returns False when the zone was
    already ready and `refill` is False. Raises ValueError for an unknown zone, OperationalError when the tables'
    writers kept the lock busy for every attempt."""
    try:
        zone = ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise ValueError(f"{name!r} is not a known IANA time zone") from exc
    if not _postgres_agrees(zone):
        raise ValueError(f"Postgres reads {name!r} differently from the zone database (a fixed abbreviation)")
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            return _fill_zone_once(name, refill=refill, progress=progress)
        except OperationalError as exc:
            if "lock timeout" not in str(exc) or attempt == LOCK_ATTEMPTS:
                raise
            logger.info("rollups.fill_lock_busy", extra={"zone": name, "attempt": attempt})
    return False  # pragma: no cover - the loop returns or raises


# A winter and a summer instant of each hemisphere: where Postgres and Python disagree on a zone, they do on one of
# these.
_PROBES = (datetime(2026, 1, 15, 12, tzinfo=UTC), datetime(2026, 7, 15, 12, tzinfo=UTC))


def _postgres_agrees(zone: ZoneInfo) -> bool:
    """Whether Postgres converts instants to the zone's local time as Python does. A few IANA names (CET, EET, MET,
    WET) are also abbreviations that Postgres reads first, as fixed offsets without summer time: the rollups' days
    would then not be the days the reports' periods are cut into."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join("(%s::timestamptz AT TIME ZONE %s)" for _probe in _PROBES),
            [value for probe in _PROBES for value in (probe, zone.key)],
        )
        converted = cursor.fetchone()
    return all(
        local == probe.astimezone(zone).replace(tzinfo=None) for local, probe in zip(converted, _PROBES, strict=True)
    )


def _fill_zone_once(name: str, *, refill: bool, progress: Progress | None) -> bool:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_LOCK])
        if zone_state(name) and not refill:
            return False
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
        cursor.execute(
            "LOCK TABLE tickets_ticket, tickets_satisfactionrating, sla_clockoutcome IN SHARE MODE",
        )
        cursor.execute("SELECT set_config('lock_timeout', '0', true)")
        cursor.execute(
            "INSERT INTO sla_reportzone (name, is_ready, requested_at) VALUES (%s, false, %s)"
            " ON CONFLICT (name) DO UPDATE SET is_ready = false",
            [name, timezone.now()],
        )
        cursor.execute("DELETE FROM sla_outcomeday WHERE zone = %s", [name])
        cursor.execute("DELETE FROM sla_ticketday WHERE zone = %s", [name])
        _fill_windows(cursor, name, "tickets_ticket.created_at", _CREATED_FILL, "tickets created", progress)
        _fill_windows(cursor, name, "tickets_ticket.resolved_at", _RESOLVED_FILL, "tickets resolved", progress)
        _fill_windows(cursor, name, "sla_clockoutcome.finished_at", _OUTCOME_FILL, "outcomes", progress)
        _compact(cursor, zone=name)
        cursor.execute(
            "UPDATE sla_reportzone SET is_ready = true, filled_at = %s WHERE name = %s", [timezone.now(), name]
        )
        # A fill writes most of the tables' rows at once: statistics now, not at autovacuum's next pass, so the
        # first reports plan with them.
        cursor.execute("ANALYZE sla_outcomeday, sla_ticketday")
    logger.info("rollups.filled", extra={"zone": name})
    return True


_CREATED_FILL = (
    f"INSERT INTO sla_ticketday ({TICKET_COLUMNS})"
    " SELECT %s, l.day, 'created', l.team_id, l.category_id, l.priority, l.type, l.is_confidential, l.sla_policy_ids,"
    " count(*), 0, 0, "
    + ", ".join(f"count(*) FILTER (WHERE l.hour = {hour})" for hour in range(24))
    + " FROM (SELECT (k.created_at AT TIME ZONE %s)::date AS day,"
    " extract(hour FROM k.created_at AT TIME ZONE %s)::int AS hour, k.team_id, k.category_id, k.priority, k.type,"
    " k.is_confidential, k.sla_policy_ids FROM tickets_ticket k WHERE k.created_at >= %s AND k.created_at < %s) AS l"
    " GROUP BY 2, 4, 5, 6, 7, 8, 9 ORDER BY 2"
)
_RESOLVED_FILL = (
    f"INSERT INTO sla_ticketday ({TICKET_COLUMNS})"
    " SELECT %s, (k.resolved_at AT TIME ZONE %s)::date, 'resolved', k.team_id, k.category_id, k.priority, k.type,"
    " k.is_confidential, k.sla_policy_ids, count(*), count(r.id), COALESCE(sum(r.score), 0), "
    + ", ".join("0" for _hour in HOURS)
    + " FROM tickets_ticket k LEFT JOIN tickets_satisfactionrating r ON r.ticket_id = k.id"
    " WHERE k.resolved_at >= %s AND k.resolved_at < %s GROUP BY 2, 4, 5, 6, 7, 8, 9 ORDER BY 2"
)
_OUTCOME_FILL = (
    f"INSERT INTO sla_outcomeday ({OUTCOME_KEY}, {OUTCOME_SUMS})"
    " SELECT %s, (o.finished_at AT TIME ZONE %s)::date, o.team_id, o.category_id, o.priority, o.policy_id,"
    " o.ticket_type, o.metric, count(*), count(*) FILTER (WHERE o.met)"
    " FROM sla_clockoutcome o WHERE o.finished_at >= %s AND o.finished_at < %s GROUP BY 2, 3, 4, 5, 6, 7, 8 ORDER BY 2"
)


def _fill_windows(
    cursor: CursorWrapper, name: str, instants: str, statement: str, label: str, progress: Progress | None
) -> None:
    """Run `statement` over `FILL_DAYS` local days at a time, from the first to the last of the `instants` column
    ("table.column", indexed): each window reads one range of the column's index and writes its days' rows together,
    in day order, so a period's rollup rows sit on few pages. Windows are cut at local midnight, so a day's key is
    counted in one window (a zone whose midnight falls in a DST gap may split a day; the final compaction folds it)."""
    zone = ZoneInfo(name)
    table, column = instants.split(".")
    cursor.execute(f"SELECT min({column}), max({column}) FROM {table}")
    low, high = cursor.fetchone()
    if low is None:
        if progress is not None:
            progress(label, 0, 0)
        return
    first, last = low.astimezone(zone).date(), high.astimezone(zone).date()
    total = (last - first).days + 1
    zone_params = [name] * (statement.count("%s") - 2)
    day = first
    while day <= last:
        end = min(day + timedelta(days=FILL_DAYS), last + timedelta(days=1))
        window = [datetime.combine(day, time(0), tzinfo=zone), datetime.combine(end, time(0), tzinfo=zone)]
        if day == first:  # the zone's midnight can fall in a gap; take every instant anyway
            window[0] = min(window[0], low)
        if end > last:
            window[1] = max(window[1], high + timedelta(microseconds=1))
        cursor.execute(statement, [*zone_params, *window])
        if progress is not None:
            progress(label, (end - first).days, total)
        day = end


def compact(zone: str | None = None) -> int:
    """Fold each key's rows into one (dropping keys whose counts sum to nothing). Returns the rows removed."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_LOCK])
        return _compact(cursor, zone=zone)


def _compact(cursor: CursorWrapper, *, zone: str | None) -> int:
    removed = 0
    for table, key, sums in (
        ("sla_outcomeday", OUTCOME_KEY, OUTCOME_SUMS),
        ("sla_ticketday", TICKET_KEY, TICKET_SUMS),
    ):
        zone_where = "" if zone is None else " WHERE zone = %s"
        nonzero = " OR ".join(f"sum({column}) <> 0" for column in sums.split(", "))
        # Whole days with a repeated key are folded: every row of such a day is deleted and its keys inserted
        # summed, in one statement, so a reader sees the day either before or after. Rows a concurrent writer adds
        # meanwhile are not in the statement's snapshot and stay as they are.
        cursor.execute(
            f"WITH days AS (SELECT DISTINCT zone, day FROM (SELECT zone, day FROM {table}{zone_where}"
            f" GROUP BY {key} HAVING count(*) > 1) AS repeated),"
            f" gone AS (DELETE FROM {table} t USING days d WHERE t.zone = d.zone AND t.day = d.day"
            f" RETURNING {', '.join('t.' + column for column in (key + ', ' + sums).split(', '))}),"
            f" kept AS (INSERT INTO {table} ({key}, {sums})"
            f" SELECT {key}, {', '.join(f'sum({column})' for column in sums.split(', '))} FROM gone"
            f" GROUP BY {key} HAVING {nonzero} RETURNING 1)"
            " SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM kept)",
            [] if zone is None else [zone],
        )
        removed += cursor.fetchone()[0]
    return removed


def drop_zone(name: str) -> bool:
    """Stop keeping rollups for a zone (its viewers' reports count the raw rows again until it is filled anew)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_LOCK])
        cursor.execute("DELETE FROM sla_reportzone WHERE name = %s", [name])
        listed = cursor.rowcount > 0
        cursor.execute("DELETE FROM sla_outcomeday WHERE zone = %s", [name])
        cursor.execute("DELETE FROM sla_ticketday WHERE zone = %s", [name])
    return listed


def zones() -> list[ReportZone]:
    return list(ReportZone.objects.order_by("name"))
