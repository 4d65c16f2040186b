"""Celery entry points for the SLA timers (DESIGN.md §3 step 4, docs/sla.md "Timers"): ids in, one service call.

`sla.fire_due_clock` is routed to the `timers` queue by `CELERY_TASK_ROUTES` ("sla.fire_*"); `sla.reconcile` runs
from celery-beat (`CELERY_BEAT_SCHEDULE`) on the same queue, and once whenever a worker that consumes `timers`
starts. All are idempotent, so a redelivered or duplicated message changes nothing."""

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready
from django.db import OperationalError

from sla import escalation, rollups, services

logger = logging.getLogger(__name__)

TIMERS_QUEUE = "timers"


@shared_task(
    name="sla.fire_due_clock",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=5,
)
def fire_due_clock_task(clock_id: int) -> list[str]:
    """Fire the clock's thresholds that are due (and, in a wave, every other overdue clock). A gone, paused or finished
    clock, or one already fired, is a no-op."""
    return services.clock_timer_fire(clock_id=clock_id)


@shared_task(name="sla.reconcile", acks_late=True)
def reconcile_task() -> dict[str, int]:
    """Fire the overdue running clocks and send eta tasks for those due within the horizon (celery-beat, 30 s)."""
    return services.clocks_reconcile()


@shared_task(name="sla.clocks_resync", acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True)
def clocks_resync_task() -> int:
    """After a policy edit or deactivation (default queue): re-sync open tickets' clocks in batches (idempotent)."""
    return services.clocks_resync()


@shared_task(
    name="sla.deliver_escalation_notification",
    acks_late=True,
    autoretry_for=(OSError, OperationalError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def deliver_escalation_notification_task(notification_id: int) -> str:
    """E-mail one escalation notification if it is due and not sent yet (row lock + state guard: sent once)."""
    return escalation.escalation_notification_deliver(notification_id=notification_id)


@shared_task(name="sla.deliver_due_escalation_notifications", acks_late=True)
def deliver_due_escalation_notifications_task() -> dict[str, int]:
    """Send the queued escalation notifications whose recipients' working hours have begun (celery-beat, 60 s)."""
    return escalation.escalation_notifications_deliver_due()


@worker_ready.connect
def reconcile_when_a_timers_worker_starts(sender: Any = None, **kwargs: Any) -> None:
    """A worker that was killed took its reserved eta messages with it: Redis hands them out again only after the
    visibility timeout (`CELERY_BROKER_TRANSPORT_OPTIONS`), and a restarted or flushed Redis has lost them. A worker
    that consumes `timers` therefore asks for one reconciler pass as it starts, so the deadlines it may have lost are
    fired or re-planned at once instead of at the next beat."""
    queues = getattr(getattr(sender, "task_consumer", None), "queues", None) or ()
    if TIMERS_QUEUE not in {queue.name for queue in queues}:
        return
    try:
        reconcile_task.apply_async(queue=TIMERS_QUEUE)
    except Exception:  # a broker hiccup at start-up: beat's next pass does the same work
        logger.exception("sla.start_reconcile_failed")


@shared_task(name="reports.fill_zone", acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True)
def fill_report_zone_task(zone: str) -> bool:
    """Fill a zone's dashboard rollups (the `reports` queue; a ready zone is a no-op, so duplicates cost nothing)."""
    try:
        return rollups.fill_zone(zone)
    except ValueError as exc:  # unknown, or read differently by Postgres: its viewers keep the raw counts
        logger.warning("rollups.zone_refused", extra={"zone": zone, "reason": str(exc)})
        return False


@shared_task(name="reports.compact_rollups", acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True)
def compact_rollups_task() -> int:
    """Fold the dashboard rollups' repeated keys (celery-beat)."""
    return rollups.compact()
