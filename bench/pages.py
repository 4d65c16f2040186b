"""Page benchmark (issue #4): server-side response time and SQL queries of the desk and portal pages as the ticket
table grows. It prints figures and ratios and asserts nothing (STYLE.md: benchmarks are not tests).

    .venv/bin/python bench/pages.py --sizes 10000,1000000 [--fresh] [--explain]
    .venv/bin/python -m bench.pages --sizes 10k,1M

For each size N the script works in its own database `itsm_bench_<N>` on the PostgreSQL server named by
`DATABASE_URL` and never touches any other database: it creates it (drops and re-creates it with `--fresh`), migrates
it, fills it with `seed_bulk --tickets N` (reused when it already holds N tickets or more), adds two fixtures (a ticket
with a 200-event timeline made through the services, and a requester with 500 tickets), then renders each page
in-process with Django's test `Client` and times it. Each size runs in a child process of its own, so each size gets a
fresh Django whose settings point at its database. How to read the output: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from django.test import Client

    from security.models import Team, User
    from tickets.models import Ticket

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # `python bench/pages.py` puts bench/ first on the import path, not the project.
    sys.path.insert(0, str(ROOT))

from itsm.logs import quiet_loggers  # noqa: E402 - needs the repository root on sys.path (above)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/itsm"  # the settings' own default
BENCH_DATABASE = re.compile(r"^itsm_bench_[0-9]+$")

# Targets for the largest size (issue #4); printed next to the figures, never asserted.
TARGET_QUERIES = 12
TARGET_P95_MS = 50.0
TARGET_RATIO = 1.5

TIMELINE_EVENTS = 200
PORTAL_TICKETS = 500
BENCH_EMAIL_DOMAIN = "bench.example.org"
TIMELINE_REQUESTER = f"bench-timeline-requester@{BENCH_EMAIL_DOMAIN}"
PORTAL_REQUESTER = f"bench-portal-requester@{BENCH_EMAIL_DOMAIN}"
TIMELINE_TITLE = "Bench: VPN drops whenever the laptop roams (long history)"
# Searched queues, one page per word: "install" is in titles of the busy team's own category ("Install Visio"), so
# many of the agent's visible tickets match; "printer" is in another team's titles ("Printer out of toner"), so few
# do; "suspicious" is only in confidential security titles ("Suspicious invoice e-mail"), so none of them does.
DEFAULT_SEARCH_WORDS = "install,printer,suspicious"

# The agent's replies, notes and state changes that make the long timeline, in a repeating order.
TIMELINE_CYCLE = ("reply", "note", "pending", "note", "resume", "reply", "note", "note")


class BenchError(Exception):
    """A problem the user can fix (server unreachable, bad arguments, a page that does not answer 200)."""


def say(message: str) -> None:
    print(message, flush=True)


def size_label(size: int) -> str:
    if size >= 1_000_000 and size % 100_000 == 0:
        return f"{size / 1_000_000:g}M"
    if size >= 1_000 and size % 100 == 0:
        return f"{size / 1_000:g}k"
    return str(size)


def parse_size(text: str) -> int:
    match = re.fullmatch(r"([0-9][0-9_]*(?:\.[0-9]+)?)([kKmM]?)", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use 10000, 10k or 1M)")
    factor = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    size = round(float(match.group(1).replace("_", "")) * factor)
    if size < 1:
        raise argparse.ArgumentTypeError(f"a size must be at least 1, not {text!r}")
    return size


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({parse_size(part) for part in text.split(",") if part.strip()})
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one size, e.g. --sizes 10000,1000000")
    return sizes


def parse_words(text: str) -> list[str]:
    words = [word.strip() for word in text.split(",") if word.strip()]
    if not words:
        raise argparse.ArgumentTypeError("give at least one search word")
    return words


def require_bench_database(name: str) -> None:
    """The one guard in front of every CREATE, DROP, migrate and seed: only `itsm_bench_<N>` databases."""
    if not BENCH_DATABASE.fullmatch(name):
        raise BenchError(f"refusing to touch database {name!r}: the benchmark only uses databases named itsm_bench_<N>")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: with 30 samples, p95 is the 29th fastest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# --- results ---------------------------------------------------------------------------------------------------------


@dataclass
class PageResult:
    key: str
    label: str
    url: str
    median_ms: float
    p95_ms: float
    min_ms: float
    max_ms: float
    queries: int
    rows: int | None  # tickets listed, or timeline entries shown
    kilobytes: float
    notes: list[str] = field(default_factory=list)
    explain: list[str] = field(default_factory=list)  # summary of the main list query's plan
    plan: list[str] = field(default_factory=list)  # the whole plan, with --explain-full


@dataclass
class SizeResult:
    size: int
    database: str
    tickets: int
    preparation: list[str]
    subjects: list[str]
    pages: list[PageResult]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SizeResult:
        pages = [PageResult(**page) for page in data.pop("pages")]
        return cls(pages=pages, **data)


# --- the parent: server checks, databases, one child process per size ----------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str
    host: str
    port: str
    user: str
    password: str
    options: dict[str, str]

    @classmethod
    def from_url(cls, url: str) -> Server:
        from django.core.exceptions import ImproperlyConfigured

        from itsm.env import database_from_url

        try:
            parsed = database_from_url(url)
        except ImproperlyConfigured as exc:
            raise BenchError(f"DATABASE_URL: {exc}") from exc
        return cls(
            url=url,
            host=parsed["HOST"],
            port=parsed["PORT"],
            user=parsed["USER"],
            password=parsed["PASSWORD"],
            options=parsed["OPTIONS"],
        )

    @property
    def label(self) -> str:
        return f"{self.host or 'local socket'}:{self.port or '5432'}"

    def url_for(self, database: str) -> str:
        require_bench_database(database)
        return urlsplit(self.url)._replace(path=f"/{quote(database)}").geturl()

    def connect(self, database: str) -> Any:
        import psycopg2

        params: dict[str, Any] = {"dbname": database, "connect_timeout": 5, **self.options}
        for key, value in (("host", self.host), ("port", self.port), ("user", self.user), ("password", self.password)):
            if value:
                params[key] = value
        return psycopg2.connect(**params)


def connect_maintenance(server: Server) -> Any:
    """An autocommit connection to a maintenance database, for CREATE/DROP DATABASE (never to an application one)."""
    import psycopg2

    error = ""
    for database in ("postgres", "template1"):
        try:
            connection = server.connect(database)
        except psycopg2.OperationalError as exc:
            error = " ".join(str(exc).split())
            if "does not exist" in error:
                continue  # no "postgres" database on this server: try template1
            break
        connection.autocommit = True
        return connection
    raise BenchError(
        f"cannot reach PostgreSQL at {server.label} as user {server.user or '(default)'}: {error} "
        "Is the server running, and does DATABASE_URL point at it?"
    )


def ensure_database(
    connection: Any, name: str, *, fresh: bool, guard: Callable[[str], None] = require_bench_database
) -> str:
    """Create database `name` (drop it first with `fresh`) through the maintenance `connection`, after `guard` has
    refused any name the calling benchmark must not touch. Returns what was done."""
    import psycopg2
    from psycopg2 import sql

    guard(name)
    identifier = sql.Identifier(name)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            exists = cursor.fetchone() is not None
            if exists and not fresh:
                return "reused"
            if exists:
                cursor.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(identifier))
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(identifier))
    except psycopg2.Error as exc:
        raise BenchError(f"could not create database {name}: {str(exc).strip()}") from exc
    return "dropped and re-created" if exists else "created"


def run_size(server: Server, size: int, args: argparse.Namespace, *, explain: bool) -> SizeResult:
    database = f"itsm_bench_{size}"
    maintenance = connect_maintenance(server)
    try:
        action = ensure_database(maintenance, database, fresh=args.fresh)
    finally:
        maintenance.close()
    say(f"\n=== {size:,} tickets: database {database} ({action}) ===")
    with tempfile.TemporaryDirectory(prefix="itsm-bench-") as directory:
        output = Path(directory) / "result.json"
        command = [
            sys.executable,
            "-m",
            "bench.pages",
            "--worker-size",
            str(size),
            "--worker-output",
            str(output),
            "--warmup",
            str(args.warmup),
            "--requests",
            str(args.requests),
            "--search-words",
            ",".join(args.search_words),
        ]
        if explain:
            command.append("--explain")
        if args.explain_full:
            command.append("--explain-full")
        environment = {**os.environ, "DATABASE_URL": server.url_for(database), "PYTHONUNBUFFERED": "1"}
        # A child per size: a fresh Django whose settings name the bench database, nothing cached across sizes.
        completed = subprocess.run(command, cwd=ROOT, env=environment, check=False)  # noqa: S603 - our own script
        if completed.returncode != 0 or not output.exists():
            raise BenchError(f"the run for {size:,} tickets failed (exit code {completed.returncode}); see above")
        result = SizeResult.from_json(json.loads(output.read_text(encoding="utf-8")))
    result.preparation.insert(0, f"database {action}")
    return result


def server_version(server: Server) -> str:
    connection = connect_maintenance(server)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            (version,) = cursor.fetchone()
    finally:
        connection.close()
    return str(version).split(" ")[0]


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def verdict(largest: PageResult, ratio: float | None) -> str:
    misses = []
    if largest.queries > TARGET_QUERIES:
        misses.append(f"{largest.queries} queries > {TARGET_QUERIES}")
    if largest.p95_ms > TARGET_P95_MS:
        misses.append(f"p95 {largest.p95_ms:.1f} ms > {TARGET_P95_MS:g}")
    if ratio is not None and ratio > TARGET_RATIO:
        misses.append(f"ratio {ratio:.2f}x > {TARGET_RATIO:g}x")
    return "ok" if not misses else "MISS: " + "; ".join(misses)


def format_ratio(large: float, small: float) -> str:
    return f"{large / small:.2f}x" if small else "-"


def print_summary(results: list[SizeResult]) -> None:
    smallest, largest = results[0], results[-1]
    small_label, large_label = size_label(smallest.size), size_label(largest.size)
    compared = len(results) > 1
    say("\n## Figures (ms: median, p95 and min of the timed requests; SQL queries per request)\n")
    header = ["page"]
    for result in results:
        label = size_label(result.size)
        header += [f"{label} median", f"{label} p95", f"{label} min", f"{label} queries"]
    say("| " + " | ".join(header) + " |")
    say("|" + "---|" * len(header))
    for index, page in enumerate(largest.pages):
        cells = [page.label]
        for result in results:
            other = result.pages[index]
            cells += [f"{other.median_ms:.1f}", f"{other.p95_ms:.1f}", f"{other.min_ms:.1f}", str(other.queries)]
        say("| " + " | ".join(cells) + " |")

    title = f"{large_label}/{small_label}" if compared else "(one size: no ratio)"
    say(
        f"\n## Ratios {title} and targets at {large_label} "
        f"(<= {TARGET_QUERIES} queries, p95 <= {TARGET_P95_MS:g} ms, median ratio <= {TARGET_RATIO:g}x)\n"
    )
    say(
        f"| page | median ratio | p95 ratio | min ratio | queries {small_label} -> {large_label} | "
        f"rows {small_label} -> {large_label} | at {large_label} |"
    )
    say("|---|---|---|---|---|---|---|")
    uneven = []
    for index, page in enumerate(largest.pages):
        small = smallest.pages[index]
        ratio = page.median_ms / small.median_ms if compared and small.median_ms else None
        ratios = (
            [format_ratio(page.median_ms, small.median_ms), format_ratio(page.p95_ms, small.p95_ms)]
            + [format_ratio(page.min_ms, small.min_ms)]
            if compared
            else ["-", "-", "-"]
        )
        rows = f"{small.rows if small.rows is not None else '-'} -> {page.rows if page.rows is not None else '-'}"
        say(
            f"| {page.label} | {' | '.join(ratios)} | {small.queries} -> {page.queries} | {rows} | "
            f"{verdict(page, ratio)} |"
        )
        if compared and small.rows != page.rows:
            uneven.append(page.label)
    notes = [f"{page.label}: {note}" for page in largest.pages for note in page.notes]
    notes += [
        f"{label}: the page shows a different number of rows at {small_label} and {large_label}, so its ratio also "
        "measures rendering more (or fewer) rows, not only the bigger table"
        for label in uneven
    ]
    if notes:
        say(f"\nNotes at {large_label}:")
        for note in notes:
            say(f"- {note}")


def run_parent(args: argparse.Namespace) -> int:
    import django

    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    server = Server.from_url(url)
    sizes: list[int] = args.sizes
    version = server_version(server)  # fails early and clearly when the server is unreachable
    started = datetime.now(tz=UTC)
    say(
        f"Page benchmark, {started:%Y-%m-%d %H:%M} UTC: sizes {', '.join(f'{size:,}' for size in sizes)}; "
        f"PostgreSQL {version} at {server.label}; Python {platform.python_version()}, Django {django.get_version()}; "
        f"{os.cpu_count()} CPU cores, load average {load_average()}."
    )
    say(
        f"Each page: {args.warmup} warm-up requests, 1 request counting SQL queries, {args.requests} timed requests, "
        "in-process through Django's test Client (no network, no web server)."
    )
    results = []
    for size in sizes:
        results.append(run_size(server, size, args, explain=args.explain and size == sizes[-1]))
    say(f"\nFinished in {(datetime.now(tz=UTC) - started).total_seconds():.0f}s; load average {load_average()}.")
    print_summary(results)
    if args.json:
        payload = {
            "started": started.isoformat(),
            "postgres": version,
            "cpu_cores": os.cpu_count(),
            "results": [asdict(result) for result in results],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2), encoding="utf-8")
        say(f"\nRaw results: {args.json}")
    return 0


# --- the child: one size, inside Django ------------------------------------------------------------------------------


def setup_django() -> str:
    """Configure Django for timing; returns a note on the settings used."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itsm.settings")
    # Like ./run: development settings import without a secret key. DEBUG itself is switched off below.
    debug_env = os.environ.setdefault("DJANGO_DEBUG", "1")
    import django

    django.setup()
    from django.conf import settings

    require_bench_database(str(settings.DATABASES["default"]["NAME"]))
    # Time what production runs: templates compiled without debug information and no query log. This happens before
    # anything builds the template engines (the system checks of `migrate` would). CaptureQueriesContext still
    # counts queries with DEBUG off.
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    return f"settings imported with DJANGO_DEBUG={debug_env}, then settings.DEBUG=False before the first request"


