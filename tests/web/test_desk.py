import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.web.conftest import png, signed_in, template_names, text_file, without_csrf_tokens
from tickets import services
from tickets.models import Comment, Ticket, TicketEvent
from tickets.state import Level, Priority, TicketState

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = b"&lt;script&gt;alert(1)&lt;/script&gt;"


def numbers_on(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [ticket.number for ticket in response.context["tickets"]]


def next_link(response) -> str | None:  # type: ignore[no-untyped-def]
    match = re.search(rb'<a href="([^"]+)" rel="next">', response.content)
    return match.group(1).decode().replace("&amp;", "&") if match else None


def ticket_url(ticket: Ticket, action: str = "") -> str:
    return f"/desk/tickets/{ticket.number}/{action + '/' if action else ''}"


# --- list --------------------------------------------------------------------------------------------------------


def test_desk_lists_only_tickets_the_agent_may_see(desk):
    laptop = desk.ticket(title="Laptop broken")
    vpn = desk.ticket(title="VPN down", category=desk.vpn)
    phishing = desk.ticket(title="Suspicious mail", category=desk.phishing)

    desktop_view = signed_in(desk.agent).get("/desk/?queue=all")
    network_view = signed_in(desk.network_agent).get("/desk/?queue=all")
    security_view = signed_in(desk.security_agent).get("/desk/?queue=all")

    assert numbers_on(desktop_view) == [laptop.number]
    assert numbers_on(network_view) == [vpn.number]
    assert numbers_on(security_view) == [phishing.number]
    assert b"VPN down" not in desktop_view.content
    assert b"Suspicious mail" not in desktop_view.content


def test_desk_queues(desk):
    mine = desk.ticket(title="Mine")
    services.ticket_assign(actor=desk.agent, ticket=mine, assignee=desk.agent)
    theirs = desk.ticket(title="Bo's")
    services.ticket_assign(actor=desk.agent2, ticket=theirs, assignee=desk.agent2)
    resolved = desk.ticket(title="Done")
    services.ticket_transition(actor=desk.agent, ticket=resolved, to_state=TicketState.RESOLVED)
    client = signed_in(desk.agent)

    assert numbers_on(client.get("/desk/?queue=mine")) == [mine.number]
    assert numbers_on(client.get("/desk/?queue=team")) == [theirs.number, mine.number]
    assert numbers_on(client.get("/desk/")) == [theirs.number, mine.number]
    assert numbers_on(client.get("/desk/?queue=all")) == [resolved.number, theirs.number, mine.number]
    assert numbers_on(client.get("/desk/?queue=nonsense")) == [theirs.number, mine.number]


def test_desk_list_pages_with_a_keyset_cursor(desk):
    created = [desk.ticket(title=f"Ticket {n}").number for n in range(5)]
    newest_first = list(reversed(created))
    client = signed_in(desk.agent)

    first = client.get("/desk/?queue=all&size=2")
    second_url = next_link(first)
    assert second_url is not None
    second = client.get(second_url)
    third = client.get(next_link(second))

    assert numbers_on(first) == newest_first[:2]
    assert numbers_on(second) == newest_first[2:4]
    assert numbers_on(third) == newest_first[4:]
    assert next_link(third) is None
    assert sorted(parse_qs(urlsplit(second_url).query)) == ["after", "queue", "size"]
    assert b"Page 1 of" not in first.content  # no counting, no page numbers


def test_desk_list_shows_the_columns(desk):
    ticket = desk.ticket(title="Printer jam")
    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent2)

    response = signed_in(desk.agent).get("/desk/")

    content = response.content.decode()
    for text in (
        ticket.number,
        "Printer jam",
        "Rita Requester",
        "Laptop",
        "P3",
        "Assigned",
        "Desktop support",
        "Bo Agent",
    ):
        assert text in content


@pytest.mark.parametrize("who", ["requester", "admin"])
def test_desk_is_not_found_for_people_without_a_team(desk, who):
    ticket = desk.ticket()
    client = signed_in(getattr(desk, who))

    assert client.get("/desk/").status_code == 404
    assert client.get(ticket_url(ticket)).status_code == 404


