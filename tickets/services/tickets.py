"""Writes to tickets. Every change goes through one of these services, which:

1. locks the ticket row (`_lock_ticket`), re-checks permission with `security.permissions`;
2. returns unchanged when nothing changes;
3. writes the timeline event, saves with `update_fields` and bumps `version`;
4. appends an audit row and publishes the typed domain event (subscribers run inside this transaction).

A refusal raises a `DomainError` and leaves the database as it was.
"""

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from itsm.errors import Conflict, InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from itsm.events import publish
from itsm.queue import enqueue_on_commit
from itsm.text import sanitize_html
from security import permissions
from security.audit import audit_record, snapshot
from security.models import Membership, Team, User
from tickets import events, state
from tickets.models import Attachment, Category, Comment, PriorityMatrixEntry, Ticket, TicketEvent
from tickets.state import Actor, Level, PendingReason, Priority, TicketState, TicketType
from tickets.tasks import notify_assignee_task

logger = logging.getLogger(__name__)

TICKET_AUDIT_FIELDS = (
    "number",
    "type",
    "title",
    "requester",
    "category",
    "team",
    "assignee",
    "impact",
    "urgency",
    "priority",
    "priority_is_overridden",
    "priority_override_reason",
    "state",
    "pending_reason",
    "is_confidential",
)


# --- helpers -------------------------------------------------------------------------------------------------------


def _lock_ticket(ticket: Ticket | int) -> Ticket:
    """Lock and reload the ticket row for the rest of the transaction (one row: no ordering concerns)."""
    pk = ticket.pk if isinstance(ticket, Ticket) else ticket
    try:
        return Ticket.objects.select_for_update().get(pk=pk)
    except Ticket.DoesNotExist as exc:
        raise NotFound("No such ticket.") from exc


def _check_version(ticket: Ticket, expected_version: int | None) -> None:
    if expected_version is not None and ticket.version != expected_version:
        raise Conflict(
            "This ticket was changed since you opened it. Review the latest state and try again.", code="stale"
        )


def _actor_kind(actor: User, ticket: Ticket) -> Actor:
    """Agent if the actor works this ticket, else requester if it is theirs; anyone else gets a 404."""
    if not permissions.can_view_ticket(actor, ticket):
        raise NotFound("No such ticket.")
    if permissions.can_work_ticket(actor, ticket):
        return Actor.AGENT
    if ticket.requester_id == actor.pk:
        return Actor.REQUESTER
    raise PermissionDenied("You can view this ticket but not change it.")


def _require(predicate: Callable[[User, Ticket], bool], actor: User, ticket: Ticket, message: str) -> None:
    """Check a `security.permissions` predicate: someone who cannot even see the ticket gets the same 404 as for a
    missing one; someone who can see it but not do this gets a 403 with `message`."""
    if not predicate(actor, ticket):
        if permissions.can_view_ticket(actor, ticket):
            raise PermissionDenied(message)
        raise NotFound("No such ticket.")


def _require_agent(actor: User, ticket: Ticket) -> None:
    if _actor_kind(actor, ticket) != Actor.AGENT:
        raise PermissionDenied("Only an agent of the ticket's team can do this.")


def _clean_title(title: str) -> str:
    title = (title or "").strip()
    if not title:
        raise ValidationFailed("A title is required.", fields={"title": ["This field is required."]})
    if len(title) > settings.TICKETS_TITLE_MAX_CHARS:
        raise ValidationFailed(
            "The title is too long.",
            fields={"title": [f"Use at most {settings.TICKETS_TITLE_MAX_CHARS} characters (it has {len(title)})."]},
        )
    return title


def _clean_text(text: str, *, field: str, required: bool) -> str:
    text = text or ""
    if len(text) > settings.TICKETS_TEXT_MAX_CHARS:
        raise ValidationFailed(
            "The text is too long.",
            fields={field: [f"Use at most {settings.TICKETS_TEXT_MAX_CHARS} characters (it has {len(text)})."]},
        )
    cleaned = sanitize_html(text).strip()
    if required and not cleaned:
        raise ValidationFailed("Text is required.", fields={field: ["This field is required."]})
    return cleaned


def _clean_level(value: Any, field: str) -> int:
    try:
        level = int(value)
    except (TypeError, ValueError):
        level = -1
    if level not in Level.values:
        raise ValidationFailed(f"Invalid {field}.", fields={field: ["Choose 1 (high), 2 (medium) or 3 (low)."]})
    return level


