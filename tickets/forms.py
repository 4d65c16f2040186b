"""Forms of the agent desk and the requester portal. They parse input only: every rule lives in the services, whose
refusals come back onto these forms through `itsm.forms.form_add_domain_error`."""

from collections.abc import Iterable
from typing import Any

from django import forms
from django.conf import settings

from itsm.forms import MultipleFileField
from security.models import User
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


def category_choices(categories: Iterable[Category]) -> list[tuple[Any, Any]]:
    """Leaf categories, grouped under their parent; each shown by its portal label (or its name)."""
    categories = list(categories)
    parent_ids = {c.parent_id for c in categories if c.parent_id is not None}
    top_level: list[tuple[int, str]] = []
    groups: dict[int, tuple[str, list[tuple[int, str]]]] = {}
    for category in categories:
        if category.pk in parent_ids:
            continue  # a parent is a heading, not a choice
        label = category.portal_label or category.name
        if category.parent_id is None or category.parent is None:
            top_level.append((category.pk, label))
        else:
            parent = category.parent
            groups.setdefault(parent.pk, (parent.portal_label or parent.name, []))[1].append((category.pk, label))
    choices: list[tuple[Any, Any]] = [("", "Choose what it is about")]
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


# --- desk ----------------------------------------------------------------------------------------------------------


class ReplyForm(VersionedForm):
    id_prefix = "reply"

    PUBLIC, INTERNAL = "public", "internal"

    visibility = forms.ChoiceField(
        label="Visibility",
        choices=[(PUBLIC, "Public reply (the requester sees it)"), (INTERNAL, "Internal note (agents only)")],
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


class TransitionForm(VersionedForm):
    id_prefix = "transition"

    state = forms.ChoiceField(label="Move to")
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

    def __init__(self, *args: Any, current_state: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["state"].choices = [  # type: ignore[attr-defined]
            (t.target, f"{t.label} → {TicketState(t.target).label}")
            for t in allowed_transitions(current_state, Actor.AGENT)
        ]

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