def test_manager_oversees_tickets_in_the_desk_without_working_them(desk):
    ticket = desk.ticket()
    client = signed_in(desk.manager)

    page = client.get(ticket_url(ticket))

    assert client.get("/").url == "/desk/"
    assert client.get("/desk/?queue=all").status_code == 200
    assert page.status_code == 200
    assert ticket.number.encode() in page.content
    assert b"Assign to me" not in page.content


def test_title_is_escaped_in_the_list_and_on_the_page(desk):
    ticket = desk.ticket(title=XSS, description=f"<p>hello</p>{XSS}<img src=x onerror=alert(2)>")
    client = signed_in(desk.agent)

    for response in (client.get("/desk/"), client.get(ticket_url(ticket))):
        assert response.status_code == 200
        assert XSS_ESCAPED in response.content
        assert XSS.encode() not in response.content
        assert b"onerror" not in response.content


# --- ticket page ---------------------------------------------------------------------------------------------------


def test_ticket_page_shows_the_header(desk):
    ticket = desk.ticket(title="Screen flickers", description="It flickers\n\nsince Monday", impact=Level.HIGH)
    services.ticket_override_priority(actor=desk.agent, ticket=ticket, priority=Priority.P1, reason="CEO laptop")
    services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state=TicketState.PENDING, pending_reason="awaiting_vendor"
    )

    response = signed_in(desk.agent).get(ticket_url(ticket))

    content = response.content.decode()
    assert response.status_code == 200
    for text in (
        ticket.number,
        "Screen flickers",
        "<p>It flickers</p><p>since Monday</p>",
        "Rita Requester",
        "Incident",
        "P1 Critical",
        "set by hand: CEO laptop",
        "Pending",
        "Awaiting vendor",
        "Desktop support",
    ):
        assert text in content, text


def test_ticket_page_offers_only_the_agent_transitions_of_the_state(desk):
    ticket = desk.ticket()

    response = signed_in(desk.agent).get(ticket_url(ticket))

    choices = [value for value, _ in response.context["forms"]["transition"].fields["state"].choices]
    # "Assigned" needs an assignee, which a new ticket never has: assigning someone is the way there.
    assert choices == ["in_progress", "pending", "resolved", "cancelled"]


@pytest.mark.parametrize("who", ["network_agent", "security_agent", "agent"])
def test_ticket_page_of_another_team_is_the_same_404_as_a_missing_one(desk, who):
    laptop = desk.ticket()
    phishing = desk.ticket(category=desk.phishing)
    hidden = phishing if who == "agent" else laptop
    client = signed_in(getattr(desk, who))

    forbidden = client.get(ticket_url(hidden))
    missing = client.get("/desk/tickets/INC-999999/")

    assert forbidden.status_code == missing.status_code == 404
    assert template_names(forbidden) == template_names(missing)
    assert "404.html" in template_names(forbidden)
    assert without_csrf_tokens(forbidden.content) == without_csrf_tokens(missing.content)


def test_posting_to_a_hidden_ticket_is_a_404_and_changes_nothing(desk):
    ticket = desk.ticket()
    client = signed_in(desk.network_agent)

    response = client.post(
        ticket_url(ticket, "transition"), {"version": ticket.version, "state": "in_progress", "reason": ""}
    )

    assert response.status_code == 404
    ticket.refresh_from_db()
    assert ticket.state == TicketState.NEW


def test_agent_adds_an_internal_note_and_a_public_reply(desk):
    ticket = desk.ticket()
    client = signed_in(desk.agent)

    note = client.post(
        ticket_url(ticket, "reply"),
        {
            "version": ticket.version,
            "visibility": "internal",
            "body": "Check the BIOS battery",
            "attachments": [text_file("bios.txt")],
        },
    )
    reply = client.post(
        ticket_url(ticket, "reply"),
        {"version": ticket.version + 1, "visibility": "public", "body": "We are on it"},
    )

    assert note.status_code == reply.status_code == 302
    assert note["Location"] == ticket_url(ticket)
    comments = list(Comment.objects.filter(ticket=ticket).values_list("body", "is_internal", "author_id"))
    assert comments == [
        ("<p>Check the BIOS battery</p>", True, desk.agent.pk),
        ("<p>We are on it</p>", False, desk.agent.pk),
    ]
    assert list(ticket.attachments.values_list("filename", "is_internal")) == [("bios.txt", True)]
    page = client.get(ticket_url(ticket))
    entries = {entry.body: entry for entry in page.context["timeline"] if entry.body}
    assert entries["<p>Check the BIOS battery</p>"].is_internal is True
    assert entries["<p>We are on it</p>"].is_internal is False
    assert b"timeline__entry--internal" in page.content


