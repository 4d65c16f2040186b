"""The agent desk's ticket list (`/desk/`): queues, filters, sorting, keyset pages, bulk changes and saved views.

The GET parameters are parsed by `tickets.queues` (bad values become field errors, never a 500), the page is read by
`tickets.selectors.ticket_queue` (one query for the rows, a constant number for the page), and changes go through
the services. See docs/desk.md for the URL contract.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from itsm.errors import DomainError, NotFound
from itsm.forms import form_add_domain_error
from security import permissions
from security.middleware import user_zone
from security.models import User
from sla import selectors as sla_selectors
from tickets import queues, selectors, services
from tickets.forms_queue import BulkActionForm, SaveViewForm
from tickets.models import SavedView, Ticket
from tickets.state import Priority, TicketState, TicketType
from tickets.views import _require_agent


def _default_queue(user: User) -> str:
    # Managers and security officers without a team have no team queue: they start on everything they may see.
    return queues.DEFAULT_QUEUE if permissions.access_for(user).is_agent else queues.ALL


def _url(pairs: Sequence[tuple[str, str]] | Mapping[str, object]) -> str:
    return f"{reverse('desk')}?{urlencode(pairs, doseq=True)}"


def _back_url(request: HttpRequest) -> str:
    """Where a POST from the list goes back to: the `next` it sent when that is a URL of this site, else the desk."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("desk")


# --- the page --------------------------------------------------------------------------------------------------------


@dataclass
class FilterField:
    """One field of the filter form, ready to render: its current value(s), choices and errors."""

    name: str
    label: str
    kind: str  # "text", "search", "date", "select", "multiselect"
    value: str = ""
    values: set[str] = field(default_factory=set)
    choices: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    help: str = ""

    @property
    def id(self) -> str:
        return f"id_filter_{self.name}"

    @property
    def described_by(self) -> str:
        """The ids of the field's errors and help text, for `aria-describedby`."""
        ids = [f"{self.id}_errors"] if self.errors else []
        if self.help:
            ids.append(f"{self.id}_help")
        return " ".join(ids)


def _filter_fields(parsed: queues.ParsedQueue, choices: selectors.QueueChoices, user: User) -> list[FilterField]:
    query, errors, raw = parsed.query, parsed.errors, parsed.raw

    def text(value: object) -> str:
        return "" if value is None else str(value)

    def made(
        name: str,
        label: str,
        kind: str,
        *,
        value: str = "",
        values: set[str] | None = None,
        choices: list[tuple[str, str]] | None = None,
        help: str = "",  # noqa: A002 - the form's help text
    ) -> FilterField:
        return FilterField(
            name=name,
            label=label,
            kind=kind,
            # What the user typed is shown again next to its error, so it can be corrected.
            value=raw.get(name, value),
            values=values or set(),
            choices=choices or [],
            errors=errors.get(name, []),
            help=help,
        )

    categories = [(str(c.pk), str(c)) for c in choices.categories]
    members = [(str(m.pk), m.full_name or m.email) for m in choices.members if m.pk != user.pk]
    if query.is_breaching:
        # Always by due instant (the keyset): the window and what to show take the Sort field's place.
        ordering = [
            made("within", "Due within", "select", value=query.within, choices=[(w, w) for w in queues.WITHIN_CHOICES]),
            made("show", "Show", "select", value=query.show, choices=list(queues.SHOW_CHOICES.items())),
        ]
    else:
        ordering = [made("sort", "Sort", "select", value=query.sort.param, choices=list(queues.SORT_CHOICES))]
    return [
        made("q", "Search", "search", value=query.q, help="Words from the title or description, or a ticket number."),
        *ordering,
        made(
            "state",
            "State",
            "multiselect",
            values=set(query.states),
            choices=[(s, str(TicketState(s).label)) for s in queues.STATE_ORDER],
            help="None: the queue's usual states. Ctrl/⌘-click for several.",
        ),
        made(
            "priority",
            "Priority",
            "multiselect",
            values={str(p) for p in query.priorities},
            choices=[(str(p.value), str(p.label)) for p in Priority],
            help="None: any priority.",
        ),
        made(
            "type",
            "Type",
            "select",
            value=text(query.type),
            choices=[("", "Any"), *((str(v), str(label)) for v, label in TicketType.choices)],
        ),
        made("category", "Category", "select", value=text(query.category_id), choices=[("", "Any"), *categories]),
        made(
            "team",
            "Team",
            "select",
            value=text(query.team_id),
            choices=[("", "Any"), *((str(t.pk), t.name) for t in choices.teams)],
        ),
        made(
            "assignee",
            "Assignee",
            "select",
            value=text(query.assignee),
            choices=[("", "Anyone"), (queues.ME, "Me"), (queues.NOBODY, "Unassigned"), *members],
        ),
        made(
            "requester",
            "Requester",
            "text",
            value=query.requester_email or text(query.requester_id),
            help="E-mail address or user id.",
        ),
        made("created_from", "Created from", "date", value=text(query.created_from)),
        made("created_to", "Created to", "date", value=text(query.created_to)),
        made("updated_from", "Updated from", "date", value=text(query.updated_from)),
        made("updated_to", "Updated to", "date", value=text(query.updated_to)),
    ]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    url: str
    aria_sort: str  # "ascending", "descending" or "" when the list is not sorted by it


