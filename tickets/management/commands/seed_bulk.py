"""`manage.py seed_bulk --tickets N [--batch 20000] [--seed N]`: millions of synthetic tickets for benchmarks, fast.

Rows go straight into PostgreSQL with `COPY … FROM STDIN` in batches (one transaction per batch), bypassing the
services: the point is volume with a realistic shape, not histories. Each ticket gets its CREATED timeline event
(also by COPY). What the services would otherwise guarantee is done here by construction:

- every check constraint on `Ticket` holds (pending ⇔ a pending reason, assigned ⇒ an assignee, resolved/closed ⇒
  `resolved_at`, closed ⇒ `closed_at`, an overridden priority ⇒ a reason, priority/impact/urgency in range, a title);
- ticket ids and numbers come from the same sequences the services use (`nextval` over `generate_series`, which is
  safe next to concurrent creators), so tickets created later by `ticket_create` never collide;
- teams, categories and agents are the existing directory (the demo directory is created when there is none);
  requesters come from a pool of bulk requesters (`bulk-requester-NNNNN@bulk.example.org`, unusable passwords),
  created once with `bulk_create`;
- confidential categories give confidential tickets that stay with their security team; assignees are members of
  the ticket's team.

Not audited, on purpose: these rows are synthetic benchmark data, not changes made by anyone, and writing a million
hash-chained audit rows would only benchmark the audit log. One audit row records that the load happened (how many
tickets, which number ranges). Not published as domain events either: no SLA clocks or webhooks are created.
"""

import bisect
import io
import itertools
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone
from tqdm import tqdm

from security.audit import audit_record
from security.models import Membership, Team, User
from tickets import demo, services
from tickets.models import Category, Ticket, TicketEvent
from tickets.state import Level, PendingReason, TicketState, TicketType, format_number, priority_for

BULK_REQUESTER_DOMAIN = "bulk.example.org"
HOUR, DAY = 3600, 86400

TICKET_COLUMNS = (
    "id",
    "number",
    "type",
    "title",
    "description",
    "requester_id",
    "created_by_id",
    "category_id",
    "team_id",
    "assignee_id",
    "impact",
    "urgency",
    "priority",
    "priority_is_overridden",
    "priority_override_reason",
    "state",
    "pending_reason",
    "is_confidential",
    "created_at",
    "updated_at",
    "resolved_at",
    "closed_at",
    "version",
)
EVENT_COLUMNS = ("ticket_id", "at", "actor_id", "kind", "is_internal", "data")

LOCATIONS = tuple(
    f"{place} {n}"
    for place, n in itertools.product(
        ("room", "floor", "building", "depot", "store", "lab", "clinic", "office"), ("1", "2", "3", "A", "B", "North")
    )
)
DESCRIPTIONS = ("", "", "<p>Reported by phone.</p>", "<p>Raised from the portal.</p>", "<p>See the attached log.</p>")
OVERRIDE_REASON = "Business critical (bulk seed)"

S = TicketState
# (upper age in days, ((state, weight), …)): recent tickets are open, old ones are mostly closed.
STATE_TABLES: tuple[tuple[float, tuple[tuple[str, int], ...]], ...] = (
    (2, ((S.NEW, 20), (S.ASSIGNED, 20), (S.IN_PROGRESS, 30), (S.PENDING, 15), (S.RESOLVED, 10), (S.CANCELLED, 5))),
    (
        10,
        (
            (S.NEW, 3),
            (S.ASSIGNED, 5),
            (S.IN_PROGRESS, 15),
            (S.PENDING, 15),
            (S.RESOLVED, 25),
            (S.CLOSED, 27),
            (S.CANCELLED, 10),
        ),
    ),
    (
        float("inf"),
        ((S.IN_PROGRESS, 1), (S.PENDING, 1), (S.RESOLVED, 1), (S.CLOSED, 88), (S.CANCELLED, 9)),
    ),
)


@dataclass(frozen=True)
class CategoryRow:
    pk: int
    type: str
    team_id: int | None
    is_confidential: bool
    titles: tuple[str, ...]


