"""Failed sign-in throttling, per account and per client address, counted in the cache (Redis).

Each counter lives in a fixed window that opens with its first failure (`SECURITY_LOGIN_WINDOW_SECONDS`). Once a
counter reaches its limit, sign-in is refused before the password is checked until the window closes; refused
attempts are not counted, so a locked-out person is let in again on time. Counters are keyed by the account named in
the form whether or not it exists, so the answer never reveals which e-mail addresses have accounts. Keys hold a
sha256 of the lowercased e-mail address, never the address itself.

`cache.add` + `cache.incr` keep the count exact under concurrent attempts (Redis INCR is atomic and keeps the
key's expiry).
"""

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

logger = logging.getLogger(__name__)

KEY_PREFIX = "security:login-failures"


def client_ip(request: HttpRequest | None) -> str:
    """The client's address. `X-Forwarded-For` is trusted only when a proxy we run sets it: then its right-most
    entry is the address that proxy saw (entries further left come from the client and can be forged)."""
    if request is None:
        return "unknown"
    if settings.SECURITY_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def account_digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class _Counter:
    """One failure counter and the instant its window closes (stored beside it, for the "try again in" message)."""

    scope: str
    digest: str
    limit: int

    @property
    def count_key(self) -> str:
        return f"{KEY_PREFIX}:{self.scope}:{self.digest}"

    @property
    def until_key(self) -> str:
        return f"{self.count_key}:until"


class LoginThrottle:
    """Throttle for one sign-in attempt: `email` as typed in the form, the address of `request`."""

    def __init__(self, *, email: str, request: HttpRequest | None) -> None:
        self.ip = client_ip(request)
        self.account = _Counter("account", account_digest(email), settings.SECURITY_LOGIN_MAX_FAILURES_PER_ACCOUNT)
        self.address = _Counter("ip", _digest(self.ip), settings.SECURITY_LOGIN_MAX_FAILURES_PER_IP)
        self.window = settings.SECURITY_LOGIN_WINDOW_SECONDS

    def retry_after_seconds(self) -> int | None:
        """Seconds until sign-in is allowed again, or None when neither counter has reached its limit."""
        counters = (self.account, self.address)
        values = cache.get_many([key for counter in counters for key in (counter.count_key, counter.until_key)])
        now = time.time()
        waits = [
            max(1, math.ceil(float(values.get(counter.until_key, now + self.window)) - now))
            for counter in counters
            if int(values.get(counter.count_key, 0)) >= counter.limit
        ]
        if not waits:
            return None
        logger.warning(
            "security.login_throttled",
            extra={"account": self.account.digest[:16], "ip": self.ip, "retry_after_seconds": max(waits)},
        )
        return max(waits)

    def record_failure(self) -> None:
        account_failures = self._increment(self.account)
        ip_failures = self._increment(self.address)
        logger.warning(
            "security.login_failed",
            extra={
                "account": self.account.digest[:16],
                "ip": self.ip,
                "account_failures": account_failures,
                "ip_failures": ip_failures,
            },
        )

    def record_success(self) -> None:
        """A successful sign-in forgives the account's failures (not the address's: it may be guessing others)."""
        cache.delete_many([self.account.count_key, self.account.until_key])

    def _increment(self, counter: _Counter) -> int:
        count, opened = window_increment(counter.count_key, timeout=self.window)
        if opened:  # this failure opened the window: remember when it closes
            cache.set(counter.until_key, time.time() + self.window, timeout=self.window)
        return count


def window_increment(key: str, *, timeout: int) -> tuple[int, bool]:
    """Count one more in the fixed-window counter at `key`, which expires `timeout` seconds after it was opened.
    Returns the new count and whether this call opened the window. An open window costs one `incr`; only the first
    call of a window (or one racing its expiry) also adds the key."""
    try:
        return cache.incr(key), False
    except ValueError:  # no window yet (or it just expired)
        pass
    if cache.add(key, 1, timeout=timeout):
        return 1, True
    return cache.incr(key), False  # another request opened it between our incr and add


def throttled_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed sign-in attempts. Try again in {minutes} {unit}."
