"""The portal after resolution: confirm or reopen within the window, then rate the closed request (CSAT)."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from tests.support import db_state
from tests.web.conftest import signed_in
from tickets import services
from tickets.models import SatisfactionRating, Ticket
from tickets.state import TicketState


def portal_url(ticket: Ticket, action: str = "") -> str:
    return f"/portal/tickets/{ticket.number}/{action + '/' if action else ''}"


def resolved_ticket(desk) -> Ticket:  # type: ignore[no-untyped-def]
    ticket = desk.ticket(title="Printer jams")
    return services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=TicketState.RESOLVED)


def closed_ticket(desk) -> Ticket:  # type: ignore[no-untyped-def]
    ticket = resolved_ticket(desk)
    return services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=TicketState.CLOSED)


def everything(ticket: Ticket) -> dict:  # type: ignore[type-arg]
    return {**db_state(ticket), "ratings": list(SatisfactionRating.objects.values())}


# --- reopen window ---------------------------------------------------------------------------------------------------


def test_resolved_request_shows_until_when_it_can_be_reopened(desk, settings):
    settings.TICKETS_REOPEN_DAYS = 7
    desk.requester.time_zone = "Europe/Paris"
    desk.requester.save(update_fields=["time_zone"])
    with time_machine.travel(dt.datetime(2026, 3, 2, 9, 15, tzinfo=dt.UTC), tick=False):
        ticket = resolved_ticket(desk)

    with time_machine.travel(dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC), tick=False):
        response = signed_in(desk.requester).get(portal_url(ticket))

    content = response.content.decode()
    assert "Yes, it is solved" in content
    assert "No, reopen it" in content
    assert 'You can reopen until <time datetime="2026-03-09T10:15:00+01:00">9 Mar 2026 10:15 CET</time>.' in content


def test_after_the_window_the_reopen_form_is_gone_and_a_new_request_is_suggested(desk, settings):
    settings.TICKETS_REOPEN_DAYS = 7
    ticket = resolved_ticket(desk)

    with time_machine.travel(timezone.now() + dt.timedelta(days=8)):
        response = signed_in(desk.requester).get(portal_url(ticket))

    content = response.content.decode()
    assert "Yes, it is solved" in content  # confirming is still possible
    assert "No, reopen it" not in content
    assert "The time to reopen this request has passed" in content
    assert 'href="/portal/new/"' in content


def test_requester_confirms_then_is_asked_to_rate(desk):
    ticket = resolved_ticket(desk)
    client = signed_in(desk.requester)

    response = client.post(portal_url(ticket, "confirm"), {"version": ticket.version}, follow=True)

    content = response.content.decode()
    assert "Thank you for confirming. The request is closed." in content
    assert "How did we do?" in content
    assert f'<form method="post" action="/portal/tickets/{ticket.number}/rate/"' in content
    assert "5 – Very satisfied" in content
    assert "Is your problem solved?" not in content


def test_a_request_closed_by_the_agent_asks_for_a_rating_too(desk):
    ticket = closed_ticket(desk)

    content = signed_in(desk.requester).get(portal_url(ticket)).content.decode()

    assert "How did we do?" in content


@pytest.mark.parametrize("state", [TicketState.NEW, TicketState.IN_PROGRESS, TicketState.RESOLVED])
def test_open_or_resolved_requests_do_not_ask_for_a_rating(desk, state):
    ticket = desk.ticket()
    if state != TicketState.NEW:
        services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=state)

    content = signed_in(desk.requester).get(portal_url(ticket)).content.decode()

    assert "How did we do?" not in content
    assert "/rate/" not in content


# --- rating ----------------------------------------------------------------------------------------------------------


def test_requester_rates_a_closed_request(desk):
    ticket = closed_ticket(desk)
    client = signed_in(desk.requester)

    response = client.post(portal_url(ticket, "rate"), {"score": "4", "comment": "Quick <b>and</b> kind"})

    assert (response.status_code, response["Location"]) == (302, portal_url(ticket))
    rating = SatisfactionRating.objects.get()
    assert (rating.ticket_id, rating.rated_by_id, rating.score, rating.comment, rating.team_id) == (
        ticket.pk,
        desk.requester.pk,
        4,
        "Quick <b>and</b> kind",
        desk.desktop.pk,
    )
    page = client.get(response["Location"]).content.decode()
    assert "Thank you for your rating." in page
    assert "Your rating" in page
    assert "4 out of 5" in page
    assert "Quick &lt;b&gt;and&lt;/b&gt; kind" in page  # plain text, escaped
    assert "How did we do?" not in page
    assert "/rate/" not in page


def test_agent_sees_the_rating_read_only(desk):
    ticket = closed_ticket(desk)
    services.satisfaction_rate(actor=desk.requester, ticket=ticket, score=5, comment="Line one\nline two")

    content = signed_in(desk.agent).get(f"/desk/tickets/{ticket.number}/").content.decode()

    assert "Requester's rating" in content
    assert "5 out of 5" in content
    assert "Line one<br>line two" in content
    assert "/rate/" not in content


def test_agent_sees_when_a_closed_ticket_is_not_rated_yet(desk):
    ticket = closed_ticket(desk)

    content = signed_in(desk.agent).get(f"/desk/tickets/{ticket.number}/").content.decode()

    assert "Not rated yet." in content


@pytest.mark.parametrize(
    "data",
    [{"score": "0"}, {"score": "6"}, {"score": "x"}, {"score": ""}, {}, {"score": "4.0"}],
    ids=["zero", "six", "letter", "empty", "missing", "decimal"],
)
def test_invalid_score_is_a_form_error_and_stores_nothing(desk, data):
    ticket = closed_ticket(desk)
    before = everything(ticket)

    response = signed_in(desk.requester).post(portal_url(ticket, "rate"), {**data, "comment": "hm"})

    assert response.status_code == 400
    assert response.context["forms"]["rating"].errors == {"score": ["Choose a rating from 1 to 5."]}
    assert "Choose a rating from 1 to 5." in response.content.decode()
    assert everything(ticket) == before


def test_too_long_comment_is_a_form_error(desk):
    ticket = closed_ticket(desk)

    response = signed_in(desk.requester).post(portal_url(ticket, "rate"), {"score": "3", "comment": "z" * 2001})

    assert response.status_code == 400
    assert "comment" in response.context["forms"]["rating"].errors
    assert not SatisfactionRating.objects.exists()


@pytest.mark.parametrize("state", [TicketState.NEW, TicketState.RESOLVED, TicketState.CANCELLED])
def test_rating_before_closure_is_refused(desk, state):
    ticket = desk.ticket()
    if state == TicketState.CANCELLED:
        services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=state, reason="Duplicate")
    elif state != TicketState.NEW:
        services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=state)
    before = everything(ticket)

    response = signed_in(desk.requester).post(portal_url(ticket, "rate"), {"score": "5"})

    assert response.status_code == 409
    assert response.context["forms"]["rating"].non_field_errors() == ["You can rate a request once it is closed."]
    assert "You can rate a request once it is closed." in response.content.decode()
    assert everything(ticket) == before


@pytest.mark.parametrize("who", ["other_requester", "agent", "network_agent", "manager"])
def test_someone_else_cannot_rate_the_request(desk, who):
    # The portal shows people their own requests only: anyone else gets the same 404 as for a missing one.
    ticket = closed_ticket(desk)
    before = everything(ticket)

    response = signed_in(getattr(desk, who)).post(portal_url(ticket, "rate"), {"score": "1"})

    assert response.status_code == 404
    assert everything(ticket) == before


def test_a_request_is_rated_once(desk):
    ticket = closed_ticket(desk)
    client = signed_in(desk.requester)
    client.post(portal_url(ticket, "rate"), {"score": "5", "comment": "Great"})
    before = everything(ticket)

    again = client.post(portal_url(ticket, "rate"), {"score": "1", "comment": "Changed my mind"})

    assert again.status_code == 409
    content = again.content.decode()
    assert "You have already rated this request. Thank you!" in content
    assert "5 out of 5" in content
    assert everything(ticket) == before


def test_rating_needs_a_signed_in_user(desk, client):
    ticket = closed_ticket(desk)

    response = client.post(portal_url(ticket, "rate"), {"score": "5"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not SatisfactionRating.objects.exists()
