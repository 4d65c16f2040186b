"""Celery entry points for tickets: ids in, one service call."""

import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from security.models import User
from tickets.models import Ticket

logger = logging.getLogger(__name__)


@shared_task(
    name="tickets.notify_assignee",
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def notify_assignee_task(ticket_id: int, assignee_id: int) -> None:
    """E-mail the new assignee. Quietly does nothing if the ticket or user is gone or the ticket moved on since."""
    ticket = Ticket.objects.filter(pk=ticket_id).only("number", "title", "assignee_id").first()
    user = User.objects.filter(pk=assignee_id, is_active=True).only("email", "full_name").first()
    if ticket is None or user is None or ticket.assignee_id != assignee_id:
        return
    send_mail(
        subject=f"[{ticket.number}] assigned to you: {ticket.title}",
        message=f'{ticket.number} "{ticket.title}" is now assigned to you.',
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email],
    )
    logger.info("tickets.assignee_notified", extra={"ticket": ticket.number, "user_id": assignee_id})


@shared_task(name="tickets.idempotency_cleanup", acks_late=True)
def idempotency_cleanup_task() -> int:
    """Hourly (celery beat): forget API Idempotency-Keys past their lifetime."""
    from tickets.services.idempotency import idempotency_cleanup  # services import this module: import late

    return idempotency_cleanup()
