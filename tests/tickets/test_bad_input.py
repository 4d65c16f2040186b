"""Malformed input to the ticket services: a clear domain error naming the field, and nothing written (not even a
ticket number taken from the sequence)."""

from typing import Any

import pytest
from django.db import connection

from itsm.errors import NotFound, ValidationFailed
from tests.support import db_state
from tickets import selectors, services


def _sequences() -> dict[str, tuple[int, bool]]:
    values = {}
    with connection.cursor() as cursor:
        for name in ("tickets_incident_number_seq", "tickets_request_number_seq"):
            cursor.execute(f"SELECT last_value, is_called FROM {name}")  # noqa: S608 - fixed names
            values[name] = cursor.fetchone()
    return values


def _everything(*tickets: Any) -> dict[str, Any]:
    return {**db_state(*tickets), "sequences": _sequences()}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"category": 999_999_999}, "category"),
        ({"category": "abc"}, "category"),
        ({"category": None}, "category"),
        ({"title": ""}, "title"),
        ({"title": " \t\n "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"description": "a" * (10 * 1024 * 1024)}, "description"),
        ({"impact": 7}, "impact"),
        ({"impact": "x"}, "impact"),
        ({"impact": None}, "impact"),
        ({"urgency": 0}, "urgency"),
        ({"type": "problem"}, "type"),
    ],
)
def test_create_with_bad_input_names_the_field_and_writes_nothing(desk, changes, field):
    # given
    arguments = {"actor": desk.requester, "title": "Laptop does not boot", "category": desk.laptop.pk, **changes}
    before = _everything()

    # when
    with pytest.raises(ValidationFailed) as refused:
        services.ticket_create(**arguments)

    # then
    assert list(refused.value.fields) == [field]
    assert refused.value.code == "validation_failed"
    assert _everything() == before


def test_title_of_201_characters_is_refused_with_the_limit(desk):
    with pytest.raises(ValidationFailed) as refused:
        services.ticket_create(actor=desk.requester, title="x" * 201, category=desk.laptop)

    assert refused.value.fields == {"title": ["Use at most 200 characters (it has 201)."]}


def test_title_of_200_characters_is_accepted(desk):
    ticket = services.ticket_create(actor=desk.requester, title="x" * 200, category=desk.laptop)

    assert len(ticket.title) == 200


def test_inactive_category_is_unknown(desk):
    desk.laptop.is_active = False
    desk.laptop.save(update_fields=["is_active"])
    before = _everything()

    with pytest.raises(ValidationFailed) as refused:
        services.ticket_create(actor=desk.requester, title="Laptop", category=desk.laptop)

    assert refused.value.fields == {"category": ["Choose a category from the list."]}
    assert _everything() == before


@pytest.mark.parametrize("target", ["flying", "", "NEW", None])
def test_unknown_target_state_writes_nothing(desk, target):
    ticket = desk.ticket()
    before = _everything(ticket)

    with pytest.raises(ValidationFailed) as refused:
        services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=target)

    assert list(refused.value.fields) == ["state"]
    assert _everything(ticket) == before


@pytest.mark.parametrize(("impact", "urgency", "field"), [(7, 1, "impact"), ("x", 1, "impact"), (1, -1, "urgency")])
def test_impact_and_urgency_outside_the_levels_write_nothing(desk, impact, urgency, field):
    ticket = desk.ticket()
    before = _everything(ticket)

    with pytest.raises(ValidationFailed) as refused:
        services.ticket_set_impact_urgency(actor=desk.agent, ticket=ticket, impact=impact, urgency=urgency)

    assert refused.value.fields == {field: ["Choose 1 (high), 2 (medium) or 3 (low)."]}
    assert _everything(ticket) == before


def test_comment_over_the_text_limit_writes_nothing(desk, settings):
    settings.TICKETS_TEXT_MAX_CHARS = 100
    ticket = desk.ticket()
    before = _everything(ticket)

    with pytest.raises(ValidationFailed) as refused:
        services.comment_add(actor=desk.requester, ticket=ticket, body="y" * 101)

    assert refused.value.fields == {"body": ["Use at most 100 characters (it has 101)."]}
    assert _everything(ticket) == before


def _calls(desk, ticket_id):  # type: ignore[no-untyped-def]
    """Every ticket service, aimed by id at a ticket the actor may not see."""
    actor = desk.other_requester
    return {
        "transition": lambda: services.ticket_transition(
            actor=actor, ticket=ticket_id, to_state="cancelled", reason="x"
        ),
        "assign": lambda: services.ticket_assign(actor=actor, ticket=ticket_id, assignee=None),
        "impact": lambda: services.ticket_set_impact_urgency(actor=actor, ticket=ticket_id, impact=1, urgency=1),
        "priority": lambda: services.ticket_override_priority(actor=actor, ticket=ticket_id, priority=1, reason="x"),
        "category": lambda: services.ticket_change_category(actor=actor, ticket=ticket_id, category=desk.vpn),
        "comment": lambda: services.comment_add(actor=actor, ticket=ticket_id, body="Me too"),
        "note": lambda: services.comment_add(actor=actor, ticket=ticket_id, body="Me too", is_internal=True),
        "get": lambda: selectors.ticket_get(user=actor, pk=ticket_id),
    }


@pytest.mark.parametrize("call", ["transition", "assign", "impact", "priority", "category", "comment", "note", "get"])
@pytest.mark.parametrize("which", ["someone_elses", "missing"])
def test_another_users_ticket_id_is_not_found_and_nothing_changes(desk, call, which):
    # given
    ticket = desk.ticket()
    ticket_id = ticket.pk if which == "someone_elses" else ticket.pk + 1000
    before = _everything(ticket)

    # when
    with pytest.raises(NotFound) as refused:
        _calls(desk, ticket_id)[call]()

    # then
    assert refused.value.as_dict() == {"detail": "No such ticket.", "code": "not_found", "fields": {}}
    assert _everything(ticket) == before
