"""Demo data: the directory (teams, people, categories) and the ticket stories `seed_demo` plays through the services.

Everything here is data plus two builders:

- `directory_ensure()` creates the demo teams, people and category tree through the services (categories have no
  service yet: they are written directly and audited, like an administrator's change). It adopts objects that
  already exist under the same slug, name or e-mail, so it can run on a database that has part of the directory.
  `seed_bulk` reuses it when it finds no directory.
- `plan_tickets()` turns a seeded `random.Random` into ticket stories: each is a creation time and a list of steps
  (take, start, reply, note, pending, resolve, close, …) at offsets after creation. Plans depend only on the seed and
  the count, never on the clock or the database, which is what makes `seed_demo --seed N` reproducible.
"""

import random
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from security import services as security_services
from security.audit import audit_record, snapshot
from security.models import Membership, Team, User
from tickets.admin import CATEGORY_AUDIT_FIELDS
from tickets.models import Category
from tickets.state import Level, PendingReason, Priority, TicketState, TicketType

DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - published on purpose: demo accounts only
SERVICE_DESK_SLUG = "service-desk"
STAFF_DOMAIN = "desk.example.org"

# --- teams and people -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TeamSpec:
    slug: str
    name: str
    lead: str
    agents: tuple[str, ...]
    is_security: bool = False
    auto_assign: bool = False


TEAMS: tuple[TeamSpec, ...] = (
    TeamSpec(
        SERVICE_DESK_SLUG,
        "Service desk L1",
        "Lena Lindqvist",
        ("Sam Okafor", "Priya Raman", "Tom Becker"),
        auto_assign=True,
    ),
    TeamSpec("desktop-support", "Desktop support", "Marco Rossi", ("Aisha Khan", "Jonas Weber", "Chloe Martin")),
    TeamSpec("network", "Network", "Nina Petrova", ("Omar Haddad", "Lucas Silva")),
    TeamSpec("data-centre", "Data centre", "Hiro Tanaka", ("Grace Obi", "Felix Braun")),
    TeamSpec("security", "Security", "Ingrid Holm", ("Ravi Iyer", "Zoe Laurent"), is_security=True),
)


@dataclass(frozen=True)
class PersonSpec:
    email: str
    full_name: str
    organisation: str = ""
    is_admin: bool = False
    is_manager: bool = False
    is_security_officer: bool = False
    time_zone: str = "Europe/London"


ADMIN = PersonSpec(f"admin@{STAFF_DOMAIN}", "Alex Morgan", "IT", is_admin=True)
MANAGER = PersonSpec(f"manager@{STAFF_DOMAIN}", "Helen Carter", "IT", is_manager=True)
SECURITY_OFFICER = PersonSpec(f"officer@{STAFF_DOMAIN}", "Victor Stone", "IT", is_security_officer=True)

ORGANISATIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "Acme Logistics",
        "acme.example.com",
        ("Rita Alvarez", "Ben Carter", "Olga Ivanova", "Kwame Mensah", "Julia Novak"),
    ),
    (
        "Globex Finance",
        "globex.example.com",
        ("Mei Chen", "Pedro Santos", "Hannah Fischer", "Yusuf Demir", "Clara Dubois"),
    ),
    (
        "Northwind Clinics",
        "northwind.example.com",
        ("Liam Walsh", "Fatima Zahra", "Noah Schmidt", "Elena Popescu", "Arjun Mehta"),
    ),
)


def staff_email(full_name: str) -> str:
    return f"{full_name.lower().replace(' ', '.')}@{STAFF_DOMAIN}"


def requester_specs() -> list[PersonSpec]:
    return [
        PersonSpec(f"{name.lower().replace(' ', '.')}@{domain}", name, organisation, time_zone="Europe/Paris")
        for organisation, domain, names in ORGANISATIONS
        for name in names
    ]


def demo_logins() -> list[tuple[str, str]]:
    """(role, e-mail) of one account per role, for `.run/demo-logins.txt`."""
    desk, desktop = TEAMS[0], TEAMS[1]
    return [
        ("admin", ADMIN.email),
        ("manager", MANAGER.email),
        ("security officer", SECURITY_OFFICER.email),
        (f"team lead ({desktop.name})", staff_email(desktop.lead)),
        (f"agent ({desk.name})", staff_email(desk.agents[0])),
        ("requester", requester_specs()[0].email),
    ]