def prepare_database(size: int) -> tuple[list[str], int]:
    from django.core.management import call_command

    from tickets.models import Ticket

    notes = []
    started = time.monotonic()
    say("migrating …")
    call_command("migrate", interactive=False, verbosity=0)
    say(f"migrated in {time.monotonic() - started:.1f}s")
    have = Ticket.objects.count()
    changed = False
    if have >= size:
        say(f"reusing the {have:,} tickets already there")
        notes.append(f"reused {have:,} tickets")
    else:
        missing = size - have
        say(f"seeding {missing:,} tickets with seed_bulk (~13k tickets/s; a progress bar shows on a terminal) …")
        started = time.monotonic()
        call_command("seed_bulk", tickets=missing)
        notes.append(f"seeded {missing:,} tickets in {time.monotonic() - started:.0f}s")
        changed = True
    return notes, int(changed)


def busy_team_agent() -> tuple[Team, User, int]:
    """The non-security team with the most open tickets, and its first agent (by id)."""
    from django.db.models import Count

    from security.models import Membership, Team
    from tickets.models import Ticket
    from tickets.state import OPEN_STATES

    row = (
        Ticket.objects.filter(state__in=sorted(OPEN_STATES), team__isnull=False, team__is_security=False)
        .values("team")
        .annotate(open_tickets=Count("id"))
        .order_by("-open_tickets", "team")
        .first()
    )
    if row is None:
        raise BenchError("no open tickets in any team: did seed_bulk run?")
    team = Team.objects.get(pk=row["team"])
    membership = (
        Membership.objects.filter(team=team, user__is_active=True)
        .select_related("user")
        .order_by("role", "user_id")  # "agent" sorts before "lead": an agent, not the lead
        .first()
    )
    if membership is None:
        raise BenchError(f"team {team.name} has no active members")
    return team, membership.user, int(row["open_tickets"])


