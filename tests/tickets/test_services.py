import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from itsm.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from itsm.events import DomainEvent, subscribe, unsubscribe
from security.models import AuditLog, Membership
from tests.factories import CategoryFactory, MembershipFactory, TeamFactory, UserFactory
from tests.support import db_state
from tests.tickets.builders import ticket_in_state
from tickets import events, selectors, services
from tickets.models import Attachment, Comment, PriorityMatrixEntry, TicketEvent
from tickets.state import Level, PendingReason, Priority, TicketState, TicketType

NOW = datetime(2025, 3, 3, 9, 0, 0, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17


@pytest.fixture
def frozen(time_machine):  # type: ignore[no-untyped-def]
    time_machine.move_to(NOW, tick=False)
    return time_machine


@pytest.fixture
def published():  # type: ignore[no-untyped-def]
    """Every domain event published during the test, in order."""
    received: list[DomainEvent] = []
    subscribe(DomainEvent, received.append)
    yield received
    unsubscribe(DomainEvent, received.append)


@pytest.fixture
def failing_subscriber():  # type: ignore[no-untyped-def]
    """Subscribe a handler that raises for one event type (the test picks it)."""
    subscribed: list[tuple[type[DomainEvent], object]] = []

    def install(event_type: type[DomainEvent]) -> None:
        def explode(event: DomainEvent) -> None:
            raise RuntimeError(f"subscriber failed on {event.name}")

        subscribe(event_type, explode)
        subscribed.append((event_type, explode))

    yield install
    for event_type, handler in subscribed:
        unsubscribe(event_type, handler)  # type: ignore[arg-type]


def _kinds(ticket) -> list[str]:  # type: ignore[no-untyped-def]
    return list(ticket.events.order_by("id").values_list("kind", flat=True))


def _audit_rows(ticket) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    return list(AuditLog.objects.filter(object_type="tickets.ticket", object_id=str(ticket.pk)).order_by("seq"))


def _stored_files(settings) -> list[Path]:  # type: ignore[no-untyped-def]
    root = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- create ----------------------------------------------------------------------------------------------------------


def test_numbers_come_from_one_sequence_per_type(desk):
    # when
    first_incident = desk.ticket(type=TicketType.INCIDENT)
    first_request = desk.ticket(type=TicketType.REQUEST, title="New monitor")
    second_incident = desk.ticket(type=TicketType.INCIDENT)
    second_request = desk.ticket(type=TicketType.REQUEST, title="Second monitor")

    # then
    numbers = [first_incident.number, first_request.number, second_incident.number, second_request.number]
    assert [re.fullmatch(r"(INC|REQ)-(\d{6,})", n) is not None for n in numbers] == [True] * 4
    assert [n[:4] for n in numbers] == ["INC-", "REQ-", "INC-", "REQ-"]
    assert int(second_incident.number[4:]) == int(first_incident.number[4:]) + 1
    assert int(second_request.number[4:]) == int(first_request.number[4:]) + 1


def test_the_ticket_type_defaults_to_the_categorys(desk):
    category = CategoryFactory(default_team=desk.desktop, default_type=TicketType.REQUEST)

    ticket = desk.ticket(category=category)

    assert ticket.type == TicketType.REQUEST
    assert ticket.number.startswith("REQ-")


def test_create_routes_to_the_category_team_and_records_everything(desk, frozen):
    # when
    ticket = desk.ticket(category=desk.vpn, title="  VPN drops every hour  ", impact=Level.HIGH, urgency=Level.MEDIUM)

    # then
    ticket.refresh_from_db()
    assert (ticket.title, ticket.team_id, ticket.assignee_id, ticket.state) == (
        "VPN drops every hour",
        desk.network.pk,
        None,
        TicketState.NEW,
    )
    assert (ticket.requester_id, ticket.created_by_id, ticket.priority, ticket.version) == (
        desk.requester.pk,
        desk.requester.pk,
        Priority.P2,
        1,
    )
    assert (ticket.created_at, ticket.updated_at, ticket.is_confidential) == (NOW, NOW, False)
    created = ticket.events.get()
    assert (created.kind, created.actor_id, created.at, created.data) == (
        TicketEvent.Kind.CREATED,
        desk.requester.pk,
        NOW,
        {"team_id": desk.network.pk, "priority": 2, "category_id": desk.vpn.pk},
    )
    [audit] = _audit_rows(ticket)
    assert (audit.action, audit.actor_id, audit.before, audit.after["state"], audit.after["team"]) == (
        "ticket.create",
        desk.requester.pk,
        None,
        "new",
        desk.network.pk,
    )


@pytest.mark.parametrize(
    ("impact", "urgency", "priority"),
    [(Level.HIGH, Level.HIGH, Priority.P1), (Level.MEDIUM, Level.MEDIUM, Priority.P3), (Level.LOW, Level.MEDIUM, 4)],
)
def test_priority_comes_from_the_matrix(desk, impact, urgency, priority):
    ticket = desk.ticket(impact=impact, urgency=urgency)

    assert ticket.priority == priority


def test_priority_follows_an_edited_matrix(desk):
    PriorityMatrixEntry.objects.filter(impact=Level.MEDIUM, urgency=Level.MEDIUM).update(priority=Priority.P1)

    ticket = desk.ticket(impact=Level.MEDIUM, urgency=Level.MEDIUM)

    assert ticket.priority == Priority.P1


def test_description_is_sanitised(desk):
    ticket = desk.ticket(
        description=(
            '<p>Printer <b>on fire</b></p><script>alert(1)</script><a href="javascript:alert(2)" onclick="x()">'
            "link</a><img src=x onerror=y>"
        )
    )

    assert ticket.description == '<p>Printer <b>on fire</b></p><a rel="noopener noreferrer nofollow">link</a>'


def test_plain_text_description_is_escaped_and_keeps_paragraphs(desk):
    ticket = desk.ticket(description="Line one\nline two\n\nSecond & last")

    assert ticket.description == "<p>Line one<br>line two</p><p>Second &amp; last</p>"


def test_confidential_category_makes_a_confidential_security_ticket(desk):
    ticket = desk.ticket(category=desk.phishing, title="Strange e-mail from the CEO")

    assert (ticket.is_confidential, ticket.team_id) == (True, desk.security.pk)


def test_agent_raises_a_ticket_on_behalf_of_a_requester(desk):
    ticket = services.ticket_create(actor=desk.agent, requester=desk.requester, title="Phoned in", category=desk.laptop)

    assert (ticket.requester_id, ticket.created_by_id) == (desk.requester.pk, desk.agent.pk)


def test_requester_cannot_raise_a_ticket_for_someone_else(desk):
    before = db_state()

    with pytest.raises(PermissionDenied):
        services.ticket_create(actor=desk.requester, requester=desk.other_requester, title="Hi", category=desk.laptop)

    assert db_state() == before


def test_disabled_requester_cannot_be_given_a_ticket(desk):
    desk.other_requester.is_active = False
    desk.other_requester.save(update_fields=["is_active"])
    before = db_state()

    with pytest.raises(ValidationFailed) as refused:
        services.ticket_create(actor=desk.agent, requester=desk.other_requester, title="Hi", category=desk.laptop)

    assert list(refused.value.fields) == ["requester"]
    assert db_state() == before


# --- auto-assignment -------------------------------------------------------------------------------------------------


def test_auto_assign_goes_round_robin_in_user_id_order(db):
    # given: a team with two active agents and one disabled one
    team = TeamFactory(auto_assign=True)
    first = MembershipFactory(team=team).user
    disabled = MembershipFactory(team=team, user__is_active=False).user
    second = MembershipFactory(team=team).user
    assert first.pk < disabled.pk < second.pk
    category = CategoryFactory(default_team=team)
    requester = UserFactory()

    # when
    tickets = [services.ticket_create(actor=requester, title=f"Ticket {n}", category=category) for n in range(1, 5)]

    # then
    assert [t.assignee_id for t in tickets] == [first.pk, second.pk, first.pk, second.pk]
    assert [t.state for t in tickets] == [TicketState.ASSIGNED] * 4
    team.refresh_from_db()
    assert team.last_auto_assignee_id == second.pk
    assert _kinds(tickets[0]) == ["created", "state_changed", "assigned"]
    assigned = tickets[0].events.get(kind=TicketEvent.Kind.ASSIGNED)
    assert (assigned.actor_id, assigned.data) == (None, {"from": None, "to": first.pk, "auto": True})


def test_teams_without_auto_assign_leave_tickets_unassigned(desk):
    ticket = desk.ticket()

    assert (ticket.assignee_id, ticket.state) == (None, TicketState.NEW)


# --- assignment ------------------------------------------------------------------------------------------------------


def test_assigning_a_new_ticket_makes_it_assigned(desk, frozen):
    # given
    ticket = desk.ticket()

    # when
    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent2)

    # then
    ticket.refresh_from_db()
    assert (ticket.state, ticket.assignee_id, ticket.team_id, ticket.version) == (
        TicketState.ASSIGNED,
        desk.agent2.pk,
        desk.desktop.pk,
        2,
    )
    assert _kinds(ticket) == ["created", "state_changed", "assigned"]
    audit = _audit_rows(ticket)[-1]
    assert (audit.action, audit.actor_id) == ("ticket.assign", desk.agent.pk)
    assert (audit.before["state"], audit.before["assignee"]) == ("new", None)
    assert (audit.after["state"], audit.after["assignee"]) == ("assigned", desk.agent2.pk)


