"""Forms of the agent desk and the requester portal. They parse input only: every rule lives in the services, whose
refusals come back onto these forms through `itsm.forms.form_add_domain_error`."""

from collections.abc import Iterable
from typing import Any

from django import forms
from django.conf import settings

from itsm.forms import MultipleFileField
from security.models import Team, User
from tickets.models import Category
from tickets.state import Actor, Level, PendingReason, Priority, TicketState, TicketType, allowed_transitions

ATTACHMENT_MAX_MB = settings.TICKETS_ATTACHMENT_MAX_BYTES // (1024 * 1024)

# Plain words for the portal; agents see the Level labels (High/Medium/Low).
IMPACT_CHOICES = [
    (Level.LOW, "Just me"),
    (Level.MEDIUM, "A few people or one team"),
    (Level.HIGH, "Many people, a whole site or a service everyone uses"),
]
URGENCY_CHOICES = [
    (Level.LOW, "It can wait: I can work normally for now"),
    (Level.MEDIUM, "It slows my work down"),
    (Level.HIGH, "I cannot work at all, or there is a deadline today"),
]
TYPE_CHOICES = [
    (TicketType.INCIDENT, "Something is broken or not working"),
    (TicketType.REQUEST, "I need something new or changed"),
]


def _text_area(rows: int, max_chars: int | None = None) -> forms.Textarea:
    attrs: dict[str, Any] = {"rows": rows}
    if max_chars is not None:
        attrs["maxlength"] = max_chars
    return forms.Textarea(attrs=attrs)


def category_choices(categories: Iterable[Category], *, for_agents: bool = False) -> list[tuple[Any, Any]]:
    """Leaf categories, grouped under their parent; each shown by its portal label (or its name). Agents see the
    desk's names instead, and which categories make a ticket confidential."""

    def label_of(category: Category) -> str:
        if not for_agents:
            return category.portal_label or category.name
        return f"{category.name} (confidential)" if category.is_confidential else category.name

    categories = list(categories)
    parent_ids = {c.parent_id for c in categories if c.parent_id is not None}
    top_level: list[tuple[int, str]] = []
    groups: dict[int, tuple[str, list[tuple[int, str]]]] = {}
    for category in categories:
        if category.pk in parent_ids:
            continue  # a parent is a heading, not a choice
        label = label_of(category)
        if category.parent_id is None or category.parent is None:
            top_level.append((category.pk, label))
        else:
            parent = category.parent
            heading = parent.name if for_agents else (parent.portal_label or parent.name)
            groups.setdefault(parent.pk, (heading, []))[1].append((category.pk, label))
    choices: list[tuple[Any, Any]] = [("", "Choose a category" if for_agents else "Choose what it is about")]
    choices.extend(top_level)
    choices.extend((name, options) for name, options in groups.values())
    return choices


