import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from itsm.errors import NotFound
from security.permissions import can_view_internal, can_view_ticket
from tickets import selectors, services
from tickets.models import Ticket

ROLES = [
    "requester",
    "other_requester",
    "agent",
    "lead",
    "agent2",
    "network_agent",
    "manager",
    "security_agent",
    "security_officer",
    "admin",
]


@pytest.fixture
def tickets(desk) -> dict[str, Ticket]:  # type: ignore[no-untyped-def]
    return {
        "own_laptop": desk.ticket(),
        "own_vpn": desk.ticket(category=desk.vpn, title="VPN drops"),
        "own_phishing": desk.ticket(category=desk.phishing, title="Odd e-mail"),
        "other_laptop": desk.ticket(requester=desk.other_requester, title="Screen flickers"),
        "other_phishing": desk.ticket(requester=desk.other_requester, category=desk.phishing, title="Fake invoice"),
    }


EXPECTED_VISIBLE = {
    "requester": {"own_laptop", "own_vpn", "own_phishing"},
    "other_requester": {"other_laptop", "other_phishing"},
    "agent": {"own_laptop", "other_laptop"},
    "lead": {"own_laptop", "other_laptop"},
    "agent2": {"own_laptop", "other_laptop"},
    "network_agent": {"own_vpn"},
    "manager": {"own_laptop", "own_vpn", "other_laptop"},
    "security_agent": {"own_phishing", "other_phishing"},
    "security_officer": {"own_phishing", "other_phishing"},
    "admin": set(),
}


def _visible(user, tickets: dict[str, Ticket]) -> tuple[set[str], set[str]]:  # type: ignore[no-untyped-def]
    """What the selector returns and what the predicate allows, as ticket keys."""
    by_pk = {ticket.pk: key for key, ticket in tickets.items()}
    from_selector = {by_pk[pk] for pk in selectors.ticket_visible_to(user).values_list("pk", flat=True) if pk in by_pk}
    from_predicate = {key for key, ticket in tickets.items() if can_view_ticket(user, ticket)}
    return from_selector, from_predicate


@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_exactly_its_tickets(desk, tickets, role):
    from_selector, from_predicate = _visible(getattr(desk, role), tickets)

    assert from_selector == EXPECTED_VISIBLE[role]
    assert from_predicate == EXPECTED_VISIBLE[role]


@pytest.mark.parametrize("role", ROLES)
def test_selector_and_predicate_agree_on_unusual_tickets(desk, tickets, role):
    # given: tickets in shapes the services do not produce today but data migrations or admins might
    moved = desk.ticket(title="Assigned, then moved to network")
    services.ticket_assign(actor=desk.agent, ticket=moved, assignee=desk.agent)
    Ticket.objects.filter(pk=moved.pk).update(team=desk.network)
    teamless = desk.ticket(title="No team")
    Ticket.objects.filter(pk=teamless.pk).update(team=None)
    confidential_in_desktop = desk.ticket(category=desk.phishing, title="Confidential outside security")
    Ticket.objects.filter(pk=confidential_in_desktop.pk).update(team=desk.desktop)
    confidential_assigned = desk.ticket(category=desk.phishing, title="Assigned to Sam, queue moved")
    services.ticket_assign(actor=desk.security_agent, ticket=confidential_assigned, assignee=desk.security_agent)
    Ticket.objects.filter(pk=confidential_assigned.pk).update(team=desk.desktop)
    unusual = {
        "moved": moved,
        "teamless": teamless,
        "confidential_in_desktop": confidential_in_desktop,
        "confidential_assigned": confidential_assigned,
    }
    everything = {**tickets, **{key: Ticket.objects.get(pk=t.pk) for key, t in unusual.items()}}

    # when
    from_selector, from_predicate = _visible(getattr(desk, role), everything)

    # then
    assert from_selector == from_predicate


@pytest.mark.parametrize("role", ROLES)
def test_internals_selector_agrees_with_can_view_internal(desk, tickets, role):
    # given: besides the usual tickets, one the agent raised in another team's queue (seen only as its requester)
    user = getattr(desk, role)
    everything = {**tickets, "agents_own_vpn": desk.ticket(requester=desk.agent, category=desk.vpn, title="My VPN")}
    by_pk = {ticket.pk: key for key, ticket in everything.items()}

    # when
    selected = selectors.ticket_internals_visible_to(user).values_list("pk", flat=True)
    from_selector = {by_pk[pk] for pk in selected if pk in by_pk}

    # then: the SQL twin of the predicate, and never more than the plain visibility rule
    assert from_selector == {key for key, ticket in everything.items() if can_view_internal(user, ticket)}
    assert from_selector <= {key for key, ticket in everything.items() if can_view_ticket(user, ticket)}
    if role in ("requester", "other_requester", "admin"):
        assert from_selector == set()
    if role == "agent":
        assert from_selector == {"own_laptop", "other_laptop"}