def _columns(query: queues.QueueQuery) -> list[Column]:
    if query.is_breaching:
        # One order only (due instant, then clock): headers are labels, not sort links.
        return [Column(key, queues.SORT_COLUMNS[key].label, "", "") for key in queues.TABLE_COLUMNS]
    columns = []
    for key in queues.TABLE_COLUMNS:
        aria_sort = ""
        if query.sort.key == key:
            aria_sort = "descending" if query.sort.is_descending else "ascending"
        url = _url(query.url_params(sort=query.sort.toggled(key)))
        columns.append(Column(key, queues.SORT_COLUMNS[key].label, url, aria_sort))
    return columns


@dataclass(frozen=True)
class SavedViewLink:
    view: SavedView
    url: str
    is_current: bool
    can_delete: bool


@dataclass(frozen=True)
class Row:
    ticket: Ticket
    due: sla_selectors.DueView | None


def _count_label(query: queues.QueueQuery, page: selectors.QueuePage | sla_selectors.BreachingPage) -> str:
    """Bounded, from the page's own `size + 1` rows: never a COUNT over the table."""
    if not query.is_first_page:
        return ""
    shown = len(page.items)
    if page.has_more:
        return f"{shown}+ tickets"
    return f"{shown} ticket" if shown == 1 else f"{shown} tickets"


def _render_queue(
    request: HttpRequest,
    user: User,
    params: Mapping[str, Sequence[str]],
    *,
    save_form: SaveViewForm | None = None,
    status: int = 200,
) -> HttpResponse:
    choices = selectors.queue_choices(user=user)
    parsed = queues.restrict_to_choices(
        queues.parse_queue(params, default_queue=_default_queue(user)),
        category_ids={c.pk for c in choices.categories},
        team_ids={t.pk for t in choices.teams},
        assignee_ids={m.pk for m in choices.members},
    )
    if parsed.query.assignee == user.pk:
        # The form offers the agent as "Me", not by id: show it so, and keep one spelling for saved views.
        parsed = replace(parsed, query=replace(parsed.query, assignee=queues.ME))
    query = parsed.query
    now = timezone.now()
    page: selectors.QueuePage | sla_selectors.BreachingPage
    if query.is_breaching:
        page = sla_selectors.breaching_page(user=user, query=query, zone=user_zone(user), now=now)
        rows = [Row(row.ticket, row.due) for row in page.rows]
    else:
        page = selectors.ticket_queue(user=user, query=query, zone=user_zone(user))
        dues = sla_selectors.due_for_tickets(user=user, tickets=page.items, now=now)
        rows = [Row(ticket, dues.get(ticket.pk)) for ticket in page.items]
    current_params = query.filter_params()
    saved_views = [
        SavedViewLink(
            view=view,
            url=_url(queues.params_from_saved(view.query)),
            is_current=view.query == current_params,
            can_delete=view.owner_id == user.pk,
        )
        for view in selectors.saved_view_list(user=user)
    ]
    page_url = _url(query.url_params(after=query.after, before=query.before))
    return render(
        request,
        "tickets/desk_list.html",
        {
            "query": query,
            "queue": query.queue,
            "queue_label": queues.QUEUES[query.queue],
            "queue_tabs": [
                (key, label, _url({"queue": key}), key == query.queue) for key, label in queues.QUEUES.items()
            ],
            "filters": _filter_fields(parsed, choices, user),
            "has_filter_errors": any(name != "cursor" for name in parsed.errors),
            "cursor_error": parsed.errors.get("cursor"),
            "clear_url": _url({"queue": query.queue}),
            "columns": _columns(query),
            "tickets": page.items,
            "rows": rows,
            "is_breaching": query.is_breaching,
            "count_label": _count_label(query, page),
            "is_first_page": query.is_first_page,
            "next_url": _url(query.url_params(after=page.next_cursor)) if page.next_cursor else None,
            "previous_url": _url(query.url_params(before=page.previous_cursor)) if page.previous_cursor else None,
            "page_url": page_url,
            "first_url": _url(query.url_params()),
            "custom_size": query.size if query.size != queues.PAGE_SIZE else None,
            "saved_views": saved_views,
            "save_form": save_form
            or SaveViewForm(initial={"query": urlencode(current_params, doseq=True)}, teams=choices.own_teams),
            "bulk_form": BulkActionForm(agents=choices.members),
            "now": now,
        },
        status=status,
    )