def test_unassigning_an_assigned_ticket_makes_it_new_again(desk):
    ticket = ticket_in_state(desk, TicketState.ASSIGNED)

    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=None)

    ticket.refresh_from_db()
    assert (ticket.state, ticket.assignee_id, ticket.version) == (TicketState.NEW, None, 3)


def test_reassigning_a_ticket_in_progress_keeps_its_state(desk):
    ticket = ticket_in_state(desk, TicketState.IN_PROGRESS)

    services.ticket_assign(actor=desk.lead, ticket=ticket, assignee=desk.agent2)

    ticket.refresh_from_db()
    assert (ticket.state, ticket.assignee_id) == (TicketState.IN_PROGRESS, desk.agent2.pk)


def test_assigning_the_same_person_again_changes_nothing(desk):
    ticket = ticket_in_state(desk, TicketState.ASSIGNED)
    before = db_state(ticket)

    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent)

    assert db_state(ticket) == before


def test_moving_to_another_team_clears_the_assignee(desk):
    ticket = ticket_in_state(desk, TicketState.ASSIGNED)

    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=None, team=desk.network)

    ticket.refresh_from_db()
    assert (ticket.team_id, ticket.assignee_id, ticket.state) == (desk.network.pk, None, TicketState.NEW)
    assert ticket.events.get(kind=TicketEvent.Kind.TEAM_CHANGED).data == {
        "from": desk.desktop.pk,
        "to": desk.network.pk,
    }


