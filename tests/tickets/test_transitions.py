from datetime import UTC, datetime, timedelta

import pytest

from itsm.errors import Conflict, InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from security.models import AuditLog
from tests.support import db_state
from tests.tickets.builders import ticket_in_state
from tests.tickets.transition_table import ALL_PAIRS, EXPECTED
from tickets import services
from tickets.models import Ticket, TicketEvent
from tickets.state import PendingReason, TicketState

S = TicketState
NOW = datetime(2025, 3, 3, 9, 0, 0, tzinfo=UTC)  # a Monday morning
REASON = "Checked with the user."

# Every pair an agent may take, except the two whose side conditions get their own tests below.
AGENT_MOVES = [pair for pair in EXPECTED if pair not in {(S.NEW, S.ASSIGNED), (S.ASSIGNED, S.NEW)}]
FORBIDDEN_MOVES = [
    (source, target) for source, target in ALL_PAIRS if source != target and (source, target) not in EXPECTED
]


@pytest.fixture
def frozen(time_machine):  # type: ignore[no-untyped-def]
    time_machine.move_to(NOW, tick=False)
    return time_machine


def _pending_reason_for(target: str) -> str:
    return PendingReason.AWAITING_VENDOR if target == S.PENDING else ""


def _new_events(ticket: Ticket, since_id: int) -> list[tuple[str, int | None, dict]]:
    return [
        (e.kind, e.actor_id, e.data) for e in TicketEvent.objects.filter(ticket=ticket, id__gt=since_id).order_by("id")
    ]


def _last_event_id() -> int:
    return TicketEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _last_audit_seq() -> int:
    return AuditLog.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def _new_audit_actions(since_seq: int) -> list[str]:
    return list(AuditLog.objects.filter(seq__gt=since_seq).order_by("seq").values_list("action", flat=True))


# --- the table, pair by pair -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), AGENT_MOVES)
def test_agent_takes_every_allowed_transition(desk, frozen, source, target):
    # given
    ticket = ticket_in_state(desk, source)
    event_id, audit_seq, version = _last_event_id(), _last_audit_seq(), ticket.version
    frozen.move_to(NOW + timedelta(hours=1), tick=False)

    # when
    services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state=target, reason=REASON, pending_reason=_pending_reason_for(target)
    )

    # then
    ticket.refresh_from_db()
    assert ticket.state == target
    assert ticket.pending_reason == _pending_reason_for(target)
    assert ticket.version == version + 1
    assert ticket.updated_at == NOW + timedelta(hours=1)
    assert _new_events(ticket, event_id) == [
        (
            TicketEvent.Kind.STATE_CHANGED,
            desk.agent.pk,
            {"from": source, "to": target, "reason": REASON, "pending_reason": _pending_reason_for(target)},
        )
    ]
    assert _new_audit_actions(audit_seq) == ["ticket.transition"]
    if target == S.RESOLVED:
        assert ticket.resolved_at == NOW + timedelta(hours=1)
    if target == S.CLOSED:
        assert (ticket.resolved_at, ticket.closed_at) == (NOW, NOW + timedelta(hours=1))
    if (source, target) == (S.RESOLVED, S.IN_PROGRESS):
        assert ticket.resolved_at is None


@pytest.mark.parametrize(("source", "target"), FORBIDDEN_MOVES)
def test_agent_is_refused_every_transition_outside_the_table(desk, source, target):
    # given
    ticket = ticket_in_state(desk, source)
    before = db_state(ticket)

    # when
    with pytest.raises(InvalidTransition) as refused:
        services.ticket_transition(
            actor=desk.agent, ticket=ticket, to_state=target, reason=REASON, pending_reason=_pending_reason_for(target)
        )

    # then
    assert refused.value.code == "invalid_transition"
    assert db_state(ticket) == before


@pytest.mark.parametrize("current", S.values)
def test_asking_for_the_current_state_changes_nothing(desk, current):
    # given
    ticket = ticket_in_state(desk, current)
    before = db_state(ticket)

    # when
    result = services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state=current, reason=REASON, pending_reason=ticket.pending_reason
    )

    # then
    assert result.state == current
    assert result.version == before["tickets"][0]["version"]
    assert db_state(ticket) == before


