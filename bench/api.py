"""API benchmark (issue #6): server-side time and SQL queries of the ticket API as the ticket table grows. It prints
figures and ratios and asserts nothing (STYLE.md: benchmarks are not tests).

    .venv/bin/python bench/api.py --sizes 10k,1M [--fresh] [--requests 30]

For each size N the script works in its own database `itsm_bench_ticketapi_<N>` on the PostgreSQL server named by
`DATABASE_URL` (never any other database): creates and migrates it, fills it with `seed_bulk --tickets N` (reused when
it already holds N tickets), then calls each endpoint in-process with Django's test `Client` as the busiest team's
agent, signed in with a session, with `settings.DEBUG = False`. Each size runs in a child process of its own.
Measured: list (plain, filtered, searched), detail and create; the median, p95 and fastest server time and the SQL
queries per request; then the 1M/10k ratios. The database guard, the server helpers and the agent choice are the
page benchmark's (`bench/pages.py`).

Then, in the same run:
- **throughput** (unless `--no-throughput`): per size, gunicorn (`--gunicorn-workers`, production settings) serves the
  API on a free loopback port and `wrk` (Debian's `wrk`; `apt-get install wrk`) loads the list and detail endpoints
  with a real API token for `--duration` seconds each; printed are requests per second and the p50/p99 latency.
- **django-helpdesk** (unless `--no-helpdesk`): its API at the smallest size, installed into its own virtualenv
  (`bench/helpdesk_api.py`), side by side with ours, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.pages import (  # noqa: E402 - needs the repository root on sys.path (above)
    BenchError,
    Server,
    busy_team_agent,
    connect_maintenance,
    load_average,
    parse_sizes,
    percentile,
    say,
    size_label,
    vacuum_analyse,
)
from bench.pages import ensure_database as pages_ensure_database  # noqa: E402 - as above

BENCH_DATABASE = re.compile(r"^itsm_bench_ticketapi_[0-9]+$")
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/itsm"
# The rate limits (security/ratelimit.py) would measure themselves, not the API.
UNLIMITED_RATES = {"API_RATE_LIMIT_PER_TOKEN": "100000000/minute", "API_RATE_LIMIT_PER_USER": "100000000/minute"}


def require_api_database(name: str) -> None:
    if not BENCH_DATABASE.fullmatch(name):
        raise BenchError(f"refusing to touch database {name!r}: this benchmark only uses itsm_bench_ticketapi_<N>")


@dataclass
class Measure:
    key: str
    label: str
    method: str
    url: str
    status: int
    queries: int
    rows: int
    median_ms: float
    p95_ms: float
    min_ms: float


@dataclass
class Throughput:
    label: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class SizeResult:
    size: int
    tickets: int
    notes: list[str]
    measures: list[Measure]
    # A bench-only API token (tickets:read, one day) and the URLs the throughput run loads.
    token: str = ""
    load_urls: dict[str, str] = field(default_factory=dict)
    throughput: list[Throughput] = field(default_factory=list)


# --- parent ----------------------------------------------------------------------------------------------------------


def ensure_database(server: Server, name: str, *, fresh: bool) -> str:
    connection = connect_maintenance(server)
    try:
        return pages_ensure_database(connection, name, fresh=fresh, guard=require_api_database)
    finally:
        connection.close()


def run_size(server: Server, size: int, args: argparse.Namespace) -> SizeResult:
    database = f"itsm_bench_ticketapi_{size}"
    action = ensure_database(server, database, fresh=args.fresh)
    say(f"\n=== {size:,} tickets: database {database} ({action}) ===")
    with tempfile.TemporaryDirectory(prefix="itsm-bench-api-") as directory:
        output = Path(directory) / "result.json"
        command = [
            sys.executable,
            "-m",
            "bench.api",
            "--worker-size",
            str(size),
            "--worker-output",
            str(output),
            "--requests",
            str(args.requests),
            "--warmup",
            str(args.warmup),
        ]
        url = server.url.rsplit("/", 1)[0] + f"/{database}"
        environment = {
            **os.environ,
            "DATABASE_URL": url,
            "PYTHONUNBUFFERED": "1",
            # One agent makes hundreds of requests a minute here: measure the API, not its rate limits.
            **UNLIMITED_RATES,
        }
        completed = subprocess.run(command, cwd=ROOT, env=environment, check=False)  # noqa: S603 - our own script
        if completed.returncode != 0 or not output.exists():
            raise BenchError(f"the run for {size:,} tickets failed (exit code {completed.returncode}); see above")
        raw = json.loads(output.read_text(encoding="utf-8"))
    result = SizeResult(
        size=raw["size"],
        tickets=raw["tickets"],
        notes=[f"database {action}", *raw["notes"]],
        measures=[Measure(**item) for item in raw["measures"]],
        token=raw["token"],
        load_urls=raw["load_urls"],
    )
    if args.throughput:
        result.throughput = measure_throughput(url, result, args)
    return result


def print_size(result: SizeResult) -> None:
    say(f"\n{size_label(result.size)}: {result.tickets:,} tickets ({'; '.join(result.notes)})")
    say(f"{'endpoint':<34} {'status':>6} {'queries':>7} {'rows':>5} {'median':>9} {'p95':>9} {'min':>9}")
    for m in result.measures:
        say(
            f"{m.label:<34} {m.status:>6} {m.queries:>7} {m.rows:>5} {m.median_ms:>7.1f}ms {m.p95_ms:>7.1f}ms "
            f"{m.min_ms:>7.1f}ms"
        )


def print_ratios(results: list[SizeResult]) -> None:
    if len(results) < 2:
        return
    small, large = results[0], results[-1]
    say(f"\nRatios {size_label(large.size)}/{size_label(small.size)} (median, p95; queries)")
    by_key = {m.key: m for m in small.measures}
    for m in large.measures:
        base = by_key.get(m.key)
        if base is None:
            continue
        say(
            f"{m.label:<34} {m.median_ms / base.median_ms:>6.2f}x {m.p95_ms / base.p95_ms:>6.2f}x   "
            f"queries {base.queries} -> {m.queries}"
        )


def print_throughput(results: list[SizeResult]) -> None:
    rows = [(result, item) for result in results for item in result.throughput]
    if not rows:
        return
    say("\nThroughput over HTTP (gunicorn + wrk, API token)")
    say(f"{'size':<6} {'endpoint':<22} {'req/s':>9} {'p50':>9} {'p99':>9} {'errors':>7}")
    for result, item in rows:
        say(
            f"{size_label(result.size):<6} {item.label:<22} {item.requests_per_second:>9.1f} {item.p50_ms:>7.1f}ms "
            f"{item.p99_ms:>7.1f}ms {item.errors:>7}"
        )


def print_helpdesk(ours: SizeResult, theirs: dict[str, Any]) -> None:
    """Side by side at the same size: django-helpdesk's median over ours, per endpoint both have."""
    say(f"\ndjango-helpdesk {theirs['version']} at {theirs['tickets']:,} tickets against ours at {ours.size:,}")
    say(f"{'endpoint':<10} {'helpdesk':>10} {'queries':>8} {'ours':>9} {'queries':>8} {'ratio':>9}")
    by_key = {m.key: m for m in ours.measures}
    for key, endpoint in theirs["endpoints"].items():
        mine = by_key.get(key)  # both measure list, filtered, detail and create
        if mine is None:
            continue
        median = statistics.median(endpoint["ms"])
        say(
            f"{key:<10} {median:>8.1f}ms {endpoint['queries']:>8} {mine.median_ms:>7.1f}ms {mine.queries:>8} "
            f"{median / mine.median_ms:>8.0f}x"
        )


