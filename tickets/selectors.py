"""Reads of tickets, always scoped to what the user may see (the SQL twin of `security.permissions`)."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast

from itsm.errors import NotFound
from security import permissions
from security.models import AuditLog, Team, User
from tickets.models import Attachment, Category, Ticket, TicketEvent


def ticket_visible_to(user: User) -> QuerySet[Ticket]:
    """Every ticket `user` may see; keep in step with `security.permissions.can_view_ticket`."""
    if not user.is_authenticated or not user.is_active:
        return Ticket.objects.none()
    access = permissions.access_for(user)
    visible = Q(requester_id=user.pk)
    if user.is_manager:
        visible |= Q(is_confidential=False)
    elif access.is_agent:
        visible |= Q(is_confidential=False) & (Q(team_id__in=access.team_ids) | Q(assignee_id=user.pk))
    if user.is_security_officer:
        visible |= Q(is_confidential=True)
    elif access.is_security_member:
        visible |= Q(is_confidential=True) & (Q(team_id__in=access.security_team_ids) | Q(assignee_id=user.pk))
    return Ticket.objects.filter(visible)


def ticket_get(*, user: User, number: str | None = None, pk: int | None = None) -> Ticket:
    """One visible ticket by number or id; missing and forbidden are the same `NotFound`."""
    queryset = ticket_visible_to(user).select_related("requester", "category", "category__parent", "team", "assignee")
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
    queryset = ticket_visible_to(user).select_related("requester", "category", "team", "assignee")
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


def assignable_agents(*, ticket: Ticket) -> QuerySet[User]:
    """Active members of the ticket's team, by name: who an agent may hand the ticket to."""
    if ticket.team_id is None:
        return User.objects.none()
    return User.objects.filter(memberships__team_id=ticket.team_id, is_active=True).order_by("full_name", "id")


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
