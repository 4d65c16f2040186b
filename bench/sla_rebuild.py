"""`sla_rebuild` throughput (issue 5): replay every clock's ledger at 100k tickets and print clocks per second.
Prints figures, asserts nothing (STYLE.md: benchmarks are not tests).

    .venv/bin/python bench/sla_rebuild.py --tickets 100000 [--database itsm_bench_sla] [--fresh] [--batch-size 500]

Works only in a database whose name starts with `itsm_bench_` on the server named by `DATABASE_URL` (created when
missing; `--fresh` drops it first): `migrate`, `seed_bulk --tickets N` (COPY), an office-hours calendar (London,
Mon–Fri 09:00–17:00 with English holidays) and one policy, then two clocks per ticket written set-based with
`INSERT … SELECT` (no services, no outcomes, no stored deadlines): a first-response clock met after 30 minutes, and a
resolution clock that is met at the ticket's resolution, cancelled with it, or still running after an hour's pause.
Then it times `clocks_rebuild` twice: the first run repairs every figure (writes deadlines and outcome rows), the
second only replays and compares (it must find nothing). How to read the output: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH_DATABASE = re.compile(r"^itsm_bench_[a-z0-9_]+$")
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/itsm"

CLOCKS_SQL = """
INSERT INTO sla_clock (ticket_id, target_id, team_id, state, started_at, target_seconds, next_deadline_at, due_at,
                       breached_at, finished_at, stop_reason)
SELECT t.id, %(first)s, NULL::bigint, 'met', t.created_at, 3600, NULL::timestamptz, NULL::timestamptz,
       NULL::timestamptz, t.created_at + interval '30 minutes', 'first_reply'
FROM tickets_ticket t WHERE NOT EXISTS (SELECT 1 FROM sla_clock c WHERE c.ticket_id = t.id)
UNION ALL
SELECT t.id, %(resolution)s, NULL::bigint,
       CASE WHEN t.state IN ('resolved', 'closed') THEN 'met' WHEN t.state = 'cancelled' THEN 'cancelled'
            ELSE 'running' END,
       t.created_at, 8 * 3600, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz,
       CASE WHEN t.state IN ('resolved', 'closed') THEN GREATEST(t.resolved_at, t.created_at + interval '2 hours')
            WHEN t.state = 'cancelled' THEN t.updated_at END,
       CASE WHEN t.state IN ('resolved', 'closed') THEN 'resolved' WHEN t.state = 'cancelled' THEN 'ticket_final'
            ELSE '' END