def run_parent(args: argparse.Namespace) -> int:
    server = Server.from_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    say(f"API benchmark on {server.label}; load average {load_average()}")
    results = [run_size(server, size, args) for size in args.sizes]
    helpdesk = None
    if args.helpdesk:
        from bench.helpdesk_api import measure_helpdesk

        say(f"\n=== django-helpdesk at {args.sizes[0]:,} tickets ===")
        helpdesk = measure_helpdesk(tickets=args.sizes[0], repeat=args.helpdesk_requests, base_url=server.url)
    for result in results:
        print_size(result)
    print_ratios(results)
    print_throughput(results)
    if helpdesk is not None:
        print_helpdesk(results[0], helpdesk)
    say(f"\nload average at the end {load_average()}")
    if args.json:
        raw = {"sizes": [asdict(r) | {"token": ""} for r in results], "helpdesk": helpdesk}
        Path(args.json).write_text(json.dumps(raw, indent=2), encoding="utf-8")
    return 0


# --- throughput (gunicorn + wrk) -------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def parse_wrk(label: str, output: str) -> Throughput:
    """Requests per second, the 50 % and 99 % latencies (`--latency`) and non-2xx answers from wrk's report."""
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def latency(percent: str) -> float:
        match = re.search(rf"^\s*{percent}%\s+([0-9.]+)(us|ms|s)\s*$", output, re.M)
        return float(match.group(1)) * units[match.group(2)] if match else float("nan")

    rate = re.search(r"^Requests/sec:\s+([0-9.]+)", output, re.M)
    errors = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", output)
    return Throughput(
        label=label,
        requests_per_second=float(rate.group(1)) if rate else 0.0,
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        errors=int(errors.group(1)) if errors else 0,
    )


