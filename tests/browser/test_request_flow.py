"""One request from the portal to its closure, each step as the person who takes it, in Chromium."""

import re

from playwright.sync_api import Page, expect

from tickets import services
from tickets.models import Attachment, Comment, SatisfactionRating, Ticket
from tickets.state import TicketState

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
INTERNAL_NOTE = "Firmware 1.2.3 is known to break sleep; vendor case 4711."
PUBLIC_REPLY = "We are updating the firmware of your laptop; please leave it plugged in tonight."


def open_from_queue(page: Page, ticket: Ticket) -> None:
    page.get_by_role("link", name=ticket.number, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/desk/tickets/{ticket.number}/$"))
    expect(page.get_by_role("heading", name=ticket.title, level=1)).to_be_visible()


def resolve(page: Page) -> None:
    """Resolve the ticket open on the page through the header's in-place state editor."""
    page.get_by_role("link", name="Change state").click()
    page.get_by_label("Move to").select_option(label="Resolve → Resolved")
    page.get_by_role("button", name="Change state").click()
    expect(page.get_by_role("status")).to_contain_text("State changed.")


def test_requester_raises_a_request_with_a_file_and_finds_it_in_my_requests(live_desk, signed_in):
    # given: the category carries the words a requester uses
    live_desk.laptop.portal_label = "My laptop or desktop computer"
    live_desk.laptop.save(update_fields=["portal_label"])
    page = signed_in(live_desk.requester)
    expect(page).to_have_url(re.compile(r"/portal/$"))

    # when
    page.get_by_role("link", name="Raise a request").click()
    page.get_by_label("Something is broken or not working").check()
    page.get_by_label("Category").select_option(label="My laptop or desktop computer")
    page.get_by_label("Summary").fill("Laptop does not wake from sleep")
    page.get_by_label("Details").fill("Since Monday's update the screen stays black after sleep.")
    page.get_by_label("Attachments").set_input_files(
        files=[{"name": "black-screen.png", "mimeType": "image/png", "buffer": PNG}]
    )
    page.get_by_role("button", name="Send", exact=True).click()

    # then
    ticket = Ticket.objects.get()
    expect(page.get_by_text(f"Your request {ticket.number} was raised")).to_be_visible()
    expect(page.get_by_role("link", name="black-screen.png").first).to_be_visible()
    page.get_by_role("link", name="My requests").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=ticket.number, exact=True))
    expect(row).to_contain_text("Laptop does not wake from sleep")
    expect(row).to_contain_text("New")
    assert (ticket.title, ticket.requester_id, ticket.category_id, ticket.team_id, ticket.type) == (
        "Laptop does not wake from sleep",
        live_desk.requester.pk,
        live_desk.laptop.pk,
        live_desk.desktop.pk,
        "incident",
    )
    assert list(Attachment.objects.values_list("ticket_id", "filename", "content_type", "is_internal")) == [
        (ticket.pk, "black-screen.png", "image/png", False)
    ]


def test_agent_takes_the_request_from_the_team_queue_notes_and_replies(live_desk, signed_in):
    # given
    ticket = live_desk.ticket(title="Laptop does not wake from sleep")
    page = signed_in(live_desk.agent)

    # when: the desk opens on the team's open tickets, where the new one waits unassigned
    expect(page).to_have_url(re.compile(r"/desk/$"))
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=ticket.number, exact=True))
    expect(row).to_contain_text("Laptop does not wake from sleep")
    expect(row).to_contain_text("Unassigned")
    page.get_by_role("link", name="My teams' unassigned").click()
    expect(page.get_by_role("link", name=ticket.number, exact=True)).to_be_visible()
    open_from_queue(page, ticket)
    page.get_by_role("button", name="Assign to me").click()
    expect(page.get_by_role("button", name="Assign to me")).to_have_count(0)
    page.get_by_label("Internal note").check()
    page.get_by_label("Message").fill(INTERNAL_NOTE)
    page.get_by_role("button", name="Add internal note").click()
    expect(page.get_by_role("listitem").filter(has_text=INTERNAL_NOTE)).to_contain_text("Internal")
    page.get_by_label("Public reply").check()
    page.get_by_label("Message").fill(PUBLIC_REPLY)
    page.get_by_role("button", name="Send reply").click()

    # then
    expect(page.get_by_text(PUBLIC_REPLY)).to_be_visible()
    ticket.refresh_from_db()
    assert (ticket.assignee_id, ticket.state) == (live_desk.agent.pk, TicketState.ASSIGNED)
    assert list(Comment.objects.order_by("pk").values_list("author_id", "body", "is_internal")) == [
        (live_desk.agent.pk, f"<p>{INTERNAL_NOTE}</p>", True),
        (live_desk.agent.pk, f"<p>{PUBLIC_REPLY}</p>", False),
    ]


def test_requester_sees_the_reply_not_the_note_and_confirms_the_resolution(live_desk, signed_in):
    # given: the agent has taken the ticket, noted and replied
    ticket = live_desk.ticket(title="Laptop does not wake from sleep")
    services.ticket_assign(actor=live_desk.agent, ticket=ticket, assignee=live_desk.agent)
    services.comment_add(actor=live_desk.agent, ticket=ticket, body=INTERNAL_NOTE, is_internal=True)
    services.comment_add(actor=live_desk.agent, ticket=ticket, body=PUBLIC_REPLY)
    requester = signed_in(live_desk.requester)
    agent = signed_in(live_desk.agent)

    # when: the requester reads the request
    requester.goto(f"/portal/tickets/{ticket.number}/")

    # then
    expect(requester.get_by_text(PUBLIC_REPLY)).to_be_visible()
    expect(requester.locator("main")).not_to_contain_text("Firmware 1.2.3")
    expect(requester.locator("main")).not_to_contain_text("vendor case")

    # when: the agent resolves it
    agent.goto(f"/desk/tickets/{ticket.number}/")
    resolve(agent)

    # and the requester confirms the resolution and rates it
    requester.reload()
    requester.get_by_role("button", name="Yes, it is solved").click()
    expect(requester.get_by_text("The request is closed.")).to_be_visible()
    requester.get_by_label("5 – Very satisfied").check()
    requester.get_by_label("Anything you would like to tell us?").fill("Quick and friendly.")
    requester.get_by_role("button", name="Send rating").click()

    # then
    expect(requester.get_by_text("Thank you for your rating.")).to_be_visible()
    ticket.refresh_from_db()
    assert ticket.state == TicketState.CLOSED
    assert list(SatisfactionRating.objects.values_list("ticket_id", "score", "comment")) == [
        (ticket.pk, 5, "Quick and friendly.")
    ]
