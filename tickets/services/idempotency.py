"""`Idempotency-Key` bookkeeping for API POSTs (issue 6): claim a key, store the response, clean up old keys.

The claim is an `INSERT … ON CONFLICT DO NOTHING` followed by `SELECT … FOR UPDATE`, inside the request's own
transaction. A concurrent request with the same key blocks on the insert until the first one commits (then sees its
stored response and replays it) or rolls back (then it inserts the key itself and does the work). So one key makes at
most one ticket, whatever the timing.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from itsm.errors import DomainError
from security.models import User
from tickets.models import IdempotencyKey

logger = logging.getLogger(__name__)


class IdempotencyKeyReused(DomainError):
    status_code = 422
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class Replay:
    status: int
    body: Any


def idempotency_claim(*, user: User, key: str, fingerprint: str, method: str, path: str) -> IdempotencyKey:
    """Claim `key` for this request inside the caller's transaction (which must be open) and lock its row.

    Returns the row: `response_status` is None when this request is the first to use the key (it must do the work
    and call `idempotency_store`), else it holds the stored response to replay. Raises `IdempotencyKeyReused` when
    the key was used for a different request."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("idempotency_claim needs the request's transaction")
    IdempotencyKey.objects.bulk_create(
        [IdempotencyKey(user=user, key=key, fingerprint=fingerprint, method=method, path=path[:500])],
        ignore_conflicts=True,
    )
    row = IdempotencyKey.objects.select_for_update().get(user=user, key=key)
    if row.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request. Use a new key for a new request.",
            fields={"Idempotency-Key": ["Already used with another method, path or body."]},
        )
    return row


def idempotency_store(*, row: IdempotencyKey, status: int, body: Any) -> None:
    row.response_status = status
    row.response_body = body
    row.save(update_fields=["response_status", "response_body"])


def idempotency_cleanup(*, batch_size: int = 5000) -> int:
    """Delete keys older than `API_IDEMPOTENCY_KEY_TTL_SECONDS`, in batches; returns how many went."""
    cutoff = timezone.now() - timedelta(seconds=settings.API_IDEMPOTENCY_KEY_TTL_SECONDS)
    deleted = 0
    while True:
        ids = list(IdempotencyKey.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        deleted += IdempotencyKey.objects.filter(pk__in=ids).delete()[0]
    if deleted:
        logger.info("tickets.idempotency_keys_deleted", extra={"count": deleted})
    return deleted