@login_required
@require_safe
def desk(request: HttpRequest) -> HttpResponse:
    user = _require_agent(request)
    return _render_queue(request, user, dict(request.GET.lists()))


# --- bulk changes ----------------------------------------------------------------------------------------------------


def _bulk_report(request: HttpRequest, outcome: services.BulkOutcome) -> None:
    """One message: how many changed, how many were already so, and each refusal with its reason."""
    parts = [f"{len(outcome.updated)} updated"]
    if outcome.unchanged:
        parts.append(f"{len(outcome.unchanged)} already as asked")
    if outcome.not_found:
        parts.append(f"{len(outcome.not_found)} not found: {', '.join(outcome.not_found)}")
    if outcome.refused:
        reasons = "; ".join(f"{number} — {reason}" for number, reason in outcome.refused)
        parts.append(f"{len(outcome.refused)} refused: {reasons}")
    text = ", ".join(parts)
    text += "" if text.endswith(".") else "."
    if outcome.refused or outcome.not_found:
        messages.warning(request, text)
    else:
        messages.success(request, text)


@login_required
@require_POST
def desk_bulk(request: HttpRequest) -> HttpResponse:
    user = _require_agent(request)
    back = _back_url(request)
    form = BulkActionForm(request.POST, agents=selectors.team_members(user=user))
    if not form.is_valid():
        problems = [str(message) for messages_ in form.errors.values() for message in messages_]
        messages.error(request, "Nothing was changed: " + " ".join(problems))
        return HttpResponseRedirect(back)
    numbers = form.cleaned_data["numbers"]
    action = form.cleaned_data["action"]
    try:
        if action == BulkActionForm.STATE:
            outcome = services.ticket_bulk_transition(
                actor=user,
                numbers=numbers,
                to_state=form.cleaned_data["state"],
                reason=form.cleaned_data["reason"],
                pending_reason=form.cleaned_data["pending_reason"],
            )
        else:
            assignee = user if action == BulkActionForm.ASSIGN_ME else form.chosen_assignee
            outcome = services.ticket_bulk_assign(actor=user, numbers=numbers, assignee=assignee)
    except DomainError as exc:
        messages.error(request, f"Nothing was changed: {exc.detail}")
        return HttpResponseRedirect(back)
    _bulk_report(request, outcome)
    return HttpResponseRedirect(back)


# --- saved views -----------------------------------------------------------------------------------------------------


@login_required
@require_POST
def desk_view_create(request: HttpRequest) -> HttpResponse:
    user = _require_agent(request)
    form = SaveViewForm(request.POST, teams=selectors.queue_choices(user=user).own_teams)
    params = QueryDict(request.POST.get("query", ""))
    if not form.is_valid():
        return _render_queue(request, user, dict(params.lists()), save_form=form, status=400)
    try:
        saved_view = services.saved_view_create(
            actor=user, name=form.cleaned_data["name"], query=dict(params.lists()), team=form.chosen_team
        )
    except DomainError as exc:
        form_add_domain_error(form, exc)
        return _render_queue(request, user, dict(params.lists()), save_form=form, status=exc.status_code)
    shared = f", shared with {saved_view.team.name}" if saved_view.team else ""
    messages.success(request, f"View “{saved_view.name}” saved{shared}.")
    return redirect(_url(queues.params_from_saved(saved_view.query)))


@login_required
@require_POST
def desk_view_delete(request: HttpRequest, pk: int) -> HttpResponse:
    user = _require_agent(request)
    try:
        saved_view = selectors.saved_view_get(user=user, pk=pk)
        services.saved_view_delete(actor=user, saved_view=saved_view)
    except NotFound as exc:
        raise Http404("No such saved view.") from exc
    except DomainError as exc:
        messages.error(request, exc.detail)
        return HttpResponseRedirect(_back_url(request))
    messages.success(request, f"View “{saved_view.name}” deleted.")
    return HttpResponseRedirect(_back_url(request))
