"""Helpers for asserting that a refused change left the database alone, and for running work in a thread with its
own database connection (concurrency tests)."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection, connections

from security.models import AuditLog
from tickets.models import Attachment, Comment, Ticket, TicketEvent


def db_counts() -> dict[str, int]:
    return {
        "tickets": Ticket.objects.count(),
        "events": TicketEvent.objects.count(),
        "comments": Comment.objects.count(),
        "attachments": Attachment.objects.count(),
        "audit": AuditLog.objects.count(),
    }


def db_state(*tickets: Ticket) -> dict[str, Any]:
    """Everything a refused change must leave alone: row counts and every column of the given tickets."""
    return {
        "counts": db_counts(),
        "tickets": [Ticket.objects.filter(pk=t.pk).values().get() for t in tickets],
    }


def in_thread(work: Callable[[], Any], *, lock_timeout: str | None = None) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `work` in a thread with its own database connection (closed at the end; `lock_timeout` set first when
    given). The returned dict gets `result`, or `error` with the exception, for the test to check."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            if lock_timeout is not None:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('lock_timeout', %s, false)", [lock_timeout])
            outcome["result"] = work()
        except BaseException as exc:  # reported by the test, not lost in the thread
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome
