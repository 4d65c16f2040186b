"""The agent's ticket page in Chromium: two people on one ticket."""

from playwright.sync_api import expect

from tickets.models import TicketEvent
from tickets.state import TicketState


def test_a_change_from_a_stale_page_is_refused_and_the_first_change_stays(live_desk, signed_in):
    # given: two agents of the team have the same new ticket open
    ticket = live_desk.ticket(title="Shared drive is read-only")
    ada = signed_in(live_desk.agent)
    bo = signed_in(live_desk.agent2)
    for page in (ada, bo):
        page.goto(f"/desk/tickets/{ticket.number}/")
        page.get_by_role("link", name="Change state").click()
        expect(page.get_by_label("Move to")).to_be_visible()

    # when: Ada starts work, then Bo resolves from the form he opened before that
    ada.get_by_label("Move to").select_option(label="Start work → In progress")
    ada.get_by_role("button", name="Change state").click()
    expect(ada.get_by_role("status")).to_contain_text("State changed.")
    bo.get_by_label("Move to").select_option(label="Resolve → Resolved")
    bo.get_by_role("button", name="Change state").click()

    # then: Bo is told, sees the ticket as it is now, and the ticket keeps Ada's change
    expect(bo.get_by_role("alert")).to_contain_text("This ticket was changed since you opened it.")
    expect(bo.locator("#field-state")).to_contain_text("In progress")
    ticket.refresh_from_db()
    assert ticket.state == TicketState.IN_PROGRESS
    assert list(
        ticket.events.filter(kind=TicketEvent.Kind.STATE_CHANGED).values_list("actor_id", "data__from", "data__to")
    ) == [(live_desk.agent.pk, "new", "in_progress")]
