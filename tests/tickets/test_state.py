from datetime import UTC, datetime, timedelta

import pytest

from tests.tickets.transition_table import ALL_PAIRS, EXPECTED
from tickets import state
from tickets.state import Actor, Level, Priority, TicketState, TicketType


@pytest.mark.parametrize("actor", list(Actor))
@pytest.mark.parametrize(("source", "target"), ALL_PAIRS)
def test_transition_table_allows_exactly_the_documented_moves(source, target, actor):
    expected = EXPECTED.get((source, target))
    expected_allowed = expected is not None and actor in expected[0]

    transition = state.find_transition(source, target)
    offered = {t.target for t in state.allowed_transitions(source, actor)}

    assert (transition is not None) == (expected is not None)
    assert (transition is not None and actor in transition.actors) == expected_allowed
    assert (target in offered) == expected_allowed
    if expected is not None:
        assert transition is not None
        assert transition.needs_reason is expected[1]


@pytest.mark.parametrize("actor", list(Actor))
def test_final_states_offer_no_way_out(actor):
    assert state.allowed_transitions(TicketState.CLOSED, actor) == []
    assert state.allowed_transitions(TicketState.CANCELLED, actor) == []


def test_requester_is_offered_only_cancel_close_and_reopen():
    offered = {
        source: sorted(t.target for t in state.allowed_transitions(source, Actor.REQUESTER))
        for source in TicketState.values
    }

    assert offered == {
        "new": ["cancelled"],
        "assigned": ["cancelled"],
        "in_progress": ["cancelled"],
        "pending": ["cancelled"],
        "resolved": ["closed", "in_progress"],
        "closed": [],
        "cancelled": [],
    }


@pytest.mark.parametrize(
    ("impact", "urgency", "priority"),
    [
        (Level.HIGH, Level.HIGH, Priority.P1),
        (Level.HIGH, Level.MEDIUM, Priority.P2),
        (Level.HIGH, Level.LOW, Priority.P3),
        (Level.MEDIUM, Level.HIGH, Priority.P2),
        (Level.MEDIUM, Level.MEDIUM, Priority.P3),
        (Level.MEDIUM, Level.LOW, Priority.P4),
        (Level.LOW, Level.HIGH, Priority.P3),
        (Level.LOW, Level.MEDIUM, Priority.P4),
        (Level.LOW, Level.LOW, Priority.P4),
    ],
)
def test_priority_for_follows_the_default_matrix(impact, urgency, priority):
    assert state.priority_for(impact, urgency) == priority


def test_priority_for_prefers_the_given_matrix_and_falls_back_to_the_default_for_missing_cells():
    matrix = {(Level.MEDIUM, Level.MEDIUM): Priority.P1}

    assert state.priority_for(Level.MEDIUM, Level.MEDIUM, matrix) == Priority.P1
    assert state.priority_for(Level.LOW, Level.LOW, matrix) == Priority.P4


RESOLVED_AT = datetime(2025, 3, 28, 16, 30, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        (RESOLVED_AT, True),
        (RESOLVED_AT + timedelta(days=7) - timedelta(seconds=1), True),
        (RESOLVED_AT + timedelta(days=7), True),
        (RESOLVED_AT + timedelta(days=7, seconds=1), False),
        (RESOLVED_AT + timedelta(days=30), False),
    ],
)
def test_can_reopen_up_to_and_including_the_last_second_of_the_window(now, allowed):
    assert state.can_reopen(resolved_at=RESOLVED_AT, now=now, window_days=7) is allowed


def test_can_reopen_needs_a_resolution_time():
    assert state.can_reopen(resolved_at=None, now=RESOLVED_AT, window_days=7) is False


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        (TicketState.RESOLVED, TicketState.IN_PROGRESS, True),
        (TicketState.RESOLVED, TicketState.CLOSED, False),
        (TicketState.PENDING, TicketState.IN_PROGRESS, False),
    ],
)
def test_is_reopen_only_for_resolved_back_to_open(source, target, expected):
    assert state.is_reopen(source, target) is expected


@pytest.mark.parametrize(
    ("ticket_type", "sequence", "number"),
    [
        (TicketType.INCIDENT, 1, "INC-000001"),
        (TicketType.REQUEST, 45, "REQ-000045"),
        ("incident", 1234567, "INC-1234567"),
    ],
)
def test_format_number(ticket_type, sequence, number):
    assert state.format_number(ticket_type, sequence) == number