def bench_user_ensure(email: str, full_name: str) -> User:
    from security import services as directory
    from security.models import User

    existing = User.objects.filter(email=email).first()
    if existing is not None:
        return existing
    with quiet_loggers("security"):
        return directory.user_create(actor=None, email=email, full_name=full_name, organisation="Bench Ltd")


def timeline_ticket_ensure(team: Team, agent: User) -> tuple[Ticket, bool]:
    """A ticket of `team` with a 200-event timeline, made through the services by its agent (once per database)."""
    from django.db import transaction

    from itsm import queue
    from tickets import services
    from tickets.models import Category, Ticket, TicketEvent
    from tickets.state import PendingReason, TicketState

    requester = bench_user_ensure(TIMELINE_REQUESTER, "Bench Timeline Requester")
    existing = Ticket.objects.filter(requester=requester, title=TIMELINE_TITLE, team=team).order_by("id").first()
    if existing is not None:
        return existing, False
    category = (
        Category.objects.filter(default_team=team, is_active=True, is_confidential=False, children__isnull=True)
        .order_by("sort_order", "id")
        .first()
    )
    if category is None:
        raise BenchError(f"team {team.name} has no leaf category to raise the timeline ticket in")
    say(f"making the {TIMELINE_EVENTS}-event timeline ticket through the services …")
    # One transaction: a failed run leaves no half-made ticket behind. No Celery work is sent for bench history.
    with transaction.atomic(), queue.suppressed(), quiet_loggers("tickets", "security"):
        ticket = services.ticket_create(
            actor=requester,
            title=TIMELINE_TITLE,
            description="<p>The VPN tunnel drops every time the laptop moves between floors.</p>",
            category=category,
        )
        if ticket.assignee_id != agent.pk:
            ticket = services.ticket_assign(actor=agent, ticket=ticket.pk, assignee=agent)
        if ticket.state != TicketState.IN_PROGRESS:
            ticket = services.ticket_transition(actor=agent, ticket=ticket.pk, to_state=TicketState.IN_PROGRESS)
        step = 0
        while TicketEvent.objects.filter(ticket_id=ticket.pk).count() < TIMELINE_EVENTS:
            kind = TIMELINE_CYCLE[step % len(TIMELINE_CYCLE)]
            if kind in ("reply", "note"):
                services.comment_add(
                    actor=agent,
                    ticket=ticket.pk,
                    body=(
                        f"<p>Update {step}: checked the VPN client log on the laptop; the tunnel drops when Wi-Fi "
                        "roams between access points. <strong>Next:</strong> packet capture on the gateway.</p>"
                    ),
                    is_internal=kind == "note",
                )
            elif kind == "pending":
                services.ticket_transition(
                    actor=agent,
                    ticket=ticket.pk,
                    to_state=TicketState.PENDING,
                    pending_reason=PendingReason.AWAITING_VENDOR,
                )
            else:
                services.ticket_transition(actor=agent, ticket=ticket.pk, to_state=TicketState.IN_PROGRESS)
            step += 1
    return Ticket.objects.get(pk=ticket.pk), True


