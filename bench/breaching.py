""" "Breaching soon" and the queue "Due" column at scale (issue 5): SQL time, plans and query counts of the desk
pages that read SLA clocks, on a ticket table of N tickets with two clocks per ticket. Prints figures; asserts
nothing (STYLE.md: benchmarks are not tests).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python -m bench.breaching --tickets 1000000 [--fresh]

It works only in the database `itsm_slaui_bench_<N>` (created if missing, reused otherwise; `--fresh` re-creates it):
`migrate`, `seed_bulk --tickets N`, then one 24×7 SLA policy and, with one INSERT … SELECT, two clocks per ticket
(first response, resolution): running with `due_at` spread from 3 days ago to 7 days ahead for open tickets (one in
ten paused, a warning fired on those past half their target), met for the others, which are not in the partial index
but are in the table. Then, for the agent of the busiest non-security team and for a manager, it renders each page
with Django's test client (3 warm-up, 15 timed) and prints median/max milliseconds and the query count, and
`EXPLAIN (ANALYZE, BUFFERS)` of the rows query of each "Breaching soon" page: the plan's top node, index and time.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from urllib.parse import urlsplit

TAG = "slaui"


def say(message: str) -> None:
    print(message, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--requests", type=int, default=15)
    args = parser.parse_args()

    import psycopg2

    base = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    name = f"itsm_{TAG}_bench_{args.tickets}"
    if not re.fullmatch(rf"itsm_{TAG}_bench_\d+", name):
        raise SystemExit("refusing to touch a database that is not a bench database of this branch")
    admin = psycopg2.connect(
        host=base.hostname, port=base.port or 5432, user=base.username or "postgres", dbname="postgres"
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        if args.fresh:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    os.environ["DATABASE_URL"] = base._replace(path=f"/{name}").geturl()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itsm.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")  # development settings import without a secret key

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from tickets.models import Ticket

    call_command("migrate", verbosity=0)
    have = Ticket.objects.count()
    if have < args.tickets:
        say(f"seeding {args.tickets - have} tickets …")
        started = time.perf_counter()
        call_command("seed_bulk", tickets=args.tickets - have, no_progress=True)
        say(f"  seeded in {time.perf_counter() - started:.0f} s")
    make_clocks()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) sla_clock")
        cursor.execute("VACUUM (ANALYZE) sla_clockevent")
        cursor.execute("VACUUM (ANALYZE) tickets_ticket")
    measure(args.requests)
    return 0


def make_clocks() -> None:
    from django.db import connection, transaction

    from sla.models import Calendar, Clock, SlaPolicy, SlaTarget

    if Clock.objects.exists():
        return
    say("making two clocks per ticket …")
    started = time.perf_counter()
    with transaction.atomic():
        policy = SlaPolicy.objects.create(name="Bench", calendar=Calendar.objects.get(is_24x7=True))
        targets = {
            metric: SlaTarget.objects.create(
                policy=policy, metric=metric, p1_seconds=s, p2_seconds=s, p3_seconds=s, p4_seconds=s
            ).pk
            for metric, s in (("first_response", 4 * 3600), ("resolution", 24 * 3600))
        }
        with connection.cursor() as cursor:
            for metric, target_id in targets.items():
                cursor.execute(
                    """
                    INSERT INTO sla_clock (ticket_id, target_id, team_id, state, started_at, target_seconds,
                                           next_deadline_at, due_at, breached_at, finished_at, stop_reason)
                    SELECT t.id, %(target)s, NULL, s.state, t.created_at, %(seconds)s,
                           CASE WHEN s.state = 'running' THEN s.due END,
                           CASE WHEN s.state = 'running' THEN s.due END,
                           NULL,
                           CASE WHEN s.state = 'met' THEN t.updated_at END,
                           CASE WHEN s.state = 'met' THEN 'resolved' ELSE '' END
                    FROM tickets_ticket t
                    CROSS JOIN LATERAL (
                        SELECT CASE WHEN t.state IN ('new', 'assigned', 'in_progress', 'pending')
                                    THEN CASE WHEN t.id %% 10 = 0 THEN 'paused' ELSE 'running' END
                                    ELSE 'met' END AS state,
                               now() - interval '3 days' + (((t.id * 7919 + %(salt)s) %% 864000) * interval '1 second')
                                   AS due
                    ) s
                    """,
                    {"target": target_id, "seconds": 4 * 3600 if metric == "first_response" else 86400,
                     "salt": 0 if metric == "first_response" else 433000},
                )  # fmt: skip
            cursor.execute(
                """
                INSERT INTO sla_clockevent (clock_id, kind, at, threshold, data)
                SELECT id, 'warned', due_at - target_seconds * interval '0.5 second', 50, '{}'::jsonb
                FROM sla_clock WHERE state = 'running' AND due_at - target_seconds * interval '0.5 second' < now()
                """
            )
    say(f"  {Clock.objects.count()} clocks, {Clock.objects.filter(state='running').count()} running, "
        f"in {time.perf_counter() - started:.0f} s")  # fmt: skip


def measure(requests: int) -> None:
    from django.conf import settings
    from django.db import connection
    from django.db.models import Count
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from django.utils import timezone

    from security.models import Membership, User
    from sla import selectors as sla_selectors
    from tickets import queues
    from tickets.models import Ticket

    # Templates report their context (rows shown); the query log is emptied before each count (it is a bounded
    # deque: once full, its length no longer grows). DEBUG off, as in production, like bench/pages.py.
    setup_test_environment()
    settings.DEBUG = False
    busiest = (
        Ticket.objects.filter(state__in=("new", "assigned", "in_progress", "pending"), team__is_security=False)
        .values("team_id")
        .annotate(n=Count("id"))
        .order_by("-n")
        .first()
    )
    assert busiest is not None  # noqa: S101
    agent = Membership.objects.filter(team_id=busiest["team_id"]).order_by("user_id").first().user  # type: ignore[union-attr]
    manager = User.objects.filter(is_manager=True).first() or User.objects.create_user(
        email="bench-manager@bench.example.org", password=None, is_manager=True
    )
    say(f"agent {agent.email} (team of {busiest['n']} open tickets), manager {manager.email}")
    pages = [
        ("team queue (Due column)", "/desk/?queue=team"),
        ("all visible (Due column)", "/desk/?queue=all"),
        ("breaching soon, 4 h", "/desk/?queue=breaching"),
        ("breaching soon, 1 h", "/desk/?queue=breaching&within=1h"),
        ("breaching soon, 24 h", "/desk/?queue=breaching&within=24h"),
        ("breached, still open", "/desk/?queue=breaching&show=breached"),
        ("breached, then soon", "/desk/?queue=breaching&show=both"),
        ("breaching, P1 only", "/desk/?queue=breaching&priority=1&within=24h"),
    ]
    for who in (agent, manager):
        client = Client()
        client.force_login(who)
        say(f"\n{who.email}")
        say(f"{'page':34} {'median ms':>10} {'max ms':>8} {'queries':>8} {'rows':>5}")
        for label, url in pages:
            for _ in range(3):
                client.get(url, secure=True)
            counted = [0]

            def count(execute, sql, params, many, context, counted=counted):
                counted[0] += 1
                return execute(sql, params, many, context)

            with connection.execute_wrapper(count):
                response = client.get(url, secure=True)
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                client.get(url, secure=True)
                times.append((time.perf_counter() - started) * 1000)
            rows = len(response.context["tickets"]) if response.context else 0
            say(f"{label:34} {statistics.median(times):10.1f} {max(times):8.1f} {counted[0]:8} {rows:5}")
        # The next page of the 24 h list: the keyset bound, not an offset.
        first = client.get("/desk/?queue=breaching&within=24h", secure=True)
        match = re.search(r'<a href="([^"]+)" rel="next">', first.content.decode())
        if match:
            url = match.group(1).replace("&amp;", "&")
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                client.get(url, secure=True)
                times.append((time.perf_counter() - started) * 1000)
            say(f"{'breaching soon, 24 h, page 2':34} {statistics.median(times):10.1f} {max(times):8.1f}")
        # The plans of the rows queries.
        for label, params in (
            ("soon 4h", {"queue": ["breaching"]}),
            ("breached", {"queue": ["breaching"], "show": ["breached"]}),
            ("both 24h", {"queue": ["breaching"], "show": ["both"], "within": ["24h"]}),
        ):
            query = queues.parse_queue(params).query
            connection.queries_log.clear()
            with CaptureQueriesContext(connection) as captured:
                sla_selectors.breaching_page(user=who, query=query, zone=timezone.get_current_timezone(),
                                             now=timezone.now())  # fmt: skip
            sql = captured.captured_queries[-1]["sql"]
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                plan = [row[0] for row in cursor.fetchall()]
            indexes = sorted(set(re.findall(r"using (\w+)", " ".join(plan), re.I)))
            total = next((line for line in plan if line.startswith("Execution Time")), "")
            say(f"  plan {label:9} {plan[0].strip()[:60]:60} | {', '.join(indexes)} | {total}")
            if os.environ.get("BENCH_FULL_PLANS"):
                say("\n".join(plan))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
