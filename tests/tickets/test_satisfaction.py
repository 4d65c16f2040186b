"""CSAT: `satisfaction_rate` lets the requester rate a closed ticket once, 1 to 5, and records it for the reports."""

from typing import Any

import pytest

from itsm.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from security.models import AuditLog
from tests.support import db_state
from tests.tickets.builders import ticket_in_state
from tickets import services
from tickets.models import SatisfactionRating, Ticket
from tickets.state import TicketState


def closed_ticket(desk, *, by_requester: bool = True) -> Ticket:  # type: ignore[no-untyped-def]
    ticket = desk.ticket(title="Printer jams")
    services.ticket_transition(actor=desk.agent, ticket=ticket, to_state=TicketState.RESOLVED)
    closer = desk.requester if by_requester else desk.agent
    return services.ticket_transition(actor=closer, ticket=ticket, to_state=TicketState.CLOSED)


def everything(ticket: Ticket) -> dict[str, Any]:
    """Counts, the ticket's columns and every rating: what a refused rating must leave alone."""
    return {
        **db_state(ticket),
        "ratings": list(SatisfactionRating.objects.order_by("pk").values()),
    }


@pytest.mark.parametrize("by_requester", [True, False], ids=["confirmed-by-requester", "closed-by-agent"])
def test_requester_rates_a_closed_ticket(desk, by_requester):
    # given
    ticket = closed_ticket(desk, by_requester=by_requester)
    before = Ticket.objects.values("version", "updated_at").get(pk=ticket.pk)
    events = ticket.events.count()

    # when
    rating = services.satisfaction_rate(actor=desk.requester, ticket=ticket, score=4, comment="Quick, thanks")

    # then
    stored = SatisfactionRating.objects.get()
    assert stored.pk == rating.pk
    assert (stored.ticket_id, stored.rated_by_id, stored.score, stored.comment, stored.team_id) == (
        ticket.pk,
        desk.requester.pk,
        4,
        "Quick, thanks",
        desk.desktop.pk,
    )
    # A rating is not a change to the work: no new version, no timeline entry, the queues' order stays.
    assert Ticket.objects.values("version", "updated_at").get(pk=ticket.pk) == before
    assert ticket.events.count() == events
    audit = AuditLog.objects.order_by("-seq").first()
    assert audit is not None
    assert (audit.action, audit.actor_id, audit.object_type, audit.object_id) == (
        "ticket.rating",
        desk.requester.pk,
        "tickets.ticket",
        str(ticket.pk),
    )
    assert audit.after == {"rating_id": rating.pk, "score": 4, "has_comment": True, "team": desk.desktop.pk}


def test_rating_takes_the_ticket_id(desk):
    ticket = closed_ticket(desk)

    services.satisfaction_rate(actor=desk.requester, ticket=ticket.pk, score="5")

    assert list(SatisfactionRating.objects.values_list("ticket_id", "score", "comment")) == [(ticket.pk, 5, "")]


def test_team_is_copied_when_the_rating_is_made(desk):
    ticket = desk.ticket(category=desk.vpn)
    services.ticket_transition(actor=desk.network_agent, ticket=ticket, to_state=TicketState.RESOLVED)
    services.ticket_transition(actor=desk.requester, ticket=ticket, to_state=TicketState.CLOSED)

    rating = services.satisfaction_rate(actor=desk.requester, ticket=ticket, score=2)

    assert rating.team_id == desk.network.pk


@pytest.mark.parametrize(
    "state",
    [
        TicketState.NEW,
        TicketState.ASSIGNED,
        TicketState.IN_PROGRESS,
        TicketState.PENDING,
        TicketState.RESOLVED,
        TicketState.CANCELLED,
    ],
)
def test_only_a_closed_ticket_can_be_rated(desk, state):
    ticket = ticket_in_state(desk, state)
    before = everything(ticket)

    with pytest.raises(Conflict) as refused:
        services.satisfaction_rate(actor=desk.requester, ticket=ticket, score=5)

    assert refused.value.code == "not_closed"
    assert refused.value.status_code == 409
    assert everything(ticket) == before


def test_a_ticket_is_rated_once(desk):
    ticket = closed_ticket(desk)
    services.satisfaction_rate(actor=desk.requester, ticket=ticket, score=5, comment="Great")
    before = everything(ticket)

    with pytest.raises(Conflict) as refused:
        services.satisfaction_rate(actor=desk.requester, ticket=ticket, score=1, comment="Changed my mind")

    assert refused.value.code == "already_rated"
    assert everything(ticket) == before
    assert list(SatisfactionRating.objects.values_list("score", "comment")) == [(5, "Great")]


@pytest.mark.parametrize(
    ("who", "error", "code"),
    [
        ("other_requester", NotFound, "not_found"),
        ("network_agent", NotFound, "not_found"),
        ("agent", PermissionDenied, "not_requester"),
        ("manager", PermissionDenied, "not_requester"),
        ("admin", NotFound, "not_found"),
    ],
)
def test_only_the_requester_may_rate(desk, who, error, code):
    ticket = closed_ticket(desk)
    before = everything(ticket)

    with pytest.raises(error) as refused:
        services.satisfaction_rate(actor=getattr(desk, who), ticket=ticket, score=5)

    assert refused.value.code == code
    assert everything(ticket) == before


def test_a_missing_ticket_is_not_found(desk):
    with pytest.raises(NotFound):
        services.satisfaction_rate(actor=desk.requester, ticket=999_999_999, score=5)


@pytest.mark.parametrize("score", [0, 6, -1, 10, "x", "", None, True, False, 2.5, "2.5", "４"])
def test_score_outside_one_to_five_is_refused(desk, score):
    ticket = closed_ticket(desk)
    before = everything(ticket)

    with pytest.raises(ValidationFailed) as refused:
        services.satisfaction_rate(actor=desk.requester, ticket=ticket, score=score)

    assert refused.value.fields == {"score": ["Choose a rating from 1 to 5."]}
    assert everything(ticket) == before


@pytest.mark.parametrize("score", [1, 2, 3, 4, 5, "1", " 3 "])
def test_every_score_from_one_to_five_is_accepted(desk, score):
    ticket = closed_ticket(desk)

    rating = services.satisfaction_rate(actor=desk.requester, ticket=ticket, score=score)

    assert rating.score == int(str(score).strip())


def test_comment_is_plain_text_without_control_characters(desk):
    ticket = closed_ticket(desk)

    rating = services.satisfaction_rate(
        actor=desk.requester,
        ticket=ticket,
        score=3,
        comment="  <b>Slow</b>\r\nbut\x00 fixed\x1b[31m\u200b \tin the end  \n",
    )

    # Markup stays text (templates escape it); line breaks and tabs stay; NUL, ESC and zero-width space go.
    assert rating.comment == "<b>Slow</b>\nbut fixed[31m \tin the end"


def test_comment_of_2000_characters_is_accepted_and_2001_refused(desk):
    ticket = closed_ticket(desk)
    before = everything(ticket)

    with pytest.raises(ValidationFailed) as refused:
        services.satisfaction_rate(actor=desk.requester, ticket=ticket, score=3, comment="y" * 2001)
    assert refused.value.fields == {"comment": ["Use at most 2000 characters (it has 2001)."]}
    assert everything(ticket) == before

    rating = services.satisfaction_rate(actor=desk.requester, ticket=ticket, score=3, comment="y" * 2000)
    assert len(rating.comment) == 2000
