"""`manage.py seed_demo [--seed N] [--tickets 300]`: a small, lifelike service desk for demos and manual testing.

Builds the demo directory (`tickets.demo.directory_ensure`: teams, people in every role, the category tree) and then
plays a few hundred ticket stories through the real services (`ticket_create`, `ticket_assign`,
`ticket_transition`, `comment_add`, `ticket_override_priority`), so timelines, audit rows, domain events and
auto-assignment are exactly what real use produces.

Time: the stories are spread over the last 90 days. Every service reads the clock through
`django.utils.timezone.now()`, so the command replaces that one function with a settable clock for the duration of
the run (`unittest.mock.patch`) and moves it to each step's instant before calling the service. time-machine would do
the same more thoroughly, but it is a development dependency and this command runs from the production requirements
(`./run demo`). All steps of all tickets are sorted by instant first, so the audit chain, round-robin assignment and
timelines advance in time order, as they would in real life.

Idempotent: when the demo already exists (the service desk team exists and demo requesters have tickets) it prints
"already seeded" and changes nothing. Everything else happens in one transaction, so a failed run leaves nothing
behind. Deterministic: the same `--seed` and `--tickets` give the same tickets (titles, states, categories, people).
"""

import os
import random
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from unittest import mock

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from itsm import queue
from itsm.logs import quiet_loggers
from security.models import Team, User
from sla import selectors as sla_selectors
from sla import services as sla_services
from tickets import demo, services
from tickets.models import Comment, Ticket, TicketEvent
from tickets.state import TicketState

DAYS = 90
# The port the run script serves on (`PORT`, default 8000), so the logins file names the right address.
DEMO_URL = f"http://127.0.0.1:{os.environ.get('PORT') or 8000}/"


class SettableClock:
    """Stands in for `django.utils.timezone.now` while seeding: returns whatever instant the runner set last."""

    def __init__(self, instant: datetime) -> None:
        self.instant = instant

    def now(self) -> datetime:
        return self.instant


HOUR = 3600


def demo_slas_ensure(directory: demo.Directory) -> None:
    """Office hours in London and three policies, so demo tickets carry real SLA clocks (created before the
    tickets; a database that already has them keeps them)."""
    if sla_selectors.policy_names():
        return
    office = sla_services.calendar_create(
        actor=None,
        name="Office hours (London)",
        time_zone="Europe/London",
        holiday_country="GB",
        holiday_subdivision="ENG",
        ranges=[(weekday, clock_time(8), clock_time(18)) for weekday in range(5)],
    )
    sla_services.policy_create(
        actor=None, name="Incidents", calendar=office, ticket_types=["incident"], precedence=10,
        targets=[
            ("first_response", (15 * 60, HOUR, 4 * HOUR, 8 * HOUR)),
            ("resolution", (4 * HOUR, 8 * HOUR, 30 * HOUR, 50 * HOUR)),
        ],
    )  # fmt: skip
    sla_services.policy_create(
        actor=None, name="Service requests", calendar=office, ticket_types=["request"], precedence=20,
        targets=[
            ("first_response", (HOUR, 4 * HOUR, 8 * HOUR, 10 * HOUR)),
            ("resolution", (10 * HOUR, 20 * HOUR, 50 * HOUR, 100 * HOUR)),
        ],
    )  # fmt: skip
    service_desk = directory.teams.get("service-desk")
    if service_desk is not None:
        sla_services.policy_create(
            actor=None, name="Service desk L1 OLA", kind="ola", team=service_desk, calendar=office,
            targets=[("first_response", (10 * 60, 30 * 60, 2 * HOUR, 4 * HOUR))],
        )  # fmt: skip


def demo_already_seeded() -> bool:
    demo_requesters = [spec.email for spec in demo.requester_specs()]
    return (
        Team.objects.filter(slug=demo.SERVICE_DESK_SLUG).exists()
        and Ticket.objects.filter(requester__email__in=demo_requesters).exists()
    )


