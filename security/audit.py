"""The audit trail: append-only, hash-chained rows (see `AuditLog`).

Writers serialise on one transaction-scoped advisory lock, read the chain head, and insert the next row. The lock is
held until the surrounding transaction ends, so two concurrent changes cannot both extend the same head; the unique
constraints on `seq` and `prev_hash` back this up in the database itself. Services call `audit_record` as their last
write, which keeps the time the lock is held short.
"""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from security.models import AuditLog, User

GENESIS_HASH = "0" * 64
# Arbitrary constant naming the chain lock among the database's advisory locks.
AUDIT_CHAIN_LOCK_KEY = 0x17_5E_A0_D1


def to_json(value: Any) -> Any:
    """Make `value` JSON-native (datetimes, decimals, UUIDs to strings) so it survives a jsonb round trip unchanged."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def canonical_payload(
    *,
    seq: int,
    at: datetime,
    actor_id: int | None,
    action: str,
    object_type: str,
    object_id: str,
    before: Any,
    after: Any,
    prev_hash: str,
) -> bytes:
    payload = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_id": actor_id,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "before": before,
        "after": after,
        "prev_hash": prev_hash,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(row: AuditLog) -> str:
    payload = canonical_payload(
        seq=row.seq,
        at=row.at,
        actor_id=row.actor_id,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        before=row.before,
        after=row.after,
        prev_hash=row.prev_hash,
    )
    return hashlib.sha256(row.prev_hash.encode() + payload).hexdigest()


def object_label(obj: Model) -> tuple[str, str, str]:
    return obj._meta.label_lower, str(obj.pk), str(obj)[:300]


@transaction.atomic
def audit_record(
    *,
    actor: User | None,
    action: str,
    obj: Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one row to the audit chain, inside the caller's transaction.

    Locks: takes the chain's advisory lock until the surrounding transaction ends. Never updates existing rows.
    """
    if obj is not None:
        object_type, object_id, object_repr = object_label(obj)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK_KEY])
    head = AuditLog.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    actor_id = actor.pk if actor is not None and actor.pk is not None else None
    row = AuditLog(
        seq=seq,
        at=timezone.now(),
        actor_id=actor_id,
        actor_label=str(actor)[:300] if actor is not None else "system",
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr[:300],
        before=to_json(before) if before is not None else None,
        after=to_json(after) if after is not None else None,
        prev_hash=prev_hash,
    )
    row.hash = row_hash(row)
    row.save(force_insert=True)
    return row


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


def audit_verify(*, batch_size: int = 5000) -> Iterator[int | ChainBreak]:
    """Walk the chain in order. Yields the number of rows checked so far after each batch, and a `ChainBreak` for
    the first broken link (then stops). Streams with keyset batches, so memory stays flat at any size."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    last_seq = 0
    while True:
        batch = list(AuditLog.objects.filter(seq__gt=last_seq).order_by("seq")[:batch_size])
        if not batch:
            return
        for row in batch:
            if row.seq != expected_seq:
                yield ChainBreak(expected_seq, f"row {expected_seq} is missing (next row is {row.seq})")
                return
            if row.prev_hash != expected_prev:
                yield ChainBreak(row.seq, "prev_hash does not match the hash of the row before it")
                return
            if row_hash(row) != row.hash:
                yield ChainBreak(row.seq, "row content does not match its hash (the row was altered)")
                return
            expected_prev = row.hash
            expected_seq += 1
            checked += 1
            last_seq = row.seq
        yield checked


def snapshot(obj: Model, fields: tuple[str, ...]) -> dict[str, Any]:
    """The before/after picture of `obj` for an audit row: the named fields, foreign keys as ids."""
    data: dict[str, Any] = {}
    for name in fields:
        field = obj._meta.get_field(name)
        attname = getattr(field, "attname", name)
        data[name] = getattr(obj, attname)
    return to_json(data)
