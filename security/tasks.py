"""Celery entry points for security: webhook deliveries. Ids in, one service call. They run on the `default` queue
(CELERY_TASK_DEFAULT_QUEUE), never on `timers`."""

import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from itsm.queue import send_now
from security.models import WebhookSubscription
from security.webhook_delivery import deliveries_prune, delivery_attempt, due_delivery_ids

logger = logging.getLogger(__name__)

# Retries closer than this are woken by a countdown message; later ones (and lost messages) by the sweeper.
WAKE_UP_HORIZON_SECONDS = 300


@shared_task(name="webhooks.deliver", acks_late=True)
def webhook_deliver_task(delivery_id: str) -> None:
    """One attempt. A duplicate or late message finds the delivery claimed, done or not yet due, and does nothing."""
    recorded = delivery_attempt(delivery_id)
    if recorded is not None and recorded.retry_in is not None and recorded.retry_in <= WAKE_UP_HORIZON_SECONDS:
        send_now(webhook_deliver_task, delivery_id, countdown=recorded.retry_in)


@shared_task(name="webhooks.sweep", acks_late=True)
def webhook_sweep_task() -> dict[str, Any]:
    """Beat, every 30 s: wake every due delivery (retries, lost messages, expired leases). Postgres is the truth."""
    ids = due_delivery_ids()
    for delivery_id in ids:
        send_now(webhook_deliver_task, delivery_id)
    return {"woken": len(ids)}


@shared_task(name="webhooks.prune", acks_late=True)
def webhook_prune_task() -> dict[str, Any]:
    """Beat, hourly: drop finished deliveries past WEBHOOK_LOG_RETENTION_DAYS from the delivery log."""
    return {"removed": deliveries_prune()}


@shared_task(
    name="webhooks.notify_disabled",
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=8,
)
def webhook_notify_disabled_task(subscription_id: int) -> None:
    """Tell the owner their subscription was disabled. Nothing if it was deleted or enabled again meanwhile."""
    subscription = (
        WebhookSubscription.objects.select_related("owner").filter(pk=subscription_id, is_active=False).first()
    )
    if subscription is None or not subscription.owner.is_active:
        return
    send_mail(
        subject=f"Webhook disabled: {subscription.name}",
        message=(
            f'Your webhook "{subscription.name}" ({subscription.url}) was disabled: {subscription.disabled_reason}\n'
            "Fix the receiver, then enable the webhook again on its page; deliveries still inside their retry "
            "window resume, and failed ones can be redelivered."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[subscription.owner.email],
    )
    logger.info("webhooks.disabled_notified", extra={"subscription": subscription_id})