# --- categories -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategorySpec:
    slug: str
    name: str
    kind: str
    team: str
    type: str
    portal_label: str
    titles: tuple[str, ...] = ()
    parent: str = ""
    is_confidential: bool = False
    weight: int = 0  # how often demo tickets use it (0: never, e.g. parents)


K = Category.Kind
INC, REQ = TicketType.INCIDENT, TicketType.REQUEST

CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec("hardware", "Hardware", K.HARDWARE, "desktop-support", INC, "Something is wrong with my equipment"),
    CategorySpec(
        "hardware-laptop",
        "Laptop",
        K.HARDWARE,
        "desktop-support",
        INC,
        "My laptop is broken",
        ("Laptop does not boot", "Laptop battery drains in an hour", "Keyboard keys stuck", "Laptop overheats"),
        parent="hardware",
        weight=10,
    ),
    CategorySpec(
        "hardware-monitor",
        "Monitor",
        K.HARDWARE,
        "desktop-support",
        INC,
        "My screen is not working",
        ("Second monitor not detected", "Screen flickers", "Monitor has dead pixels"),
        parent="hardware",
        weight=5,
    ),
    CategorySpec(
        "hardware-printer",
        "Printer",
        K.HARDWARE,
        "desktop-support",
        INC,
        "The printer does not print",
        ("Printer on 2nd floor jams", "Cannot print to the colour printer", "Printer out of toner"),
        parent="hardware",
        weight=6,
    ),
    CategorySpec("software", "Software", K.SOFTWARE, SERVICE_DESK_SLUG, REQ, "Help with an application"),
    CategorySpec(
        "software-install",
        "Install request",
        K.SOFTWARE,
        SERVICE_DESK_SLUG,
        REQ,
        "I need software installed",
        ("Install Visio", "Need Python 3.12 on my workstation", "Install the VPN client", "Install Tableau Desktop"),
        parent="software",
        weight=9,
    ),
    CategorySpec(
        "software-licence",
        "Licence",
        K.SOFTWARE,
        SERVICE_DESK_SLUG,
        REQ,
        "I need a licence",
        ("Adobe Acrobat licence expired", "Need a Microsoft Project licence", "Extra seat for our CAD tool"),
        parent="software",
        weight=5,
    ),
    CategorySpec(
        "software-bug",
        "Bug",
        K.SOFTWARE,
        SERVICE_DESK_SLUG,
        INC,
        "An application is not working",
        ("Outlook crashes on start", "Expense app shows an error on submit", "Teams has no sound"),
        parent="software",
        weight=9,
    ),
    CategorySpec("logistics", "Logistics and materials", K.LOGISTICS, "desktop-support", REQ, "Equipment and moves"),
    CategorySpec(
        "logistics-order",
        "Order equipment",
        K.LOGISTICS,
        "desktop-support",
        REQ,
        "Order equipment",
        ("Laptop for a new starter", "Headset for the call centre", "Docking station", "Ergonomic keyboard"),
        parent="logistics",
        weight=6,
    ),
    CategorySpec(
        "logistics-move",
        "Move or deliver",
        K.LOGISTICS,
        "desktop-support",
        REQ,
        "Move or deliver equipment",
        ("Move my desk to the 3rd floor", "Deliver monitors to the meeting room", "Collect old laptops"),
        parent="logistics",
        weight=3,
    ),
    CategorySpec(
        "routine-maintenance", "Routine maintenance", K.ROUTINE_MAINTENANCE, "data-centre", REQ, "Planned work"
    ),
    CategorySpec(
        "routine-patching",
        "Patching",
        K.ROUTINE_MAINTENANCE,
        "data-centre",
        REQ,
        "Schedule patching",
        ("Monthly patching of the file servers", "Patch the HR database host", "Firmware update on core switches"),
        parent="routine-maintenance",
        weight=3,
    ),
    CategorySpec(
        "routine-backup-check",
        "Backup check",
        K.ROUTINE_MAINTENANCE,
        "data-centre",
        REQ,
        "Check a backup",
        ("Weekly restore test", "Backup job reported warnings", "Verify offsite backup copy"),
        parent="routine-maintenance",
        weight=3,
    ),
    CategorySpec(
        "emergency-maintenance", "Emergency maintenance", K.EMERGENCY_MAINTENANCE, "network", INC, "Something is down"
    ),
    CategorySpec(
        "emergency-outage",
        "Outage",
        K.EMERGENCY_MAINTENANCE,
        "network",
        INC,
        "A service is down",
        ("Wi-Fi down in building B", "VPN unreachable", "Intranet returns 502", "Internet very slow at the depot"),
        parent="emergency-maintenance",
        weight=5,
    ),
    CategorySpec(
        "emergency-power",
        "Power",
        K.EMERGENCY_MAINTENANCE,
        "data-centre",
        INC,
        "Power problem in a room or rack",
        ("UPS alarm in server room 1", "Rack 12 lost one power feed", "Power cut on the 1st floor"),
        parent="emergency-maintenance",
        weight=2,
    ),
    CategorySpec("sysadmin", "System administration", K.SYSADMIN, "data-centre", REQ, "Servers, accounts, storage"),
    CategorySpec(
        "sysadmin-access",
        "Account and access",
        K.SYSADMIN,
        SERVICE_DESK_SLUG,
        REQ,
        "I can't sign in or I need access",
        ("Locked out of my account", "Access to the finance share", "Reset my MFA device", "New starter account"),
        parent="sysadmin",
        weight=10,
    ),
    CategorySpec(
        "sysadmin-server",
        "Server",
        K.SYSADMIN,
        "data-centre",
        INC,
        "A server needs attention",
        ("Disk almost full on app01", "High CPU on the build server", "Certificate expires next week"),
        parent="sysadmin",
        weight=4,
    ),
    CategorySpec(
        "sysadmin-storage",
        "Storage",
        K.SYSADMIN,
        "data-centre",
        REQ,
        "I need more storage",
        ("Increase the marketing share quota", "New volume for the analytics team", "Mailbox is full"),
        parent="sysadmin",
        weight=3,
    ),
    CategorySpec(
        "security",
        "Security",
        K.SECURITY,
        "security",
        INC,
        "Report a security problem",
        is_confidential=True,
    ),
    CategorySpec(
        "security-phishing",
        "Phishing",
        K.SECURITY,
        "security",
        INC,
        "I think I got a phishing e-mail",
        ("Suspicious invoice e-mail", "E-mail asks me to confirm my password", "Clicked a link in a fake parcel mail"),
        parent="security",
        is_confidential=True,
        weight=4,
    ),
    CategorySpec(
        "security-malware",
        "Malware",
        K.SECURITY,
        "security",
        INC,
        "My computer may have a virus",
        ("Antivirus alert on my laptop", "Pop-ups everywhere after a download", "Files renamed with a strange ending"),
        parent="security",
        is_confidential=True,
        weight=2,
    ),
    CategorySpec(
        "security-data-leak",
        "Data leak",
        K.SECURITY,
        "security",
        INC,
        "I think data has leaked",
        ("Customer list sent to the wrong address", "Lost a USB stick with reports", "Shared folder open to everyone"),
        parent="security",
        is_confidential=True,
        weight=1,
    ),
)


