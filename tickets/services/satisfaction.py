"""CSAT: the requester rates a closed ticket once, 1 to 5, with an optional comment."""

import logging
import unicodedata
from typing import Any

from django.db import IntegrityError, transaction

from itsm.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from security import permissions
from security.audit import audit_record
from security.models import User
from tickets.models import SatisfactionRating, Ticket
from tickets.services.tickets import _lock_ticket
from tickets.state import TicketState

logger = logging.getLogger(__name__)

SCORES = (1, 2, 3, 4, 5)
COMMENT_MAX_CHARS = 2000


def _clean_score(score: Any) -> int:
    """An int, or a string of one ASCII digit, from 1 to 5. Not a bool (an int subclass), a float, or any of the other
    digits `int()` would read ("４")."""
    value = -1
    if isinstance(score, int) and not isinstance(score, bool):
        value = score
    elif isinstance(score, str) and score.strip() in {str(n) for n in SCORES}:
        value = int(score.strip())
    if value not in SCORES:
        raise ValidationFailed("Invalid rating.", fields={"score": ["Choose a rating from 1 to 5."]})
    return value


def _clean_comment(comment: str) -> str:
    """Plain text (it is escaped wherever it is shown): control characters other than line breaks and tabs removed,
    line endings normalised, surrounding blanks trimmed. Too long is refused, never silently cut."""
    text = (comment or "").replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()
    if len(text) > COMMENT_MAX_CHARS:
        raise ValidationFailed(
            "The comment is too long.",
            fields={"comment": [f"Use at most {COMMENT_MAX_CHARS} characters (it has {len(text)})."]},
        )
    return text


@transaction.atomic
def satisfaction_rate(*, actor: User, ticket: Ticket | int, score: Any, comment: str = "") -> SatisfactionRating:
    """Record the requester's rating of their closed ticket.

    Only the requester may rate (anyone else who cannot see the ticket gets `NotFound`, an agent who can gets
    `PermissionDenied`), only once the ticket is closed (`Conflict(code="not_closed")`), and only once: a second rating
    is `Conflict(code="already_rated")` — ratings feed reports, so they do not change after the fact. Locks the
    ticket row, so two concurrent ratings cannot both pass the check; the one-to-one column backs that up. The team
    is copied from the ticket for reporting. Audited as `ticket.rating`; the ticket itself (version, timeline,
    `updated_at`) is left alone, as a rating is not a change to the work.
    """
    ticket = _lock_ticket(ticket)
    if not permissions.can_view_ticket(actor, ticket):
        raise NotFound("No such ticket.")
    if ticket.requester_id != actor.pk:
        raise PermissionDenied("Only the person who raised the ticket can rate it.", code="not_requester")
    score = _clean_score(score)
    comment = _clean_comment(comment)
    if ticket.state != TicketState.CLOSED:
        raise Conflict("You can rate a request once it is closed.", code="not_closed")
    if SatisfactionRating.objects.filter(ticket_id=ticket.pk).exists():
        raise Conflict("You have already rated this request. Thank you!", code="already_rated")
    try:
        with transaction.atomic():
            rating = SatisfactionRating.objects.create(
                ticket=ticket, rated_by=actor, score=score, comment=comment, team_id=ticket.team_id
            )
    except IntegrityError as exc:  # pragma: no cover - the row lock above makes this unreachable in practice
        raise Conflict("You have already rated this request. Thank you!", code="already_rated") from exc
    audit_record(
        actor=actor,
        action="ticket.rating",
        obj=ticket,
        after={"rating_id": rating.pk, "score": score, "has_comment": bool(comment), "team": ticket.team_id},
    )
    logger.info("tickets.rated", extra={"ticket": ticket.number, "score": score, "team_id": ticket.team_id})
    return rating
