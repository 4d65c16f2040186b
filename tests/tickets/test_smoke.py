import re

from tickets.state import TicketState


def test_requester_raises_a_ticket_routed_to_the_category_team(desk):
    ticket = desk.ticket()

    assert re.fullmatch(r"INC-\d{6,}", ticket.number)
    assert ticket.team == desk.desktop
    assert ticket.state == TicketState.NEW