class TimestampText:
    """Formats epoch seconds as PostgreSQL timestamptz text fast: table lookups instead of `datetime.isoformat`."""

    def __init__(self, first_day: int, last_day: int) -> None:
        self.first_day = first_day
        self.days = [
            (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).strftime("%Y-%m-%d ")
            for day in range(first_day, last_day + 1)
        ]
        self.clock = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00" for s in range(DAY)]

    def __call__(self, seconds: int) -> str:
        return self.days[seconds // DAY - self.first_day] + self.clock[seconds % DAY]


class BulkGenerator:
    """Builds COPY text for batches of tickets and their CREATED events. All randomness comes from one seeded RNG."""

    def __init__(
        self,
        *,
        rng: random.Random,
        categories: Sequence[CategoryRow],
        weights: Sequence[int],
        members: dict[int, list[int]],
        other_teams: Sequence[int],
        requesters: Sequence[int],
        matrix: dict[tuple[int, int], int],
        now: int,
        years: float,
    ) -> None:
        self.rng = rng
        self.categories = categories
        self.cumulative = list(itertools.accumulate(weights))
        self.members = members
        self.other_teams = [team for team in other_teams if members.get(team)]
        self.requesters = requesters
        self.matrix = matrix
        self.now = now
        self.span = int(years * 365 * DAY)
        self.stamp = TimestampText((now - self.span) // DAY - 1, now // DAY + 1)
        self.state_tables = [
            (limit * DAY, list(itertools.accumulate(w for _, w in table)), [state for state, _ in table])
            for limit, table in STATE_TABLES
        ]

    def plan(self, size: int) -> list[int]:
        """Category indexes for the next `size` tickets, by weight."""
        cumulative, random_ = self.cumulative, self.rng.random
        return [bisect.bisect(cumulative, random_() * cumulative[-1]) for _ in range(size)]

    def batch(self, ids: Sequence[int], numbers: dict[str, list[int]], plan: Sequence[int]) -> tuple[str, str, int]:
        """COPY text for tickets `ids` (categories `plan`, ticket numbers drawn from `numbers` per type)."""
        rng = self.rng
        random_ = rng.random
        stamp = self.stamp
        now, span = self.now, self.span
        members, requesters, matrix = self.members, self.requesters, self.matrix
        state_tables = self.state_tables
        number_iters = {ticket_type: iter(values) for ticket_type, values in numbers.items()}
        pending_reasons = PendingReason.values
        tickets: list[str] = []
        events: list[str] = []
        confidential = 0
        for ticket_id, category_index in zip(ids, plan, strict=True):
            category = self.categories[category_index]
            team_id = category.team_id
            if not category.is_confidential and self.other_teams and random_() < 0.05:
                team_id = self.other_teams[int(random_() * len(self.other_teams))]  # handed on to another team
            team_members = members.get(team_id or 0) or ()
            requester = requesters[int(random_() * len(requesters))]
            created_by = requester
            if team_members and random_() < 0.15:
                created_by = team_members[int(random_() * len(team_members))]  # raised by an agent on the phone
            age = int(span * random_() ** 1.6) + 60  # more recent tickets than old ones
            created = now - age
            for limit, cumulative, states in state_tables:
                if age < limit:
                    state = states[bisect.bisect(cumulative, random_() * cumulative[-1])]
                    break
            if not team_members and state in (S.ASSIGNED, S.IN_PROGRESS, S.PENDING):
                state = S.NEW
            assignee: int | None = None
            if team_members and (state not in (S.NEW, S.CANCELLED) or (state == S.CANCELLED and random_() < 0.5)):
                assignee = team_members[int(random_() * len(team_members))]
            impact = 1 + int(random_() * 3)
            urgency = 1 + int(random_() * 3)
            priority = matrix[(impact, urgency)]
            overridden = random_() < 0.03
            if overridden:
                priority = 1 + int(random_() * 4)
            pending_reason = pending_reasons[int(random_() * 3)] if state == S.PENDING else ""
            # Times: every instant lies between creation and now.
            worked = int(age * (0.05 + 0.5 * random_()))
            resolved_at = closed_at = None
            version = 1
            if state in (S.RESOLVED, S.CLOSED):
                resolved_at = created + worked
                version = 4
                if state == S.CLOSED:
                    closed_at = resolved_at + int((now - resolved_at) * 0.3 * random_())
                    version = 5
                updated = closed_at or resolved_at
            elif state == S.NEW:
                updated = created
            else:
                updated = created + worked
                version = 2 if state in (S.ASSIGNED, S.CANCELLED) else 3
            title = f"{category.titles[int(random_() * len(category.titles))]} ({LOCATIONS[int(random_() * 48)]})"
            confidential += category.is_confidential
            tickets.append(
                f"{ticket_id}\t{format_number(category.type, next(number_iters[category.type]))}\t{category.type}\t"
                f"{title}\t{DESCRIPTIONS[int(random_() * 5)]}\t{requester}\t{created_by}\t{category.pk}\t"
                f"{team_id if team_id is not None else chr(92) + 'N'}\t"
                f"{assignee if assignee is not None else chr(92) + 'N'}\t{impact}\t{urgency}\t{priority}\t"
                f"{'t' if overridden else 'f'}\t{OVERRIDE_REASON if overridden else ''}\t{state}\t{pending_reason}\t"
                f"{'t' if category.is_confidential else 'f'}\t{stamp(created)}\t{stamp(updated)}\t"
                f"{stamp(resolved_at) if resolved_at is not None else chr(92) + 'N'}\t"
                f"{stamp(closed_at) if closed_at is not None else chr(92) + 'N'}\t{version}\n"
            )
            events.append(
                f"{ticket_id}\t{stamp(created)}\t{created_by}\tcreated\tf\t"
                f'{{"team_id": {team_id if team_id is not None else "null"}, "priority": {priority}, '
                f'"category_id": {category.pk}}}\n'
            )
        return "".join(tickets), "".join(events), confidential


def priority_table() -> dict[tuple[int, int], int]:
    """Every impact × urgency cell: the administrators' matrix, with the default for any missing cell."""
    matrix = services.priority_matrix()
    return {(impact, urgency): priority_for(impact, urgency, matrix) for impact in Level for urgency in Level}


def _nextvals(cursor: Any, sequence: str, count: int) -> list[int]:
    if count == 0:
        return []
    cursor.execute("SELECT nextval(%s) FROM generate_series(1, %s)", [sequence, count])
    return [row[0] for row in cursor.fetchall()]


class Command(BaseCommand):
    help = "Generate N synthetic tickets with PostgreSQL COPY, for benchmarks (not audited: synthetic data)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tickets", type=int, required=True, help="How many tickets to add.")
        parser.add_argument("--batch", type=int, default=20_000, help="Tickets per COPY batch and transaction.")
        parser.add_argument("--seed", type=int, default=0, help="Random seed.")
        parser.add_argument("--requesters", type=int, default=5_000, help="Size of the bulk requester pool.")
        parser.add_argument("--years", type=float, default=2.0, help="Spread creation times over this many years.")
        parser.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        total = options["tickets"]
        batch_size = options["batch"]
        if total < 0 or batch_size < 1:
            raise CommandError("--tickets must be 0 or more and --batch at least 1.")
        started = time.monotonic()
        rng = random.Random(options["seed"])  # noqa: S311 - synthetic data, not secrets
        categories, weights, members, other_teams = self._directory()
        requesters = self._requesters(options["requesters"])
        generator = BulkGenerator(
            rng=rng,
            categories=categories,
            weights=weights,
            members=members,
            other_teams=other_teams,
            requesters=requesters,
            matrix=priority_table(),
            now=int(timezone.now().timestamp()),
            years=options["years"],
        )
        self.stderr.write(
            "Note: bulk tickets are synthetic benchmark data written with COPY: they are not audited row by row "
            "(one audit row records the load) and publish no domain events."
        )
        ticket_table, event_table = Ticket._meta.db_table, TicketEvent._meta.db_table
        ticket_copy = f"COPY {ticket_table} ({', '.join(TICKET_COLUMNS)}) FROM STDIN"
        event_copy = f"COPY {event_table} ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
        first_numbers: dict[str, int] = {}
        last_numbers: dict[str, int] = {}
        confidential = 0
        progress = tqdm(
            total=total,
            desc="Bulk tickets",
            unit=" tickets",
            unit_scale=True,
            file=sys.stderr,
            disable=True if options["no_progress"] else None,  # None: only on a terminal
            smoothing=0.1,
        )
        with progress, connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [ticket_table])
            (id_sequence,) = cursor.fetchone()
            for offset in range(0, total, batch_size):
                size = min(batch_size, total - offset)
                plan = generator.plan(size)
                per_type = {t: sum(1 for i in plan if categories[i].type == t) for t in TicketType.values}
                with transaction.atomic():
                    # Benchmark rows: losing the last batches in a crash is harmless, waiting for each flush is not.
                    cursor.execute("SET LOCAL synchronous_commit = off")
                    ids = _nextvals(cursor, id_sequence, size)
                    numbers = {t: _nextvals(cursor, f"tickets_{t}_number_seq", count) for t, count in per_type.items()}
                    ticket_text, event_text, batch_confidential = generator.batch(ids, numbers, plan)
                    raw = cursor.cursor  # the psycopg2 cursor under Django's wrapper, for copy_expert
                    raw.copy_expert(ticket_copy, io.StringIO(ticket_text))
                    raw.copy_expert(event_copy, io.StringIO(event_text))
                confidential += batch_confidential
                for ticket_type, values in numbers.items():
                    if values:
                        first_numbers.setdefault(ticket_type, values[0])
                        last_numbers[ticket_type] = values[-1]
                progress.update(size)
        loaded = time.monotonic() - started
        ranges = {t: [first_numbers[t], last_numbers[t]] for t in first_numbers}
        with transaction.atomic():
            audit_record(
                actor=None,
                action="seed.bulk",
                object_type=Ticket._meta.label_lower,
                object_id="bulk",
                object_repr=f"{total} synthetic tickets",
                after={
                    "tickets": total,
                    "confidential": confidential,
                    "number_ranges": ranges,
                    "seed": options["seed"],
                },
            )
        self.stderr.write("Analysing tables …")
        with connection.cursor() as cursor:
            for table in (ticket_table, event_table, User._meta.db_table):
                cursor.execute(f"ANALYZE {table}")
        elapsed = time.monotonic() - started
        rate = total / loaded if loaded else 0.0
        number_text = ", ".join(
            f"{format_number(t, low)}…{format_number(t, high)}" for t, (low, high) in sorted(ranges.items())
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Added {total} tickets and {total} timeline events in {loaded:.1f}s ({rate:,.0f} tickets/s; "
                f"{elapsed:.1f}s with ANALYZE), {confidential} confidential. Numbers: {number_text or 'none'}. "
                "Not audited row by row: synthetic benchmark data."
            )
        )

    def _directory(self) -> tuple[list[CategoryRow], list[int], dict[int, list[int]], list[int]]:
        """Categories that route to a team with members, their weights, members by team, non-security teams."""
        members: dict[int, list[int]] = {}
        for team_id, user_id in (
            Membership.objects.filter(user__is_active=True).order_by("team_id", "user_id").values_list("team", "user")
        ):
            members.setdefault(team_id, []).append(user_id)
        queryset = (
            Category.objects.filter(is_active=True, default_team__in=list(members))
            .annotate(children_count=Count("children"))
            .select_related("default_team")
            .order_by("sort_order", "id")
        )
        if not queryset.exists():
            self.stderr.write("No categories with staffed teams: creating the demo directory first.")
            demo.directory_ensure()
            return self._directory()
        titles = {spec.slug: spec.titles for spec in demo.CATEGORIES if spec.titles}
        weights_by_slug = {spec.slug: spec.weight for spec in demo.CATEGORIES}
        rows, weights = [], []
        for category in queryset:
            if category.children_count and category.slug not in titles:
                continue  # parents are containers; tickets go to leaves
            rows.append(
                CategoryRow(
                    pk=category.pk,
                    type=category.default_type,
                    team_id=category.default_team_id,
                    is_confidential=category.is_confidential,
                    titles=titles.get(category.slug) or (f"{category.name} problem", f"{category.name} request"),
                )
            )
            weights.append(weights_by_slug.get(category.slug) or 3)
        if not rows:
            raise CommandError("No usable categories.")
        security_teams = set(Team.objects.filter(is_security=True).values_list("pk", flat=True))
        other_teams = sorted(team_id for team_id in members if team_id not in security_teams)
        return rows, weights, members, other_teams

    def _requesters(self, count: int) -> list[int]:
        """The bulk requester pool: created once with `bulk_create` and unusable passwords (nobody signs in)."""
        emails = [f"bulk-requester-{n:05d}@{BULK_REQUESTER_DOMAIN}" for n in range(1, count + 1)]
        existing = set(User.objects.filter(email__endswith=f"@{BULK_REQUESTER_DOMAIN}").values_list("email", flat=True))
        missing = [email for email in emails if email not in existing]
        if missing:
            unusable = make_password(None)
            User.objects.bulk_create(
                [
                    User(
                        email=email,
                        full_name=f"Bulk Requester {email[15:20]}",
                        organisation="Bulk Ltd",
                        password=unusable,
                    )
                    for email in missing
                ],
                batch_size=5000,
            )
            self.stderr.write(f"Created {len(missing)} bulk requesters (unusable passwords, not audited).")
        ids = list(User.objects.filter(email__in=emails, is_active=True).order_by("email").values_list("pk", flat=True))
        return ids or list(User.objects.filter(memberships__isnull=True, is_active=True).values_list("pk", flat=True))