def portal_requester_ensure() -> tuple[User, bool]:
    """A requester with exactly 500 tickets at every size: 500 bulk tickets handed to them (the rest of each row is
    untouched), so the portal page has the same shape whatever N is."""
    from tickets.management.commands.seed_bulk import BULK_REQUESTER_DOMAIN
    from tickets.models import Ticket

    requester = bench_user_ensure(PORTAL_REQUESTER, "Bench Portal Requester")
    missing = PORTAL_TICKETS - Ticket.objects.filter(requester=requester).count()
    if missing <= 0:
        return requester, False
    ids = list(
        Ticket.objects.filter(requester__email__endswith=f"@{BULK_REQUESTER_DOMAIN}")
        .order_by("id")
        .values_list("id", flat=True)[:missing]
    )
    Ticket.objects.filter(pk__in=ids).update(requester=requester)
    return requester, True


def vacuum_analyse() -> None:
    """Bring the tables to the steady state autovacuum would reach, so it does not start mid-measurement."""
    from django.db import connection

    from security.models import User
    from tickets.models import Comment, Ticket, TicketEvent

    tables = ", ".join(
        connection.ops.quote_name(model._meta.db_table) for model in (Ticket, TicketEvent, Comment, User)
    )
    started = time.monotonic()
    say("VACUUM (ANALYZE) of the ticket tables …")
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {tables}")
    say(f"vacuumed in {time.monotonic() - started:.1f}s")