# --- directory --------------------------------------------------------------------------------------------------


@dataclass
class Directory:
    teams: dict[str, Team]
    members: dict[str, list[User]]  # team slug -> lead first, then agents
    categories: dict[str, Category]
    requesters: list[User]
    admin: User
    manager: User
    security_officer: User
    created: int = 0  # objects created by this call (0 when the directory was already complete)


def _user_ensure(spec: PersonSpec, password: str | None) -> tuple[User, bool]:
    existing = User.objects.filter(email__iexact=spec.email).first()
    if existing is not None:
        return existing, False
    user = security_services.user_create(
        actor=None,
        email=spec.email,
        full_name=spec.full_name,
        password=password,
        organisation=spec.organisation,
        time_zone=spec.time_zone,
        is_admin=spec.is_admin,
        is_manager=spec.is_manager,
        is_security_officer=spec.is_security_officer,
    )
    return user, True


def _team_ensure(spec: TeamSpec) -> tuple[Team, bool]:
    existing = Team.objects.filter(slug=spec.slug).first() or Team.objects.filter(name=spec.name).first()
    if existing is not None:
        return existing, False
    team = security_services.team_create(
        actor=None,
        name=spec.name,
        slug=spec.slug,
        email=f"{spec.slug}@{STAFF_DOMAIN}",
        is_security=spec.is_security,
        auto_assign=spec.auto_assign,
    )
    return team, True