FROM tickets_ticket t WHERE NOT EXISTS (SELECT 1 FROM sla_clock c WHERE c.ticket_id = t.id)
"""

# first response: [start, +30 min); resolution: running 1 h, paused 1 h, then running to its finish (or open)
SEGMENTS_SQL = """
INSERT INTO sla_clocksegment (clock_id, kind, start, "end")
SELECT c.id, 'running', c.started_at, LEAST(c.started_at + interval '1 hour', COALESCE(c.finished_at, 'infinity'))
FROM sla_clock c
UNION ALL
SELECT c.id, 'paused', c.started_at + interval '1 hour', c.started_at + interval '2 hours'
FROM sla_clock c
WHERE c.target_id = %(resolution)s AND COALESCE(c.finished_at, 'infinity') >= c.started_at + interval '2 hours'
UNION ALL
SELECT c.id, 'running', c.started_at + interval '2 hours', c.finished_at
FROM sla_clock c
WHERE c.target_id = %(resolution)s AND COALESCE(c.finished_at, 'infinity') >= c.started_at + interval '2 hours'
"""


def database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def ensure_database(base: str, name: str, fresh: bool) -> None:
    import psycopg2

    parts = urlsplit(base)
    connection = psycopg2.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres", dbname="postgres"
    )
    connection.autocommit = True
    with connection.cursor() as cursor:
        if fresh:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--database", default="itsm_bench_sla")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--years", type=float, default=0.1, help="seed_bulk: spread creation over this many years")
    args = parser.parse_args()
    if not BENCH_DATABASE.match(args.database):
        print(f"refusing to use {args.database!r}: the name must start with itsm_bench_", file=sys.stderr)
        return 2
    base = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    ensure_database(base, args.database, args.fresh)
    os.environ["DATABASE_URL"] = database_url(base, args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itsm.settings")
    import django

    django.setup()
    from datetime import time as clock_time

    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from itsm.logs import quiet_loggers
    from sla import services
    from sla.models import Clock, ClockOutcome, ClockSegment, SlaPolicy
    from sla.rebuild import clocks_rebuild
    from tickets.models import Ticket

    with quiet_loggers():
        call_command("migrate", verbosity=0)
        have = Ticket.objects.count()
        if have < args.tickets:
            print(f"seeding {args.tickets - have} tickets …", flush=True)
            call_command("seed_bulk", tickets=args.tickets - have, years=args.years, no_progress=True, verbosity=0)
    policy = SlaPolicy.objects.filter(name="Bench").first()
    if policy is None:
        office = services.calendar_create(
            actor=None, name="Bench office (London)", time_zone="Europe/London", holiday_country="GB",
            holiday_subdivision="ENG", ranges=[(day, clock_time(9), clock_time(17)) for day in range(5)],
        )  # fmt: skip
        policy = services.policy_create(
            actor=None, name="Bench", calendar=office,
            targets=[("first_response", (3600,) * 4), ("resolution", (8 * 3600,) * 4)],
        )  # fmt: skip
    targets = {target.metric: target.pk for target in policy.targets.all()}
    if not Clock.objects.exists():
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(CLOCKS_SQL, {"first": targets["first_response"], "resolution": targets["resolution"]})
            cursor.execute(SEGMENTS_SQL, {"resolution": targets["resolution"]})
            # What opening a clock records on its ticket (note_ticket_policy), so the rebuild has nothing to add there.
            cursor.execute(
                "UPDATE tickets_ticket SET sla_policy_ids = ARRAY[%(policy)s]::bigint[] WHERE sla_policy_ids = '{}'",
                {"policy": policy.pk},
            )
            cursor.execute("ANALYZE sla_clock; ANALYZE sla_clocksegment")
        print(f"clocks and segments written in {time.perf_counter() - started:.1f} s", flush=True)
    else:  # a re-run: put the stored figures back to "never computed" so the first rebuild repairs them all
        ClockOutcome.objects.all().delete()
        Clock.objects.update(next_deadline_at=None, due_at=None, breached_at=None)
    clocks = Clock.objects.count()
    segments = ClockSegment.objects.count()
    tickets = Ticket.objects.count()

    first_ids = list(Ticket.objects.order_by("pk").values_list("pk", flat=True)[: args.batch_size // 2])
    with CaptureQueriesContext(connection) as one_batch:
        clocks_rebuild(dry_run=True, batch_size=args.batch_size, ticket_ids=first_ids)

    from itsm import queue

    with queue.suppressed():
        started = time.perf_counter()
        repair = clocks_rebuild(batch_size=args.batch_size)
        repair_seconds = time.perf_counter() - started
        started = time.perf_counter()
        verify = clocks_rebuild(batch_size=args.batch_size)
        verify_seconds = time.perf_counter() - started

    print(f"\nsla_rebuild at {tickets} tickets ({clocks} clocks, {segments} segments), batch {args.batch_size}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"queries for one batch of {len(first_ids) * 2} clocks (dry run): {len(one_batch.captured_queries)}")
    print(
        f"repair run: {repair.clocks} clocks in {repair_seconds:.1f} s = {repair.clocks / repair_seconds:,.0f} "
        f"clocks/s ({len(repair.differences)} figures repaired on {repair.clocks_changed} clocks)"
    )
    print(
        f"verify run: {verify.clocks} clocks in {verify_seconds:.1f} s = {verify.clocks / verify_seconds:,.0f} "
        f"clocks/s ({len(verify.differences)} differences; expected 0)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
