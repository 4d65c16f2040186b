"""API rate limits: DRF throttles per token, per user and per anonymous client, counted in the Redis cache, and the
`RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` headers on every API response (docs/api-tokens.md).

Each throttle counts requests in fixed windows (`<n>/<period>` from `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`):
the counter key names the window, `cache.add` opens it and Redis `INCR` counts atomically, so concurrent requests
are never lost the way DRF's read-modify-write history list can lose them. A request passes when every throttle that
applies to it has room. The headers describe the throttle with the least room left (the one that will refuse
first); a `429` carries `Retry-After` (seconds until that window closes) and the standard error body.

Requests refused before throttling runs (401, 403) are not counted; `RateLimitHeadersMiddleware` still reports the
current counters on them, read without spending anything.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from security.scopes import is_token_request
from security.throttle import client_ip, window_increment

KEY_PREFIX = "security:ratelimit"
_STATE_ATTR = "_itsm_rate_limits"


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


def _record(request: Any, state: RateLimitState) -> None:
    """Keep the state on the Django request (DRF's `Request` wraps it) for the middleware."""
    http_request = getattr(request, "_request", request)
    states: list[RateLimitState] = getattr(http_request, _STATE_ATTR, None) or []
    states.append(state)
    setattr(http_request, _STATE_ATTR, states)


def tightest(states: list[RateLimitState]) -> RateLimitState | None:
    """The throttle that refuses first: least remaining, then the longest wait."""
    if not states:
        return None
    return min(states, key=lambda state: (state.remaining, -state.reset_seconds))


_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """`"600/minute"` → (600, 60). Periods as DRF reads them: the first letter of second, minute, hour or day."""
    if not rate:
        return None
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[0]]


class WindowRateThrottle(BaseThrottle):
    """A fixed-window counter per `scope` and identity. Subclasses say whom a request counts against."""

    scope = ""

    def __init__(self) -> None:
        # Read per request, not at import time, so a changed setting (or a test's override) applies at once.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        parsed = parse_rate(str(rate) if rate else None)
        self.num_requests, self.duration = parsed if parsed else (0, 0)
        self.reset_seconds = 1

    def get_ident_key(self, request: Any) -> str | None:
        raise NotImplementedError

    def _window(self, ident: str) -> tuple[str, int]:
        """This window's cache key for `ident`, and the seconds until the window closes."""
        now = time.time()
        index = math.floor(now / self.duration)
        reset = max(1, math.ceil((index + 1) * self.duration - now))
        return f"{KEY_PREFIX}:{self.scope}:{ident}:{index}", reset

    def allow_request(self, request: Any, view: Any) -> bool:
        if not self.duration:
            return True
        ident = self.get_ident_key(request)
        if ident is None:
            return True
        window_key, reset = self._window(ident)
        # The key outlives its window by a little, so a slow request never increments a vanished key.
        count, _opened = window_increment(window_key, timeout=self.duration + 5)
        self.reset_seconds = reset
        _record(request, RateLimitState(self.num_requests, max(0, self.num_requests - count), reset))
        return count <= self.num_requests

    def peek(self, request: Any) -> RateLimitState | None:
        """The current counter without counting this request (for answers refused before throttling ran)."""
        if not self.duration:
            return None
        ident = self.get_ident_key(request)
        if ident is None:
            return None
        window_key, reset = self._window(ident)
        count = int(cache.get(window_key) or 0)
        return RateLimitState(self.num_requests, max(0, self.num_requests - count), reset)

    def wait(self) -> float | None:
        return float(self.reset_seconds)


def _authenticated_user_pk(request: Any) -> int | None:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return int(user.pk)
    return None


class TokenRateThrottle(WindowRateThrottle):
    """Per API token: one integration cannot use up its user's whole allowance alone."""

    scope = "token"

    def get_ident_key(self, request: Any) -> str | None:
        if not is_token_request(request):
            return None
        return str(request.auth.pk)


class UserRateThrottle(WindowRateThrottle):
    """Per user, over all their tokens and their browser session together."""

    scope = "user"

    def get_ident_key(self, request: Any) -> str | None:
        pk = _authenticated_user_pk(request)
        return None if pk is None else str(pk)


class AnonRateThrottle(WindowRateThrottle):
    """Per client address for requests without a user, on endpoints open without signing in (the API schema and
    its documentation); everything else refuses them with a 401 before throttling runs."""

    scope = "anon"

    def get_ident_key(self, request: Any) -> str | None:
        if _authenticated_user_pk(request) is not None:
            return None
        # The same notion of "client address" as sign-in throttling (X-Forwarded-For only behind our own proxy).
        return client_ip(getattr(request, "_request", request))


class RateLimitHeadersMiddleware:
    """Adds the `RateLimit-*` headers to every response under `/api/`.

    When the throttles ran, their counts are reported; when the request was refused before they ran (authentication
    or permission failed), the counters of whoever the request is are read without counting it.
    """

    api_prefix = "/api/"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if not request.path.startswith(self.api_prefix):
            return response
        states: list[RateLimitState] = getattr(request, _STATE_ATTR, None) or []
        if not states:
            states = self._peek(request)
        state = tightest(states)
        if state is not None:
            for name, value in state.headers().items():
                response[name] = value
        return response

    @staticmethod
    def _peek(request: HttpRequest) -> list[RateLimitState]:
        states: list[RateLimitState] = []
        for throttle_class in api_settings.DEFAULT_THROTTLE_CLASSES:
            if isinstance(throttle_class, type) and issubclass(throttle_class, WindowRateThrottle):
                throttle = throttle_class()
                state = throttle.peek(request)
                if state is not None:
                    states.append(state)
        return states
