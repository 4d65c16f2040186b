"""Reads of tickets, always scoped to what the user may see (the SQL twin of `security.permissions`)."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from django.contrib.postgres.search import SearchQuery
from django.db.models import Case, CharField, F, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from itsm.errors import NotFound
from security import permissions
from security.models import AuditLog, Team, User
from tickets import queues
from tickets.models import Attachment, Category, Comment, SavedView, Ticket, TicketEvent


def ticket_visible_to(user: User) -> QuerySet[Ticket]:
    """Every ticket `user` may see; keep in step with `security.permissions.can_view_ticket`."""
    if not user.is_authenticated or not user.is_active:
        return Ticket.objects.none()
    return Ticket.objects.filter(Q(requester_id=user.pk) | _internals_condition(user))


def ticket_internals_visible_to(user: User) -> QuerySet[Ticket]:
    """The visible tickets whose internals (notes, SLA figures) `user` may see: `ticket_visible_to` without the
    tickets seen only as their requester. Keep in step with `security.permissions.can_view_internal`."""
    if not user.is_authenticated or not user.is_active:
        return Ticket.objects.none()
    return Ticket.objects.filter(_internals_condition(user))


def _internals_condition(user: User) -> Q:
    access = permissions.access_for(user)
    visible = Q(pk__in=[])
    if user.is_manager:
        visible |= Q(is_confidential=False)
    elif access.is_agent:
        visible |= Q(is_confidential=False) & (Q(team_id__in=access.team_ids) | Q(assignee_id=user.pk))
    if user.is_security_officer:
        visible |= Q(is_confidential=True)
    elif access.is_security_member:
        visible |= Q(is_confidential=True) & (Q(team_id__in=access.security_team_ids) | Q(assignee_id=user.pk))
    return visible


def ticket_get(*, user: User, number: str | None = None, pk: int | None = None) -> Ticket:
    """One visible ticket by number or id; missing and forbidden are the same `NotFound`."""
    # The CSAT rating rides along (a reverse one-to-one join), so pages show it without a query of their own.
    queryset = ticket_visible_to(user).select_related(
        "requester", "category", "category__parent", "team", "assignee", "satisfaction"
    )
    try:
        if number is not None:
            return queryset.get(number=number.strip().upper())
        if pk is None:
            raise NotFound("No such ticket.")
        return queryset.get(pk=pk)
    except (Ticket.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound("No such ticket.") from exc


@dataclass(frozen=True)
class Page:
    items: list[Ticket]
    next_cursor: str | None


def _encode_cursor(ticket: Ticket) -> str:
    return f"{ticket.updated_at.isoformat()}|{ticket.pk}"


def _decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    try:
        stamp, pk = cursor.rsplit("|", 1)
        value = datetime.fromisoformat(stamp)
        if value.tzinfo is None:
            return None
        return value, int(pk)
    except ValueError:
        return None


def ticket_list(
    *,
    user: User,
    state: list[str] | None = None,
    team_id: int | None = None,
    team_ids: Collection[int] | None = None,
    assignee_id: int | None = None,
    requester_id: int | None = None,
    after: str | None = None,
    limit: int = 50,
) -> Page:
    """A keyset page of visible tickets, most recently updated first. Costs one query whatever the table size."""
    queryset = (
        ticket_visible_to(user)
        .select_related("requester", "category", "team", "assignee")
        .defer("description", "search_vector")
    )
    if state:
        queryset = queryset.filter(state__in=state)
    if team_id is not None:
        queryset = queryset.filter(team_id=team_id)
    if team_ids is not None:
        queryset = queryset.filter(team_id__in=list(team_ids))
    if assignee_id is not None:
        queryset = queryset.filter(assignee_id=assignee_id)
    if requester_id is not None:
        queryset = queryset.filter(requester_id=requester_id)
    decoded = _decode_cursor(after) if after else None
    if decoded is not None:
        stamp, pk = decoded
        queryset = queryset.filter(Q(updated_at__lt=stamp) | Q(updated_at=stamp, id__lt=pk))
    limit = max(1, min(limit, 100))
    rows = list(queryset.order_by("-updated_at", "-id")[: limit + 1])
    items = rows[:limit]
    return Page(items=items, next_cursor=_encode_cursor(items[-1]) if len(rows) > limit else None)


def timeline_for(*, user: User, ticket: Ticket) -> QuerySet[TicketEvent]:
    """The ticket's events in time order; internal ones only for those who may see internal notes."""
    events = TicketEvent.objects.filter(ticket=ticket).select_related("actor", "comment").order_by("at", "id")
    if not permissions.can_view_internal(user, ticket):
        events = events.filter(is_internal=False)
    return events


