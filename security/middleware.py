"""Request middleware of the directory: each signed-in user sees datetimes in their own zone."""

import logging
from collections.abc import Callable
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils import timezone

logger = logging.getLogger(__name__)


@lru_cache(maxsize=512)
def zone_for(name: str) -> ZoneInfo | None:
    """The IANA zone called `name`, or None when it is not one (a typo, an empty value, a path-like string)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        # Cached, so logged once per process and name rather than on every request.
        logger.warning("security.unknown_time_zone", extra={"time_zone": name[:64]})
        return None


def user_zone(user: object) -> ZoneInfo:
    """The zone a user's times are shown in: their `time_zone`, or UTC when it is missing or unknown."""
    return zone_for(str(getattr(user, "time_zone", "") or "")) or ZoneInfo("UTC")


class TimezoneMiddleware:
    """Activate the signed-in user's `time_zone` for the request, so templates and forms show local times.

    Stored instants stay UTC. An unknown zone name falls back to the default zone (UTC) instead of failing the page.
    Runs after `AuthenticationMiddleware`; `request.user` is loaded once and cached for the view.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        user = getattr(request, "user", None)
        zone = None
        if user is not None and user.is_authenticated:
            zone = zone_for(str(getattr(user, "time_zone", "") or ""))
        if zone is not None:
            timezone.activate(zone)
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
