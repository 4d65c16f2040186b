"""API rate limits against the real Redis cache: per token, per user over all their tokens and their session, and
per anonymous address; the RateLimit-* headers on every API response and Retry-After on a 429. Time is frozen."""

from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.core.cache import cache

from security.ratelimit import KEY_PREFIX, RateLimitState, parse_rate, tightest
from sla import services as sla_services
from tests.token_support import bearer, make_token
from tests.web.conftest import signed_in

# 10 s into a minute: every one-minute window closes in 50 s.
T0 = datetime(2026, 3, 2, 10, 0, 10, tzinfo=UTC)
PARAMS = {"start": "2026-03-27T16:00:00Z", "seconds": 60}
THROTTLED = {"detail": "Request was throttled. Expected available in 50 seconds.", "code": "throttled", "fields": {}}


@pytest.fixture
def rates(settings):  # type: ignore[no-untyped-def]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"token": "3/minute", "user": "5/minute", "anon": "2/minute"},
    }


@pytest.fixture
def url(db) -> str:  # type: ignore[no-untyped-def]
    calendar = sla_services.calendar_create(
        actor=None, name="Office", time_zone="UTC", ranges=[(d, time(9), time(17)) for d in range(5)]
    )
    return f"/api/v1/calendars/{calendar.pk}/due/"


def limits(response) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    return response["RateLimit-Limit"], response["RateLimit-Remaining"], response["RateLimit-Reset"]


def test_a_token_counts_down_then_gets_429_with_retry_after(desk, rates, url):
    client = bearer(make_token(desk.agent, "sla:read").secret)

    with time_machine.travel(T0, tick=False):
        answers = [client.get(url, PARAMS) for _ in range(4)]

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [limits(r) for r in answers] == [("3", "2", "50"), ("3", "1", "50"), ("3", "0", "50"), ("3", "0", "50")]
    assert answers[3].json() == THROTTLED
    assert answers[3]["Retry-After"] == "50"
    assert "Retry-After" not in answers[2]


def test_the_counter_lives_in_redis_and_a_new_window_starts_afresh(desk, rates, url):
    created = make_token(desk.agent, "sla:read")
    client = bearer(created.secret)
    with time_machine.travel(T0, tick=False):
        for _ in range(4):
            client.get(url, PARAMS)
        window = int(T0.timestamp()) // 60
        assert cache.get(f"{KEY_PREFIX}:token:{created.token.pk}:{window}") == 4
        assert cache.get(f"{KEY_PREFIX}:user:{desk.agent.pk}:{window}") == 4

    with time_machine.travel(T0 + timedelta(seconds=50), tick=False):
        response = client.get(url, PARAMS)

    assert response.status_code == 200
    assert limits(response) == ("3", "2", "60")


def test_the_user_limit_spans_all_their_tokens_and_their_session(desk, rates, url):
    first = bearer(make_token(desk.agent, "sla:read").secret)
    second = bearer(make_token(desk.agent, "sla:read").secret)
    session = signed_in(desk.agent)
    other_user = bearer(make_token(desk.agent2, "sla:read").secret)

    with time_machine.travel(T0, tick=False):
        statuses = [client.get(url, PARAMS).status_code for client in (first, first, first, second, session)]
        refused = second.get(url, PARAMS)
        session_refused = session.get(url, PARAMS)
        unaffected = other_user.get(url, PARAMS)

    assert statuses == [200, 200, 200, 200, 200]
    assert (refused.status_code, limits(refused), refused["Retry-After"]) == (429, ("5", "0", "50"), "50")
    assert session_refused.status_code == 429
    assert (unaffected.status_code, limits(unaffected)) == (200, ("3", "2", "50"))


def test_a_session_request_reports_the_user_limit(desk, rates, url):
    with time_machine.travel(T0, tick=False):
        response = signed_in(desk.agent).get(url, PARAMS)

    assert response.status_code == 200
    assert limits(response) == ("5", "4", "50")


def test_refused_requests_carry_the_headers_without_spending_the_allowance(desk, rates, url):
    no_scope = bearer(make_token(desk.agent, "tickets:read").secret)
    with time_machine.travel(T0, tick=False):
        forbidden = [no_scope.get(url, PARAMS) for _ in range(3)]
        unauthenticated = [bearer("itsm_deadbeef_" + "A" * 40).get(url, PARAMS) for _ in range(3)]
        anonymous = bearer("").get(url, PARAMS, HTTP_AUTHORIZATION="")

    assert [r.status_code for r in forbidden] == [403, 403, 403]
    # Refused before throttling ran: the tightest limit (the token's) is shown, untouched.
    assert [limits(r) for r in forbidden] == [("3", "3", "50")] * 3
    assert [r.status_code for r in unauthenticated] == [401, 401, 401]
    assert [limits(r) for r in unauthenticated] == [("2", "2", "50")] * 3
    assert (anonymous.status_code, limits(anonymous)) == (401, ("2", "2", "50"))


def test_pages_outside_the_api_get_no_rate_limit_headers(desk, rates):
    response = signed_in(desk.agent).get("/portal/")

    assert response.status_code == 200
    assert "RateLimit-Limit" not in response


@pytest.mark.parametrize(
    ("rate", "parsed"), [("600/minute", (600, 60)), ("10/s", (10, 1)), ("5/hour", (5, 3600)), ("1/day", (1, 86400))]
)
def test_rates_are_read_like_drf_reads_them(rate, parsed):
    assert parse_rate(rate) == parsed


def test_the_headers_describe_the_limit_that_refuses_first():
    token, user = RateLimitState(600, 10, 30), RateLimitState(1200, 10, 45)

    assert tightest([token, user]) == user
    assert tightest([RateLimitState(600, 3, 30), user]) == RateLimitState(600, 3, 30)
    assert tightest([]) is None


def test_the_default_rates_are_the_documented_ones():
    from itsm import settings as project_settings  # the module's values, not this test's overrides

    assert project_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] == {
        "token": "600/minute",
        "user": "1200/minute",
        "anon": "60/minute",
    }
