"""Forms of the desk queue's POST actions: bulk changes and saving a view. (The GET filters are parsed by
`tickets.queues`, which also reports their errors.) They parse input only; the services hold the rules."""

from collections.abc import Iterable
from typing import Any

from django import forms

from security.models import Team, User
from tickets.queues import ticket_number
from tickets.services.bulk import MAX_BULK_TICKETS
from tickets.services.saved_views import NAME_MAX_CHARS
from tickets.state import PendingReason, TicketState

# Where "Change state to…" can go; which move each ticket may take is the transition table's decision, per ticket.
BULK_STATES = (
    TicketState.IN_PROGRESS,
    TicketState.PENDING,
    TicketState.RESOLVED,
    TicketState.CLOSED,
    TicketState.CANCELLED,
)


class TicketNumbersField(forms.Field):
    """Ticket numbers sent as repeated values (`tickets=INC-000001&tickets=INC-000002`), canonicalised."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[str]:
        items = value if isinstance(value, list | tuple) else ([value] if value else [])
        numbers = []
        for item in items:
            number = ticket_number(str(item))
            if number is None:
                raise forms.ValidationError("Choose tickets from the list.", code="invalid")
            numbers.append(number)
        if len(numbers) > MAX_BULK_TICKETS:
            raise forms.ValidationError(f"Choose at most {MAX_BULK_TICKETS} tickets at a time.", code="too_many")
        return list(dict.fromkeys(numbers))


class BulkActionForm(forms.Form):
    ASSIGN_ME, ASSIGN, STATE = "assign_me", "assign", "state"

    action = forms.ChoiceField(
        label="Action",
        choices=[(ASSIGN_ME, "Assign to me"), (ASSIGN, "Assign to…"), (STATE, "Change state to…")],
    )
    tickets = TicketNumbersField(label="Tickets", required=False)
    all_on_page = forms.BooleanField(label="All tickets on this page", required=False)
    page_tickets = TicketNumbersField(required=False)
    assignee = forms.TypedChoiceField(label="Assign to", coerce=int, empty_value=None, required=False)
    state = forms.ChoiceField(
        label="Move to",
        required=False,
        choices=[("", "Choose a state"), *((s.value, s.label) for s in BULK_STATES)],
    )
    pending_reason = forms.ChoiceField(label="Waiting for", required=False, choices=[("", "—"), *PendingReason.choices])
    reason = forms.CharField(label="Reason", required=False, max_length=1000)

    def __init__(self, *args: Any, agents: Iterable[User], **kwargs: Any) -> None:
        # The filter form on the same page has fields of the same names: keep element ids apart.
        kwargs.setdefault("auto_id", "id_bulk_%s")
        super().__init__(*args, **kwargs)
        self.agents = {agent.pk: agent for agent in agents}
        self.fields["assignee"].choices = [  # type: ignore[attr-defined]
            ("", "Choose someone"),
            *((agent.pk, agent.full_name or agent.email) for agent in self.agents.values()),
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        numbers = cleaned.get("page_tickets") if cleaned.get("all_on_page") else cleaned.get("tickets")
        if not numbers and "tickets" not in self.errors and "page_tickets" not in self.errors:
            self.add_error("tickets", "Select at least one ticket.")
        cleaned["numbers"] = numbers or []
        action = cleaned.get("action")
        if action == self.ASSIGN and cleaned.get("assignee") is None:
            self.add_error("assignee", "Choose who to assign the tickets to.")
        if action == self.STATE and not cleaned.get("state"):
            self.add_error("state", "Choose the new state.")
        return cleaned

    @property
    def chosen_assignee(self) -> User | None:
        assignee_id = self.cleaned_data.get("assignee")
        return None if assignee_id is None else self.agents[assignee_id]


class SaveViewForm(forms.Form):
    PERSONAL = ""

    name = forms.CharField(label="Name", max_length=NAME_MAX_CHARS)
    team = forms.TypedChoiceField(label="Share with team", coerce=int, empty_value=None, required=False)
    # The list's query string, as the page showed it; the service parses it again and keeps only valid filters.
    query = forms.CharField(widget=forms.HiddenInput, required=False, max_length=4000)

    def __init__(self, *args: Any, teams: Iterable[Team], **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "id_save_%s")
        super().__init__(*args, **kwargs)
        self.teams = {team.pk: team for team in teams}
        self.fields["team"].choices = [  # type: ignore[attr-defined]
            (self.PERSONAL, "No, just for me"),
            *((team.pk, team.name) for team in self.teams.values()),
        ]

    @property
    def chosen_team(self) -> Team | None:
        team_id = self.cleaned_data.get("team")
        return None if team_id is None else self.teams[team_id]