@pytest.mark.parametrize("assignee", ["network_agent", "requester", "security_agent"])
def test_assignee_must_be_in_the_tickets_team(desk, assignee):
    ticket = desk.ticket()
    before = db_state(ticket)

    with pytest.raises(PermissionDenied) as refused:
        services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=getattr(desk, assignee))

    assert refused.value.code == "assignee_not_in_team"
    assert db_state(ticket) == before


def test_disabled_member_cannot_be_assigned(desk):
    ticket = desk.ticket()
    desk.agent2.is_active = False
    desk.agent2.save(update_fields=["is_active"])
    before = db_state(ticket)

    with pytest.raises(PermissionDenied):
        services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent2)

    assert db_state(ticket) == before


@pytest.mark.parametrize(("actor", "error"), [("requester", PermissionDenied), ("other_requester", NotFound)])
def test_requesters_cannot_assign(desk, actor, error):
    ticket = desk.ticket()
    before = db_state(ticket)

    with pytest.raises(error):
        services.ticket_assign(actor=getattr(desk, actor), ticket=ticket, assignee=desk.agent)

    assert db_state(ticket) == before


def test_confidential_ticket_cannot_move_to_a_team_outside_security(desk):
    ticket = desk.ticket(category=desk.phishing)
    before = db_state(ticket)

    with pytest.raises(PermissionDenied) as refused:
        services.ticket_assign(actor=desk.security_agent, ticket=ticket, assignee=None, team=desk.desktop)

    assert refused.value.code == "confidential_team"
    assert db_state(ticket) == before


@pytest.mark.parametrize("final", [TicketState.CLOSED, TicketState.CANCELLED])
def test_closed_and_cancelled_tickets_cannot_be_reassigned(desk, final):
    ticket = ticket_in_state(desk, final)
    before = db_state(ticket)

    with pytest.raises(InvalidTransition) as refused:
        services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent2)

    assert refused.value.code == "ticket_final"
    assert db_state(ticket) == before