def attachments_for(*, user: User, ticket: Ticket) -> QuerySet[Attachment]:
    attachments = Attachment.objects.filter(ticket=ticket).order_by("created_at", "id")
    if not permissions.can_view_internal(user, ticket):
        attachments = attachments.filter(is_internal=False)
    return attachments


def attachment_get(*, user: User, pk: int) -> Attachment:
    try:
        attachment = Attachment.objects.select_related("ticket").get(pk=pk)
    except (Attachment.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound("No such attachment.") from exc
    ticket = attachment.ticket
    if not permissions.can_view_ticket(user, ticket) or (
        attachment.is_internal and not permissions.can_view_internal(user, ticket)
    ):
        raise NotFound("No such attachment.")
    return attachment


def category_choices() -> QuerySet[Category]:
    return Category.objects.filter(is_active=True).select_related("parent").order_by("sort_order", "name")


def assignable_agents(*, ticket: Ticket, team_id: int | None = None) -> QuerySet[User]:
    """Active members of the ticket's team (or of `team_id`, the team it is about to move to), by name: who an agent
    may hand the ticket to. Never anyone outside that team, and no service accounts (an integration's member account
    is not someone to hand work to; round-robin skips them too) unless one already holds the ticket (an integration
    may assign through the API), so that the forms show who it is and saving them keeps it."""
    target = team_id if team_id is not None else ticket.team_id
    if target is None:
        return User.objects.none()
    members = User.objects.filter(memberships__team_id=target, is_active=True).filter(
        Q(is_service_account=False) | Q(pk=ticket.assignee_id)
    )
    return members.order_by("full_name", "id")


def team_choices(*, ticket: Ticket) -> QuerySet[Team]:
    """Teams a ticket may move to: every team, or only security teams for a confidential ticket."""
    teams = Team.objects.order_by("name", "id")
    if ticket.is_confidential:
        teams = teams.filter(is_security=True)
    return teams


@dataclass(frozen=True)
class TimelineNames:
    users: dict[int, str]
    teams: dict[int, str]
    categories: dict[int, str]


def timeline_names(*, events: Sequence[TicketEvent]) -> TimelineNames:
    """Names of the people, teams and categories that `events` (already visibility-scoped) moved the ticket to: at
    most three queries whatever the number of events."""
    wanted: dict[str, set[int]] = {
        TicketEvent.Kind.ASSIGNED: set(),
        TicketEvent.Kind.TEAM_CHANGED: set(),
        TicketEvent.Kind.CATEGORY_CHANGED: set(),
    }
    for event in events:
        target = (event.data or {}).get("to")
        if event.kind in wanted and isinstance(target, int):
            wanted[event.kind].add(target)
    user_ids = wanted[TicketEvent.Kind.ASSIGNED]
    team_ids = wanted[TicketEvent.Kind.TEAM_CHANGED]
    category_ids = wanted[TicketEvent.Kind.CATEGORY_CHANGED]
    return TimelineNames(
        users=dict(User.objects.filter(pk__in=user_ids).order_by().values_list("pk", "full_name")) if user_ids else {},
        teams=dict(Team.objects.filter(pk__in=team_ids).order_by().values_list("pk", "name")) if team_ids else {},
        categories=(
            dict(Category.objects.filter(pk__in=category_ids).order_by().values_list("pk", "name"))
            if category_ids
            else {}
        ),
    )


def audit_hide_confidential_tickets(queryset: QuerySet[AuditLog]) -> QuerySet[AuditLog]:
    """Audit rows about confidential tickets carry their titles and changes: hide them like the tickets. The
    subquery reads the small partial index `tickets_confidential`."""
    confidential = (
        Ticket.objects.filter(is_confidential=True).annotate(id_text=Cast("pk", CharField())).values("id_text")
    )
    return queryset.exclude(object_type=Ticket._meta.label_lower, object_id__in=confidential)


# --- desk queues ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuePage:
    items: list[Ticket]
    next_cursor: queues.Cursor | None
    previous_cursor: queues.Cursor | None
    # More rows follow this page in the direction it was read: "50+ tickets" on a first page.
    has_more: bool


def _queue_sort_expression(column: str) -> Any:
    """The value a queue sorts and keyset-pages on. Names of optional relations are coalesced to '' so that the
    ORDER BY and the cursor comparison see the same value for "nobody" (NULL would break the row comparison)."""
    if column == "state":
        return Case(
            *(When(state=state, then=Value(rank)) for rank, state in enumerate(queues.STATE_ORDER)),
            output_field=IntegerField(),
        )
    plain = {
        "updated": "updated_at",
        "created": "created_at",
        "priority": "priority",
        "number": "number",
        "title": "title",
        "category": "category__name",
    }
    if column in plain:
        return F(plain[column])
    named = {"requester": "requester__full_name", "team": "team__name", "assignee": "assignee__full_name"}
    return Coalesce(F(named[column]), Value(""))


def _beyond(queryset: QuerySet[Any], cursor: queues.Cursor, *, descending: bool) -> QuerySet[Any]:
    """Rows strictly after `cursor` in (sort value, id) order. The extra `<=`/`>=` on the sort value alone bounds
    an index scan; the OR only settles ties on the value by id."""
    value, pk = cursor.value, cursor.pk
    if descending:
        return queryset.filter(queue_sort_value__lte=value).filter(
            Q(queue_sort_value__lt=value) | Q(queue_sort_value=value, id__lt=pk)
        )
    return queryset.filter(queue_sort_value__gte=value).filter(
        Q(queue_sort_value__gt=value) | Q(queue_sort_value=value, id__gt=pk)
    )


RECENT_WINDOW = timedelta(days=7)


def _queue_filtered(*, user: User, query: queues.QueueQuery, zone: tzinfo) -> QuerySet[Ticket]:
    """The visible tickets of the queue's scope that pass the page's filters."""
    return _queue_filters(ticket_visible_to(user), user=user, query=query, zone=zone)


def _queue_filters(
    queryset: QuerySet[Ticket], *, user: User, query: queues.QueueQuery, zone: tzinfo
) -> QuerySet[Ticket]:
    """`queryset` narrowed to the queue's scope and the page's filters (everything but the visibility rule)."""
    team_ids = sorted(permissions.access_for(user).team_ids)
    if query.queue == queues.MINE:
        queryset = queryset.filter(assignee_id=user.pk)
    elif query.queue == queues.UNASSIGNED:
        queryset = queryset.filter(team_id__in=team_ids, assignee__isnull=True)
    elif query.queue == queues.TEAM:
        queryset = queryset.filter(team_id__in=team_ids)
    elif query.queue == queues.RECENT:
        # What moved lately, in any state: a window on the `tickets_updated` index.
        queryset = queryset.filter(updated_at__gte=timezone.now() - RECENT_WINDOW)
    states = query.effective_states
    if states:
        queryset = queryset.filter(state__in=states)
    if query.q:
        search = Q(search_vector=SearchQuery(query.q, search_type="websearch", config="english"))
        if query.number:
            search |= Q(number=query.number)
        queryset = queryset.filter(search)
    if query.priorities:
        queryset = queryset.filter(priority__in=query.priorities)
    if query.type:
        queryset = queryset.filter(type=query.type)
    if query.category_id is not None:
        queryset = queryset.filter(category_id=query.category_id)
    if query.team_id is not None:
        queryset = queryset.filter(team_id=query.team_id)
    if query.assignee == queues.ME:
        queryset = queryset.filter(assignee_id=user.pk)
    elif query.assignee == queues.NOBODY:
        queryset = queryset.filter(assignee__isnull=True)
    elif isinstance(query.assignee, int):
        queryset = queryset.filter(assignee_id=query.assignee)
    if query.requester_id is not None:
        queryset = queryset.filter(requester_id=query.requester_id)
    elif query.requester_email:
        # A join on the unique e-mail, not a lookup first: the page costs the same number of queries either way.
        queryset = queryset.filter(requester__email=query.requester_email)
    for column, day_from, day_to in (
        ("created_at", query.created_from, query.created_to),
        ("updated_at", query.updated_from, query.updated_to),
    ):
        start, end = queues.day_bounds(day_from, day_to, zone)
        if start is not None:
            queryset = queryset.filter(**{f"{column}__gte": start})
        if end is not None:
            queryset = queryset.filter(**{f"{column}__lt": end})
    return queryset


# A search first collects the matching visible ids through the GIN index, up to this many. Without it the planner
# walks the sort index and tests every row, which takes seconds when a word is common in the table but rare (or
# absent) among the tickets this user may see. Past the cap, matches are plentiful and the walk ends early.
SEARCH_ID_CAP = 2000


def _visibility_arms(user: User) -> list[Q] | None:
    """`ticket_visible_to(user)` as one condition per rule, for an agent who is neither a manager nor a security
    officer (their rule is exactly the union of these); None for anyone else. Keep in step with `ticket_visible_to`."""
    if not user.is_authenticated or not user.is_active or user.is_manager or user.is_security_officer:
        return None
    access = permissions.access_for(user)
    if not access.is_agent:
        return None
    arms = [
        Q(team_id__in=sorted(access.team_ids), is_confidential=False),
        Q(requester_id=user.pk),
        Q(assignee_id=user.pk, is_confidential=False),
    ]
    if access.is_security_member:
        arms += [
            Q(team_id__in=sorted(access.security_team_ids), is_confidential=True),
            Q(assignee_id=user.pk, is_confidential=True),
        ]
    return arms


def queue_tickets(*, user: User, query: queues.QueueQuery, zone: tzinfo) -> QuerySet[Ticket]:
    """The tickets behind a queue page whose internals `user` may see, with the page's filters, unsorted: for lists
    built elsewhere on the same filters (the "Breaching soon" queue reads SLA clocks of these tickets)."""
    return _queue_filters(ticket_internals_visible_to(user), user=user, query=query, zone=zone)


def _narrow_search(*, user: User, query: queues.QueueQuery, zone: tzinfo) -> QuerySet[Ticket]:
    """The filtered visible tickets of a search page, narrowed by one extra query to the ids of the matches if there
    are at most `SEARCH_ID_CAP` of them.

    For a plain agent the id query is one `UNION ALL` arm per visibility rule, each with the page's filters: every
    arm is a narrow test on the GIN matches, where the OR-shaped rule was tested on every match (a word common in
    other teams' tickets cost ~100 ms at 1M). An arm may repeat an id of another; the ids only feed `id__in`. The
    page query still applies the visibility rule to those ids.
    """
    visible = _queue_filtered(user=user, query=query, zone=zone)
    arms = _visibility_arms(user)
    if arms is None:
        id_query = visible.order_by().values_list("id", flat=True)
    else:
        unscoped = _queue_filters(Ticket.objects.all(), user=user, query=query, zone=zone)
        first, *rest = (unscoped.filter(arm).order_by().values_list("id", flat=True) for arm in arms)
        id_query = first.union(*rest, all=True)
    ids = list(id_query[: SEARCH_ID_CAP + 1])
    if len(ids) > SEARCH_ID_CAP:
        return visible
    return ticket_visible_to(user).filter(id__in=ids)


def ticket_queue(*, user: User, query: queues.QueueQuery, zone: tzinfo) -> QueuePage:
    """One keyset page of a desk queue: visible tickets, the queue's scope, the filters, sorted on (sort value, id).

    One query whatever the table size and the filters (two with a search text; EmptyResultSet short-cuts to none).
    Dates are whole days in `zone`. The page reads `size + 1` rows to know whether more follow; nothing is ever counted.
    """
    descending = query.sort.is_column_descending
    if query.q:
        filtered = _narrow_search(user=user, query=query, zone=zone)
    else:
        filtered = _queue_filtered(user=user, query=query, zone=zone)
    queryset: QuerySet[Any] = (
        filtered.select_related("requester", "category", "team", "assignee")
        .defer("description", "search_vector")
        .annotate(queue_sort_value=_queue_sort_expression(query.sort.column))
    )
    size = query.size
    # Reading backwards (a "Previous" link) walks the order the other way and turns the rows round afterwards.
    backwards = query.before is not None
    read_descending = descending != backwards
    position = query.before if backwards else query.after
    cursor = position if isinstance(position, queues.Cursor) else None
    if cursor is not None:
        queryset = _beyond(queryset, cursor, descending=read_descending)
    value_order = F("queue_sort_value").desc() if read_descending else F("queue_sort_value").asc()
    rows: list[Ticket] = list(queryset.order_by(value_order, "-id" if read_descending else "id")[: size + 1])
    has_more = len(rows) > size
    items = rows[:size]
    if backwards:
        items.reverse()

    def at(ticket: Ticket) -> queues.Cursor:
        # The annotated value itself, so the cursor compares exactly as the ORDER BY sorted.
        return queues.Cursor(query.sort, getattr(ticket, "queue_sort_value"), ticket.pk)  # noqa: B009

    if not items:
        return QueuePage(items=[], next_cursor=None, previous_cursor=None, has_more=False)
    if backwards:
        return QueuePage(
            items=items, next_cursor=at(items[-1]), previous_cursor=at(items[0]) if has_more else None, has_more=False
        )
    return QueuePage(
        items=items,
        next_cursor=at(items[-1]) if has_more else None,
        previous_cursor=at(items[0]) if cursor is not None else None,
        has_more=has_more,
    )


@dataclass(frozen=True)
class QueueChoices:
    """What the queue's filter, bulk and save forms offer: never every user, only members of the user's teams."""

    categories: list[Category]
    teams: list[Team]
    members: list[User]
    own_teams: list[Team]


def team_members(*, user: User) -> list[User]:
    """Active members of the user's teams, by name (the user included): whom the desk offers to filter by and
    assign to. One query, none without a team."""
    team_ids = permissions.access_for(user).team_ids
    if not team_ids:
        return []
    return list(
        User.objects.filter(memberships__team_id__in=team_ids, is_active=True).distinct().order_by("full_name", "id")
    )


def queue_choices(*, user: User) -> QueueChoices:
    """Three queries whatever the table sizes (categories, teams and their members are directory-sized)."""
    team_ids = permissions.access_for(user).team_ids
    teams = list(Team.objects.order_by("name", "id"))
    return QueueChoices(
        categories=list(category_choices()),
        teams=teams,
        members=team_members(user=user),
        own_teams=[team for team in teams if team.pk in team_ids],
    )


def tickets_by_number(*, user: User, numbers: Collection[str]) -> dict[str, Ticket]:
    """The visible ones among `numbers` (canonical ticket numbers), by number; the others are simply absent."""
    if not numbers:
        return {}
    return {ticket.number: ticket for ticket in ticket_visible_to(user).filter(number__in=list(numbers))}


def saved_view_list(*, user: User) -> QuerySet[SavedView]:
    """The user's own saved views and those shared with one of their teams, by name."""
    if not user.is_authenticated or not user.is_active:
        return SavedView.objects.none()
    team_ids = permissions.access_for(user).team_ids
    return (
        SavedView.objects.filter(Q(owner_id=user.pk) | Q(team_id__in=team_ids))
        .select_related("team")
        .order_by("name", "id")
    )


def saved_view_get(*, user: User, pk: int) -> SavedView:
    """One saved view the user may see; missing and forbidden are the same `NotFound`."""
    try:
        return saved_view_list(user=user).get(pk=pk)
    except (SavedView.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound("No such saved view.") from exc


# --- API reads -----------------------------------------------------------------------------------------------------


def comments_for(*, user: User, ticket: Ticket, include_internal: bool) -> QuerySet[Comment]:
    """The ticket's comments in time order; internal notes only when asked for and the user may see them."""
    comments = Comment.objects.filter(ticket=ticket).select_related("author").order_by("created_at", "id")
    if not (include_internal and permissions.can_view_internal(user, ticket)):
        comments = comments.filter(is_internal=False)
    return comments


def teams_visible_to(user: User) -> QuerySet[Team]:
    """Teams, for people who work or oversee tickets; requesters see none."""
    if not permissions.can_use_desk(user):
        return Team.objects.none()
    return Team.objects.all()


def users_visible_to(user: User, *, email: str = "") -> QuerySet[User]:
    """Whom the caller may look up: themselves, and for desk users the active members of their teams; an agent may
    also find one active user by exact e-mail (to raise a ticket on their behalf). Never the whole directory."""
    if not user.is_authenticated or not user.is_active:
        return User.objects.none()
    visible = Q(pk=user.pk)
    if permissions.can_use_desk(user):
        team_ids = sorted(permissions.access_for(user).team_ids)
        if team_ids:
            visible |= Q(is_active=True, memberships__team_id__in=team_ids)
        if email and permissions.is_agent(user):
            visible |= Q(is_active=True, email=email.strip().lower())
    users = User.objects.filter(pk__in=User.objects.filter(visible).values("pk"))
    if email:
        users = users.filter(email=email.strip().lower())
    return users


def active_user(pk: int) -> User | None:
    """An active user by id (a would-be requester or assignee; services check what may be done with them)."""
    return User.objects.filter(pk=pk, is_active=True).first()


def team_by_id(pk: int) -> Team | None:
    return Team.objects.filter(pk=pk).first()