@dataclass(frozen=True)
class PageSpec:
    key: str
    label: str
    url: str
    as_requester: bool = False
    rows: re.Pattern[str] | None = None
    # The list page the filter narrows: when the page's list query is the same, the page ignored the parameters.
    narrows: str | None = None


DESK_ROWS = re.compile(r'href="/desk/tickets/([A-Z]+-[0-9]+)/"')
PORTAL_ROWS = re.compile(r'href="/portal/tickets/([A-Z]+-[0-9]+)/"')
TIMELINE_ROWS = re.compile(r'class="timeline__entry timeline__entry--')
UNFILTERED_DESK = "/desk/?queue=all"


def page_specs(search_words: Sequence[str], timeline_number: str) -> list[PageSpec]:
    searches = [
        PageSpec(
            f"desk_search_{word}",
            f"desk: all, search '{word}'",
            f"/desk/?queue=all&q={quote(word)}",
            rows=DESK_ROWS,
            narrows=UNFILTERED_DESK,
        )
        for word in search_words
    ]
    return [
        PageSpec("desk_team", "desk: team queue (default)", "/desk/", rows=DESK_ROWS),
        PageSpec(
            "desk_filtered",
            "desk: all, in progress, P2",
            "/desk/?queue=all&state=in_progress&priority=2",
            rows=DESK_ROWS,
            narrows=UNFILTERED_DESK,
        ),
        *searches,
        PageSpec("desk_ticket", "desk: ticket, 200 events", f"/desk/tickets/{timeline_number}/", rows=TIMELINE_ROWS),
        PageSpec("portal", "portal: 500 own tickets", "/portal/", as_requester=True, rows=PORTAL_ROWS),
    ]


