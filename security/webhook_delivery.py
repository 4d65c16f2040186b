"""Sending webhook deliveries: claim under a lease, POST once, record the attempt, plan the retry.

The guarantee (docs/webhooks.md, "Delivery guarantee"):
- At most one attempt of a delivery is in flight at a time. A worker claims the row (`SELECT … FOR UPDATE SKIP
  LOCKED`, state `sending`, `next_attempt_at` = end of its lease) and commits *before* it sends, so a second worker,
  a duplicate Celery message or the sweeper finds nothing to do until the lease has run out.
- If the worker dies mid-request (the receiver may or may not have processed the body), the row stays `sending`
  until its lease ends; the sweeper then retries it with the same `X-Webhook-Id`. Receivers that remember ids see
  each delivery once; the wire itself is at-least-once, as it must be when nobody can know whether the lost request
  was processed.
- A worker that finishes after its lease was taken over records its own attempt, but does not touch the delivery.
"""

import json
import logging
import random
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import certifi
import urllib3
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from itsm.queue import enqueue_on_commit
from security.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from security.webhook_signature import sign
from security.webhook_ssrf import Target, UnsafeUrl, vet_url
from security.webhooks import signing_secret, webhook_set_active

logger = logging.getLogger(__name__)

EXCERPT_BYTES = 1024
EXCERPT_CHARS = 1000
USER_AGENT = "itsm-webhooks/1"
RETRY_MAX_DELAY_SECONDS = 4 * 3600
SWEEP_BATCH = 500
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
State = WebhookDelivery.State


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base × 2^(n−1), at most 4 h, ±20 % jitter so
    a receiver coming back is not hit by every queued delivery in the same second. With the default 30 s base the
    attempts fall at about 0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 63.5, 127.5, 255.5 minutes, then every 4 h to 24 h."""
    base = float(settings.WEBHOOK_RETRY_BASE_SECONDS) * 2 ** max(attempts - 1, 0)
    return min(base, RETRY_MAX_DELAY_SECONDS) * (rng or random).uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto


def excerpt(raw: bytes) -> str:
    """A bounded, printable excerpt of a response body for the delivery log (templates escape it on output)."""
    text = raw[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    return _CONTROL_CHARACTERS.sub("", text)[:EXCERPT_CHARS]


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    attempt: int
    event_name: str
    payload: dict[str, Any]
    url: str
    secret: str


@dataclass(frozen=True)
class Outcome:
    status_code: int | None = None
    latency_ms: int | None = None
    response_excerpt: str = ""
    error: str = ""

    @property
    def is_success(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def delivery_claim(delivery_id: str, *, now: datetime | None = None) -> Claim | None:
    """Take the delivery for one attempt if it is due and nobody holds it, and commit the claim. None otherwise
    (not due, delivered, failed, held by a live lease, locked by another worker right now, or its subscription is
    disabled). A delivery whose lease ran out had its worker die: that attempt is closed as lost first."""
    with transaction.atomic():
        now = now or timezone.now()
        row = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("subscription")
            .filter(
                pk=delivery_id,
                state__in=(State.PENDING, State.SENDING),
                next_attempt_at__lte=now,
                subscription__is_active=True,
            )
            .first()
        )
        if row is None:
            return None
        if row.state == State.SENDING:
            WebhookAttempt.objects.filter(delivery=row, is_open=True).update(
                is_open=False, error="No result: the worker stopped before the receiver answered (lease expired)."
            )
            logger.warning("webhooks.lease_expired", extra={"delivery": str(row.pk), "attempt": row.attempts})
        if row.attempts > 0 and now > row.retry_until:
            _give_up(row, now)
            return None
        row.attempts += 1
        row.state = State.SENDING
        row.next_attempt_at = now + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
        row.save(update_fields=["attempts", "state", "next_attempt_at"])
        WebhookAttempt.objects.create(delivery=row, number=row.attempts, at=now, is_open=True)
        return Claim(
            delivery_id=str(row.pk),
            attempt=row.attempts,
            event_name=row.event_name,
            payload=row.payload,
            url=row.subscription.url,
            secret=signing_secret(row.subscription),
        )


def _pool(target: Target, timeout: float) -> urllib3.HTTPConnectionPool:
    # Connect to the vetted address; name the host only in the Host header and in TLS (SNI and certificate check).
    common: dict[str, Any] = {"timeout": urllib3.Timeout(connect=timeout, read=timeout), "retries": False, "maxsize": 1}
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            target.ip,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            **common,
        )
    return urllib3.HTTPConnectionPool(target.ip, target.port, **common)


def body_for(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def delivery_send(claim: Claim, *, timestamp: int | None = None) -> Outcome:
    """POST the payload once: SSRF-checked again, signed, no redirects, bounded in time and in what is read back."""
    try:
        target = vet_url(claim.url)
    except UnsafeUrl as exc:
        return Outcome(error=f"Refused: {exc.detail}"[:300])
    body = body_for(claim.payload)
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Id": claim.delivery_id,
        "X-Webhook-Event": claim.event_name,
        "X-Webhook-Attempt": str(claim.attempt),
        "X-Signature": sign(secret=claim.secret, body=body, timestamp=timestamp or int(time.time())),
    }
    started = time.monotonic()
    pool = _pool(target, float(settings.WEBHOOK_TIMEOUT_SECONDS))
    try:
        response = pool.urlopen(
            "POST", target.path, body=body, headers=headers, redirect=False, retries=False, preload_content=False
        )
        try:
            raw = response.read(EXCERPT_BYTES)
        finally:
            response.release_conn()
        latency = int((time.monotonic() - started) * 1000)
        error = "Redirects are not followed." if 300 <= response.status < 400 else ""
        return Outcome(status_code=response.status, latency_ms=latency, response_excerpt=excerpt(raw), error=error)
    except urllib3.exceptions.HTTPError as exc:
        latency = int((time.monotonic() - started) * 1000)
        return Outcome(latency_ms=latency, error=f"{type(exc).__name__}: {exc}"[:300])
    finally:
        pool.close()


def _give_up(row: WebhookDelivery, now: datetime) -> None:
    """Mark the delivery failed and count it against its subscription; disable that after too many in a row."""
    row.state = State.FAILED
    row.next_attempt_at = None
    row.save(update_fields=["state", "next_attempt_at"])
    WebhookSubscription.objects.filter(pk=row.subscription_id).update(
        consecutive_failures=F("consecutive_failures") + 1
    )
    counted = (
        WebhookSubscription.objects.filter(pk=row.subscription_id)
        .values_list("consecutive_failures", "is_active")
        .first()
    )
    logger.warning("webhooks.delivery_failed", extra={"delivery": str(row.pk), "attempts": row.attempts})
    if counted is None:
        return
    failures, is_active = counted
    if is_active and failures >= settings.WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES:
        webhook_set_active(
            actor=None,
            subscription=row.subscription_id,
            is_active=False,
            reason=f"Disabled after {failures} deliveries in a row failed (every retry for "
            f"{settings.WEBHOOK_RETRY_HOURS} h).",
        )
        from security.tasks import webhook_notify_disabled_task

        enqueue_on_commit(webhook_notify_disabled_task, row.subscription_id)


@dataclass(frozen=True)
class Recorded:
    state: str | None
    retry_in: float | None = None


def delivery_record(claim: Claim, outcome: Outcome, *, now: datetime | None = None) -> Recorded:
    """Write the attempt and move the delivery on: delivered, pending again with its next time, or failed once the
    retry window has passed. If the lease was taken over meanwhile, only the attempt row is written."""
    with transaction.atomic():
        now = now or timezone.now()
        WebhookAttempt.objects.filter(delivery_id=uuid.UUID(claim.delivery_id), number=claim.attempt).update(
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            response_excerpt=outcome.response_excerpt,
            error=outcome.error,
            is_success=outcome.is_success,
            is_open=False,
        )
        row = WebhookDelivery.objects.select_for_update().filter(pk=claim.delivery_id).first()
        if row is None or row.state != State.SENDING or row.attempts != claim.attempt:
            return Recorded(state=None)
        row.last_status_code = outcome.status_code
        if outcome.is_success:
            row.state = State.DELIVERED
            row.delivered_at = now
            row.next_attempt_at = None
            row.save(update_fields=["state", "delivered_at", "next_attempt_at", "last_status_code"])
            WebhookSubscription.objects.filter(pk=row.subscription_id, consecutive_failures__gt=0).update(
                consecutive_failures=0
            )
            return Recorded(state=row.state)
        delay = retry_delay(row.attempts)
        next_at = now + timedelta(seconds=delay)
        if next_at > row.retry_until:
            row.save(update_fields=["last_status_code"])
            _give_up(row, now)
            return Recorded(state=row.state)
        row.state = State.PENDING
        row.next_attempt_at = next_at
        row.save(update_fields=["state", "next_attempt_at", "last_status_code"])
        return Recorded(state=row.state, retry_in=delay)


def delivery_attempt(delivery_id: str) -> Recorded | None:
    """One attempt of one delivery, if it is due and free: claim, send, record."""
    claim = delivery_claim(delivery_id)
    if claim is None:
        return None
    outcome = delivery_send(claim)
    recorded = delivery_record(claim, outcome)
    logger.info(
        "webhooks.attempt",
        extra={
            "delivery": claim.delivery_id,
            "attempt": claim.attempt,
            "status": outcome.status_code,
            "state": recorded.state,
        },
    )
    return recorded


def due_delivery_ids(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> list[str]:
    """Deliveries whose time has come, or whose lease ran out, oldest first (index `security_webhook_delivery_due`)."""
    now = now or timezone.now()
    ids = (
        WebhookDelivery.objects.filter(
            state__in=(State.PENDING, State.SENDING), next_attempt_at__lte=now, subscription__is_active=True
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    return [str(pk) for pk in ids]


def deliveries_prune(*, now: datetime | None = None, batch_size: int = 1000, max_batches: int = 100) -> int:
    """Delete delivered and failed deliveries (and their attempts) older than the retention, oldest first, in
    batches (index `security_webhook_finished`). Returns how many deliveries went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.WEBHOOK_LOG_RETENTION_DAYS)
    removed = 0
    for _ in range(max_batches):
        ids = list(
            WebhookDelivery.objects.filter(state__in=(State.DELIVERED, State.FAILED), created_at__lt=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        with transaction.atomic():
            WebhookAttempt.objects.filter(delivery_id__in=ids).delete()
            removed += WebhookDelivery.objects.filter(pk__in=ids).delete()[0]
    return removed
