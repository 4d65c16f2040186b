"""Pages cost a constant number of queries whatever the table size (STYLE.md: two sizes, exact counts).

Each test renders a page at a small size, grows the data, renders again, and asserts the same exact count both times.
"""

import pytest

from tests.web.conftest import signed_in, text_file
from tickets import services
from tickets.models import TicketEvent
from tickets.state import TicketState

# Every page: session, user, the user's memberships (once per request). Then the page's own reads: the desk list:
# categories, teams and team members for its forms, the rows, the rows' SLA "Due" clocks, the saved views (6, more in
# tests/web/test_queue.py and tests/sla/test_queue_due.py);
# the desk ticket: ticket, timeline, attachments, assignee names, team members, SLA clocks and segments (7); the
# portal ticket: ticket, timeline, attachments (3).
DESK_LIST_QUERIES = 9
DESK_TICKET_QUERIES = 10
PORTAL_LIST_QUERIES = 4
PORTAL_TICKET_QUERIES = 6


def raise_tickets(desk, count: int) -> None:  # type: ignore[no-untyped-def]
    for number in range(count):
        ticket = desk.ticket(title=f"Ticket {number}")
        # Assigned tickets show an assignee; both sizes have the same mix.
        if number % 2:
            services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent2)


def grow_timeline(desk, ticket, events: int) -> None:  # type: ignore[no-untyped-def]
    """Bring the ticket's timeline to `events` entries with replies, notes and attachments in the same mix."""
    count = ticket.events.count()
    number = 0
    while count < events:
        kind = number % 3
        if kind == 0:
            services.comment_add(actor=desk.agent, ticket=ticket, body=f"reply {number}")
            count += 1
        elif kind == 1:
            services.comment_add(actor=desk.agent2, ticket=ticket, body=f"note {number}", is_internal=True)
            count += 1
        elif count + 2 <= events:
            services.comment_add(
                actor=desk.requester, ticket=ticket, body=f"file {number}", attachments=[text_file(f"f{number}.txt")]
            )
            count += 2
        number += 1
    assert ticket.events.count() == events


@pytest.mark.parametrize("queue", ["mine", "team", "all"])
def test_desk_list_queries_do_not_grow_with_the_table(desk, django_assert_num_queries, queue):
    client = signed_in(desk.agent)
    raise_tickets(desk, 5)
    with django_assert_num_queries(DESK_LIST_QUERIES):
        small = client.get(f"/desk/?queue={queue}")

    raise_tickets(desk, 35)
    with django_assert_num_queries(DESK_LIST_QUERIES):
        large = client.get(f"/desk/?queue={queue}")

    assert small.status_code == large.status_code == 200
    if queue != "mine":
        assert len(small.context["tickets"]) == 5
        assert len(large.context["tickets"]) == 40


def desk_ticket_with_history(desk):  # type: ignore[no-untyped-def]
    ticket = desk.ticket(title="Tracked")
    services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent)
    return ticket  # created, state changed, assigned: three events


def test_desk_ticket_queries_do_not_grow_with_the_timeline(desk, django_assert_num_queries):
    ticket = desk_ticket_with_history(desk)
    assert ticket.events.count() == 3
    client = signed_in(desk.agent)
    url = f"/desk/tickets/{ticket.number}/"
    with django_assert_num_queries(DESK_TICKET_QUERIES):
        small = client.get(url)

    grow_timeline(desk, ticket, 30)
    with django_assert_num_queries(DESK_TICKET_QUERIES):
        large = client.get(url)

    # A file sent with a reply is shown inside the reply, not as an entry of its own.
    files_with_replies = ticket.events.filter(kind=TicketEvent.Kind.ATTACHMENT_ADDED).count()
    assert len(small.context["timeline"]) == 3
    assert len(large.context["timeline"]) == 30 - files_with_replies


def test_desk_ticket_queries_do_not_grow_with_the_table(desk, django_assert_num_queries):
    ticket = desk_ticket_with_history(desk)
    raise_tickets(desk, 4)
    client = signed_in(desk.agent)
    url = f"/desk/tickets/{ticket.number}/"
    with django_assert_num_queries(DESK_TICKET_QUERIES):
        client.get(url)

    raise_tickets(desk, 35)
    with django_assert_num_queries(DESK_TICKET_QUERIES):
        client.get(url)


def test_portal_list_queries_do_not_grow_with_the_table(desk, django_assert_num_queries):
    client = signed_in(desk.requester)
    raise_tickets(desk, 5)
    with django_assert_num_queries(PORTAL_LIST_QUERIES):
        small = client.get("/portal/")

    raise_tickets(desk, 35)
    with django_assert_num_queries(PORTAL_LIST_QUERIES):
        large = client.get("/portal/")

    assert (len(small.context["tickets"]), len(large.context["tickets"])) == (5, 40)


def test_portal_ticket_queries_do_not_grow_with_the_timeline_or_the_table(desk, django_assert_num_queries):
    ticket = desk.ticket(title="Tracked")
    services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=TicketState.IN_PROGRESS)
    services.comment_add(actor=desk.agent, ticket=ticket, body="On it")
    raise_tickets(desk, 4)
    client = signed_in(desk.requester)
    url = f"/portal/tickets/{ticket.number}/"
    with django_assert_num_queries(PORTAL_TICKET_QUERIES):
        small = client.get(url)

    grow_timeline(desk, ticket, 30)
    raise_tickets(desk, 35)
    with django_assert_num_queries(PORTAL_TICKET_QUERIES):
        large = client.get(url)

    assert len(small.context["timeline"]) == 3
    assert len(large.context["timeline"]) > 3
