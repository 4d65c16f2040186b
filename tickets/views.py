"""HTML views of the agent desk (`/desk/`), the requester portal (`/portal/`) and attachment downloads.

Each view parses a form, loads through a selector, calls one service and redirects (or re-renders the page with the
form's errors). Anything the user may not see is a 404 identical to a missing ticket.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from itsm.errors import DomainError, NotFound
from itsm.forms import form_add_domain_error
from security import permissions
from security.models import User
from tickets import selectors, services
from tickets.forms import (
    AssignForm,
    ConfirmForm,
    ImpactUrgencyForm,
    PortalReplyForm,
    PriorityForm,
    ReasonForm,
    ReplyForm,
    TicketCreateForm,
    TransitionForm,
)
from tickets.models import Attachment, Ticket, TicketEvent
from tickets.state import OPEN_STATES, PendingReason, Priority, TicketState

PAGE_SIZE = 50
MAX_PAGE_SIZE = 100

DESK_QUEUES = {"mine": "My tickets", "team": "My teams' open", "all": "All visible"}
DEFAULT_DESK_QUEUE = "team"
# What the requester's timeline shows: public replies, state changes and files, never assignment or priority details.
PORTAL_EVENT_KINDS = (
    TicketEvent.Kind.CREATED,
    TicketEvent.Kind.STATE_CHANGED,
    TicketEvent.Kind.COMMENTED,
    TicketEvent.Kind.ATTACHMENT_ADDED,
)


def _user(request: HttpRequest) -> User:
    # Every view here is behind `login_required`.
    return cast(User, request.user)


def _page_size(request: HttpRequest) -> int:
    try:
        size = int(request.GET.get("size", PAGE_SIZE))
    except ValueError:
        size = PAGE_SIZE
    return max(1, min(size, MAX_PAGE_SIZE))


def _next_page_url(request: HttpRequest, cursor: str | None, **params: str) -> str | None:
    if cursor is None:
        return None
    query = {**params, "after": cursor}
    if "size" in request.GET:
        query["size"] = str(_page_size(request))
    return f"?{urlencode(query)}"


def _ticket_or_404(user: User, number: str) -> Ticket:
    try:
        return selectors.ticket_get(user=user, number=number)
    except NotFound as exc:
        raise Http404("No such ticket.") from exc


# --- timeline --------------------------------------------------------------------------------------------------------


@dataclass
class TimelineEntry:
    event: TicketEvent
    actor_name: str
    summary: str
    body: str | None = None  # sanitised HTML of a reply or note
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def at(self) -> datetime:
        return self.event.at

    @property
    def is_internal(self) -> bool:
        return self.event.is_internal

    @property
    def kind(self) -> str:
        return self.event.kind


def _state_label(value: Any) -> str:
    return TicketState(value).label if value in TicketState.values else str(value)


def _summary(event: TicketEvent, names: selectors.TimelineNames | None) -> str:
    data = event.data or {}
    kind = event.kind
    if kind == TicketEvent.Kind.CREATED:
        return "raised the ticket"
    if kind == TicketEvent.Kind.STATE_CHANGED:
        text = f"changed the state from {_state_label(data.get('from'))} to {_state_label(data.get('to'))}"
        if data.get("pending_reason") in PendingReason.values:
            text += f" ({PendingReason(data['pending_reason']).label.lower()})"
        if data.get("reason"):
            text += f": “{data['reason']}”"
        return text
    if kind == TicketEvent.Kind.COMMENTED:
        return "replied"
    if kind == TicketEvent.Kind.NOTE_ADDED:
        return "added an internal note"
    if kind == TicketEvent.Kind.ATTACHMENT_ADDED:
        return f"attached {data.get('filename', 'a file')}"
    if names is None:
        return str(TicketEvent.Kind(kind).label).lower() if kind in TicketEvent.Kind.values else kind
    if kind == TicketEvent.Kind.ASSIGNED:
        if data.get("to") is None:
            return "unassigned the ticket"
        if data["to"] == event.actor_id and not data.get("auto"):
            return "took the ticket"
        verb = "auto-assigned" if data.get("auto") else "assigned"
        return f"{verb} the ticket to {names.users.get(data['to'], 'someone')}"
    if kind == TicketEvent.Kind.TEAM_CHANGED:
        return f"moved the ticket to team {names.teams.get(data.get('to') or 0, 'none')}"
    if kind == TicketEvent.Kind.CATEGORY_CHANGED:
        return f"changed the category to {names.categories.get(data.get('to') or 0, 'another category')}"
    if kind == TicketEvent.Kind.PRIORITY_CHANGED:
        to = data.get("to")
        text = f"set the priority to {Priority(to).label}" if to in Priority.values else "changed the priority"
        if data.get("overridden") and data.get("reason"):
            text += f" by hand: “{data['reason']}”"
        return text
    return kind


def _timeline(
    events: Iterable[TicketEvent], attachments: list[Attachment], names: selectors.TimelineNames | None
) -> list[TimelineEntry]:
    """Pair each reply or note with its files; a file sent with a reply is shown with it, not as its own entry."""
    by_id = {a.pk: a for a in attachments}
    by_comment: dict[int, list[Attachment]] = {}
    for attachment in attachments:
        if attachment.comment_id is not None:
            by_comment.setdefault(attachment.comment_id, []).append(attachment)
    entries = []
    for event in events:
        actor_name = (event.actor.full_name or event.actor.email) if event.actor else "Service desk"
        entry = TimelineEntry(event=event, actor_name=actor_name, summary=_summary(event, names))
        if event.kind == TicketEvent.Kind.ATTACHMENT_ADDED:
            added = by_id.get((event.data or {}).get("attachment_id") or 0)
            if added is None or added.comment_id is not None:
                continue
            entry.attachments = [added]
        elif event.comment is not None:
            entry.body = event.comment.body
            entry.attachments = by_comment.get(event.comment.pk, [])
        entries.append(entry)
    return entries


# --- agent desk ------------------------------------------------------------------------------------------------------


def _require_agent(request: HttpRequest) -> User:
    user = _user(request)
    if not permissions.can_use_desk(user):
        raise Http404("No such page.")
    return user


@login_required
@require_safe
def desk(request: HttpRequest) -> HttpResponse:
    user = _require_agent(request)
    queue = request.GET.get("queue", DEFAULT_DESK_QUEUE)
    if queue not in DESK_QUEUES:
        queue = DEFAULT_DESK_QUEUE
    filters: dict[str, Any] = {}
    if queue == "mine":
        filters = {"assignee_id": user.pk, "state": sorted(OPEN_STATES)}
    elif queue == "team":
        filters = {"team_ids": permissions.access_for(user).team_ids, "state": sorted(OPEN_STATES)}
    page = selectors.ticket_list(
        user=user, after=request.GET.get("after") or None, limit=_page_size(request), **filters
    )
    return render(
        request,
        "tickets/desk_list.html",
        {
            "queues": DESK_QUEUES.items(),
            "queue": queue,
            "queue_label": DESK_QUEUES[queue],
            "tickets": page.items,
            "next_url": _next_page_url(request, page.next_cursor, queue=queue),
            "is_first_page": not request.GET.get("after"),
        },
    )


def _render_desk_ticket(
    request: HttpRequest, ticket: Ticket, *, bound: dict[str, forms.Form] | None = None, status: int = 200
) -> HttpResponse:
    user = _user(request)
    can_work = permissions.can_work_ticket(user, ticket)
    events = list(selectors.timeline_for(user=user, ticket=ticket))
    attachments = list(selectors.attachments_for(user=user, ticket=ticket))
    names = selectors.timeline_names(events=events)
    page_forms: dict[str, forms.Form] = {}
    is_team_member = False
    if can_work:
        agents = list(selectors.assignable_agents(ticket=ticket))
        is_team_member = any(agent.pk == user.pk for agent in agents)
        version = {"version": ticket.version}
        page_forms = {
            "reply": ReplyForm(initial=version),
            "transition": TransitionForm(initial=version, current_state=ticket.state),
            "assign": AssignForm(initial={**version, "assignee": ticket.assignee_id}, agents=agents),
            "priority": PriorityForm(
                initial={
                    **version,
                    "priority": str(ticket.priority) if ticket.priority_is_overridden else PriorityForm.FROM_MATRIX,
                    "reason": ticket.priority_override_reason,
                }
            ),
            "impact": ImpactUrgencyForm(initial={**version, "impact": ticket.impact, "urgency": ticket.urgency}),
        }
        page_forms.update(bound or {})
    return render(
        request,
        "tickets/desk_ticket.html",
        {
            "ticket": ticket,
            "timeline": _timeline(events, attachments, names),
            "attachments": attachments,
            "can_work": can_work,
            "can_take": can_work and is_team_member and ticket.assignee_id != user.pk and ticket.is_open,
            "forms": page_forms,
        },
        status=status,
    )


@login_required
@require_safe
def desk_ticket(request: HttpRequest, number: str) -> HttpResponse:
    user = _require_agent(request)
    return _render_desk_ticket(request, _ticket_or_404(user, number))


def _desk_action(
    request: HttpRequest,
    number: str,
    *,
    form_name: str,
    make_form: Callable[[Ticket], forms.Form],
    call: Callable[[User, Ticket, forms.Form], object],
    success: str,
) -> HttpResponse:
    """Run one service for a desk form: redirect on success; on refusal show the page again with the reason."""
    user = _require_agent(request)
    ticket = _ticket_or_404(user, number)
    form = make_form(ticket)
    if not form.is_valid():
        return _render_desk_ticket(request, ticket, bound={form_name: form}, status=400)
    return _run_service(
        request,
        form,
        call=lambda: call(user, ticket, form),
        success=success,
        success_url=reverse("desk_ticket", args=[ticket.number]),
        rerender=lambda status, keep_form: _render_desk_ticket(
            request,
            _ticket_or_404(user, number),
            bound={form_name: form} if keep_form else None,
            status=status,
        ),
    )


def _run_service(
    request: HttpRequest,
    form: forms.Form,
    *,
    call: Callable[[], object],
    success: str,
    success_url: str,
    rerender: Callable[[int, bool], HttpResponse],
) -> HttpResponse:
    try:
        call()
    except NotFound as exc:
        raise Http404("No such ticket.") from exc
    except DomainError as exc:
        if exc.code == "stale":
            # Someone else changed the ticket: show it as it is now, with fresh forms, and say so.
            messages.error(request, exc.detail)
            return rerender(exc.status_code, False)
        form_add_domain_error(form, exc)
        return rerender(exc.status_code, True)
    messages.success(request, success)
    return redirect(success_url)


def _expected_version(form: forms.Form) -> int:
    return int(form.cleaned_data["version"])


@login_required
@require_POST
def desk_reply(request: HttpRequest, number: str) -> HttpResponse:
    def call(user: User, ticket: Ticket, form: forms.Form) -> object:
        reply = cast(ReplyForm, form)
        return services.comment_add(
            actor=user,
            ticket=ticket,
            body=reply.cleaned_data["body"],
            is_internal=reply.is_internal,
            attachments=reply.cleaned_data["attachments"],
        )

    is_note = request.POST.get("visibility") == ReplyForm.INTERNAL
    return _desk_action(
        request,
        number,
        form_name="reply",
        make_form=lambda ticket: ReplyForm(request.POST, request.FILES),
        call=call,
        success="Internal note added." if is_note else "Reply sent.",
    )


@login_required
@require_POST
def desk_transition(request: HttpRequest, number: str) -> HttpResponse:
    def call(user: User, ticket: Ticket, form: forms.Form) -> object:
        return services.ticket_transition(
            actor=user,
            ticket=ticket,
            to_state=form.cleaned_data["state"],
            reason=form.cleaned_data["reason"],
            pending_reason=form.cleaned_data["pending_reason"],
            expected_version=_expected_version(form),
        )

    return _desk_action(
        request,
        number,
        form_name="transition",
        make_form=lambda ticket: TransitionForm(request.POST, current_state=ticket.state),
        call=call,
        success="State changed.",
    )


@login_required
@require_POST
def desk_assign(request: HttpRequest, number: str) -> HttpResponse:
    def call(user: User, ticket: Ticket, form: forms.Form) -> object:
        return services.ticket_assign(
            actor=user,
            ticket=ticket,
            assignee=cast(AssignForm, form).chosen_assignee,
            expected_version=_expected_version(form),
        )

    return _desk_action(
        request,
        number,
        form_name="assign",
        make_form=lambda ticket: AssignForm(request.POST, agents=selectors.assignable_agents(ticket=ticket)),
        call=call,
        success="Assignment changed.",
    )


@login_required
@require_POST
def desk_priority(request: HttpRequest, number: str) -> HttpResponse:
    def call(user: User, ticket: Ticket, form: forms.Form) -> object:
        return services.ticket_override_priority(
            actor=user,
            ticket=ticket,
            priority=cast(PriorityForm, form).priority_value,
            reason=form.cleaned_data["reason"],
            expected_version=_expected_version(form),
        )

    return _desk_action(
        request,
        number,
        form_name="priority",
        make_form=lambda ticket: PriorityForm(request.POST),
        call=call,
        success="Priority changed.",
    )


@login_required
@require_POST
def desk_impact(request: HttpRequest, number: str) -> HttpResponse:
    def call(user: User, ticket: Ticket, form: forms.Form) -> object:
        return services.ticket_set_impact_urgency(
            actor=user,
            ticket=ticket,
            impact=form.cleaned_data["impact"],
            urgency=form.cleaned_data["urgency"],
            expected_version=_expected_version(form),
        )

    return _desk_action(
        request,
        number,
        form_name="impact",
        make_form=lambda ticket: ImpactUrgencyForm(request.POST),
        call=call,
        success="Impact and urgency changed.",
    )


# --- requester portal ------------------------------------------------------------------------------------------------


@login_required
@require_safe
def portal(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    page = selectors.ticket_list(
        user=user, requester_id=user.pk, after=request.GET.get("after") or None, limit=_page_size(request)
    )
    return render(
        request,
        "tickets/portal_list.html",
        {
            "tickets": page.items,
            "next_url": _next_page_url(request, page.next_cursor),
            "is_first_page": not request.GET.get("after"),
        },
    )


@login_required
def portal_new(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    categories = list(selectors.category_choices())
    if request.method != "POST":
        return render(request, "tickets/portal_new.html", {"form": TicketCreateForm(categories=categories)})
    form = TicketCreateForm(request.POST, request.FILES, categories=categories)
    if not form.is_valid():
        return render(request, "tickets/portal_new.html", {"form": form}, status=400)
    try:
        ticket = services.ticket_create(
            actor=user,
            title=form.cleaned_data["title"],
            description=form.cleaned_data["description"],
            category=form.cleaned_data["category"],
            type=form.cleaned_data["type"],
            impact=form.cleaned_data["impact"],
            urgency=form.cleaned_data["urgency"],
            attachments=form.cleaned_data["attachments"],
        )
    except DomainError as exc:
        form_add_domain_error(form, exc)
        return render(request, "tickets/portal_new.html", {"form": form}, status=exc.status_code)
    messages.success(request, f"Thank you. Your request {ticket.number} was raised; we will keep you posted here.")
    return redirect("portal_ticket", number=ticket.number)


def _own_ticket_or_404(user: User, number: str) -> Ticket:
    """The portal shows a person their own requests only (agents use the desk for everyone else's)."""
    ticket = _ticket_or_404(user, number)
    if ticket.requester_id != user.pk:
        raise Http404("No such ticket.")
    return ticket


def _render_portal_ticket(
    request: HttpRequest, ticket: Ticket, *, bound: dict[str, forms.Form] | None = None, status: int = 200
) -> HttpResponse:
    user = _user(request)
    # The portal is the requester's view even for an agent's own request: never internal events or files.
    events = list(
        selectors.timeline_for(user=user, ticket=ticket).filter(is_internal=False, kind__in=PORTAL_EVENT_KINDS)
    )
    attachments = list(selectors.attachments_for(user=user, ticket=ticket).filter(is_internal=False))
    version = {"version": ticket.version}
    page_forms: dict[str, forms.Form] = {
        "reply": PortalReplyForm(),
        "confirm": ConfirmForm(initial=version),
        "reopen": ReasonForm(initial=version, prefix="reopen"),
        "withdraw": ReasonForm(initial=version, prefix="withdraw"),
    }
    page_forms.update(bound or {})
    return render(
        request,
        "tickets/portal_ticket.html",
        {
            "ticket": ticket,
            "timeline": _timeline(events, attachments, None),
            "attachments": attachments,
            "forms": page_forms,
            "is_resolved": ticket.state == TicketState.RESOLVED,
            "can_reply": ticket.state not in {TicketState.CLOSED, TicketState.CANCELLED},
        },
        status=status,
    )


@login_required
@require_safe
def portal_ticket(request: HttpRequest, number: str) -> HttpResponse:
    return _render_portal_ticket(request, _own_ticket_or_404(_user(request), number))


def _portal_action(
    request: HttpRequest,
    number: str,
    *,
    form_name: str,
    form: forms.Form,
    call: Callable[[User, Ticket, forms.Form], object],
    success: str,
) -> HttpResponse:
    user = _user(request)
    ticket = _own_ticket_or_404(user, number)
    if not form.is_valid():
        return _render_portal_ticket(request, ticket, bound={form_name: form}, status=400)
    return _run_service(
        request,
        form,
        call=lambda: call(user, ticket, form),
        success=success,
        success_url=reverse("portal_ticket", args=[ticket.number]),
        rerender=lambda status, keep_form: _render_portal_ticket(
            request,
            _own_ticket_or_404(user, number),
            bound={form_name: form} if keep_form else None,
            status=status,
        ),
    )


@login_required
@require_POST
def portal_reply(request: HttpRequest, number: str) -> HttpResponse:
    def call(user: User, ticket: Ticket, form: forms.Form) -> object:
        return services.comment_add(
            actor=user,
            ticket=ticket,
            body=form.cleaned_data["body"],
            is_internal=False,
            attachments=form.cleaned_data["attachments"],
        )

    return _portal_action(
        request,
        number,
        form_name="reply",
        form=PortalReplyForm(request.POST, request.FILES),
        call=call,
        success="Reply sent.",
    )


def _portal_transition(
    request: HttpRequest, number: str, *, form_name: str, form: forms.Form, to_state: str, success: str
) -> HttpResponse:
    def call(user: User, ticket: Ticket, form: forms.Form) -> object:
        return services.ticket_transition(
            actor=user,
            ticket=ticket,
            to_state=to_state,
            reason=form.cleaned_data.get("reason", ""),
            expected_version=_expected_version(form),
        )

    return _portal_action(request, number, form_name=form_name, form=form, call=call, success=success)


@login_required
@require_POST
def portal_confirm(request: HttpRequest, number: str) -> HttpResponse:
    return _portal_transition(
        request,
        number,
        form_name="confirm",
        form=ConfirmForm(request.POST),
        to_state=TicketState.CLOSED,
        success="Thank you for confirming. The request is closed.",
    )


@login_required
@require_POST
def portal_reopen(request: HttpRequest, number: str) -> HttpResponse:
    return _portal_transition(
        request,
        number,
        form_name="reopen",
        form=ReasonForm(request.POST, prefix="reopen"),
        to_state=TicketState.IN_PROGRESS,
        success="The request is open again.",
    )


@login_required
@require_POST
def portal_withdraw(request: HttpRequest, number: str) -> HttpResponse:
    return _portal_transition(
        request,
        number,
        form_name="withdraw",
        form=ReasonForm(request.POST, prefix="withdraw"),
        to_state=TicketState.CANCELLED,
        success="The request was withdrawn.",
    )


# --- attachments -----------------------------------------------------------------------------------------------------


def _download_name(attachment: Attachment) -> str:
    """The uploaded name without anything a header or a file system could misread; never without its extension."""
    name = "".join(ch for ch in attachment.filename if ch.isprintable() and ch not in '<>:"/\\|?*;').strip(". ")
    if not name.lower().endswith(attachment.extension.lower()):
        name = f"{name or 'attachment'}{attachment.extension}"
    return name


@login_required
@require_safe
def attachment_download(request: HttpRequest, pk: int) -> HttpResponseBase:
    try:
        attachment = selectors.attachment_get(user=_user(request), pk=pk)
        handle = attachment.file.storage.open(attachment.file.name or "", "rb")
    except (NotFound, FileNotFoundError) as exc:
        raise Http404("No such attachment.") from exc
    response = FileResponse(
        handle, as_attachment=True, filename=_download_name(attachment), content_type=attachment.content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    # Even if a browser rendered it, an uploaded file gets no scripts, no styles and no same-origin access.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
