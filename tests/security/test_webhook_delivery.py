"""The delivery worker's steps against a real HTTP receiver (no Celery here: tests/integration has the worker):
give-up after the retry window, disabling after repeated failures with an e-mail to the owner, redirects, excerpts,
redelivery, SSRF at send time, and the backoff schedule."""

import random
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from itsm.errors import Conflict, NotFound
from security import webhooks
from security.models import AuditLog, WebhookAttempt, WebhookDelivery, WebhookSubscription
from security.tasks import webhook_notify_disabled_task
from security.webhook_delivery import deliveries_prune, delivery_attempt, due_delivery_ids, excerpt, retry_delay
from tests.webhook_receiver import running_receiver


@pytest.fixture(autouse=True)
def _loopback(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def test_backoff_doubles_from_the_base_up_to_four_hours_with_jitter(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    rng = random.Random(1)
    delays = [retry_delay(n, rng=rng) for n in range(1, 15)]
    for n, delay in enumerate(delays, start=1):
        expected = min(30 * 2 ** (n - 1), 4 * 3600)
        assert expected * 0.8 <= delay <= expected * 1.2
    # about 24 h of retries: the sum of the nominal schedule over 14 attempts
    assert 23 * 3600 <= sum(min(30 * 2 ** (n - 1), 4 * 3600) for n in range(1, 15)) <= 25 * 3600


def test_excerpt_is_bounded_and_printable():
    assert excerpt(b"ok\x00\x07 fine\n") == "ok fine\n"
    assert len(excerpt(b"x" * 5000)) == 1000
    assert excerpt(b"\xff\xfe") == "\ufffd\ufffd"


def test_a_delivery_that_keeps_failing_gives_up_and_repeated_failures_disable_the_subscription(
    desk, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_HOURS = 0  # the first failure is already past the window
    settings.WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES = 2
    with running_receiver() as receiver:
        created = webhooks.webhook_create(
            actor=desk.agent, name="Flaky", url=receiver.url, event_types=["ticket.created"]
        )
        receiver.secret = created.secret
        receiver.statuses = [503, 500]
        desk.ticket(title="One")
        desk.ticket(title="Two")
        ids = due_delivery_ids()
        assert len(ids) == 2
        with django_capture_on_commit_callbacks() as callbacks:
            for delivery_id in ids:
                assert delivery_attempt(delivery_id).state == "failed"
    subscription = WebhookSubscription.objects.get()
    assert (subscription.is_active, subscription.consecutive_failures) == (False, 2)
    assert subscription.disabled_reason == "Disabled after 2 deliveries in a row failed (every retry for 0 h)."
    assert list(WebhookDelivery.objects.values_list("state", flat=True)) == ["failed", "failed"]
    assert AuditLog.objects.filter(action="webhook.disable", actor=None).count() == 1
    # the owner's e-mail after commit (the other callback drops the cached list of subscribed event types)
    assert [c for c in callbacks if "enqueue_on_commit" in c.__qualname__] == callbacks[-1:]
    assert len(callbacks) == 2
    webhook_notify_disabled_task(subscription.pk)
    assert [(m.subject, m.to) for m in mail.outbox] == [("Webhook disabled: Flaky", ["ada@example.org"])]
    # a disabled subscription gets no new deliveries and its pending ones wait
    desk.ticket(title="Three")
    assert WebhookDelivery.objects.count() == 2
    # enabling clears the streak
    webhooks.webhook_set_active(actor=desk.agent, subscription=subscription, is_active=True)
    subscription.refresh_from_db()
    assert (subscription.is_active, subscription.consecutive_failures, subscription.disabled_at) == (True, 0, None)


def test_a_success_resets_the_failure_streak(desk, settings):
    with running_receiver() as receiver:
        created = webhooks.webhook_create(actor=desk.agent, name="Ok", url=receiver.url, event_types=["ticket.created"])
        receiver.secret = created.secret
        WebhookSubscription.objects.update(consecutive_failures=3)
        desk.ticket()
        assert delivery_attempt(due_delivery_ids()[0]).state == "delivered"
    assert WebhookSubscription.objects.get().consecutive_failures == 0


def test_redirects_are_not_followed(desk):
    with running_receiver() as receiver:
        created = webhooks.webhook_create(actor=desk.agent, name="R", url=receiver.url, event_types=["ticket.created"])
        receiver.secret = created.secret
        receiver.statuses = [302]
        desk.ticket()
        recorded = delivery_attempt(due_delivery_ids()[0])
    assert recorded.state == "pending"
    attempt = WebhookAttempt.objects.get()
    assert (attempt.status_code, attempt.is_success, attempt.error) == (302, False, "Redirects are not followed.")


def test_a_url_that_became_private_is_refused_at_send_time(desk, settings):
    with running_receiver() as receiver:
        created = webhooks.webhook_create(actor=desk.agent, name="R", url=receiver.url, event_types=["ticket.created"])
        desk.ticket()
        settings.WEBHOOK_ALLOWED_NETWORKS = []
        delivery_attempt(due_delivery_ids()[0])
        assert receiver.requests == []
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None
    assert attempt.error.startswith("Refused: The address 127.0.0.1 is a loopback address")
    assert created.subscription.pk == WebhookSubscription.objects.get().pk


def test_a_connection_error_is_recorded_and_retried(desk):
    webhooks.webhook_create(actor=desk.agent, name="Down", url="http://127.0.0.1:9/x", event_types=["ticket.created"])
    desk.ticket()
    before = timezone.now()
    recorded = delivery_attempt(due_delivery_ids()[0])
    assert recorded.state == "pending"
    delivery = WebhookDelivery.objects.get()
    assert delivery.next_attempt_at >= before + timedelta(seconds=24)
    assert "Error" in WebhookAttempt.objects.get().error
    assert due_delivery_ids() == []


def test_redeliver_requeues_a_finished_delivery_with_the_same_id(desk):
    with running_receiver() as receiver:
        created = webhooks.webhook_create(actor=desk.agent, name="R", url=receiver.url, event_types=["ticket.created"])
        receiver.secret = created.secret
        desk.ticket()
        delivery_id = due_delivery_ids()[0]
        with pytest.raises(Conflict):
            webhooks.delivery_redeliver(actor=desk.agent, delivery=delivery_id)
        delivery_attempt(delivery_id)
        with pytest.raises(NotFound):
            webhooks.delivery_redeliver(actor=desk.agent2, delivery=delivery_id)
        webhooks.delivery_redeliver(actor=desk.agent, delivery=delivery_id)
        assert due_delivery_ids() == [delivery_id]
        delivery_attempt(delivery_id)
        assert [r.headers["X-Webhook-Id"] for r in receiver.requests] == [delivery_id, delivery_id]
        assert [r.headers["X-Webhook-Attempt"] for r in receiver.requests] == ["1", "2"]
    assert WebhookDelivery.objects.get().state == "delivered"
    assert AuditLog.objects.filter(action="webhook.redeliver", object_id=delivery_id).count() == 1


def test_prune_drops_finished_deliveries_past_the_retention_only(desk, settings):
    settings.WEBHOOK_LOG_RETENTION_DAYS = 30
    with running_receiver() as receiver:
        created = webhooks.webhook_create(actor=desk.agent, name="R", url=receiver.url, event_types=["ticket.created"])
        receiver.secret = created.secret
        for _ in range(3):
            desk.ticket()
        old_delivered, old_pending, recent = due_delivery_ids()
        delivery_attempt(old_delivered)
        delivery_attempt(recent)
    long_ago = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.filter(pk__in=[old_delivered, old_pending]).update(created_at=long_ago)

    assert deliveries_prune(batch_size=1) == 1

    assert sorted(str(pk) for pk in WebhookDelivery.objects.values_list("pk", flat=True)) == sorted(
        [old_pending, recent]
    )
    assert WebhookAttempt.objects.filter(delivery_id=old_delivered).count() == 0
    assert WebhookAttempt.objects.count() == 1