def test_new_to_assigned_needs_an_assignee(desk):
    ticket = ticket_in_state(desk, S.NEW)
    before = db_state(ticket)

    with pytest.raises(InvalidTransition) as refused:
        services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=S.ASSIGNED)

    assert refused.value.code == "needs_assignee"
    assert db_state(ticket) == before


def test_assigned_to_new_unassigns_the_ticket(desk, frozen):
    # given
    ticket = ticket_in_state(desk, S.ASSIGNED)
    event_id, audit_seq = _last_event_id(), _last_audit_seq()

    # when
    services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=S.NEW)

    # then
    ticket.refresh_from_db()
    assert (ticket.state, ticket.assignee_id, ticket.version) == (S.NEW, None, 3)
    assert _new_events(ticket, event_id) == [
        (
            TicketEvent.Kind.STATE_CHANGED,
            desk.agent.pk,
            {"from": "assigned", "to": "new", "reason": "", "pending_reason": ""},
        ),
        (TicketEvent.Kind.ASSIGNED, desk.agent.pk, {"from": desk.agent.pk, "to": None, "auto": False}),
    ]
    assert _new_audit_actions(audit_seq) == ["ticket.assign"]


def test_unknown_target_state_is_a_validation_error(desk):
    ticket = ticket_in_state(desk, S.NEW)
    before = db_state(ticket)

    with pytest.raises(ValidationFailed) as refused:
        services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="flying")

    assert list(refused.value.fields) == ["state"]
    assert db_state(ticket) == before


# --- reasons ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pending_reason", ["", "bored", "AWAITING_VENDOR"])
def test_pending_needs_a_known_pending_reason(desk, pending_reason):
    ticket = ticket_in_state(desk, S.IN_PROGRESS)
    before = db_state(ticket)

    with pytest.raises(ValidationFailed) as refused:
        services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=S.PENDING, pending_reason=pending_reason)

    assert refused.value.fields == {"pending_reason": ["Choose why the ticket is waiting."]}
    assert db_state(ticket) == before


def test_agent_changes_the_pending_reason_of_a_pending_ticket(desk):
    ticket = ticket_in_state(desk, S.PENDING)
    event_id, version = _last_event_id(), ticket.version

    services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state=S.PENDING, pending_reason=PendingReason.CHANGE_WINDOW
    )

    ticket.refresh_from_db()
    assert (ticket.state, ticket.pending_reason, ticket.version) == (S.PENDING, "change_window", version + 1)
    assert _new_events(ticket, event_id) == [
        (
            TicketEvent.Kind.STATE_CHANGED,
            desk.agent.pk,
            {"from": "pending", "to": "pending", "reason": "", "pending_reason": "change_window"},
        )
    ]


@pytest.mark.parametrize(
    ("source", "target", "actor"),
    [
        (S.NEW, S.CANCELLED, "agent"),
        (S.IN_PROGRESS, S.CANCELLED, "requester"),
        (S.PENDING, S.CANCELLED, "agent"),
        (S.RESOLVED, S.IN_PROGRESS, "agent"),
        (S.RESOLVED, S.IN_PROGRESS, "requester"),
    ],
)
@pytest.mark.parametrize("reason", ["", "   \n"])
def test_cancel_and_reopen_need_a_reason(desk, source, target, actor, reason):
    ticket = ticket_in_state(desk, source)
    before = db_state(ticket)

    with pytest.raises(ValidationFailed) as refused:
        services.ticket_transition(actor=getattr(desk, actor), ticket=ticket, to_state=target, reason=reason)

    assert refused.value.fields == {"reason": ["Say why."]}
    assert db_state(ticket) == before


