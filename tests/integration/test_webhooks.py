"""Webhooks through a real Celery worker, the real Redis broker and a real HTTP receiver on 127.0.0.1: the signature
verifies, a 500 is retried with backoff and then delivered, and a worker SIGKILLed mid-request does not lead to a
second concurrent send; the retry after its lease carries the same X-Webhook-Id, so the receiver acts once."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from security import webhooks
from security.models import WebhookAttempt, WebhookDelivery
from security.tasks import webhook_sweep_task
from security.webhook_delivery import delivery_attempt
from tests.integration.celery_worker import broker_on, worker_on
from tests.integration.processes import child_database_url
from tests.webhook_receiver import Receiver, running_receiver

pytestmark = pytest.mark.worker

# Its own Redis database (e-mail test 2, SLA timers 5, development 0 and 1).
BROKER_DB = 7
QUEUES = ("default",)
ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 4


@pytest.fixture
def broker(settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with broker_on(settings.REDIS_URL, BROKER_DB, QUEUES) as url:
        yield url
    redis.Redis.from_url(url).flushdb()  # also the unacked message of a killed worker


@pytest.fixture
def worker(broker: str) -> Iterator[None]:
    with worker_on(QUEUES):
        yield


def _subscribe(desk, receiver: Receiver, events=("ticket.created",)) -> int:  # type: ignore[no-untyped-def]
    created = webhooks.webhook_create(actor=desk.agent, name="Receiver", url=receiver.url, event_types=list(events))
    receiver.secret = created.secret
    return created.subscription.pk


def _wait_until(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True)
def test_a_delivery_arrives_signed_and_the_signature_verifies(committed_db, desk, worker):
    with running_receiver() as receiver:
        _subscribe(desk, receiver)
        ticket = desk.ticket(title="Monitor is dark")
        received = receiver.wait_for(1, timeout=15)
        assert len(received) == 1
        request = received[0]
        delivery = WebhookDelivery.objects.get()
        assert request.signature_ok
        assert request.headers["X-Webhook-Id"] == str(delivery.pk)
        assert request.headers["X-Webhook-Event"] == "ticket.created"
        assert request.headers["Content-Type"] == "application/json"
        assert request.payload["data"]["ticket"]["number"] == ticket.number
        assert request.payload["data"]["ticket"]["title"] == "Monitor is dark"
        assert request.payload == delivery.payload
        assert _wait_until(lambda: WebhookDelivery.objects.get().state == "delivered", timeout=5)
        attempt = WebhookAttempt.objects.get()
        assert (attempt.number, attempt.status_code, attempt.is_success, attempt.is_open) == (1, 200, True, False)
        assert attempt.response_excerpt == '{"ok": true}'
        assert attempt.latency_ms is not None


@pytest.mark.django_db(transaction=True)
def test_a_500_is_retried_with_backoff_and_then_delivered(committed_db, desk, settings, worker):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 1
    with running_receiver() as receiver:
        receiver.statuses = [500]
        _subscribe(desk, receiver)
        desk.ticket(title="Retry me")
        received = receiver.wait_for(2, timeout=20)
        assert [r.status for r in received] == [500, 200]
        assert [r.headers["X-Webhook-Attempt"] for r in received] == ["1", "2"]
        assert received[0].headers["X-Webhook-Id"] == received[1].headers["X-Webhook-Id"]
        assert all(r.signature_ok for r in received)
        assert _wait_until(lambda: WebhookDelivery.objects.get().state == "delivered", timeout=5)
        delivery = WebhookDelivery.objects.get()
        assert (delivery.attempts, delivery.last_status_code) == (2, 200)
        attempts = list(WebhookAttempt.objects.order_by("number"))
        assert [(a.number, a.status_code, a.is_success) for a in attempts] == [(1, 500, False), (2, 200, True)]
        # about one second of backoff (±20 % jitter) between the two attempts
        gap = (attempts[1].at - attempts[0].at).total_seconds()
        assert 0.8 <= gap < 5
        assert receiver.processed == [str(delivery.pk)]


def _start_worker_process(broker_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": child_database_url(),
        "REDIS_URL": broker_url,
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "WEBHOOK_LEASE_SECONDS": str(LEASE_SECONDS),
        "WEBHOOK_TIMEOUT_SECONDS": "30",
    }
    command = [sys.executable, "-m", "celery", "-A", "itsm", "worker", "-P", "solo", "-Q", "default", "-l", "INFO"]
    with log.open("wb") as output:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)  # noqa: S603


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_causes_no_concurrent_resend_and_the_retry_keeps_the_id(
    committed_db, desk, broker, tmp_path
):
    log = tmp_path / "worker.log"
    with running_receiver() as receiver:
        _subscribe(desk, receiver)
        receiver.hold()
        process = _start_worker_process(broker, log)
        try:
            # given: the worker process has sent the delivery and the receiver holds the request open
            desk.ticket(title="Killed in flight")
            first = receiver.wait_for(1, timeout=60)
            assert len(first) == 1, log.read_text()
        finally:
            # when: the worker dies with the request in flight
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        receiver.release()
        delivery = WebhookDelivery.objects.get()
        assert (delivery.state, delivery.attempts) == ("sending", 1)
        assert WebhookAttempt.objects.get().is_open

        # then: while its lease runs, no other worker sends it again (a live worker and the sweeper find nothing)
        with worker_on(QUEUES):
            assert delivery_attempt(str(delivery.pk)) is None
            assert webhook_sweep_task() == {"woken": 0}
            time.sleep(1)
            assert len(receiver.requests) == 1

            # and after the lease the sweeper re-plans it, once, with the same X-Webhook-Id
            lease = delivery.next_attempt_at - WebhookAttempt.objects.get().at
            assert lease.total_seconds() == LEASE_SECONDS
            assert _wait_until(lambda: webhook_sweep_task()["woken"] == 1, timeout=LEASE_SECONDS + 5)
            received = receiver.wait_for(2, timeout=15)
            assert _wait_until(lambda: WebhookDelivery.objects.get().state == "delivered", timeout=5)
            time.sleep(0.5)  # let any duplicate message run

        assert len(receiver.requests) == 2
        assert [r.headers["X-Webhook-Id"] for r in received] == [str(delivery.pk)] * 2
        assert [r.headers["X-Webhook-Attempt"] for r in received] == ["1", "2"]
        assert receiver.processed == [str(delivery.pk)]
        assert receiver.duplicates == [str(delivery.pk)]
        attempts = list(WebhookAttempt.objects.order_by("number").values_list("number", "status_code", "is_open"))
        assert attempts == [(1, None, False), (2, 200, False)]
        assert "worker stopped" in WebhookAttempt.objects.get(number=1).error