def _category_ensure(spec: CategorySpec, order: int, teams: dict[str, Team], parents: dict[str, Category]) -> bool:
    if spec.slug in parents or Category.objects.filter(slug=spec.slug).exists():
        parents.setdefault(spec.slug, Category.objects.select_related("parent").get(slug=spec.slug))
        return False
    # No category service exists yet: write it the way an administrator's change is written, and audit it.
    category = Category.objects.create(
        parent=parents[spec.parent] if spec.parent else None,
        name=spec.name,
        slug=spec.slug,
        kind=spec.kind,
        portal_label=spec.portal_label,
        default_type=spec.type,
        default_team=teams[spec.team],
        is_confidential=spec.is_confidential,
        sort_order=order,
    )
    audit_record(actor=None, action="category.create", obj=category, after=snapshot(category, CATEGORY_AUDIT_FIELDS))
    parents[spec.slug] = category
    return True


@transaction.atomic
def directory_ensure(*, password: str | None = DEMO_PASSWORD) -> Directory:
    """Create (or adopt) the demo teams, people and categories. Idempotent: a second call creates nothing."""
    created = 0
    teams: dict[str, Team] = {}
    members: dict[str, list[User]] = {}
    for team_spec in TEAMS:
        team, was_created = _team_ensure(team_spec)
        created += was_created
        teams[team_spec.slug] = team
        members[team_spec.slug] = []
        for index, name in enumerate((team_spec.lead, *team_spec.agents)):
            user, was_created = _user_ensure(PersonSpec(staff_email(name), name, "IT"), password)
            created += was_created
            role = Membership.Role.LEAD if index == 0 else Membership.Role.AGENT
            if not Membership.objects.filter(user=user, team=team).exists():
                security_services.membership_set(actor=None, user=user, team=team, role=role)
                created += 1
            members[team_spec.slug].append(user)
    admin, was_created_admin = _user_ensure(ADMIN, password)
    manager, was_created_manager = _user_ensure(MANAGER, password)
    officer, was_created_officer = _user_ensure(SECURITY_OFFICER, password)
    created += was_created_admin + was_created_manager + was_created_officer
    requesters = []
    for spec in requester_specs():
        user, was_created = _user_ensure(spec, password)
        created += was_created
        requesters.append(user)
    categories: dict[str, Category] = {}
    for order, category_spec in enumerate(CATEGORIES):
        created += _category_ensure(category_spec, order * 10, teams, categories)
    return Directory(
        teams=teams,
        members=members,
        categories=categories,
        requesters=requesters,
        admin=admin,
        manager=manager,
        security_officer=officer,
        created=created,
    )


# --- ticket stories ---------------------------------------------------------------------------------------------

MINUTE, HOUR, DAY = 60, 3600, 86400

AGENT_REPLIES = (
    "Thanks for reporting this. I am looking into it now.",
    "I have reproduced the problem and am working on a fix.",
    "Could you tell me when this started and whether anything changed before?",
    "I will come by your desk this afternoon.",
    "We have ordered the part; it should arrive in two days.",
)
REQUESTER_REPLIES = (
    "It started yesterday morning; nothing changed as far as I know.",
    "Thanks! Here is the information you asked for.",
    "It happened again just now.",
    "I am in the office until 5 pm if you want to come by.",
)
NOTES = (
    "Same symptom as last month's ticket on this model; likely the docking firmware.",
    "Checked the logs: nothing suspicious on the server side.",
    "Vendor case opened, reference VND-4471.",
    "User is a VIP, keep them updated.",
    "Needs a change window: touches production.",
)
RESOLUTIONS = (
    "Fixed: replaced the faulty part. Please confirm it works for you.",
    "Done: installed and tested with you on the phone.",
    "Resolved: access granted, it may take 15 minutes to apply.",
    "Resolved: configuration corrected and verified.",
)
OVERRIDE_REASONS = (
    "Affects the whole floor.",
    "Blocks month-end closing.",
    "Requester travels tomorrow.",
    "Workaround available, lowering priority.",
)
CANCEL_BY_REQUESTER = ("No longer needed, thank you.", "Sorted it out myself.", "Raised by mistake.")
CANCEL_BY_AGENT = ("Duplicate of an existing ticket.", "Handled by the vendor directly.")
REOPEN_REASONS = ("The problem came back this morning.", "Still not working for me, sorry.")

# The states every seed covers, before random ones: so even `--tickets 10` shows each state and pending reason.
COVERAGE: tuple[tuple[str, str], ...] = (
    (TicketState.NEW, ""),
    (TicketState.ASSIGNED, ""),
    (TicketState.IN_PROGRESS, ""),
    (TicketState.PENDING, PendingReason.AWAITING_REQUESTER),
    (TicketState.PENDING, PendingReason.AWAITING_VENDOR),
    (TicketState.PENDING, PendingReason.CHANGE_WINDOW),
    (TicketState.RESOLVED, ""),
    (TicketState.CLOSED, ""),
    (TicketState.CANCELLED, ""),
)