def test_a_reason_longer_than_1000_characters_is_refused(desk):
    ticket = ticket_in_state(desk, S.NEW)
    before = db_state(ticket)

    with pytest.raises(ValidationFailed) as refused:
        services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=S.CANCELLED, reason="x" * 1001)

    assert refused.value.fields == {"reason": ["Use at most 1000 characters."]}
    assert db_state(ticket) == before


# --- the requester ---------------------------------------------------------------------------------------------------


def test_requester_confirms_a_resolved_ticket(desk, frozen):
    ticket = ticket_in_state(desk, S.RESOLVED)
    frozen.move_to(NOW + timedelta(days=2), tick=False)

    services.ticket_transition(actor=desk.requester, ticket=ticket, to_state=S.CLOSED)

    ticket.refresh_from_db()
    assert (ticket.state, ticket.resolved_at, ticket.closed_at) == (S.CLOSED, NOW, NOW + timedelta(days=2))
    assert ticket.events.latest("id").actor_id == desk.requester.pk


def test_requester_withdraws_an_open_ticket(desk):
    ticket = ticket_in_state(desk, S.ASSIGNED)

    services.ticket_transition(actor=desk.requester, ticket=ticket, to_state=S.CANCELLED, reason="Works again.")

    ticket.refresh_from_db()
    assert (ticket.state, ticket.assignee_id) == (S.CANCELLED, desk.agent.pk)


def test_requester_reopens_on_the_last_second_of_the_window(desk, frozen, settings):
    # given: resolved at NOW, reopen window of 7 days
    settings.TICKETS_REOPEN_DAYS = 7
    ticket = ticket_in_state(desk, S.RESOLVED)
    frozen.move_to(NOW + timedelta(days=7), tick=False)

    # when
    services.ticket_transition(actor=desk.requester, ticket=ticket, to_state=S.IN_PROGRESS, reason="Broken again.")

    # then
    ticket.refresh_from_db()
    assert (ticket.state, ticket.resolved_at, ticket.version) == (S.IN_PROGRESS, None, 3)


def test_requester_cannot_reopen_one_second_after_the_window(desk, frozen, settings):
    # given
    settings.TICKETS_REOPEN_DAYS = 7
    ticket = ticket_in_state(desk, S.RESOLVED)
    before = db_state(ticket)
    frozen.move_to(NOW + timedelta(days=7, seconds=1), tick=False)

    # when
    with pytest.raises(InvalidTransition) as refused:
        services.ticket_transition(actor=desk.requester, ticket=ticket, to_state=S.IN_PROGRESS, reason="Broken again.")

    # then
    assert refused.value.code == "reopen_window_passed"
    assert db_state(ticket) == before


def test_reopen_window_follows_the_setting(desk, frozen, settings):
    settings.TICKETS_REOPEN_DAYS = 1
    ticket = ticket_in_state(desk, S.RESOLVED)
    frozen.move_to(NOW + timedelta(days=1, seconds=1), tick=False)

    with pytest.raises(InvalidTransition) as refused:
        services.ticket_transition(actor=desk.requester, ticket=ticket, to_state=S.IN_PROGRESS, reason="Broken again.")

    assert refused.value.code == "reopen_window_passed"


def test_agent_may_reopen_after_the_requesters_window(desk, frozen):
    ticket = ticket_in_state(desk, S.RESOLVED)
    frozen.move_to(NOW + timedelta(days=30), tick=False)

    services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=S.IN_PROGRESS, reason="Same fault.")

    ticket.refresh_from_db()
    assert ticket.state == S.IN_PROGRESS


@pytest.mark.parametrize(
    ("source", "target", "pending_reason"),
    [
        (S.IN_PROGRESS, S.RESOLVED, ""),
        (S.NEW, S.IN_PROGRESS, ""),
        (S.NEW, S.PENDING, PendingReason.AWAITING_REQUESTER),
        (S.PENDING, S.IN_PROGRESS, ""),
        (S.PENDING, S.PENDING, PendingReason.AWAITING_REQUESTER),
        (S.ASSIGNED, S.NEW, ""),
    ],
)
def test_requester_cannot_take_agent_transitions(desk, source, target, pending_reason):
    ticket = ticket_in_state(desk, source)
    before = db_state(ticket)

    with pytest.raises(PermissionDenied):
        services.ticket_transition(
            actor=desk.requester, ticket=ticket, to_state=target, reason=REASON, pending_reason=pending_reason
        )

    assert db_state(ticket) == before