class PageForm(forms.Form):
    """A form that shares its page with others: element ids carry the form's name so they stay unique (field names,
    and so the POSTed data, do not change)."""

    id_prefix = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if self.id_prefix:
            kwargs.setdefault("auto_id", f"id_{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)


class VersionedForm(PageForm):
    """Every change to a ticket sends back the version the page showed, so a stale edit is refused."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


# --- portal --------------------------------------------------------------------------------------------------------


class TicketCreateForm(forms.Form):
    type = forms.ChoiceField(label="What is this about?", choices=TYPE_CHOICES, widget=forms.RadioSelect)
    category = forms.TypedChoiceField(label="Category", coerce=int)
    title = forms.CharField(
        label="Summary",
        max_length=settings.TICKETS_TITLE_MAX_CHARS,
        help_text="One line, for example “Laptop does not start after update”.",
    )
    description = forms.CharField(
        label="Details",
        required=False,
        max_length=settings.TICKETS_TEXT_MAX_CHARS,
        widget=_text_area(8, settings.TICKETS_TEXT_MAX_CHARS),
        help_text="What happened, what you expected, error messages, since when.",
    )
    impact = forms.TypedChoiceField(
        label="How many people are affected?",
        choices=IMPACT_CHOICES,
        coerce=int,
        initial=Level.LOW,
        widget=forms.RadioSelect,
    )
    urgency = forms.TypedChoiceField(
        label="How urgent is it?", choices=URGENCY_CHOICES, coerce=int, initial=Level.MEDIUM, widget=forms.RadioSelect
    )
    attachments = MultipleFileField(
        label="Attachments",
        required=False,
        help_text=f"Screenshots, logs or documents, up to {ATTACHMENT_MAX_MB} MB each.",
    )

    def __init__(self, *args: Any, categories: Iterable[Category], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = category_choices(categories)  # type: ignore[attr-defined]
        self.fields["type"].initial = TicketType.INCIDENT


class PortalReplyForm(PageForm):
    id_prefix = "reply"

    body = forms.CharField(
        label="Your reply",
        required=False,
        max_length=settings.TICKETS_TEXT_MAX_CHARS,
        widget=_text_area(4, settings.TICKETS_TEXT_MAX_CHARS),
    )
    attachments = MultipleFileField(label="Attachments", required=False)


class ReasonForm(VersionedForm):
    """Reopen or withdraw a request: the requester says why."""

    reason = forms.CharField(label="Why?", max_length=1000, required=False, widget=_text_area(2, 1000))


class ConfirmForm(VersionedForm):
    id_prefix = "confirm"


RATING_CHOICES = [
    (1, "1 – Very dissatisfied"),
    (2, "2 – Dissatisfied"),
    (3, "3 – Neither satisfied nor dissatisfied"),
    (4, "4 – Satisfied"),
    (5, "5 – Very satisfied"),
]


class RatingForm(PageForm):
    """CSAT after closure: a 1–5 score and an optional comment (the service checks both again)."""

    id_prefix = "rating"

    score = forms.TypedChoiceField(
        label="How satisfied are you with how we handled this request?",
        choices=RATING_CHOICES,
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose a rating from 1 to 5.", "required": "Choose a rating from 1 to 5."},
    )
    comment = forms.CharField(
        label="Anything you would like to tell us? (optional)",
        required=False,
        max_length=2000,
        widget=_text_area(3, 2000),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The labels are questions: no colon after the question mark.
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


# --- desk ----------------------------------------------------------------------------------------------------------


class ReplyForm(VersionedForm):
    id_prefix = "reply"

    PUBLIC, INTERNAL = "public", "internal"

    visibility = forms.ChoiceField(
        label="Send as",
        choices=[(PUBLIC, "Public reply"), (INTERNAL, "Internal note")],
        initial=PUBLIC,
        widget=forms.RadioSelect,
    )
    body = forms.CharField(
        label="Message",
        required=False,
        max_length=settings.TICKETS_TEXT_MAX_CHARS,
        widget=_text_area(5, settings.TICKETS_TEXT_MAX_CHARS),
    )
    attachments = MultipleFileField(label="Attachments", required=False)

    @property
    def is_internal(self) -> bool:
        return self.cleaned_data.get("visibility") == self.INTERNAL


class TransitionSelect(forms.Select):
    """Each option says whether its transition needs a reason or a pending reason, so desk.js can show only the
    fields the chosen move asks for (without JavaScript every field stays visible, with its help text)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.needs_reason: set[str] = set()

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        if value == TicketState.PENDING:
            option["attrs"]["data-needs-pending-reason"] = "true"
        if value in self.needs_reason:
            option["attrs"]["data-needs-reason"] = "true"
        return option


class TransitionForm(VersionedForm):
    id_prefix = "transition"

    state = forms.ChoiceField(label="Move to", widget=TransitionSelect)
    pending_reason = forms.ChoiceField(
        label="Waiting for",
        required=False,
        choices=[("", "—"), *PendingReason.choices],
        help_text="Needed when the ticket is set to pending.",
    )
    reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=1000,
        widget=_text_area(2, 1000),
        help_text="Needed to cancel or reopen.",
    )

    def __init__(self, *args: Any, current_state: str, has_assignee: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        transitions = [
            t
            for t in allowed_transitions(current_state, Actor.AGENT)
            # "Assigned" needs an assignee: without one, assigning someone is the way there, not this form.
            if has_assignee or t.target != TicketState.ASSIGNED
        ]
        self.fields["state"].choices = [  # type: ignore[attr-defined]
            (t.target, f"{t.label} → {TicketState(t.target).label}") for t in transitions
        ]
        widget = self.fields["state"].widget
        if isinstance(widget, TransitionSelect):
            widget.needs_reason = {t.target for t in transitions if t.needs_reason}

    @property
    def has_choices(self) -> bool:
        return bool(self.fields["state"].choices)  # type: ignore[attr-defined]


class AssignForm(VersionedForm):
    id_prefix = "assign"

    assignee = forms.TypedChoiceField(label="Assignee", coerce=int, empty_value=None, required=False)

    def __init__(self, *args: Any, agents: Iterable[User], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.agents = {agent.pk: agent for agent in agents}
        self.fields["assignee"].choices = [  # type: ignore[attr-defined]
            ("", "Unassigned"),
            *((agent.pk, agent.full_name or agent.email) for agent in self.agents.values()),
        ]

    @property
    def chosen_assignee(self) -> User | None:
        """The chosen member of the team (the choices hold only them), or None to unassign."""
        assignee_id = self.cleaned_data["assignee"]
        return None if assignee_id is None else self.agents[assignee_id]


class TeamForm(VersionedForm):
    """Move the ticket to another team, and optionally give it to one of that team's members.

    The assignee choices are the members of the team being chosen (the view loads them for the posted team); without
    JavaScript a changed team therefore comes back once with that team's people to pick from.
    """

    id_prefix = "team"

    team = forms.TypedChoiceField(label="Team", coerce=int)
    assignee = forms.TypedChoiceField(
        label="Assignee",
        coerce=int,
        empty_value=None,
        required=False,
        help_text="Only members of the chosen team are listed.",
        error_messages={"invalid_choice": "Choose a member of the chosen team, or leave the ticket unassigned."},
    )

    def __init__(self, *args: Any, teams: Iterable[Team], agents: Iterable[User], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teams = {team.pk: team for team in teams}
        self.agents = {agent.pk: agent for agent in agents}
        self.fields["team"].choices = [(pk, team.name) for pk, team in self.teams.items()]  # type: ignore[attr-defined]
        self.fields["assignee"].choices = [  # type: ignore[attr-defined]
            ("", "Unassigned"),
            *((agent.pk, agent.full_name or agent.email) for agent in self.agents.values()),
        ]

    @property
    def chosen_team(self) -> Team:
        return self.teams[self.cleaned_data["team"]]

    @property
    def chosen_assignee(self) -> User | None:
        assignee_id = self.cleaned_data["assignee"]
        return None if assignee_id is None else self.agents[assignee_id]


class CategoryForm(VersionedForm):
    id_prefix = "category"

    category = forms.TypedChoiceField(
        label="Category",
        coerce=int,
        help_text="A confidential category hands the ticket to its security team.",
    )

    def __init__(self, *args: Any, categories: Iterable[Category], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = category_choices(categories, for_agents=True)  # type: ignore[attr-defined]


class PriorityForm(VersionedForm):
    id_prefix = "priority"

    FROM_MATRIX = "matrix"

    priority = forms.ChoiceField(
        label="Priority",
        choices=[(FROM_MATRIX, "From impact × urgency"), *((str(value), label) for value, label in Priority.choices)],
    )
    reason = forms.CharField(
        label="Reason", required=False, max_length=500, help_text="Needed to set a priority by hand."
    )

    @property
    def priority_value(self) -> int | None:
        value = self.cleaned_data["priority"]
        return None if value == self.FROM_MATRIX else int(value)


class ImpactUrgencyForm(VersionedForm):
    id_prefix = "impact"

    impact = forms.TypedChoiceField(label="Impact", choices=Level.choices, coerce=int)
    urgency = forms.TypedChoiceField(label="Urgency", choices=Level.choices, coerce=int)
