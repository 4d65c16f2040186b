"""Scheduling Celery work from services.

Work is sent only after the transaction commits (a rolled-back change sends nothing), and a broker outage never
turns a committed change into an error page: the failure is logged with the task and its arguments. Work that must
not be lost (SLA timers) does not rely on this message at all: Postgres holds the truth and a periodic reconciler
re-plans it (DESIGN.md §3).
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from celery import Task
from django.db import transaction
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

_suppressed: ContextVar[bool] = ContextVar("itsm_queue_suppressed", default=False)


@contextmanager
def suppressed() -> Iterator[None]:
    """Send no Celery work from services run inside this block: seeding and imports replay history, and the
    notifications of weeks-old assignments must not be mailed out when they commit."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def send_now(task: Task, *args: Any, **options: Any) -> bool:
    try:
        task.apply_async(args=args, **options)
    except (OperationalError, OSError) as exc:
        logger.error("queue.send_failed", extra={"task": task.name, "task_args": args, "error": str(exc)})
        return False
    return True


def enqueue_on_commit(task: Task, *args: Any, **options: Any) -> None:
    if _suppressed.get():
        return
    transaction.on_commit(lambda: send_now(task, *args, **options))