def fetch(client: Client, url: str) -> bytes:
    try:
        # secure=True: production settings (DJANGO_DEBUG=0) redirect plain HTTP to HTTPS.
        response = client.get(url, secure=True)
    except Exception as exc:  # the test Client re-raises the view's exception; say which page and stop
        raise BenchError(f"GET {url} raised {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        where = f" -> {response.headers.get('Location')}" if response.status_code in (301, 302) else ""
        raise BenchError(f"GET {url} answered {response.status_code}{where}, not 200")
    return bytes(response.content)


def list_query(queries: Sequence[dict[str, str]]) -> str | None:
    """The page's main list query: the slowest ordered, limited SELECT from the ticket table."""
    from tickets.models import Ticket

    table = f'FROM "{Ticket._meta.db_table}"'
    candidates = [
        query
        for query in queries
        if query["sql"].lstrip().upper().startswith("SELECT")
        and table in query["sql"]
        and " ORDER BY " in query["sql"]
        and " LIMIT " in query["sql"]
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda query: float(query["time"]))["sql"]


PLAN_NODE = re.compile(r"^(?P<indent>\s*)(?:->\s+)?(?P<node>.+?)\s+\(cost=[^)]*\)\s*(?P<actual>\(.*\))?$")
ACTUAL = re.compile(r"actual time=[0-9.]+\.\.(?P<ms>[0-9.]+) rows=(?P<rows>[0-9]+) loops=(?P<loops>[0-9]+)")
PLAN_DETAILS = ("Sort Method", "Rows Removed by Filter", "Rows Removed by Index Recheck", "Heap Blocks")


def summarise_plan(lines: Sequence[str]) -> list[str]:
    """Top node, the nodes that read tickets or sort (with their row counts), JIT, planning and execution time."""
    summary: list[str] = []
    keep_details = False
    # (depth, kept) of the current node and its ancestors: a kept node is indented by its kept ancestors only.
    ancestors: list[tuple[int, bool]] = []
    level = 0
    for line in lines:
        node = PLAN_NODE.match(line)
        text = line.strip()
        if node is not None:
            actual = ACTUAL.search(node.group("actual") or "")
            figures = (
                f" [rows={actual.group('rows')} loops={actual.group('loops')}, {actual.group('ms')} ms]"
                if actual
                else " [never executed]"
            )
            description = node.group("node")
            indent = len(node.group("indent"))
            # PostgreSQL indents the first child by 2 spaces ("  ->  "), each further level by 6.
            depth = 0 if indent == 0 else (indent - 2) // 6 + 1
            is_top = not summary
            keep_details = is_top or "tickets_" in description or "Sort" in description or "Seq Scan" in description
            while ancestors and ancestors[-1][0] >= depth:
                ancestors.pop()
            if keep_details:
                level = sum(1 for _, kept in ancestors if kept)
                summary.append(f"{'  ' * level}{description}{figures}")
            ancestors.append((depth, keep_details))
        elif text.startswith(("Planning Time", "Execution Time", "JIT:", "Timing:")):
            summary.append(text)
        elif keep_details and (text.startswith(PLAN_DETAILS) or (text.startswith("Buffers:") and len(summary) == 1)):
            summary.append(f"{'  ' * (level + 1)}{text}")
    return summary


def explain(sql: str) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return [row[0] for row in cursor.fetchall()]


def measure_page(
    client: Client, spec: PageSpec, *, warmup: int, requests: int, explain_plan: bool, full_plan: bool
) -> PageResult:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmup):
        fetch(client, spec.url)
    with CaptureQueriesContext(connection) as captured:
        content = fetch(client, spec.url)
    queries = list(captured.captured_queries)
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        fetch(client, spec.url)
        timings.append((time.perf_counter() - started) * 1000)
    text = content.decode("utf-8", errors="replace")
    rows = None
    if spec.rows is not None:
        matches = spec.rows.findall(text)
        rows = len(set(matches)) if spec.rows.groups else len(matches)
    result = PageResult(
        key=spec.key,
        label=spec.label,
        url=spec.url,
        median_ms=statistics.median(timings),
        p95_ms=percentile(timings, 0.95),
        min_ms=min(timings),
        max_ms=max(timings),
        queries=len(queries),
        rows=rows,
        kilobytes=len(content) / 1024,
    )
    main_sql = list_query(queries)
    if spec.narrows is not None and main_sql is not None:
        with CaptureQueriesContext(connection) as unfiltered:
            fetch(client, spec.narrows)
        if list_query(unfiltered.captured_queries) == main_sql:
            result.notes.append(f"same list query as {spec.narrows}: the page ignored the extra parameters")
    if explain_plan and spec.rows is not None and spec.key != "desk_ticket":
        if main_sql is None:
            result.notes.append("no ordered, limited SELECT from the ticket table found to EXPLAIN")
        else:
            plan = explain(main_sql)
            result.explain = summarise_plan(plan)
            if full_plan:
                result.plan = [main_sql, *plan]
    return result


