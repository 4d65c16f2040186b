"""SLA timer benchmark (issue 5): how late breaches are written, and how fast a wave of simultaneous deadlines is
fired, with a real Celery worker (and beat) on the `timers` queue. Prints figures and ratios; asserts nothing.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/itsm REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/sla_timers.py [--database itsm_bench_sla] [--clocks 1000] [--wave 10000] \\
        [--concurrency 1,2] [--broker-db 7]

It works in its own database (`--database`, which must start with `itsm_bench_sla`; created, migrated and seeded with
`seed_bulk` on the first run, reused later) and its own Redis database (`--broker-db`, flushed before each run). Each
run makes clocks directly in bulk (running, 24×7, no warnings: one breach each), sends each clock's eta task the way
opening a clock does (`sla.services._plan_timer`), starts `celery -A itsm worker -Q timers -B` (production settings:
DJANGO_DEBUG off, beat's reconciler every 30 s) and waits until every clock is breached. Lateness is
`ClockEvent.recorded_at - ClockEvent.at` of the breach (the database's statement time minus the exact instant).
See docs/benchmarks.md "SLA timers" for results and how to read them.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH_DATABASE = re.compile(r"^itsm_bench_sla[a-z0-9_]*$")
POLLER_MEAN_LATENESS_SECONDS = 150.0  # a 5-minute poller: a deadline waits 0–300 s, 150 s on average
TARGET_P99_SECONDS = 1.0
TARGET_WAVE_SECONDS = 5.0
POLICY_NAME = "Bench timers"


def say(message: str) -> None:
    print(message, flush=True)


def database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


def ensure_database(base: str, name: str) -> bool:
    import psycopg2

    if not BENCH_DATABASE.fullmatch(name):
        raise SystemExit(f"refusing to touch database {name!r}: use a name starting with itsm_bench_sla")
    parts = urlsplit(base)
    conn = psycopg2.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres", dbname="postgres"
    )
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        exists = cursor.fetchone() is not None
        if not exists:
            cursor.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return not exists


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itsm.settings")
    import django

    django.setup()
    from django.conf import settings

    settings.DEBUG = False
    import logging

    for name in ("sla", "tickets"):  # per-clock INFO lines would drown the figures
        logging.getLogger(name).setLevel(logging.WARNING)


def prepare(tickets_needed: int) -> None:
    from django.core.management import call_command

    from tickets.models import Ticket

    call_command("migrate", verbosity=0)
    have = Ticket.objects.count()
    if have < tickets_needed:
        say(f"seeding {tickets_needed - have} tickets (seed_bulk)…")
        call_command("seed_bulk", tickets=tickets_needed - have, no_progress=True)


def bench_target() -> Any:
    from sla.models import Calendar, SlaPolicy, SlaTarget

    always, _ = Calendar.objects.get_or_create(is_24x7=True, defaults={"name": "24×7", "time_zone": "UTC"})
    policy, _ = SlaPolicy.objects.get_or_create(name=POLICY_NAME, defaults={"calendar": always, "is_active": False})
    target, _ = SlaTarget.objects.get_or_create(
        policy=policy, metric=SlaTarget.Metric.RESOLUTION,
        defaults={"p1_seconds": 3600, "p2_seconds": 3600, "p3_seconds": 3600, "p4_seconds": 3600,
                  "warning_percents": []},
    )  # fmt: skip
    return target


def make_clocks(due_instants: list[datetime]) -> list[int]:
    """Running clocks (one per ticket, bench target), each with its running segment and `started` event, whose breach
    is at the given instants (whole seconds). Previous bench clocks are deleted first."""
    from django.db import transaction

    from sla.models import Clock, ClockEvent, ClockSegment
    from tickets.models import Ticket

    target = bench_target()
    Clock.objects.filter(target=target).delete()
    ticket_ids = list(Ticket.objects.order_by("pk").values_list("pk", flat=True)[: len(due_instants)])
    if len(ticket_ids) < len(due_instants):
        raise SystemExit(f"only {len(ticket_ids)} tickets for {len(due_instants)} clocks")
    seconds = target.p1_seconds
    with transaction.atomic():
        clocks = Clock.objects.bulk_create(
            Clock(
                ticket_id=ticket_id, target=target, state=Clock.State.RUNNING, target_seconds=seconds,
                started_at=due - timedelta(seconds=seconds), next_deadline_at=due, due_at=due,
            )
            for ticket_id, due in zip(ticket_ids, due_instants, strict=True)
        )  # fmt: skip
        ClockSegment.objects.bulk_create(
            ClockSegment(clock=clock, kind=ClockSegment.Kind.RUNNING, start=clock.started_at) for clock in clocks
        )
        ClockEvent.objects.bulk_create(
            ClockEvent(clock=clock, kind=ClockEvent.Kind.STARTED, at=clock.started_at) for clock in clocks
        )
    return [clock.pk for clock in clocks]


def plan(clock_ids: list[int]) -> float:
    """Send each clock's eta task as opening it would; returns the seconds it took."""
    from sla import services
    from sla.models import Clock

    began = time.monotonic()
    for clock in Clock.objects.filter(pk__in=clock_ids).order_by("pk"):
        services._plan_timer(clock)
    return time.monotonic() - began