def default_logins_path() -> Path:
    return Path(settings.BASE_DIR) / ".run" / "demo-logins.txt"


def write_logins(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    width = max(len(role) for role, _ in demo.demo_logins())
    lines = [
        "ITSM service desk: demo logins",
        f"URL: {DEMO_URL}",
        f"Password for every demo account: {demo.DEMO_PASSWORD}",
        "",
        *(f"{role.ljust(width)}  {email}" for role, email in demo.demo_logins()),
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


class StoryRunner:
    """Carries out one step of a ticket story through the services, choosing the people at run time."""

    def __init__(self, directory: demo.Directory) -> None:
        self.directory = directory
        self.ticket_ids: dict[int, int] = {}
        self.members_by_team_id = {
            directory.teams[slug].pk: members for slug, members in directory.members.items() if members
        }

    def _members(self, ticket: Ticket) -> list[User]:
        return self.members_by_team_id[ticket.team_id] if ticket.team_id is not None else []

    def _worker(self, ticket: Ticket, pick: int) -> User:
        """Whoever works the ticket: its assignee, else a member of its team."""
        if ticket.assignee is not None:
            return ticket.assignee
        members = self._members(ticket)
        return members[pick % len(members)]

    def create(self, plan: demo.TicketPlan) -> None:
        ticket = services.ticket_create(
            actor=self.directory.requesters[plan.requester],
            title=plan.title,
            description=plan.description,
            category=self.directory.categories[plan.category],
            impact=plan.impact,
            urgency=plan.urgency,
        )
        self.ticket_ids[plan.index] = ticket.pk

    def run(self, plan: demo.TicketPlan, step: demo.Step) -> None:
        ticket = Ticket.objects.select_related("assignee", "requester").get(pk=self.ticket_ids[plan.index])
        requester = ticket.requester
        kind = step.kind
        if kind == "take":
            self._take(ticket, step)
        elif kind == "reassign":
            members = [m for m in self._members(ticket) if m.pk != ticket.assignee_id]
            actor = self._worker(ticket, step.pick)
            services.ticket_assign(actor=actor, ticket=ticket, assignee=members[step.pick % len(members)])
        elif kind == "escalate":
            target = self.directory.teams[step.value]
            if target.pk == ticket.team_id:
                target = self.directory.teams["desktop-support"]
            services.ticket_assign(actor=self._worker(ticket, step.pick), ticket=ticket, assignee=None, team=target)
        elif kind in ("start", "resume"):
            services.ticket_transition(
                actor=self._worker(ticket, step.pick), ticket=ticket, to_state=TicketState.IN_PROGRESS
            )
        elif kind == "pending":
            services.ticket_transition(
                actor=self._worker(ticket, step.pick),
                ticket=ticket,
                to_state=TicketState.PENDING,
                pending_reason=step.value,
            )
        elif kind == "resolve":
            services.ticket_transition(
                actor=self._worker(ticket, step.pick), ticket=ticket, to_state=TicketState.RESOLVED
            )
        elif kind == "close":
            actor = requester if step.value else self._worker(ticket, step.pick)
            services.ticket_transition(actor=actor, ticket=ticket, to_state=TicketState.CLOSED)
        elif kind == "reopen":
            services.ticket_transition(
                actor=requester, ticket=ticket, to_state=TicketState.IN_PROGRESS, reason=step.text
            )
        elif kind == "cancel_requester":
            services.ticket_transition(actor=requester, ticket=ticket, to_state=TicketState.CANCELLED, reason=step.text)
        elif kind == "cancel_agent":
            services.ticket_transition(
                actor=self._worker(ticket, step.pick), ticket=ticket, to_state=TicketState.CANCELLED, reason=step.text
            )
        elif kind == "reply_agent":
            services.comment_add(actor=self._worker(ticket, step.pick), ticket=ticket, body=f"<p>{step.text}</p>")
        elif kind == "reply_requester":
            services.comment_add(actor=requester, ticket=ticket, body=f"<p>{step.text}</p>")
        elif kind == "note":
            services.comment_add(
                actor=self._worker(ticket, step.pick), ticket=ticket, body=f"<p>{step.text}</p>", is_internal=True
            )
        elif kind == "override":
            services.ticket_override_priority(
                actor=self._worker(ticket, step.pick), ticket=ticket, priority=step.value, reason=step.text
            )
        else:
            raise ValueError(f"unknown demo step {kind!r}")

    def _take(self, ticket: Ticket, step: demo.Step) -> None:
        if ticket.assignee_id is not None:
            return
        lead, *agents = self._members(ticket)
        assignee = agents[step.pick % len(agents)] if agents else lead
        # Sometimes the lead hands it out; usually an agent takes it from the queue.
        actor = lead if step.value else assignee
        services.ticket_assign(actor=actor, ticket=ticket, assignee=assignee)


class Command(BaseCommand):
    help = "Create demo teams, people, categories and a few hundred lifelike tickets (once; re-runs do nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=2026, help="Random seed: the same seed gives the same data.")
        parser.add_argument("--tickets", type=int, default=300, help="How many tickets to create (default 300).")
        parser.add_argument(
            "--logins-file", type=Path, default=None, help="Where to write the demo logins (default .run/)."
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        logins_path: Path = options["logins_file"] or default_logins_path()
        if demo_already_seeded():
            write_logins(logins_path)
            self.stdout.write(f"Demo data already seeded; nothing to do. Logins: {logins_path}")
            return
        started = time.monotonic()
        count = max(0, options["tickets"])
        rng = random.Random(options["seed"])  # noqa: S311 - demo data, not secrets
        plans = demo.plan_tickets(rng=rng, count=count, days=DAYS)
        anchor = timezone.now().replace(microsecond=0)
        # Each entry: (instant, ticket index, step number, plan, step); step number -1 is the creation.
        agenda: list[tuple[datetime, int, int, demo.TicketPlan, demo.Step | None]] = []
        for plan in plans:
            created = anchor - timedelta(seconds=plan.created_ago)
            agenda.append((created, plan.index, -1, plan, None))
            for number, step in enumerate(plan.steps):
                agenda.append((created + timedelta(seconds=step.offset), plan.index, number, plan, step))
        agenda.sort(key=lambda entry: entry[:3])

        clock = SettableClock(anchor - timedelta(days=DAYS + 1))
        with (
            quiet_loggers("tickets", "security"),
            queue.suppressed(),
            transaction.atomic(),
            mock.patch("django.utils.timezone.now", new=clock.now),
        ):
            directory = demo.directory_ensure()
            demo_slas_ensure(directory)
            runner = StoryRunner(directory)
            progress = tqdm(
                agenda,
                desc="Seeding demo tickets",
                unit=" steps",
                file=sys.stderr,
                disable=True if options["no_progress"] else None,  # None: only on a terminal
                leave=False,
            )
            for instant, _index, _number, plan, step in progress:
                clock.instant = instant
                if step is None:
                    runner.create(plan)
                else:
                    runner.run(plan, step)
        write_logins(logins_path)

        ticket_ids = list(runner.ticket_ids.values())
        states = Counter(Ticket.objects.filter(pk__in=ticket_ids).values_list("state", flat=True))
        by_state = ", ".join(f"{states[value]} {label.lower()}" for value, label in TicketState.choices)
        comments = Comment.objects.filter(ticket_id__in=ticket_ids).count()
        events = TicketEvent.objects.filter(ticket_id__in=ticket_ids).count()
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded demo data in {time.monotonic() - started:.1f}s: {len(directory.teams)} teams, "
                f"{len(directory.categories)} categories, {directory.created} directory objects created, "
                f"{len(ticket_ids)} tickets ({by_state}), {comments} comments, {events} timeline events. "
                f"Logins: {logins_path} (password {demo.DEMO_PASSWORD})"
            )
        )