# --- priority --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   "])
def test_priority_override_needs_a_reason(desk, reason):
    ticket = desk.ticket()
    before = db_state(ticket)

    with pytest.raises(ValidationFailed) as refused:
        services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=Priority.P1, reason=reason)

    assert refused.value.fields == {"reason": ["Say why."]}
    assert db_state(ticket) == before


@pytest.mark.parametrize("priority", [0, 5, "P1", "x"])
def test_priority_override_must_be_p1_to_p4(desk, priority):
    ticket = desk.ticket()
    before = db_state(ticket)

    with pytest.raises(ValidationFailed) as refused:
        services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=priority, reason="CEO's laptop")

    assert list(refused.value.fields) == ["priority"]
    assert db_state(ticket) == before


def test_priority_override_sets_the_flags_and_records_the_reason(desk):
    # given: medium × medium → P3
    ticket = desk.ticket()

    # when
    services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=Priority.P1, reason="CEO's laptop")

    # then
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.priority_is_overridden, ticket.priority_override_reason, ticket.version) == (
        1,
        True,
        "CEO's laptop",
        2,
    )
    assert ticket.events.get(kind=TicketEvent.Kind.PRIORITY_CHANGED).data == {
        "from": 3,
        "to": 1,
        "impact": 2,
        "urgency": 2,
        "overridden": True,
        "reason": "CEO's laptop",
    }
    audit = _audit_rows(ticket)[-1]
    assert (audit.action, audit.before["priority"], audit.after["priority"]) == ("ticket.priority", 3, 1)


def test_clearing_the_override_goes_back_to_the_matrix(desk):
    ticket = desk.ticket(impact=Level.LOW, urgency=Level.LOW)
    services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=Priority.P2, reason="VIP")

    services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=None)

    ticket.refresh_from_db()
    assert (ticket.priority, ticket.priority_is_overridden, ticket.priority_override_reason, ticket.version) == (
        4,
        False,
        "",
        3,
    )


def test_clearing_an_absent_override_changes_nothing(desk):
    ticket = desk.ticket()
    before = db_state(ticket)

    services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=None)

    assert db_state(ticket) == before


def test_impact_and_urgency_changes_recompute_the_priority(desk):
    ticket = desk.ticket()

    services.ticket_set_impact_urgency(actor=desk.agent, ticket=ticket, impact=Level.HIGH, urgency=Level.HIGH)

    ticket.refresh_from_db()
    assert (ticket.impact, ticket.urgency, ticket.priority, ticket.version) == (1, 1, 1, 2)


def test_impact_and_urgency_changes_keep_an_overridden_priority(desk):
    ticket = desk.ticket()
    services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=Priority.P1, reason="Outage")

    services.ticket_set_impact_urgency(actor=desk.agent, ticket=ticket, impact=Level.LOW, urgency=Level.LOW)

    ticket.refresh_from_db()
    assert (ticket.impact, ticket.urgency, ticket.priority, ticket.priority_is_overridden) == (3, 3, 1, True)


@pytest.mark.parametrize(("actor", "error"), [("requester", PermissionDenied), ("network_agent", NotFound)])
def test_only_the_teams_agents_change_the_priority(desk, actor, error):
    ticket = desk.ticket()
    before = db_state(ticket)

    with pytest.raises(error):
        services.ticket_override_priority(actor=getattr(desk, actor), ticket=ticket, priority=1, reason="Urgent!")
    with pytest.raises(error):
        services.ticket_set_impact_urgency(actor=getattr(desk, actor), ticket=ticket, impact=1, urgency=1)

    assert db_state(ticket) == before


# --- category --------------------------------------------------------------------------------------------------------


def test_category_change_into_a_confidential_category_hands_the_ticket_to_security(desk):
    # given
    ticket = ticket_in_state(desk, TicketState.ASSIGNED)

    # when
    services.ticket_change_category(actor=desk.agent, ticket=ticket, category=desk.phishing)

    # then
    ticket.refresh_from_db()
    assert (ticket.category_id, ticket.is_confidential, ticket.team_id, ticket.assignee_id, ticket.state) == (
        desk.phishing.pk,
        True,
        desk.security.pk,
        None,
        TicketState.NEW,
    )
    assert _kinds(ticket)[-4:] == ["category_changed", "state_changed", "team_changed", "assigned"]
    assert [row.action for row in _audit_rows(ticket)][-2:] == ["ticket.category", "ticket.assign"]
    with pytest.raises(NotFound):
        selectors.ticket_get(user=desk.agent, pk=ticket.pk)