def test_success_is_confirmed_with_a_message(desk):
    ticket = desk.ticket()

    response = signed_in(desk.agent).post(
        ticket_url(ticket, "reply"), {"version": 1, "visibility": "internal", "body": "noted"}, follow=True
    )

    assert response.redirect_chain == [(ticket_url(ticket), 302)]
    assert b"Internal note added." in response.content


def test_empty_reply_shows_an_error_and_adds_nothing(desk):
    ticket = desk.ticket()

    response = signed_in(desk.agent).post(
        ticket_url(ticket, "reply"), {"version": ticket.version, "visibility": "public", "body": "   "}
    )

    assert response.status_code == 400
    assert response.context["forms"]["reply"].errors == {"body": ["This field is required."]}
    assert not Comment.objects.filter(ticket=ticket).exists()


def test_agent_changes_state_with_a_pending_reason(desk):
    ticket = desk.ticket()

    response = signed_in(desk.agent).post(
        ticket_url(ticket, "transition"),
        {"version": ticket.version, "state": "pending", "pending_reason": "awaiting_requester", "reason": ""},
    )

    assert response.status_code == 302
    ticket.refresh_from_db()
    assert (ticket.state, ticket.pending_reason) == (TicketState.PENDING, "awaiting_requester")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"state": "pending", "pending_reason": "", "reason": ""},
            "pending_reason",
            "Choose why the ticket is waiting.",
        ),
        ({"state": "cancelled", "pending_reason": "", "reason": ""}, "reason", "Say why."),
        ({"state": "closed", "pending_reason": "", "reason": ""}, "state", None),
    ],
)
def test_refused_transition_shows_the_reason_on_the_form(desk, data, field, message):
    ticket = desk.ticket()

    response = signed_in(desk.agent).post(ticket_url(ticket, "transition"), {"version": ticket.version, **data})

    assert response.status_code == 400
    errors = response.context["forms"]["transition"].errors
    assert field in errors
    if message:
        assert errors[field] == [message]
    ticket.refresh_from_db()
    assert ticket.state == TicketState.NEW
    assert ticket.version == 1


def test_stale_version_shows_the_conflict_and_changes_nothing(desk):
    ticket = desk.ticket()
    opened_version = ticket.version
    services.ticket_transition(actor=desk.agent2, ticket=ticket, to_state=TicketState.IN_PROGRESS)

    response = signed_in(desk.agent).post(
        ticket_url(ticket, "transition"),
        {"version": opened_version, "state": "resolved", "pending_reason": "", "reason": ""},
    )

    assert response.status_code == 409
    assert b"This ticket was changed since you opened it." in response.content
    ticket.refresh_from_db()
    assert ticket.state == TicketState.IN_PROGRESS
    assert ticket.version == opened_version + 1
    # The page shown is the fresh one, with forms carrying the current version.
    assert response.context["ticket"].state == TicketState.IN_PROGRESS
    assert response.context["forms"]["transition"].initial["version"] == ticket.version


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("assign", {"assignee": "me"}),
        ("priority", {"priority": "1", "reason": "VIP"}),
        ("impact", {"impact": "1", "urgency": "1"}),
    ],
)
def test_every_change_refuses_a_stale_version(desk, action, data):
    ticket = desk.ticket()
    services.comment_add(actor=desk.agent2, ticket=ticket, body="bump", is_internal=True)
    before = Ticket.objects.values().get(pk=ticket.pk)
    if data.get("assignee") == "me":
        data = {"assignee": desk.agent.pk}

    response = signed_in(desk.agent).post(ticket_url(ticket, action), {"version": 1, **data})

    assert response.status_code == 409
    assert b"changed since you opened it" in response.content
    assert Ticket.objects.values().get(pk=ticket.pk) == before