def measure_throughput(database_url: str, result: SizeResult, args: argparse.Namespace) -> list[Throughput]:
    """Serve this size's database with gunicorn (production settings) and load two endpoints with wrk."""
    import secrets
    import shutil
    import signal
    import socket

    wrk = shutil.which("wrk")
    if wrk is None:
        say("wrk is not installed (apt-get install wrk): skipping the throughput run")
        return []
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        **UNLIMITED_RATES,
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable, "-m", "gunicorn", "itsm.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.gunicorn_workers), "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=environment, start_new_session=True)  # noqa: S603
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise BenchError("gunicorn did not start; see above") from None
                time.sleep(0.2)
        measured = []
        for label, path in result.load_urls.items():
            say(f"wrk {label} for {args.duration}s …")
            completed = subprocess.run(  # noqa: S603 - fixed argv
                [
                    wrk, "-t", "2", "-c", str(args.connections), "-d", f"{args.duration}s", "--latency",
                    "-H", f"Authorization: Bearer {result.token}", f"http://127.0.0.1:{port}{path}",
                ],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            measured.append(parse_wrk(label, completed.stdout))
        return measured
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


# --- worker (one size, in its own process) ---------------------------------------------------------------------------


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itsm.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    import django

    django.setup()
    from django.conf import settings

    require_api_database(str(settings.DATABASES["default"]["NAME"]))
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]


def prepare(size: int) -> list[str]:
    from django.core.management import call_command

    from tickets.models import Ticket

    call_command("migrate", interactive=False, verbosity=0)
    have = Ticket.objects.count()
    if have >= size:
        return [f"reused {have:,} tickets"]
    started = time.monotonic()
    say(f"seeding {size - have:,} tickets with seed_bulk …")
    call_command("seed_bulk", tickets=size - have)
    vacuum_analyse()
    return [f"seeded {size - have:,} tickets in {time.monotonic() - started:.0f}s"]


