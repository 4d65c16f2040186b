"""A real Celery worker (in a thread of this process) against the real Redis broker: assigning a ticket e-mails the
new assignee once the transaction commits."""

import time
from collections.abc import Iterator

import pytest
from django.core import mail

from tests.integration.celery_worker import broker_on, worker_on
from tickets import services
from tickets.tasks import notify_assignee_task

pytestmark = pytest.mark.worker

# The broker gets its own Redis database here, so messages left by a development server or another run never reach
# this worker and this test's messages never reach theirs.
BROKER_DB = 2
QUEUES = ("default",)
EMAIL_TIMEOUT_SECONDS = 10


@pytest.fixture
def broker(settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with broker_on(settings.REDIS_URL, BROKER_DB, QUEUES) as url:
        yield url


@pytest.fixture
def worker(broker: str) -> Iterator[None]:
    with worker_on(QUEUES):
        yield


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