class Worker:
    def __init__(self, url: str, broker: str, concurrency: int, log: Path) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": broker,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        }
        pool = ["-P", "solo"] if concurrency == 1 else ["-P", "prefork", "-c", str(concurrency)]
        self.log = log
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "celery", "-A", "itsm", "worker", "-Q", "timers", *pool, "-B",
             "-s", str(log.with_suffix(".beat")), "-l", "WARNING", "-f", str(log),
             "--without-mingle", "--without-gossip", "--without-heartbeat"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, broker: str) -> None:
        import redis

        client = redis.Redis.from_url(broker)
        deadline = time.monotonic() + 60
        # The worker's start-up reconciler pass is the first message it consumes: ready once the queue is drained and
        # its kombu bindings exist.
        while time.monotonic() < deadline:
            if client.exists("_kombu.binding.timers") and self.process.poll() is None:
                time.sleep(3)
                return
            time.sleep(0.2)
        raise SystemExit(f"the worker did not start; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)


def breach_lateness(clock_ids: list[int]) -> list[float]:
    from sla.models import ClockEvent

    rows = ClockEvent.objects.filter(clock_id__in=clock_ids, kind=ClockEvent.Kind.BREACHED).values_list(
        "recorded_at", "at"
    )
    return [(recorded - at).total_seconds() for recorded, at in rows]


def wait_all_breached(clock_ids: list[int], until: datetime) -> int:
    from django.utils import timezone

    from sla.models import ClockEvent

    while True:
        done = ClockEvent.objects.filter(clock_id__in=clock_ids, kind=ClockEvent.Kind.BREACHED).count()
        if done >= len(clock_ids) or timezone.now() > until:
            return done
        time.sleep(0.5)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))]


def whole_second(instant: datetime) -> datetime:
    return instant.replace(microsecond=0) + timedelta(seconds=1)


