"""HTML views of the agent desk's ticket pages, the requester portal (`/portal/`) and attachment downloads. The desk's
ticket list (`/desk/`) is in `tickets.views_queue`.

Each view parses a form, loads through a selector, calls one service and redirects (or re-renders the page with the
form's errors). Anything the user may not see is a 404 identical to a missing ticket.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from itsm.errors import DomainError, NotFound, PermissionDenied
from itsm.forms import form_add_domain_error
from security import permissions
from security.models import User
from sla import selectors as sla_selectors
from tickets import selectors, services
from tickets.forms import (
    AssignForm,
    CategoryForm,
    ConfirmForm,
    ImpactUrgencyForm,
    PortalReplyForm,
    PriorityForm,
    RatingForm,
    ReasonForm,
    ReplyForm,
    TeamForm,
    TicketCreateForm,
    TransitionForm,
)
from tickets.models import Attachment, SatisfactionRating, Ticket, TicketEvent
from tickets.state import FINAL_STATES, PendingReason, Priority, TicketState, can_reopen

PAGE_SIZE = 50
MAX_PAGE_SIZE = 100

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
    if kind == TicketEvent.Kind.SLA_ESCALATED:
        return str(data.get("summary") or "escalated the ticket (SLA)")
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


# --- agent desk: the ticket page -------------------------------------------------------------------------------------
#
# The page works without JavaScript: every "Edit" is a link to a page with that field's form open, and every form
# posts and redirects back. With htmx the same URLs answer an `HX-Request` with a fragment instead: the header (the
# editable fields) for an edit, plus out-of-band copies of the timeline, the attachments and a status line after a
# change. Every versioned form lives in the header, so a swapped header never leaves a stale version behind.

# Header field (in the URL) → the page form that edits it.
EDIT_FORMS = {
    "state": "transition",
    "category": "category",
    "impact": "impact",
    "priority": "priority",
    "team": "team",
    "assignee": "assign",
}
FIELD_OF_FORM = {form_name: field for field, form_name in EDIT_FORMS.items()}


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _rating_of(ticket: Ticket) -> SatisfactionRating | None:
    # `selectors.ticket_get` joins the rating, so this costs no query there.
    try:
        return ticket.satisfaction
    except SatisfactionRating.DoesNotExist:
        return None


def _editable_fields(user: User, ticket: Ticket, transition: TransitionForm) -> set[str]:
    """Header fields this agent may edit now; the services check again on save."""
    if not permissions.can_work_ticket(user, ticket):
        return set()
    fields = {"category", "impact", "priority"}
    if transition.has_choices:
        fields.add("state")
    if ticket.state not in FINAL_STATES:
        fields |= {"team", "assignee"}
    return fields


def _team_form(ticket: Ticket, *, data: Any = None, team_id: int | None = None) -> TeamForm:
    """The team picker, with the members of the team being chosen (posted, asked for, or the ticket's own)."""
    teams = list(selectors.team_choices(ticket=ticket))
    target = team_id if team_id is not None else ticket.team_id
    if target not in {team.pk for team in teams}:
        target = ticket.team_id
    agents = list(selectors.assignable_agents(ticket=ticket, team_id=target)) if target is not None else []
    initial = {
        "version": ticket.version,
        "team": target,
        "assignee": ticket.assignee_id if target == ticket.team_id else None,
    }
    form = TeamForm(data, initial=initial, teams=teams, agents=agents)
    # With htmx, choosing another team reloads the form with that team's members; without it, a save with someone
    # outside the chosen team comes back with an error and the right list.
    form.fields["team"].widget.attrs.update(
        {
            "hx-get": reverse("desk_ticket_edit", args=[ticket.number, "team"]),
            "hx-trigger": "change",
            "hx-target": "#ticket-header",
            "hx-swap": "outerHTML",
            "hx-include": "this",
        }
    )
    return form


def _category_form(ticket: Ticket, *, data: Any = None) -> CategoryForm:
    return CategoryForm(
        data,
        initial={"version": ticket.version, "category": ticket.category_id},
        categories=selectors.category_choices(),
    )


def _render_desk_ticket(
    request: HttpRequest,
    ticket: Ticket,
    *,
    editing: str | None = None,
    bound: dict[str, forms.Form] | None = None,
    status: int = 200,
    alert: str | None = None,
    notice: str | None = None,
    part: str = "page",
    focus: str | None = None,
    team_id: int | None = None,
) -> HttpResponse:
    """The desk ticket page, or one of its fragments for htmx.

    `editing` names the page form shown open in the header; `alert` is shown in the header (a refused stale edit);
    `notice` goes to the status line (htmx only: without JavaScript, success is a redirect and a flash message).
    `part` is "page" (the whole page), "header" (the header alone) or "header-update" / "reply-update" (that part,
    plus the timeline, the attachments and the status line out of band).
    """
    user = _user(request)
    bound = bound or {}
    can_work = permissions.can_work_ticket(user, ticket)
    page_forms: dict[str, forms.Form] = {}
    agents: list[User] = []
    if can_work:
        agents = list(selectors.assignable_agents(ticket=ticket))
        version = {"version": ticket.version}
        page_forms = {
            "reply": ReplyForm(initial=version),
            "transition": TransitionForm(
                initial=version, current_state=ticket.state, has_assignee=ticket.assignee_id is not None
            ),
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
        # These two pickers cost a query each, so they are built only when open.
        if editing == "team" and "team" not in bound:
            page_forms["team"] = _team_form(ticket, team_id=team_id)
        if editing == "category" and "category" not in bound:
            page_forms["category"] = _category_form(ticket)
        page_forms.update(bound)
    transition = page_forms.get("transition")
    editable = _editable_fields(user, ticket, transition) if isinstance(transition, TransitionForm) else set()
    if editing is not None and FIELD_OF_FORM.get(editing) not in editable:
        editing = None
    if editing is not None and editing not in bound:
        # The form the agent just opened takes the focus (with or without JavaScript).
        opened = page_forms[editing]
        first = next(name for name, field in opened.fields.items() if not field.widget.is_hidden)
        opened.fields[first].widget.attrs["autofocus"] = True
    is_team_member = any(agent.pk == user.pk for agent in agents)
    context: dict[str, Any] = {
        "ticket": ticket,
        "can_work": can_work,
        "can_take": can_work and is_team_member and ticket.assignee_id != user.pk and ticket.is_open,
        "forms": page_forms,
        "editable": editable,
        "editing": editing,
        "alert": alert,
        "notice": notice,
        "focus": focus,
        "rating": _rating_of(ticket) if ticket.state == TicketState.CLOSED else None,
        "main": "reply" if part == "reply-update" else "header",
    }
    if part != "header":
        events = list(selectors.timeline_for(user=user, ticket=ticket))
        attachments = list(selectors.attachments_for(user=user, ticket=ticket))
        context["timeline"] = _timeline(events, attachments, selectors.timeline_names(events=events))
        context["attachments"] = attachments
    if part == "page":
        context["sla_clocks"] = sla_selectors.clocks_for_ticket(user=user, ticket=ticket, now=timezone.now())
    template = {
        "page": "tickets/desk_ticket.html",
        "header": "tickets/ticket/_header.html",
        "header-update": "tickets/ticket/_update.html",
        "reply-update": "tickets/ticket/_update.html",
    }[part]
    return render(request, template, context, status=status)


@login_required
@require_safe
def desk_ticket(request: HttpRequest, number: str) -> HttpResponse:
    user = _require_agent(request)
    return _render_desk_ticket(request, _ticket_or_404(user, number))


@login_required
@require_safe
def desk_ticket_edit(request: HttpRequest, number: str, field: str) -> HttpResponse:
    """Open one header field for editing: the header fragment for htmx, the whole page otherwise."""
    user = _require_agent(request)
    ticket = _ticket_or_404(user, number)
    form_name = EDIT_FORMS.get(field)
    if form_name is None or not permissions.can_work_ticket(user, ticket):
        raise Http404("No such page.")
    team_id = _int_or_none(request.GET.get("team")) if field == "team" else None
    response = _render_desk_ticket(
        request, ticket, editing=form_name, team_id=team_id, part="header" if _is_htmx(request) else "page"
    )
    patch_vary_headers(response, ("HX-Request",))
    return response


@login_required
@require_safe
def desk_ticket_header(request: HttpRequest, number: str) -> HttpResponse:
    """The header with every field closed ("Cancel" of an edit): a fragment for htmx, else back to the page."""
    user = _require_agent(request)
    ticket = _ticket_or_404(user, number)
    if not _is_htmx(request):
        return redirect("desk_ticket", number=ticket.number)
    response = _render_desk_ticket(request, ticket, part="header")
    patch_vary_headers(response, ("HX-Request",))
    return response


def _desk_action(
    request: HttpRequest,
    number: str,
    *,
    form_name: str,
    make_form: Callable[[Ticket], forms.Form],
    call: Callable[[User, Ticket, forms.Form], object],
    success: str,
) -> HttpResponse:
    """Run one service for a desk form.

    Success: a redirect to the page (no JavaScript) or the fresh fragments (htmx); if the change took the ticket out
    of the agent's sight (another team, a confidential category), to the desk instead. Invalid input or a refused
    rule: the form again, open, with the reason. A stale version: the fresh ticket and "changed since you opened it",
    with status 409, nothing changed.
    """
    user = _require_agent(request)
    ticket = _ticket_or_404(user, number)
    form = make_form(ticket)
    part = "reply-update" if form_name == "reply" else "header-update"
    if not _is_htmx(request):
        part = "page"
    if not form.is_valid():
        return _render_desk_ticket(request, ticket, editing=form_name, bound={form_name: form}, status=400, part=part)
    try:
        call(user, ticket, form)
    except NotFound as exc:
        raise Http404("No such ticket.") from exc
    except DomainError as exc:
        fresh = _ticket_or_404(user, number)
        if exc.code == "stale" or isinstance(exc, PermissionDenied):
            # Stale: show the ticket as it is now. Not allowed (a manager, say): no form to reopen, just the reason.
            return _render_desk_ticket(request, fresh, status=exc.status_code, alert=exc.detail, part=part)
        form_add_domain_error(form, exc)
        return _render_desk_ticket(
            request, fresh, editing=form_name, bound={form_name: form}, status=exc.status_code, part=part
        )
    try:
        fresh = selectors.ticket_get(user=user, number=number)
    except NotFound:
        messages.success(request, f"{success} {ticket.number} has left your queues.")
        if _is_htmx(request):
            return HttpResponseClientRedirect(reverse("desk"))
        return redirect("desk")
    if _is_htmx(request):
        return _render_desk_ticket(request, fresh, notice=success, part=part, focus=FIELD_OF_FORM.get(form_name))
    messages.success(request, success)
    return redirect("desk_ticket", number=fresh.number)


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
        make_form=lambda ticket: TransitionForm(
            request.POST, current_state=ticket.state, has_assignee=ticket.assignee_id is not None
        ),
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
def desk_team(request: HttpRequest, number: str) -> HttpResponse:
    def call(user: User, ticket: Ticket, form: forms.Form) -> object:
        team_form = cast(TeamForm, form)
        return services.ticket_assign(
            actor=user,
            ticket=ticket,
            assignee=team_form.chosen_assignee,
            team=team_form.chosen_team,
            expected_version=_expected_version(form),
        )

    return _desk_action(
        request,
        number,
        form_name="team",
        make_form=lambda ticket: _team_form(ticket, data=request.POST, team_id=_int_or_none(request.POST.get("team"))),
        call=call,
        success="Team and assignee changed.",
    )


@login_required
@require_POST
def desk_category(request: HttpRequest, number: str) -> HttpResponse:
    def call(user: User, ticket: Ticket, form: forms.Form) -> object:
        return services.ticket_change_category(
            actor=user,
            ticket=ticket,
            category=form.cleaned_data["category"],
            expected_version=_expected_version(form),
        )

    return _desk_action(
        request,
        number,
        form_name="category",
        make_form=lambda ticket: _category_form(ticket, data=request.POST),
        call=call,
        success="Category changed.",
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
        "rating": RatingForm(),
    }
    page_forms.update(bound or {})
    is_resolved = ticket.state == TicketState.RESOLVED
    reopen_until = (
        ticket.resolved_at + timedelta(days=settings.TICKETS_REOPEN_DAYS)
        if is_resolved and ticket.resolved_at is not None
        else None
    )
    rating = _rating_of(ticket) if ticket.state == TicketState.CLOSED else None
    return render(
        request,
        "tickets/portal_ticket.html",
        {
            "ticket": ticket,
            "timeline": _timeline(events, attachments, None),
            "attachments": attachments,
            "forms": page_forms,
            "is_resolved": is_resolved,
            "reopen_until": reopen_until,
            "can_reopen": is_resolved
            and can_reopen(
                resolved_at=ticket.resolved_at, now=timezone.now(), window_days=settings.TICKETS_REOPEN_DAYS
            ),
            "can_reply": ticket.state not in {TicketState.CLOSED, TicketState.CANCELLED},
            "rating": rating,
            "can_rate": ticket.state == TicketState.CLOSED and rating is None,
        },
        status=status,
    )


@login_required
@require_safe
def portal_ticket(request: HttpRequest, number: str) -> HttpResponse:
    return _render_portal_ticket(request, _own_ticket_or_404(_user(request), number))


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


@login_required
@require_POST
def portal_rate(request: HttpRequest, number: str) -> HttpResponse:
    def call(user: User, ticket: Ticket, form: forms.Form) -> object:
        return services.satisfaction_rate(
            actor=user, ticket=ticket, score=form.cleaned_data["score"], comment=form.cleaned_data["comment"]
        )

    return _portal_action(
        request,
        number,
        form_name="rating",
        form=RatingForm(request.POST),
        call=call,
        success="Thank you for your rating.",
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