def test_assign_to_me_and_to_a_team_member(desk):
    ticket = desk.ticket()
    client = signed_in(desk.agent)
    page = client.get(ticket_url(ticket))
    assert b"Assign to me" in page.content
    assert [label for _, label in page.context["forms"]["assign"].fields["assignee"].choices] == [
        "Unassigned",
        "Ada Agent",
        "Bo Agent",
        "Lee Lead",
    ]

    to_me = client.post(ticket_url(ticket, "assign"), {"version": 1, "assignee": desk.agent.pk})
    ticket.refresh_from_db()
    assert to_me.status_code == 302
    assert (ticket.assignee_id, ticket.state) == (desk.agent.pk, TicketState.ASSIGNED)

    to_bo = client.post(ticket_url(ticket, "assign"), {"version": ticket.version, "assignee": desk.agent2.pk})
    ticket.refresh_from_db()
    assert to_bo.status_code == 302
    assert ticket.assignee_id == desk.agent2.pk
    timeline = client.get(ticket_url(ticket)).context["timeline"]
    assert [entry.summary for entry in timeline if entry.kind == TicketEvent.Kind.ASSIGNED] == [
        "took the ticket",
        "assigned the ticket to Bo Agent",
    ]


def test_assigning_someone_outside_the_team_is_refused(desk):
    ticket = desk.ticket()

    response = signed_in(desk.agent).post(
        ticket_url(ticket, "assign"), {"version": 1, "assignee": desk.network_agent.pk}
    )

    assert response.status_code == 400
    assert "assignee" in response.context["forms"]["assign"].errors
    ticket.refresh_from_db()
    assert ticket.assignee_id is None


def test_priority_override_needs_a_reason_and_can_go_back_to_the_matrix(desk):
    ticket = desk.ticket()
    client = signed_in(desk.agent)

    refused = client.post(ticket_url(ticket, "priority"), {"version": 1, "priority": "1", "reason": ""})
    assert refused.status_code == 400
    assert refused.context["forms"]["priority"].errors == {"reason": ["Say why."]}

    client.post(ticket_url(ticket, "priority"), {"version": 1, "priority": "1", "reason": "Board meeting"})
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.priority_is_overridden, ticket.priority_override_reason) == (
        1,
        True,
        "Board meeting",
    )

    client.post(ticket_url(ticket, "priority"), {"version": ticket.version, "priority": "matrix", "reason": ""})
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.priority_is_overridden) == (Priority.P3, False)


def test_impact_and_urgency_change_the_priority(desk):
    ticket = desk.ticket()

    response = signed_in(desk.agent).post(ticket_url(ticket, "impact"), {"version": 1, "impact": "1", "urgency": "1"})

    assert response.status_code == 302
    ticket.refresh_from_db()
    assert (ticket.impact, ticket.urgency, ticket.priority) == (Level.HIGH, Level.HIGH, Priority.P1)


def test_invalid_choice_shows_a_field_error(desk):
    ticket = desk.ticket()

    response = signed_in(desk.agent).post(ticket_url(ticket, "impact"), {"version": 1, "impact": "9", "urgency": "1"})

    assert response.status_code == 400
    assert "impact" in response.context["forms"]["impact"].errors


def test_desk_upload_of_a_forbidden_type_is_refused(desk):
    ticket = desk.ticket()
    upload = SimpleUploadedFile("run.exe", b"MZ\x90\x00", content_type="application/octet-stream")
    response = signed_in(desk.agent).post(
        ticket_url(ticket, "reply"), {"version": 1, "visibility": "public", "body": "see file", "attachments": [upload]}
    )

    assert response.status_code == 400
    assert response.context["forms"]["reply"].errors["attachments"][0].startswith("run.exe: allowed types are")
    assert not Comment.objects.filter(ticket=ticket).exists()


def test_agent_page_lists_attachments_with_download_links(desk):
    ticket = desk.ticket(attachments=[png("screen.png")])
    attachment = ticket.attachments.get()

    response = signed_in(desk.agent).get(ticket_url(ticket))

    assert f'href="/attachments/{attachment.pk}/"'.encode() in response.content
