"""An SLA escalation through a real Celery worker (in a thread of this process) and the real Redis broker: a clock due
in 3 s is breached by its eta task, its breach level notifies the assignee, and the e-mail arrives once."""

import time
from collections.abc import Iterator

import pytest
from django.core import mail

from sla.models import Calendar, Clock, EscalationLevel, EscalationNotification, SlaPolicy, SlaTarget
from tests.integration.celery_worker import broker_on, worker_on
from tickets import services as ticket_services

pytestmark = pytest.mark.worker

# Its own Redis database: development uses 0 and 1, the e-mail worker test 2, the SLA timer test 5.
BROKER_DB = 6
QUEUES = ("timers", "default")
TARGET_SECONDS = 3
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
def test_a_breach_level_emails_the_assignee_through_the_worker(committed_db, desk, settings, worker) -> None:  # type: ignore[no-untyped-def]
    # given: a 3 s target whose breach level notifies the assignee; Ada takes the ticket herself (no assignment mail)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "desk@example.org"
    always, _ = Calendar.objects.get_or_create(is_24x7=True, defaults={"name": "24×7", "time_zone": "UTC"})
    policy = SlaPolicy.objects.create(name="Three seconds", calendar=always)
    target = SlaTarget.objects.create(
        policy=policy,
        metric=SlaTarget.Metric.RESOLUTION,
        p1_seconds=TARGET_SECONDS,
        p2_seconds=TARGET_SECONDS,
        p3_seconds=TARGET_SECONDS,
        p4_seconds=TARGET_SECONDS,
        warning_percents=[],
    )
    EscalationLevel.objects.create(target=target, percent=100, notify_assignee=True)
    ticket = desk.ticket(title="Printer on fire")
    ticket_services.ticket_assign(actor=desk.agent, ticket=ticket, assignee=desk.agent)
    assert mail.outbox == []

    # when: the eta task breaches the clock, runs the level, and the notification task sends the e-mail
    received = _wait_for_mail(1)

    # then
    assert [(m.subject, m.to, m.from_email) for m in received] == [
        (
            f"[{ticket.number}] SLA breached: Resolution at 100 % - Printer on fire",
            ["ada@example.org"],
            "desk@example.org",
        )
    ]
    clock = Clock.objects.get(ticket=ticket)
    row = EscalationNotification.objects.get(clock=clock)
    assert (row.recipient_id, row.state, row.sent_at is not None) == (desk.agent.pk, "sent", True)
    assert clock.breached_at is not None
    time.sleep(1)  # nothing else arrives (the notification is sent once)
    assert len(mail.outbox) == 1