def test_confidentiality_is_never_lifted_by_a_category_change(desk):
    ticket = desk.ticket(category=desk.phishing)

    services.ticket_change_category(actor=desk.security_agent, ticket=ticket, category=desk.laptop)

    ticket.refresh_from_db()
    assert (ticket.category_id, ticket.is_confidential, ticket.team_id) == (desk.laptop.pk, True, desk.security.pk)


def test_category_change_within_ordinary_categories_keeps_team_and_assignee(desk):
    ticket = ticket_in_state(desk, TicketState.ASSIGNED)

    services.ticket_change_category(actor=desk.agent, ticket=ticket, category=desk.vpn)

    ticket.refresh_from_db()
    assert (ticket.category_id, ticket.team_id, ticket.assignee_id) == (desk.vpn.pk, desk.desktop.pk, desk.agent.pk)


# --- comments --------------------------------------------------------------------------------------------------------


def test_agent_adds_a_public_reply(desk):
    ticket = desk.ticket()

    comment = services.comment_add(actor=desk.agent, ticket=ticket, body="Have you tried <b>turning it off</b>?")

    assert (comment.body, comment.is_internal, comment.author_id) == (
        "Have you tried <b>turning it off</b>?",
        False,
        desk.agent.pk,
    )
    event = ticket.events.get(kind=TicketEvent.Kind.COMMENTED)
    assert (event.is_internal, event.comment_id, event.data) == (False, comment.pk, {"by_agent": True})
    audit = _audit_rows(ticket)[-1]
    assert (audit.action, audit.after) == (
        "ticket.comment",
        {"comment_id": comment.pk, "is_internal": False, "attachments": 0},
    )


def test_agent_adds_an_internal_note(desk):
    ticket = desk.ticket()

    comment = services.comment_add(actor=desk.agent, ticket=ticket, body="User is on leave", is_internal=True)

    assert (comment.body, comment.is_internal) == ("<p>User is on leave</p>", True)
    event = ticket.events.get(kind=TicketEvent.Kind.NOTE_ADDED)
    assert (event.is_internal, event.comment_id) == (True, comment.pk)
    assert _audit_rows(ticket)[-1].action == "ticket.note"


def test_requester_cannot_add_an_internal_note(desk):
    ticket = desk.ticket()
    before = db_state(ticket)

    with pytest.raises(PermissionDenied):
        services.comment_add(actor=desk.requester, ticket=ticket, body="Secret", is_internal=True)

    assert db_state(ticket) == before


@pytest.mark.parametrize("is_internal", [False, True])
def test_another_requester_gets_not_found_when_commenting(desk, is_internal):
    ticket = desk.ticket()
    before = db_state(ticket)

    with pytest.raises(NotFound):
        services.comment_add(actor=desk.other_requester, ticket=ticket, body="Me too", is_internal=is_internal)

    assert db_state(ticket) == before


@pytest.mark.parametrize("body", ["", "   ", "<script>alert(1)</script>"])
def test_a_reply_needs_text(desk, body):
    ticket = desk.ticket()
    before = db_state(ticket)

    with pytest.raises(ValidationFailed) as refused:
        services.comment_add(actor=desk.requester, ticket=ticket, body=body)

    assert refused.value.fields == {"body": ["This field is required."]}
    assert db_state(ticket) == before


def test_no_public_replies_on_a_closed_ticket(desk):
    ticket = ticket_in_state(desk, TicketState.CLOSED)
    before = db_state(ticket)

    with pytest.raises(InvalidTransition) as refused:
        services.comment_add(actor=desk.requester, ticket=ticket, body="Still broken")

    assert refused.value.code == "ticket_final"
    assert db_state(ticket) == before


# --- attachments -----------------------------------------------------------------------------------------------------