def test_another_requester_gets_not_found(desk):
    ticket = ticket_in_state(desk, S.RESOLVED)
    before = db_state(ticket)

    with pytest.raises(NotFound):
        services.ticket_transition(actor=desk.other_requester, ticket=ticket, to_state=S.CLOSED)

    assert db_state(ticket) == before


def test_a_manager_sees_but_cannot_change_the_state(desk):
    ticket = ticket_in_state(desk, S.IN_PROGRESS)
    before = db_state(ticket)

    with pytest.raises(PermissionDenied):
        services.ticket_transition(actor=desk.manager, ticket=ticket, to_state=S.RESOLVED)

    assert db_state(ticket) == before


def test_agent_of_another_team_gets_not_found(desk):
    ticket = ticket_in_state(desk, S.IN_PROGRESS)
    before = db_state(ticket)

    with pytest.raises(NotFound):
        services.ticket_transition(actor=desk.network_agent, ticket=ticket, to_state=S.RESOLVED)

    assert db_state(ticket) == before


# --- replies that move the ticket ------------------------------------------------------------------------------------


def test_requester_reply_resumes_a_ticket_awaiting_the_requester(desk):
    # given
    ticket = desk.ticket()
    services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state=S.PENDING, pending_reason=PendingReason.AWAITING_REQUESTER
    )
    event_id = _last_event_id()

    # when
    comment = services.comment_add(actor=desk.requester, ticket=ticket, body="Here is the serial number.")

    # then
    ticket.refresh_from_db()
    assert (ticket.state, ticket.pending_reason, ticket.version) == (S.IN_PROGRESS, "", 4)
    assert [(kind, actor, data) for kind, actor, data in _new_events(ticket, event_id)] == [
        (TicketEvent.Kind.COMMENTED, desk.requester.pk, {"by_agent": False}),
        (
            TicketEvent.Kind.STATE_CHANGED,
            desk.requester.pk,
            {"from": "pending", "to": "in_progress", "reason": "The requester replied.", "pending_reason": ""},
        ),
    ]
    assert ticket.events.get(kind=TicketEvent.Kind.COMMENTED).comment_id == comment.pk


@pytest.mark.parametrize(
    ("pending_reason", "author"),
    [(PendingReason.AWAITING_VENDOR, "requester"), (PendingReason.AWAITING_REQUESTER, "agent")],
)
def test_other_replies_leave_a_pending_ticket_pending(desk, pending_reason, author):
    ticket = desk.ticket()
    services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=S.PENDING, pending_reason=pending_reason)

    services.comment_add(actor=getattr(desk, author), ticket=ticket, body="Any news?")

    ticket.refresh_from_db()
    assert (ticket.state, ticket.pending_reason) == (S.PENDING, pending_reason)


# --- optimistic concurrency ------------------------------------------------------------------------------------------


def test_stale_expected_version_is_a_conflict(desk):
    # given: the agent opened the ticket at version 1, then it was assigned (version 2)
    ticket = desk.ticket()
    services.ticket_assign(actor=desk.agent2, ticket=ticket, assignee=desk.agent2)
    before = db_state(ticket)

    # when
    with pytest.raises(Conflict) as refused:
        services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=S.IN_PROGRESS, expected_version=1)

    # then
    assert refused.value.code == "stale"
    assert refused.value.status_code == 409
    assert db_state(ticket) == before


def test_current_expected_version_is_accepted(desk):
    ticket = desk.ticket()
    services.ticket_assign(actor=desk.agent2, ticket=ticket, assignee=desk.agent2)

    result = services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=S.IN_PROGRESS, expected_version=2)

    assert (result.state, result.version) == (S.IN_PROGRESS, 3)