def print_size(result: SizeResult) -> None:
    say(
        f"\n{result.size:,} tickets ({result.tickets:,} in the table): targets at the largest size are "
        f"<= {TARGET_QUERIES} queries and p95 <= {TARGET_P95_MS:g} ms"
    )
    width = max(len(page.label) for page in result.pages)
    for page in result.pages:
        flags = []
        if page.queries > TARGET_QUERIES:
            flags.append("queries")
        if page.p95_ms > TARGET_P95_MS:
            flags.append("p95")
        say(
            f"  {page.label:<{width}}  median {page.median_ms:7.1f} ms  p95 {page.p95_ms:7.1f} ms  "
            f"(min {page.min_ms:.1f}, max {page.max_ms:.1f})  queries {page.queries:3d}  "
            f"rows {page.rows if page.rows is not None else '-':>3}  {page.kilobytes:6.1f} KiB  "
            f"{'over target: ' + ', '.join(flags) if flags else 'within target'}"
        )
        say(f"  {'':<{width}}  {page.url}")
        for note in page.notes:
            say(f"  {'':<{width}}  note: {note}")
    explained = [page for page in result.pages if page.explain or page.plan]
    if explained:
        say("\nEXPLAIN (ANALYZE, BUFFERS) of each list page's main query:")
        for page in explained:
            say(f"  {page.label}:")
            for line in page.explain:
                say(f"    {line}")
            if page.plan:
                say("    full plan:")
                for line in page.plan:
                    say(f"      {line}")