def test_an_allowed_attachment_is_stored_under_its_content_hash(desk, settings, frozen):
    # given
    ticket = desk.ticket()
    upload = SimpleUploadedFile("../../etc/screen shot.PNG", PNG, content_type="text/html")

    # when
    attachment = services.attachment_add(actor=desk.requester, ticket=ticket, upload=upload)

    # then
    digest = hashlib.sha256(PNG).hexdigest()
    attachment.refresh_from_db()
    assert (attachment.filename, attachment.extension, attachment.content_type, attachment.size) == (
        "screen shot.PNG",
        ".png",
        "image/png",
        len(PNG),
    )
    assert (attachment.sha256, attachment.file.name, attachment.is_internal) == (
        digest,
        f"attachments/2025/03/{digest}.png",
        False,
    )
    assert _stored_files(settings) == [Path(f"attachments/2025/03/{digest}.png")]
    with attachment.file.open("rb") as stored:
        assert stored.read() == PNG
    assert ticket.events.get(kind=TicketEvent.Kind.ATTACHMENT_ADDED).data == {
        "attachment_id": attachment.pk,
        "filename": "screen shot.PNG",
        "size": len(PNG),
    }
    assert _audit_rows(ticket)[-1].action == "ticket.attachment"


def test_an_attachment_exactly_at_the_size_limit_is_accepted(desk, settings):
    settings.TICKETS_ATTACHMENT_MAX_BYTES = 16
    ticket = desk.ticket()

    attachment = services.attachment_add(
        actor=desk.agent, ticket=ticket, upload=SimpleUploadedFile("trace.log", b"a" * 16), is_internal=True
    )

    assert (attachment.size, attachment.content_type, attachment.is_internal) == (16, "text/plain", True)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("trace.log", b"a" * 17, "trace.log: files may be at most "),
        ("setup.exe", b"MZ\x90\x00", "setup.exe: allowed types are "),
        ("archive", b"hello", "archive: allowed types are "),
        ("screen.png", b"not an image", "screen.png does not look like a .png file."),
        ("invoice.pdf", b"<html>x</html>", "invoice.pdf does not look like a .pdf file."),
        ("notes.txt", b"MZ\x00\x00binary", "notes.txt does not look like a .txt file."),
        ("empty.txt", b"", "empty.txt is empty."),
    ],
)
def test_a_refused_attachment_writes_nothing(desk, settings, name, content, message):
    # given
    settings.TICKETS_ATTACHMENT_MAX_BYTES = 16
    ticket = desk.ticket()
    before = db_state(ticket)

    # when
    with pytest.raises(ValidationFailed) as refused:
        services.attachment_add(actor=desk.requester, ticket=ticket, upload=SimpleUploadedFile(name, content))

    # then
    [error] = refused.value.fields["attachments"]
    assert error.startswith(message)
    assert db_state(ticket) == before
    assert _stored_files(settings) == []


def test_a_ticket_with_a_refused_attachment_is_not_created(desk, settings):
    before = db_state()

    with pytest.raises(ValidationFailed):
        desk.ticket(attachments=[SimpleUploadedFile("fine.txt", b"fine"), SimpleUploadedFile("bad.png", b"not a png")])

    assert db_state() == before
    assert Attachment.objects.count() == 0


def test_requester_cannot_add_an_internal_attachment(desk, settings):
    ticket = desk.ticket()
    before = db_state(ticket)

    with pytest.raises(PermissionDenied):
        services.attachment_add(
            actor=desk.requester, ticket=ticket, upload=SimpleUploadedFile("a.txt", b"hi"), is_internal=True
        )

    assert db_state(ticket) == before
    assert _stored_files(settings) == []


@pytest.mark.parametrize("is_internal", [False, True])
def test_another_requester_gets_not_found_when_attaching(desk, settings, is_internal):
    ticket = desk.ticket()
    before = db_state(ticket)

    with pytest.raises(NotFound):
        services.attachment_add(
            actor=desk.other_requester,
            ticket=ticket,
            upload=SimpleUploadedFile("a.txt", b"hi"),
            is_internal=is_internal,
        )

    assert db_state(ticket) == before
    assert _stored_files(settings) == []


# --- domain events ---------------------------------------------------------------------------------------------------


def test_create_publishes_ticket_created(desk, frozen, published):
    ticket = desk.ticket()

    assert published == [events.TicketCreated(at=NOW, actor_id=desk.requester.pk, ticket_id=ticket.pk)]