def priority_matrix() -> dict[tuple[int, int], int]:
    return {(e.impact, e.urgency): e.priority for e in PriorityMatrixEntry.objects.all()}


def _next_number(ticket_type: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(%s)", [f"tickets_{ticket_type}_number_seq"])
        (value,) = cursor.fetchone()
    return state.format_number(ticket_type, value)


def _bump(ticket: Ticket, now: datetime, fields: Iterable[str]) -> None:
    ticket.version += 1
    ticket.updated_at = now
    ticket.save(update_fields=[*fields, "version", "updated_at"])


def _audit_ticket(actor: User | None, action: str, ticket: Ticket, before: dict[str, Any] | None) -> None:
    audit_record(actor=actor, action=action, obj=ticket, before=before, after=snapshot(ticket, TICKET_AUDIT_FIELDS))


# --- create --------------------------------------------------------------------------------------------------------


@transaction.atomic
def ticket_create(
    *,
    actor: User,
    title: str,
    description: str = "",
    category: Category | int,
    type: str | None = None,  # noqa: A002 - the domain calls it the ticket type
    impact: int = Level.MEDIUM,
    urgency: int = Level.MEDIUM,
    requester: User | None = None,
    attachments: Sequence[UploadedFile] = (),
) -> Ticket:
    """Raise a ticket. Routes it to the category's default team and, where the team asks for it, auto-assigns it
    round robin. Requesters raise their own; agents may raise one on behalf of someone else."""
    title = _clean_title(title)
    description = _clean_text(description, field="description", required=False)
    impact = _clean_level(impact, "impact")
    urgency = _clean_level(urgency, "urgency")
    category_id = category.pk if isinstance(category, Category) else category
    try:
        category_obj = Category.objects.select_related("default_team").get(pk=category_id, is_active=True)
    except (Category.DoesNotExist, ValueError, TypeError) as exc:
        raise ValidationFailed("Unknown category.", fields={"category": ["Choose a category from the list."]}) from exc
    ticket_type = type or category_obj.default_type
    if ticket_type not in TicketType.values:
        raise ValidationFailed("Unknown ticket type.", fields={"type": ["Choose incident or request."]})
    if requester is None:
        requester = actor
    elif requester.pk != actor.pk and not permissions.is_agent(actor):
        raise PermissionDenied("Only agents can raise tickets on behalf of someone else.")
    if not requester.is_active:
        raise ValidationFailed("The requester's account is disabled.", fields={"requester": ["Account disabled."]})

    now = timezone.now()
    ticket = Ticket(
        number=_next_number(ticket_type),
        type=ticket_type,
        title=title,
        description=description,
        requester=requester,
        created_by=actor,
        category=category_obj,
        team=category_obj.default_team,
        impact=impact,
        urgency=urgency,
        priority=state.priority_for(impact, urgency, priority_matrix()),
        is_confidential=category_obj.is_confidential,
        created_at=now,
        updated_at=now,
    )
    ticket.save(force_insert=True)
    events.timeline_write(
        ticket=ticket,
        kind=TicketEvent.Kind.CREATED,
        actor=actor,
        at=now,
        data={"team_id": ticket.team_id, "priority": ticket.priority, "category_id": ticket.category_id},
    )
    _audit_ticket(actor, "ticket.create", ticket, None)
    publish(events.TicketCreated(at=now, actor_id=actor.pk, ticket_id=ticket.pk))
    for upload in attachments:
        _attachment_store(actor=actor, ticket=ticket, upload=upload, comment=None, is_internal=False, now=now)
    if ticket.team is not None and ticket.team.auto_assign:
        _auto_assign(ticket=ticket, team=ticket.team, now=now)
    logger.info("tickets.created", extra={"ticket": ticket.number, "team_id": ticket.team_id})
    return ticket


def _auto_assign(*, ticket: Ticket, team: Team, now: datetime) -> None:
    """Round robin: the next active agent (by user id) after the team's cursor. Locks the team row so two tickets
    created at once go to different agents. Service accounts (integrations) are members for visibility only."""
    team = Team.objects.select_for_update().get(pk=team.pk)
    member_ids = list(
        Membership.objects.filter(team=team, user__is_active=True, user__is_service_account=False)
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )
    if not member_ids:
        return
    cursor = team.last_auto_assignee_id or 0
    next_id = next((uid for uid in member_ids if uid > cursor), member_ids[0])
    team.last_auto_assignee_id = next_id
    team.save(update_fields=["last_auto_assignee"])
    assignee = User.objects.get(pk=next_id)
    _apply_assignment(actor=None, ticket=ticket, assignee=assignee, team=team, now=now, auto=True)


# --- state ---------------------------------------------------------------------------------------------------------


@transaction.atomic
def ticket_transition(
    *,
    actor: User,
    ticket: Ticket | int,
    to_state: str,
    reason: str = "",
    pending_reason: str = "",
    expected_version: int | None = None,
) -> Ticket:
    """Move the ticket to `to_state` if the transition table allows it for this actor.

    Locks the ticket row. Idempotent: asking for the current state changes nothing (unless it is `pending` with a
    different reason, which records the new reason).
    """
    ticket = _lock_ticket(ticket)
    kind = _actor_kind(actor, ticket)
    _check_version(ticket, expected_version)
    return _apply_transition(
        actor=actor, actor_kind=kind, ticket=ticket, to_state=to_state, reason=reason, pending_reason=pending_reason
    )


def _apply_transition(
    *, actor: User | None, actor_kind: Actor, ticket: Ticket, to_state: str, reason: str = "", pending_reason: str = ""
) -> Ticket:
    if to_state not in TicketState.values:
        raise ValidationFailed("Unknown state.", fields={"state": [f"Choose one of {', '.join(TicketState.values)}."]})
    reason = (reason or "").strip()
    if len(reason) > 1000:
        raise ValidationFailed("The reason is too long.", fields={"reason": ["Use at most 1000 characters."]})
    if to_state == TicketState.PENDING:
        if pending_reason not in PendingReason.values:
            raise ValidationFailed(
                "Pending needs a reason.", fields={"pending_reason": ["Choose why the ticket is waiting."]}
            )
    else:
        pending_reason = ""
    source = ticket.state
    if source == to_state and ticket.pending_reason == pending_reason:
        return ticket
    transition = state.find_transition(source, to_state) if source != to_state else None
    if source == to_state == TicketState.PENDING:
        # Only the pending reason changes: that is the agents' "Set pending" decision, never the requester's.
        if actor_kind == Actor.REQUESTER:
            raise PermissionDenied("You cannot change why this ticket is pending.")
    elif transition is None:
        raise InvalidTransition(
            f"A ticket cannot go from {TicketState(source).label} to {TicketState(to_state).label}."
        )
    elif actor_kind not in transition.actors:
        raise PermissionDenied(f"You cannot {transition.label.lower()} this ticket.")
    if transition is not None and transition.needs_reason and not reason:
        raise ValidationFailed("A reason is required.", fields={"reason": ["Say why."]})
    now = timezone.now()
    if (
        transition is not None
        and state.is_reopen(source, to_state)
        and actor_kind == Actor.REQUESTER
        and not state.can_reopen(resolved_at=ticket.resolved_at, now=now, window_days=settings.TICKETS_REOPEN_DAYS)
    ):
        raise InvalidTransition(
            f"This ticket was resolved more than {settings.TICKETS_REOPEN_DAYS} days ago and can no longer be "
            "reopened. Please raise a new request.",
            code="reopen_window_passed",
        )
    if to_state == TicketState.ASSIGNED and ticket.assignee_id is None:
        raise InvalidTransition("Assign the ticket to someone first.", code="needs_assignee")
    if to_state == TicketState.NEW and ticket.assignee_id is not None:
        # "Unassign": a new ticket has no assignee, so the state and the assignee move together as in ticket_assign.
        return _apply_assignment(actor=actor, ticket=ticket, assignee=None, team=ticket.team, now=now)

    before = snapshot(ticket, TICKET_AUDIT_FIELDS)
    ticket.state = to_state
    ticket.pending_reason = pending_reason
    fields = ["state", "pending_reason"]
    if to_state == TicketState.RESOLVED:
        ticket.resolved_at = now
        fields.append("resolved_at")
    elif to_state == TicketState.CLOSED:
        ticket.closed_at = now
        fields.append("closed_at")
    elif state.is_reopen(source, to_state):
        ticket.resolved_at = None
        fields.append("resolved_at")
    _bump(ticket, now, fields)
    events.timeline_write(
        ticket=ticket,
        kind=TicketEvent.Kind.STATE_CHANGED,
        actor=actor,
        at=now,
        data={"from": source, "to": to_state, "reason": reason, "pending_reason": pending_reason},
    )
    _audit_ticket(actor, "ticket.transition", ticket, before)
    publish(
        events.StatusChanged(
            at=now,
            actor_id=actor.pk if actor else None,
            ticket_id=ticket.pk,
            from_state=source,
            to_state=to_state,
            reason=reason,
        )
    )
    return ticket


# --- assignment and team ------------------------------------------------------------------------------------------


@transaction.atomic
def ticket_assign(
    *,
    actor: User,
    ticket: Ticket | int,
    assignee: User | None,
    team: Team | None = None,
    expected_version: int | None = None,
) -> Ticket:
    """Give the ticket to `assignee` (None to unassign), optionally moving it to `team`.

    A new ticket that gets an assignee becomes `assigned`; an `assigned` ticket that loses it goes back to `new`.
    Moving to another team without naming an assignee clears the assignee. Confidential tickets stay in security
    teams. Locks the ticket row; a no-op when nothing changes.
    """
    ticket = _lock_ticket(ticket)
    _require_agent(actor, ticket)
    _check_version(ticket, expected_version)
    target_team = team if team is not None else ticket.team
    if not permissions.can_assign(actor, ticket, assignee, team_id=target_team.pk if target_team else None):
        raise PermissionDenied(
            "The assignee must be an active member of the ticket's team.", code="assignee_not_in_team"
        )
    if ticket.is_confidential and target_team is not None and not target_team.is_security:
        raise PermissionDenied("Confidential tickets can only move to a security team.", code="confidential_team")
    if ticket.state in state.FINAL_STATES:
        raise InvalidTransition("Closed and cancelled tickets cannot be reassigned.", code="ticket_final")
    now = timezone.now()
    return _apply_assignment(actor=actor, ticket=ticket, assignee=assignee, team=target_team, now=now)


def _apply_assignment(
    *, actor: User | None, ticket: Ticket, assignee: User | None, team: Team | None, now: datetime, auto: bool = False
) -> Ticket:
    old_assignee_id, old_team_id = ticket.assignee_id, ticket.team_id
    new_assignee_id = assignee.pk if assignee else None
    new_team_id = team.pk if team else None
    if old_assignee_id == new_assignee_id and old_team_id == new_team_id:
        return ticket
    before = snapshot(ticket, TICKET_AUDIT_FIELDS)
    ticket.assignee = assignee
    ticket.team = team
    fields = ["assignee", "team"]
    new_state = ticket.state
    if assignee is not None and ticket.state == TicketState.NEW:
        new_state = TicketState.ASSIGNED
    elif assignee is None and ticket.state == TicketState.ASSIGNED:
        new_state = TicketState.NEW
    if new_state != ticket.state:
        transition = state.find_transition(ticket.state, new_state)
        if transition is None:  # the table is the authority even for implicit moves
            raise InvalidTransition(f"A ticket cannot go from {ticket.state} to {new_state}.")
        events.timeline_write(
            ticket=ticket,
            kind=TicketEvent.Kind.STATE_CHANGED,
            actor=actor,
            at=now,
            data={"from": ticket.state, "to": new_state, "reason": "", "pending_reason": ""},
        )
        from_state = ticket.state
        ticket.state = new_state
        fields.append("state")
    else:
        from_state = None
    _bump(ticket, now, fields)
    actor_id = actor.pk if actor else None
    if old_team_id != new_team_id:
        events.timeline_write(
            ticket=ticket,
            kind=TicketEvent.Kind.TEAM_CHANGED,
            actor=actor,
            at=now,
            data={"from": old_team_id, "to": new_team_id},
        )
    if old_assignee_id != new_assignee_id:
        events.timeline_write(
            ticket=ticket,
            kind=TicketEvent.Kind.ASSIGNED,
            actor=actor,
            at=now,
            data={"from": old_assignee_id, "to": new_assignee_id, "auto": auto},
        )
    _audit_ticket(actor, "ticket.assign", ticket, before)
    if from_state is not None:
        publish(
            events.StatusChanged(
                at=now, actor_id=actor_id, ticket_id=ticket.pk, from_state=from_state, to_state=ticket.state
            )
        )
    if old_team_id != new_team_id:
        publish(
            events.TeamChanged(
                at=now, actor_id=actor_id, ticket_id=ticket.pk, from_team_id=old_team_id, to_team_id=new_team_id
            )
        )
    if old_assignee_id != new_assignee_id:
        publish(
            events.Assigned(
                at=now,
                actor_id=actor_id,
                ticket_id=ticket.pk,
                from_assignee_id=old_assignee_id,
                to_assignee_id=new_assignee_id,
            )
        )
        if new_assignee_id is not None and new_assignee_id != actor_id:
            enqueue_on_commit(notify_assignee_task, ticket.pk, new_assignee_id)
    return ticket


# --- priority and category -----------------------------------------------------------------------------------------


@transaction.atomic
def ticket_set_impact_urgency(
    *, actor: User, ticket: Ticket | int, impact: int, urgency: int, expected_version: int | None = None
) -> Ticket:
    """Change impact and urgency; the priority follows the matrix unless an agent has overridden it."""
    ticket = _lock_ticket(ticket)
    _require_agent(actor, ticket)
    _check_version(ticket, expected_version)
    impact, urgency = _clean_level(impact, "impact"), _clean_level(urgency, "urgency")
    if (impact, urgency) == (ticket.impact, ticket.urgency):
        return ticket
    before = snapshot(ticket, TICKET_AUDIT_FIELDS)
    old_priority = ticket.priority
    ticket.impact, ticket.urgency = impact, urgency
    if not ticket.priority_is_overridden:
        ticket.priority = state.priority_for(impact, urgency, priority_matrix())
    return _save_priority_change(actor, ticket, before, old_priority, ["impact", "urgency", "priority"], reason="")


@transaction.atomic
def ticket_override_priority(
    *, actor: User, ticket: Ticket | int, priority: int | None, reason: str = "", expected_version: int | None = None
) -> Ticket:
    """Set the priority by hand (with a reason), or pass `priority=None` to go back to the matrix's value."""
    ticket = _lock_ticket(ticket)
    _require(
        permissions.can_override_priority, actor, ticket, "Only an agent of the ticket's team can change its priority."
    )
    _check_version(ticket, expected_version)
    reason = (reason or "").strip()
    before = snapshot(ticket, TICKET_AUDIT_FIELDS)
    old_priority = ticket.priority
    if priority is None:
        if not ticket.priority_is_overridden:
            return ticket
        ticket.priority = state.priority_for(ticket.impact, ticket.urgency, priority_matrix())
        ticket.priority_is_overridden = False
        ticket.priority_override_reason = ""
    else:
        try:
            priority = int(priority)
        except (TypeError, ValueError):
            priority = -1
        if priority not in Priority.values:
            raise ValidationFailed("Invalid priority.", fields={"priority": ["Choose P1 to P4."]})
        if not reason:
            raise ValidationFailed("Overriding the priority needs a reason.", fields={"reason": ["Say why."]})
        if len(reason) > 500:
            raise ValidationFailed("The reason is too long.", fields={"reason": ["Use at most 500 characters."]})
        if ticket.priority == priority and ticket.priority_is_overridden and ticket.priority_override_reason == reason:
            return ticket
        ticket.priority = priority
        ticket.priority_is_overridden = True
        ticket.priority_override_reason = reason
    return _save_priority_change(
        actor, ticket, before, old_priority, ["priority", "priority_is_overridden", "priority_override_reason"], reason
    )


def _save_priority_change(
    actor: User | None, ticket: Ticket, before: dict[str, Any], old_priority: int, fields: list[str], reason: str
) -> Ticket:
    now = timezone.now()
    _bump(ticket, now, fields)
    events.timeline_write(
        ticket=ticket,
        kind=TicketEvent.Kind.PRIORITY_CHANGED,
        actor=actor,
        at=now,
        data={
            "from": old_priority,
            "to": ticket.priority,
            "impact": ticket.impact,
            "urgency": ticket.urgency,
            "overridden": ticket.priority_is_overridden,
            "reason": reason,
        },
    )
    _audit_ticket(actor, "ticket.priority", ticket, before)
    if old_priority != ticket.priority:
        publish(
            events.PriorityChanged(
                at=now,
                actor_id=actor.pk if actor else None,
                ticket_id=ticket.pk,
                from_priority=old_priority,
                to_priority=ticket.priority,
            )
        )
    return ticket


@transaction.atomic
def ticket_change_category(
    *, actor: User, ticket: Ticket | int, category: Category | int, expected_version: int | None = None
) -> Ticket:
    """Recategorise. Moving into a confidential (security) category makes the ticket confidential and hands it to
    that category's security team; confidentiality is never lifted by a category change."""
    ticket = _lock_ticket(ticket)
    _require(
        permissions.can_change_category, actor, ticket, "Only an agent of the ticket's team can change its category."
    )
    _check_version(ticket, expected_version)
    category_id = category.pk if isinstance(category, Category) else category
    try:
        new_category = Category.objects.select_related("default_team").get(pk=category_id, is_active=True)
    except (Category.DoesNotExist, ValueError, TypeError) as exc:
        raise ValidationFailed("Unknown category.", fields={"category": ["Choose a category from the list."]}) from exc
    if new_category.pk == ticket.category_id:
        return ticket
    before = snapshot(ticket, TICKET_AUDIT_FIELDS)
    old_category_id = ticket.category_id
    ticket.category = new_category
    fields = ["category"]
    becomes_confidential = new_category.is_confidential and not ticket.is_confidential
    if becomes_confidential:
        ticket.is_confidential = True
        fields.append("is_confidential")
    now = timezone.now()
    _bump(ticket, now, fields)
    events.timeline_write(
        ticket=ticket,
        kind=TicketEvent.Kind.CATEGORY_CHANGED,
        actor=actor,
        at=now,
        data={"from": old_category_id, "to": new_category.pk, "confidential": ticket.is_confidential},
    )
    _audit_ticket(actor, "ticket.category", ticket, before)
    publish(
        events.CategoryChanged(
            at=now,
            actor_id=actor.pk,
            ticket_id=ticket.pk,
            from_category_id=old_category_id,
            to_category_id=new_category.pk,
        )
    )
    if becomes_confidential and (ticket.team is None or not ticket.team.is_security):
        _apply_assignment(actor=actor, ticket=ticket, assignee=None, team=new_category.default_team, now=now)
    return ticket


# --- comments and attachments --------------------------------------------------------------------------------------


@transaction.atomic
def comment_add(
    *,
    actor: User,
    ticket: Ticket | int,
    body: str,
    is_internal: bool = False,
    attachments: Sequence[UploadedFile] = (),
) -> Comment:
    """Add a public reply or an internal note. A requester's reply to a ticket pending on them resumes it."""
    ticket = _lock_ticket(ticket)
    if is_internal:
        if not permissions.can_comment_internal(actor, ticket):
            if permissions.can_view_ticket(actor, ticket):
                raise PermissionDenied("Only agents of the ticket's team can add internal notes.")
            raise NotFound("No such ticket.")
    elif not permissions.can_comment_public(actor, ticket):
        raise NotFound("No such ticket.")
    if ticket.state in state.FINAL_STATES and not is_internal:
        raise InvalidTransition("This ticket is closed. Please raise a new request.", code="ticket_final")
    body = _clean_text(body, field="body", required=not attachments)
    now = timezone.now()
    by_agent = permissions.can_work_ticket(actor, ticket)
    comment = Comment.objects.create(ticket=ticket, author=actor, body=body, is_internal=is_internal, created_at=now)
    kind = TicketEvent.Kind.NOTE_ADDED if is_internal else TicketEvent.Kind.COMMENTED
    events.timeline_write(
        ticket=ticket,
        kind=kind,
        actor=actor,
        at=now,
        comment=comment,
        is_internal=is_internal,
        data={"by_agent": by_agent},
    )
    for upload in attachments:
        _attachment_store(actor=actor, ticket=ticket, upload=upload, comment=comment, is_internal=is_internal, now=now)
    _bump(ticket, now, [])
    audit_record(
        actor=actor,
        action="ticket.note" if is_internal else "ticket.comment",
        obj=ticket,
        after={"comment_id": comment.pk, "is_internal": is_internal, "attachments": len(attachments)},
    )
    if is_internal:
        publish(events.InternalNoteAdded(at=now, actor_id=actor.pk, ticket_id=ticket.pk, comment_id=comment.pk))
    else:
        publish(
            events.PublicReplyAdded(
                at=now, actor_id=actor.pk, ticket_id=ticket.pk, comment_id=comment.pk, by_agent=by_agent
            )
        )
        if (
            not by_agent
            and ticket.requester_id == actor.pk
            and ticket.state == TicketState.PENDING
            and ticket.pending_reason == PendingReason.AWAITING_REQUESTER
        ):
            _apply_transition(
                actor=actor,
                actor_kind=Actor.SYSTEM,
                ticket=ticket,
                to_state=TicketState.IN_PROGRESS,
                reason="The requester replied.",
            )
    return comment


# Leading bytes of the binary types we accept: an upload whose content does not match its extension is refused.
_MAGIC = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".gif": (b"GIF87a", b"GIF89a"),
    ".pdf": (b"%PDF-",),
    ".zip": (b"PK\x03\x04", b"PK\x05\x06"),
    ".docx": (b"PK\x03\x04",),
    ".xlsx": (b"PK\x03\x04",),
}