def run_worker(args: argparse.Namespace) -> int:
    size: int = args.worker_size
    settings_note = setup_django()
    from django.conf import settings
    from django.test import Client

    from tickets.models import Ticket

    database = str(settings.DATABASES["default"]["NAME"])
    preparation, changed = prepare_database(size)
    team, agent, open_tickets = busy_team_agent()
    timeline_ticket, made_timeline = timeline_ticket_ensure(team, agent)
    requester, made_portal = portal_requester_ensure()
    if changed or made_timeline or made_portal:
        vacuum_analyse()
    tickets = Ticket.objects.count()
    subjects = [
        settings_note,
        f"agent {agent.email} of team {team.name} ({open_tickets:,} open tickets)",
        f"timeline ticket {timeline_ticket.number}; portal requester {requester.email}",
    ]
    say("; ".join(subjects[1:]))
    say(settings_note)
    agent_client, requester_client = Client(), Client()
    agent_client.force_login(agent)
    requester_client.force_login(requester)
    pages = []
    for spec in page_specs(args.search_words, timeline_ticket.number):
        say(f"measuring {spec.label} …")
        pages.append(
            measure_page(
                requester_client if spec.as_requester else agent_client,
                spec,
                warmup=args.warmup,
                requests=args.requests,
                explain_plan=args.explain,
                full_plan=args.explain_full,
            )
        )
    result = SizeResult(
        size=size, database=database, tickets=tickets, preparation=preparation, subjects=subjects, pages=pages
    )
    print_size(result)
    Path(args.worker_output).write_text(json.dumps(asdict(result)), encoding="utf-8")
    return 0


# --- command line ----------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/pages.py",
        description=(
            "Time the desk and portal pages at several ticket-table sizes, each in its own database "
            "itsm_bench_<N> on the DATABASE_URL server. Prints figures and ratios; asserts nothing."
        ),
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=[10_000, 1_000_000],
        help="comma-separated ticket counts, e.g. 10000,1000000 or 10k,1M (default 10k,1M)",
    )
    parser.add_argument("--fresh", action="store_true", help="drop and re-create the itsm_bench_<N> databases")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="EXPLAIN (ANALYZE, BUFFERS) each list page's main query at the largest size and print a summary",
    )
    parser.add_argument("--explain-full", action="store_true", help="with --explain: print the whole plans and SQL")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests per page first (default 3)")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page (default 30)")
    parser.add_argument(
        "--search-words",
        type=parse_words,
        default=parse_words(DEFAULT_SEARCH_WORDS),
        help=f"comma-separated words, one searched queue page each; words bulk titles contain "
        f"(default {DEFAULT_SEARCH_WORDS})",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON to PATH")
    # Internal: the parent runs one child per size with these.
    parser.add_argument("--worker-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.requests < 1 or args.warmup < 0:
        say("pages: --requests must be at least 1 and --warmup 0 or more")
        return 2
    try:
        if args.worker_size is not None:
            return run_worker(args)
        return run_parent(args)
    except BenchError as exc:
        print(f"pages: {exc}", file=sys.stderr, flush=True)
        return 2 if args.worker_size is None else 1


if __name__ == "__main__":
    sys.exit(main())