def test_assignee_outside_the_team_still_sees_the_ticket_unless_confidential(desk):
    ticket = desk.ticket()
    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent)
    Ticket.objects.filter(pk=ticket.pk).update(team=desk.network)
    ticket.refresh_from_db()

    assert selectors.ticket_visible_to(desk.agent).filter(pk=ticket.pk).exists() is True
    assert can_view_ticket(desk.agent, ticket) is True
    Ticket.objects.filter(pk=ticket.pk).update(is_confidential=True)
    ticket.refresh_from_db()
    assert selectors.ticket_visible_to(desk.agent).filter(pk=ticket.pk).exists() is False
    assert can_view_ticket(desk.agent, ticket) is False


def test_a_disabled_user_sees_nothing_not_even_their_own(desk, tickets):
    desk.requester.is_active = False
    desk.requester.save(update_fields=["is_active"])

    assert _visible(desk.requester, tickets) == (set(), set())


@pytest.mark.parametrize("lookup", ["number", "pk"])
def test_forbidden_ticket_is_the_same_not_found_as_a_missing_one(desk, tickets, lookup):
    ticket = tickets["own_laptop"]
    forbidden = {"number": ticket.number, "pk": ticket.pk}[lookup]
    missing = {"number": "INC-999999", "pk": 999_999_999}[lookup]

    with pytest.raises(NotFound) as refused:
        selectors.ticket_get(user=desk.other_requester, **{lookup: forbidden})
    with pytest.raises(NotFound) as absent:
        selectors.ticket_get(user=desk.other_requester, **{lookup: missing})

    assert (refused.value.detail, refused.value.code, refused.value.status_code) == (
        absent.value.detail,
        absent.value.code,
        absent.value.status_code,
    )
    assert refused.value.as_dict() == {"detail": "No such ticket.", "code": "not_found", "fields": {}}


def test_ticket_get_by_number_ignores_case_and_spaces(desk, tickets):
    ticket = tickets["own_laptop"]

    assert selectors.ticket_get(user=desk.requester, number=f"  {ticket.number.lower()} ").pk == ticket.pk


@pytest.mark.parametrize("garbage", ["abc", None])
def test_ticket_get_with_a_malformed_id_is_not_found(desk, garbage):
    with pytest.raises(NotFound):
        selectors.ticket_get(user=desk.agent, pk=garbage)


@pytest.fixture
def worked_ticket(desk) -> Ticket:  # type: ignore[no-untyped-def]
    """A ticket with an internal note (with an attachment) and a public reply (with an attachment)."""
    ticket = desk.ticket()
    services.comment_add(
        actor=desk.agent,
        ticket=ticket,
        body="Suspect the disk",
        is_internal=True,
        attachments=[SimpleUploadedFile("smart.log", b"reallocated sectors: 812")],
    )
    services.comment_add(
        actor=desk.agent,
        ticket=ticket,
        body="Please back up your files",
        attachments=[SimpleUploadedFile("howto.txt", b"1. open backup")],
    )
    return ticket


@pytest.mark.parametrize(
    ("role", "kinds", "files"),
    [
        ("requester", ["created", "commented", "attachment_added"], ["howto.txt"]),
        (
            "agent",
            ["created", "note_added", "attachment_added", "commented", "attachment_added"],
            ["smart.log", "howto.txt"],
        ),
        (
            "manager",
            ["created", "note_added", "attachment_added", "commented", "attachment_added"],
            ["smart.log", "howto.txt"],
        ),
    ],
)
def test_internal_notes_and_attachments_are_hidden_from_the_requester(desk, worked_ticket, role, kinds, files):
    user = getattr(desk, role)

    timeline = list(selectors.timeline_for(user=user, ticket=worked_ticket))
    attachments = list(selectors.attachments_for(user=user, ticket=worked_ticket))

    assert [event.kind for event in timeline] == kinds
    assert [attachment.filename for attachment in attachments] == files


def test_requester_cannot_fetch_an_internal_attachment_by_id(desk, worked_ticket):
    internal = worked_ticket.attachments.get(filename="smart.log")
    public = worked_ticket.attachments.get(filename="howto.txt")

    assert selectors.attachment_get(user=desk.requester, pk=public.pk) == public
    assert selectors.attachment_get(user=desk.agent, pk=internal.pk) == internal
    with pytest.raises(NotFound):
        selectors.attachment_get(user=desk.requester, pk=internal.pk)
    with pytest.raises(NotFound):
        selectors.attachment_get(user=desk.other_requester, pk=public.pk)
