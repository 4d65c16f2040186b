"""Webhook signatures: `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

Pure Python with no Django import, so a receiver can copy `verify_signature` as it is (docs/webhooks.md shows it in a
complete receiver). The server signs with `sign`; the tests verify with `verify_signature`.
"""

import hashlib
import hmac
import time

DEFAULT_TOLERANCE_SECONDS = 300


def sign(*, secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Signature` header value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def parse_signature(header: str) -> tuple[int | None, list[str]]:
    """`(timestamp, [v1 signatures])` from the header; `(None, [])` when it is malformed."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    return timestamp, signatures


def verify_signature(
    *, secret: str, header: str, body: bytes, tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None
) -> bool:
    """True when `header` signs exactly `body` with `secret`, and was made at most `tolerance` seconds from now.

    The timestamp is inside the signed text, so an attacker cannot refresh it on a captured request: a replay older
    than the tolerance fails here. Replays within the tolerance are caught by remembering `X-Webhook-Id` values for
    at least that long (see docs/webhooks.md).
    """
    timestamp, signatures = parse_signature(header)
    if timestamp is None or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret=secret, body=body, timestamp=timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