def validate_upload(upload: UploadedFile) -> tuple[str, str, str]:
    """Check size, extension and content of an upload. Returns (safe filename, extension, content type)."""
    raw_name = os.path.basename((upload.name or "").replace("\\", "/")).strip()
    safe_name = "".join(ch for ch in raw_name if ch.isprintable() and ch not in '<>:"/\\|?*')[:200] or "file"
    extension = os.path.splitext(safe_name)[1].lower()
    allowed = settings.TICKETS_ATTACHMENT_CONTENT_TYPES
    if extension not in allowed:
        raise ValidationFailed(
            "This file type is not allowed.",
            fields={"attachments": [f"{safe_name}: allowed types are {', '.join(sorted(allowed))}."]},
        )
    size = upload.size or 0
    if size > settings.TICKETS_ATTACHMENT_MAX_BYTES:
        raise ValidationFailed(
            "The file is too large.",
            fields={
                "attachments": [
                    f"{safe_name}: files may be at most {filesizeformat(settings.TICKETS_ATTACHMENT_MAX_BYTES)}."
                ]
            },
        )
    if size == 0:
        raise ValidationFailed("The file is empty.", fields={"attachments": [f"{safe_name} is empty."]})
    upload.seek(0)
    head = upload.read(16)
    upload.seek(0)
    magic = _MAGIC.get(extension)
    looks_binary = b"\x00" in head
    if (magic is not None and not head.startswith(magic)) or (magic is None and looks_binary):
        raise ValidationFailed(
            "The file's content does not match its type.",
            fields={"attachments": [f"{safe_name} does not look like a {extension} file."]},
        )
    return safe_name, extension, allowed[extension]


