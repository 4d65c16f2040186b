"""A real Celery worker (in a thread of this process) against the real Redis broker: assigning a ticket e-mails the
new assignee once the transaction commits."""

import time
from collections.abc import Iterator

import pytest
from celery import Celery
from celery.contrib.testing.worker import TestWorkController, start_worker
from celery.signals import task_postrun
from django.core import mail
from django.db import connections

from itsm import celery_app
from itsm.env import redis_url_with_db
from tickets import services
from tickets.tasks import notify_assignee_task

pytestmark = pytest.mark.worker

# The broker gets its own Redis database here, so messages left by a development server or another run never reach
# this worker and this test's messages never reach theirs.
BROKER_DB = 2
EMAIL_TIMEOUT_SECONDS = 10
WORKER_START_TIMEOUT_SECONDS = 20


def _reset_producers(app: Celery) -> None:
    """Forget the app's pooled broker connections, so the next publish connects to the current `broker_url`. (The
    pools themselves live on in kombu's registry, keyed by URL, and are reused by the next test on the same URL.)"""
    # What Celery itself resets after a fork (`Celery._after_fork`), without sending the after-fork signal.
    app._pool = None
    app.amqp._producer_pool = None


def _purge(app: Celery) -> None:
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("default")


class BoundedWorkController(TestWorkController):
    """The testing worker, except that a worker that never comes up fails the test instead of hanging it."""

    def ensure_started(self) -> None:
        if not self._on_started.wait(timeout=WORKER_START_TIMEOUT_SECONDS):
            self.terminate()
            raise RuntimeError(f"The Celery worker did not start within {WORKER_START_TIMEOUT_SECONDS} s")


def _close_worker_connections(**kwargs: object) -> None:
    # Runs in the worker's thread: its database connection must not outlive the test (the test database is dropped
    # at the end of the session, which Postgres refuses while a connection is open).
    connections.close_all()


@pytest.fixture
def broker(settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    url = redis_url_with_db(settings.REDIS_URL, BROKER_DB)
    saved = {key: celery_app.conf[key] for key in ("broker_url", "worker_hijack_root_logger")}
    celery_app.conf.broker_url = url
    celery_app.conf.worker_hijack_root_logger = False  # keep pytest's and Django's log handlers
    _reset_producers(celery_app)
    _purge(celery_app)
    try:
        yield url
    finally:
        _purge(celery_app)
        celery_app.conf.update(saved)
        _reset_producers(celery_app)


@pytest.fixture
def worker(broker: str) -> Iterator[None]:
    task_postrun.connect(_close_worker_connections, weak=False)
    try:
        with start_worker(
            celery_app,
            pool="solo",
            perform_ping_check=False,
            queues=["default"],
            shutdown_timeout=10,
            loglevel="WARNING",
        ):
            yield
    finally:
        task_postrun.disconnect(_close_worker_connections)


def _wait_for_mail(count: int, timeout: float = EMAIL_TIMEOUT_SECONDS) -> list[mail.EmailMessage]:
    deadline = time.monotonic() + timeout
    while len(mail.outbox) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(mail.outbox)


@pytest.mark.django_db(transaction=True)
def test_assigning_a_ticket_emails_the_assignee_through_the_worker(committed_db, desk, settings, worker):
    # given
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "desk@example.org"
    ticket = desk.ticket(title="Docking station flickers")
    assert mail.outbox == []

    # when: the service commits, then sends the task to the broker; the worker picks it up
    services.ticket_assign(actor=desk.lead, ticket=ticket, assignee=desk.agent)
    received = _wait_for_mail(1)

    # then
    assert [(m.subject, m.to, m.from_email) for m in received] == [
        (f"[{ticket.number}] assigned to you: Docking station flickers", ["ada@example.org"], "desk@example.org")
    ]
    assert received[0].body == f'{ticket.number} "Docking station flickers" is now assigned to you.'


@pytest.mark.django_db(transaction=True)
def test_taking_a_ticket_yourself_sends_no_email(committed_db, desk, settings, worker):
    # given
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    first = desk.ticket(title="Taken by Ada herself")
    second = desk.ticket(title="Given to Bo")

    # when: the first sends nothing; the second's e-mail, queued after it, proves the worker is draining the queue
    services.ticket_assign(actor=desk.agent, ticket=first, assignee=desk.agent)
    services.ticket_assign(actor=desk.agent, ticket=second, assignee=desk.agent2)
    received = _wait_for_mail(1)

    # then
    assert [m.subject for m in received] == [f"[{second.number}] assigned to you: Given to Bo"]


def test_the_task_does_nothing_when_the_ticket_was_reassigned_before_it_ran(desk, settings):
    # given: assigned to Ada, then to Bo before Ada's notification ran
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ticket = desk.ticket()
    services.ticket_assign(actor=desk.lead, ticket=ticket, assignee=desk.agent)
    services.ticket_assign(actor=desk.lead, ticket=ticket, assignee=desk.agent2)

    # when
    notify_assignee_task(ticket.pk, desk.agent.pk)

    # then: nothing for Ada; Bo's own notification still goes out
    assert mail.outbox == []
    notify_assignee_task(ticket.pk, desk.agent2.pk)
    assert [(m.subject, m.to) for m in mail.outbox] == [
        (f"[{ticket.number}] assigned to you: Laptop does not boot", ["bo@example.org"])
    ]


@pytest.mark.parametrize("missing", ["ticket", "user", "inactive_user"])
def test_the_task_does_nothing_when_the_ticket_or_user_is_gone(desk, settings, missing):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ticket = desk.ticket()
    services.ticket_assign(actor=desk.lead, ticket=ticket, assignee=desk.agent)
    ticket_id, user_id = ticket.pk, desk.agent.pk
    if missing == "ticket":
        ticket_id += 1000
    elif missing == "user":
        user_id += 1000
    else:
        desk.agent.is_active = False
        desk.agent.save(update_fields=["is_active"])

    notify_assignee_task(ticket_id, user_id)

    assert mail.outbox == []