def run_latency(count: int, broker: str) -> dict[str, float]:
    from django.utils import timezone

    start = whole_second(timezone.now()) + timedelta(seconds=15)
    due = [start + timedelta(seconds=(60 * n) // count) for n in range(count)]
    clock_ids = make_clocks(due)
    sent = plan(clock_ids)
    done = wait_all_breached(clock_ids, due[-1] + timedelta(seconds=90))
    lateness = breach_lateness(clock_ids)
    return {
        "clocks": count, "breached": done, "send_s": sent,
        "p50": statistics.median(lateness), "p99": percentile(lateness, 0.99), "max": max(lateness),
        "mean": statistics.fmean(lateness), "min": min(lateness),
    }  # fmt: skip


def run_wave(count: int, broker: str, seconds_per_message: float) -> dict[str, float]:
    from django.utils import timezone

    # Time to make the clocks and publish their messages before the instant, inside the timer horizon (120 s).
    lead = min(115, 15 + round(count * seconds_per_message * 1.5))
    instant = whole_second(timezone.now()) + timedelta(seconds=lead)
    clock_ids = make_clocks([instant] * count)
    sent = plan(clock_ids)
    if timezone.now() >= instant:
        say(f"  warning: sending the {count} eta tasks took {sent:.1f} s, past the instant; raise the lead")
    done = wait_all_breached(clock_ids, instant + timedelta(seconds=300))
    lateness = breach_lateness(clock_ids)
    return {
        "clocks": count, "breached": done, "send_s": sent,
        "all_breached_s": max(lateness), "p50": statistics.median(lateness), "p99": percentile(lateness, 0.99),
    }  # fmt: skip


def count_queries(sample: int) -> dict[str, float]:
    """SQL statements per clock, counted in this process on the code the worker runs: the eta task on a due clock
    (`clock_timer_fire`, nothing else overdue), the same task delivered again (a no-op), and batch firing of
    overdue clocks (`clocks_fire_overdue`, what a wave's first task and the reconciler do)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from itsm.queue import suppressed
    from sla import services

    now = timezone.now()
    clock_ids = make_clocks([now.replace(microsecond=0) - timedelta(seconds=5)])
    with suppressed(), CaptureQueriesContext(connection) as single:
        services.clock_timer_fire(clock_id=clock_ids[0], now=now)
    with suppressed(), CaptureQueriesContext(connection) as again:
        services.clock_timer_fire(clock_id=clock_ids[0], now=now)
    clock_ids = make_clocks([now.replace(microsecond=0) - timedelta(seconds=5)] * sample)
    with suppressed(), CaptureQueriesContext(connection) as batch:
        counts = services.clocks_fire_overdue(now=now)
    if counts["fired"] != sample:
        raise SystemExit(f"batch firing fired {counts} of {sample} clocks")
    return {"fire": len(single), "duplicate": len(again), "batch_per_clock": len(batch) / sample}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="itsm_bench_sla")
    parser.add_argument("--clocks", type=int, default=1000, help="clocks due within one minute (latency)")
    parser.add_argument("--wave", type=int, default=10000, help="clocks due in the same second")
    parser.add_argument("--concurrency", default="1,2", help="worker pool sizes to measure, e.g. 1,2")
    parser.add_argument("--broker-db", type=int, default=7, help="Redis database for the broker (flushed)")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: latency, wave, queries")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/itsm")
    redis_base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    broker = urlunsplit(urlsplit(redis_base)._replace(path=f"/{args.broker_db}"))
    url = database_url(base, args.database)
    created = ensure_database(base, args.database)
    os.environ["REDIS_URL"] = broker
    setup_django(url)
    say(f"# SLA timers bench · {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} · {os.cpu_count()} cores · "
        f"load {os.getloadavg()[0]:.2f} · Python {platform.python_version()} · database {args.database}"
        f"{' (new)' if created else ''}")  # fmt: skip
    prepare(max(args.clocks, args.wave) + 1)

    import redis

    if "queries" not in skip:
        q = count_queries(200)
        say(f"queries: eta task firing one due clock {q['fire']}, the same task delivered again {q['duplicate']}, "
            f"batch firing (a wave, the reconciler) {q['batch_per_clock']:.2f} per clock (200 clocks)")  # fmt: skip

    results = []
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        redis.Redis.from_url(broker).flushdb()
        with tempfile.TemporaryDirectory() as tmp:
            worker = Worker(url, broker, concurrency, Path(tmp) / "worker.log")
            try:
                worker.wait_ready(broker)
                if "latency" not in skip:
                    lat = run_latency(args.clocks, broker)
                    ratio = POLLER_MEAN_LATENESS_SECONDS / lat["mean"] if lat["mean"] > 0 else float("inf")
                    say(f"[{concurrency} process(es)] latency over {lat['clocks']} clocks due within 60 s "
                        f"({lat['breached']} breached; sending took {lat['send_s']:.1f} s): p50 {lat['p50']:.3f} s, "
                        f"p99 {lat['p99']:.3f} s, max {lat['max']:.3f} s, mean {lat['mean']:.3f} s · "
                        f"5-minute poller mean 150 s = {ratio:.0f}× later · target p99 ≤ {TARGET_P99_SECONDS} s: "
                        f"{'ok' if lat['p99'] <= TARGET_P99_SECONDS else 'MISS'}")  # fmt: skip
                    results.append(("latency", concurrency, lat))
                if "wave" not in skip:
                    per_message = lat["send_s"] / lat["clocks"] if "latency" not in skip else 0.006
                    wave = run_wave(args.wave, broker, per_message)
                    say(f"[{concurrency} process(es)] wave of {wave['clocks']} clocks due in the same second "
                        f"({wave['breached']} breached; sending took {wave['send_s']:.1f} s): all breached "
                        f"{wave['all_breached_s']:.2f} s after the instant (p50 {wave['p50']:.2f} s, p99 "
                        f"{wave['p99']:.2f} s) · target ≤ {TARGET_WAVE_SECONDS} s: "
                        f"{'ok' if wave['all_breached_s'] <= TARGET_WAVE_SECONDS else 'MISS'}")  # fmt: skip
                    results.append(("wave", concurrency, wave))
            finally:
                worker.stop()
    bench_target().clocks.all().delete()
    say(f"# done · load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