def _attachment_store(
    *, actor: User, ticket: Ticket, upload: UploadedFile, comment: Comment | None, is_internal: bool, now: datetime
) -> Attachment:
    filename, extension, content_type = validate_upload(upload)
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    attachment = Attachment(
        ticket=ticket,
        comment=comment,
        filename=filename,
        extension=extension,
        content_type=content_type,
        size=upload.size or 0,
        sha256=digest.hexdigest(),
        is_internal=is_internal,
        uploaded_by=actor,
        created_at=now,
    )
    attachment.file.save(filename, upload, save=False)
    # Files are stored under their content hash, so a file left behind by a rolled-back transaction is harmless and
    # a retry of the same upload reuses the same name.
    attachment.save(force_insert=True)
    events.timeline_write(
        ticket=ticket,
        kind=TicketEvent.Kind.ATTACHMENT_ADDED,
        actor=actor,
        at=now,
        is_internal=is_internal,
        data={"attachment_id": attachment.pk, "filename": filename, "size": attachment.size},
    )
    return attachment


@transaction.atomic
def attachment_add(*, actor: User, ticket: Ticket | int, upload: UploadedFile, is_internal: bool = False) -> Attachment:
    ticket = _lock_ticket(ticket)
    if is_internal and not permissions.can_comment_internal(actor, ticket):
        if permissions.can_view_ticket(actor, ticket):
            raise PermissionDenied("Only agents of the ticket's team can add internal attachments.")
        raise NotFound("No such ticket.")
    if not permissions.can_comment_public(actor, ticket):
        raise NotFound("No such ticket.")
    if ticket.state in state.FINAL_STATES and not is_internal:
        raise InvalidTransition("This ticket is closed. Please raise a new request.", code="ticket_final")
    now = timezone.now()
    attachment = _attachment_store(
        actor=actor, ticket=ticket, upload=upload, comment=None, is_internal=is_internal, now=now
    )
    _bump(ticket, now, [])
    audit_record(
        actor=actor,
        action="ticket.attachment",
        obj=ticket,
        after={"attachment_id": attachment.pk, "filename": attachment.filename, "size": attachment.size},
    )
    return attachment
