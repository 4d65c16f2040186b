"""The desk queue in Chromium: the filters form, keyset paging both ways, and the keyboard."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Desk
from tickets import services
from tickets.models import Ticket
from tickets.state import TicketState

ROWS = "table#queue-table tr[data-row-link]"


@pytest.fixture
def thirty_tickets(live_desk: Desk) -> list[Ticket]:
    """30 tickets of the desktop team: two in three about a printer, every other one in progress. Printers in
    progress: numbers 2, 4, 8, 10, 14, 16, 20, 22, 26, 28 (ten)."""
    tickets = []
    for n in range(30):
        title = f"Monitor on desk {n} flickers" if n % 3 == 0 else f"Printer on floor {n} jams"
        ticket = live_desk.ticket(title=title)
        if n % 2 == 0:
            ticket = services.ticket_transition(actor=live_desk.agent, ticket=ticket, to_state=TicketState.IN_PROGRESS)
        tickets.append(ticket)
    return tickets


def numbers_on(page: Page) -> list[str]:
    # Each row carries its ticket page's address, /desk/tickets/<number>/.
    links = page.locator(ROWS).evaluate_all("rows => rows.map(row => row.dataset.rowLink)")
    return [link.rstrip("/").rsplit("/", 1)[-1] for link in links]


def follow(page: Page, link_name: str) -> bool:
    """Click the pager link if the page has it and wait for the next page; False when there is no such link."""
    link = page.get_by_role("link", name=link_name, exact=True)
    if not link.count():
        return False
    url = page.url
    link.click()
    page.wait_for_url(lambda new_url: new_url != url)
    return True


def test_queue_filters_by_state_and_text_and_pages_both_ways_without_gaps(live_desk, thirty_tickets, signed_in):
    # given
    printers_in_progress = [t.number for n, t in enumerate(thirty_tickets) if n % 2 == 0 and n % 3 != 0]
    page = signed_in(live_desk.agent)
    page.goto("/desk/?queue=all&size=4")

    # when: filter through the form
    folded = page.locator("details.queue-filters-toggle:not([open]) > summary")
    if folded.count():  # the filters fold away until one is in use
        folded.click()
    page.get_by_label("Search").fill("printer")
    page.get_by_label("State").select_option(label="In progress")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"[?&]q=printer\b"))

    # then: forward page by page to the end …
    forward = [numbers_on(page)]
    while follow(page, "Next →"):
        forward.append(numbers_on(page))
    # … and back to the start
    backward = [numbers_on(page)]
    while follow(page, "← Previous"):
        backward.append(numbers_on(page))

    newest_first = list(
        Ticket.objects.filter(number__in=printers_in_progress).order_by("-updated_at").values_list("number", flat=True)
    )
    assert forward == [newest_first[:4], newest_first[4:8], newest_first[8:]]
    assert backward == list(reversed(forward))
    expect(page.get_by_label("Search")).to_have_value("printer")


def test_queue_keyboard_moves_through_rows_and_opens_one(live_desk, signed_in):
    # given
    for n in range(3):
        live_desk.ticket(title=f"Keyboard ticket {n}")
    page = signed_in(live_desk.agent)
    expect(page.locator(ROWS)).to_have_count(3)
    second = numbers_on(page)[1]

    # when: `?` shows the shortcuts; Escape closes them
    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("Open the highlighted ticket")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()

    # and j, j, Enter opens the second row's ticket
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("Enter")

    # then
    expect(page).to_have_url(re.compile(rf"/desk/tickets/{second}/$"))