def test_auto_assigned_create_publishes_created_state_and_assignment(db, frozen, published):
    team = TeamFactory(auto_assign=True)
    agent = MembershipFactory(team=team, role=Membership.Role.AGENT).user
    requester = UserFactory()

    ticket = services.ticket_create(actor=requester, title="Desk phone", category=CategoryFactory(default_team=team))

    assert published == [
        events.TicketCreated(at=NOW, actor_id=requester.pk, ticket_id=ticket.pk),
        events.StatusChanged(at=NOW, actor_id=None, ticket_id=ticket.pk, from_state="new", to_state="assigned"),
        events.Assigned(at=NOW, actor_id=None, ticket_id=ticket.pk, from_assignee_id=None, to_assignee_id=agent.pk),
    ]


def test_assign_transition_comment_and_priority_publish_their_events(desk, frozen, published):
    # given
    ticket = desk.ticket()
    published.clear()

    # when
    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent)
    services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state="pending", pending_reason=PendingReason.AWAITING_REQUESTER
    )
    note = services.comment_add(actor=desk.agent, ticket=ticket, body="Called, no answer", is_internal=True)
    reply = services.comment_add(actor=desk.requester, ticket=ticket, body="Back now")
    services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=Priority.P2, reason="Exec")
    services.ticket_change_category(actor=desk.agent, ticket=ticket, category=desk.vpn)

    # then
    agent, requester, pk = desk.agent.pk, desk.requester.pk, ticket.pk
    assert published == [
        events.StatusChanged(at=NOW, actor_id=agent, ticket_id=pk, from_state="new", to_state="assigned"),
        events.Assigned(at=NOW, actor_id=agent, ticket_id=pk, from_assignee_id=None, to_assignee_id=agent),
        events.StatusChanged(at=NOW, actor_id=agent, ticket_id=pk, from_state="assigned", to_state="pending"),
        events.InternalNoteAdded(at=NOW, actor_id=agent, ticket_id=pk, comment_id=note.pk),
        events.PublicReplyAdded(at=NOW, actor_id=requester, ticket_id=pk, comment_id=reply.pk, by_agent=False),
        events.StatusChanged(
            at=NOW,
            actor_id=requester,
            ticket_id=pk,
            from_state="pending",
            to_state="in_progress",
            reason="The requester replied.",
        ),
        events.PriorityChanged(at=NOW, actor_id=agent, ticket_id=pk, from_priority=3, to_priority=2),
        events.CategoryChanged(
            at=NOW, actor_id=agent, ticket_id=pk, from_category_id=desk.laptop.pk, to_category_id=desk.vpn.pk
        ),
    ]


def test_refused_and_no_op_changes_publish_nothing(desk, published):
    ticket = desk.ticket()
    published.clear()

    services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="new")
    with pytest.raises(InvalidTransition):
        services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="closed")

    assert published == []


def test_a_failing_subscriber_rolls_back_the_whole_transition(desk, failing_subscriber):
    # given
    ticket = desk.ticket()
    failing_subscriber(events.StatusChanged)
    before = db_state(ticket)

    # when
    with pytest.raises(RuntimeError, match="subscriber failed on ticket.state_changed"):
        services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="in_progress")

    # then
    assert db_state(ticket) == before


def test_a_failing_subscriber_rolls_back_the_whole_creation(desk, failing_subscriber):
    failing_subscriber(events.TicketCreated)
    before = db_state()

    with pytest.raises(RuntimeError, match="subscriber failed on ticket.created"):
        desk.ticket()

    assert db_state() == before


def test_a_failing_subscriber_rolls_back_a_reply_and_its_automatic_resume(desk, failing_subscriber):
    # given: the requester's reply would resume the ticket; the SLA side refuses the resume
    ticket = desk.ticket()
    services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state="pending", pending_reason=PendingReason.AWAITING_REQUESTER
    )
    failing_subscriber(events.StatusChanged)
    before = db_state(ticket)

    # when
    with pytest.raises(RuntimeError):
        services.comment_add(actor=desk.requester, ticket=ticket, body="Here you go")

    # then: not even the comment is kept
    assert db_state(ticket) == before
    assert Comment.objects.filter(ticket=ticket).count() == 0