@dataclass(frozen=True)
class Step:
    """One action on a ticket, `offset` seconds after its creation. `pick` chooses among people when it runs."""

    offset: int
    kind: str
    text: str = ""
    pick: int = 0
    value: Any = None


@dataclass
class TicketPlan:
    index: int
    created_ago: int  # seconds before the seeding instant
    category: str
    requester: int  # index into the requesters
    title: str
    description: str
    impact: int
    urgency: int
    target: str
    pending_reason: str = ""
    steps: list[Step] = field(default_factory=list)


def _target_for_age(rng: random.Random, age_days: float) -> tuple[str, str]:
    s = TicketState
    table: tuple[tuple[str, int], ...]
    if age_days < 1:
        table = (
            (s.NEW, 25),
            (s.ASSIGNED, 20),
            (s.IN_PROGRESS, 30),
            (s.PENDING, 10),
            (s.RESOLVED, 10),
            (s.CANCELLED, 5),
        )
    elif age_days < 7:
        table = (
            (s.NEW, 4),
            (s.ASSIGNED, 8),
            (s.IN_PROGRESS, 20),
            (s.PENDING, 20),
            (s.RESOLVED, 28),
            (s.CLOSED, 12),
            (s.CANCELLED, 8),
        )
    else:
        table = ((s.IN_PROGRESS, 3), (s.PENDING, 4), (s.RESOLVED, 3), (s.CLOSED, 78), (s.CANCELLED, 12))
    states, weights = zip(*table, strict=True)
    target = rng.choices(states, weights)[0]
    reason = rng.choice(PendingReason.values) if target == s.PENDING else ""
    return target, reason


def _created_ago(rng: random.Random, days: int) -> int:
    """Recent days are busier: a third of the tickets fall in the last week, the rest anywhere in `days`."""
    span = 7 if rng.random() < 0.33 else days
    return max(15 * MINUTE, int(rng.uniform(0, span) * DAY))


def plan_tickets(*, rng: random.Random, count: int, days: int = 90) -> list[TicketPlan]:
    """Ticket stories for `count` tickets created over the last `days` days. Pure: no clock, no database."""
    weighted = [spec for spec in CATEGORIES if spec.weight]
    team_of = {spec.slug: spec.team for spec in CATEGORIES}
    auto_teams = {spec.slug for spec in TEAMS if spec.auto_assign}
    not_auto = [spec for spec in weighted if spec.team not in auto_teams]
    requester_count = sum(len(names) for _, _, names in ORGANISATIONS)
    plans = []
    for index in range(count):
        created_ago = _created_ago(rng, days)
        if index < len(COVERAGE):
            target, pending_reason = COVERAGE[index]
        else:
            target, pending_reason = _target_for_age(rng, created_ago / DAY)
        # A ticket routed to an auto-assigning team is never `new`: pick a category of a team that works by hand.
        pool = not_auto if target == TicketState.NEW else weighted
        spec = rng.choices(pool, [c.weight for c in pool])[0]
        title = rng.choice(spec.titles)
        plan = TicketPlan(
            index=index,
            created_ago=created_ago,
            category=spec.slug,
            requester=rng.randrange(requester_count),
            title=title,
            description=f"<p>{title}.</p><p>{rng.choice(REQUESTER_REPLIES)}</p>",
            impact=rng.choices(Level.values, (15, 55, 30))[0],
            urgency=rng.choices(Level.values, (20, 50, 30))[0],
            target=target,
            pending_reason=pending_reason,
        )
        plan.steps = _story(rng, plan, team_of[spec.slug] in auto_teams, escalate=spec.team == SERVICE_DESK_SLUG)
        _fit_into_past(plan)
        plans.append(plan)
    return plans