def measure(client: Any, key: str, label: str, method: str, url: str, body: Any, args: argparse.Namespace) -> Measure:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def call() -> Any:
        if method == "POST":
            return client.post(url, body(), content_type="application/json")
        return client.get(url)

    for _ in range(args.warmup):
        call()
    with CaptureQueriesContext(connection) as captured:
        response = call()
    # Read now: every request starts by clearing the connection's query log.
    queries = len(captured.captured_queries)
    timings = []
    for _ in range(args.requests):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    data = response.json()
    rows = len(data) if isinstance(data, list) else len(data.get("results", [data]))
    return Measure(
        key=key,
        label=label,
        method=method,
        url=url,
        status=response.status_code,
        queries=queries,
        rows=rows,
        median_ms=statistics.median(timings),
        p95_ms=percentile(timings, 0.95),
        min_ms=min(timings),
    )


def run_worker(args: argparse.Namespace) -> int:
    setup_django()
    import itertools
    import logging

    logging.getLogger("tickets").setLevel(logging.WARNING)

    from django.test import Client

    from tickets.models import Category, Ticket

    notes = prepare(args.worker_size)
    team, agent, open_tickets = busy_team_agent()
    notes.append(f"agent {agent.email} of {team.name} ({open_tickets:,} open tickets)")
    client = Client()
    client.force_login(agent)
    sample = Ticket.objects.filter(team=team).order_by("-updated_at", "-id").only("number").first()
    category = Category.objects.filter(default_team=team, is_active=True).order_by("id").first()
    if sample is None or category is None:
        raise BenchError(f"team {team.name} has no ticket or category")
    counter = itertools.count()
    specs = [
        ("list", "list: plain", "GET", "/api/v1/tickets/", None),
        ("filtered", "list: in progress, P2", "GET", "/api/v1/tickets/?state=in_progress&priority=2", None),
        (
            "team",
            "list: team, open, by priority",
            "GET",
            f"/api/v1/tickets/?team={team.pk}&state=new&state=assigned&state=in_progress&ordering=priority",
            None,
        ),
        ("search", "list: search 'install'", "GET", "/api/v1/tickets/?q=install", None),
        ("search2", "list: search 'printer'", "GET", "/api/v1/tickets/?q=printer", None),
        ("detail", "detail", "GET", f"/api/v1/tickets/{sample.number}/", None),
        ("events", "timeline", "GET", f"/api/v1/tickets/{sample.number}/events/", None),
        (
            "create",
            "create",
            "POST",
            "/api/v1/tickets/",
            lambda: json.dumps({"title": f"Bench ticket {next(counter)}", "category": category.pk}),
        ),
    ]
    measures = []
    for key, label, method, url, body in specs:
        say(f"measuring {label} …")
        measures.append(measure(client, key, label, method, url, body, args))
    from datetime import timedelta

    from django.utils import timezone

    from security.token_services import token_create

    token = token_create(
        actor=agent,
        owner=agent,
        name="bench/api.py",
        scopes=["tickets:read"],
        expires_at=timezone.now() + timedelta(days=1),
    )
    result = SizeResult(
        size=args.worker_size,
        tickets=Ticket.objects.count(),
        notes=notes,
        measures=measures,
        token=token.secret,
        load_urls={"list: plain": "/api/v1/tickets/", "detail": f"/api/v1/tickets/{sample.number}/"},
    )
    Path(args.worker_output).write_text(json.dumps(asdict(result)), encoding="utf-8")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python bench/api.py", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000, 1_000_000], help="e.g. 10k,1M (default)")
    parser.add_argument(
        "--fresh", action="store_true", help="drop and re-create the itsm_bench_ticketapi_<N> databases"
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON to PATH")
    parser.add_argument("--no-throughput", dest="throughput", action="store_false", help="skip gunicorn + wrk")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk load per endpoint (default 10)")
    parser.add_argument("--no-helpdesk", dest="helpdesk", action="store_false", help="skip django-helpdesk")
    parser.add_argument("--helpdesk-requests", type=int, default=5, help="timed requests per helpdesk endpoint")
    parser.add_argument("--worker-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.worker_size is not None:
            return run_worker(args)
        return run_parent(args)
    except BenchError as exc:
        print(f"api bench: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