def _story(rng: random.Random, plan: TicketPlan, auto_assigned: bool, *, escalate: bool) -> list[Step]:
    """The steps that take a new ticket to `plan.target`, with realistic gaps between them."""
    s = TicketState
    steps: list[Step] = []
    at = 0

    def add(kind: str, gap: tuple[int, int], **kwargs: Any) -> None:
        nonlocal at
        at += rng.randint(*gap)
        steps.append(Step(at, kind, **kwargs))

    target = plan.target
    if target == s.NEW:
        if rng.random() < 0.3:
            add("note", (10 * MINUTE, 2 * HOUR), text=rng.choice(NOTES), pick=rng.randrange(10))
        return steps
    if target == s.CANCELLED and rng.random() < 0.5:
        add("cancel_requester", (30 * MINUTE, 2 * DAY), text=rng.choice(CANCEL_BY_REQUESTER))
        return steps
    if not auto_assigned:
        add("take", (5 * MINUTE, 3 * HOUR), pick=rng.randrange(10), value=rng.random() < 0.3)
    if escalate and target not in (s.ASSIGNED,) and rng.random() < 0.25:
        # L1 hands the ticket to a specialist team, whose agent then takes it.
        add("note", (5 * MINUTE, HOUR), text="Escalating to second line.", pick=rng.randrange(10))
        add("escalate", (MINUTE, 10 * MINUTE), value=rng.choice(("desktop-support", "network", "data-centre")))
        add("take", (10 * MINUTE, 4 * HOUR), pick=rng.randrange(10), value=rng.random() < 0.3)
    elif rng.random() < 0.1:
        add("reassign", (30 * MINUTE, 5 * HOUR), pick=rng.randrange(10))
    if rng.random() < 0.12:
        add("override", (5 * MINUTE, 2 * HOUR), value=rng.choice(Priority.values), text=rng.choice(OVERRIDE_REASONS))
    if target == s.ASSIGNED:
        if rng.random() < 0.5:
            add("reply_agent", (10 * MINUTE, 3 * HOUR), text=rng.choice(AGENT_REPLIES))
        return steps
    if target == s.CANCELLED:
        add("cancel_agent", (HOUR, 2 * DAY), text=rng.choice(CANCEL_BY_AGENT))
        return steps
    add("start", (10 * MINUTE, 6 * HOUR))
    if rng.random() < 0.6:
        add("reply_agent", (5 * MINUTE, 4 * HOUR), text=rng.choice(AGENT_REPLIES))
    if rng.random() < 0.35:
        add("note", (5 * MINUTE, 8 * HOUR), text=rng.choice(NOTES))
    if target == s.IN_PROGRESS:
        if rng.random() < 0.3:
            add("reply_requester", (30 * MINUTE, DAY), text=rng.choice(REQUESTER_REPLIES))
        return steps
    if target == s.PENDING:
        if plan.pending_reason == PendingReason.AWAITING_REQUESTER:
            add("reply_agent", (5 * MINUTE, 2 * HOUR), text="Could you send a photo of the error message?")
        add("pending", (MINUTE, 30 * MINUTE), value=plan.pending_reason)
        return steps
    # resolved or closed: some went through a pending spell first.
    if rng.random() < 0.3:
        add("reply_agent", (5 * MINUTE, 2 * HOUR), text="Could you confirm which room you are in?")
        add("pending", (MINUTE, 30 * MINUTE), value=PendingReason.AWAITING_REQUESTER)
        add("reply_requester", (HOUR, 2 * DAY), text=rng.choice(REQUESTER_REPLIES))  # resumes the ticket
    elif rng.random() < 0.15:
        add("pending", (10 * MINUTE, 2 * HOUR), value=PendingReason.AWAITING_VENDOR)
        add("resume", (4 * HOUR, 3 * DAY))
    add("reply_agent", (30 * MINUTE, 2 * DAY), text=rng.choice(RESOLUTIONS))
    add("resolve", (MINUTE, 10 * MINUTE))
    if rng.random() < 0.08:
        add("reopen", (2 * HOUR, 2 * DAY), text=rng.choice(REOPEN_REASONS))
        add("reply_agent", (HOUR, DAY), text=rng.choice(RESOLUTIONS))
        add("resolve", (MINUTE, 10 * MINUTE))
    if target == s.CLOSED:
        by_requester = rng.random() < 0.6
        add("close", (HOUR, 5 * DAY), value=by_requester)
    return steps


def _fit_into_past(plan: TicketPlan) -> None:
    """Squeeze the story so that its last step still lies at least a minute in the past."""
    if not plan.steps:
        return
    available = plan.created_ago - MINUTE
    last = plan.steps[-1].offset
    if last <= available:
        return
    scale = available / last
    plan.steps = [
        Step(max(1, int(step.offset * scale)) + n, step.kind, step.text, step.pick, step.value)
        for n, step in enumerate(plan.steps)
    ]
