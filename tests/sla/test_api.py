"""`/api/v1/calendars/{id}/due/` and `/business-seconds/`: answers, refusals, who may call, and query counts."""

from datetime import date, time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from sla import services
from sla.models import Calendar

pytestmark = pytest.mark.django_db

API_QUERIES = 6


@pytest.fixture
def london() -> Calendar:
    return services.calendar_create(
        actor=None,
        name="London office",
        time_zone="Europe/London",
        ranges=[(day, time(9), time(17)) for day in range(5)],
    )


def client_for(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def due_url(calendar_id: int) -> str:
    return f"/api/v1/calendars/{calendar_id}/due/"


def seconds_url(calendar_id: int) -> str:
    return f"/api/v1/calendars/{calendar_id}/business-seconds/"


@pytest.mark.parametrize("role", ["agent", "lead", "manager", "security_officer", "admin"])
def test_desk_users_and_admins_get_the_due_instant(desk, london, role) -> None:  # type: ignore[no-untyped-def]
    response = client_for(getattr(desk, role)).get(
        due_url(london.pk), {"start": "2026-03-27T16:00:00+00:00", "seconds": 2 * 3600}
    )

    assert response.status_code == 200
    # Friday 16:00 GMT: 1 h on Friday, then Monday 30 March 09:00 BST = 08:00 UTC, + 1 h
    assert response.json() == {"due_at": "2026-03-30T09:00:00Z"}


def test_business_seconds(desk, london) -> None:  # type: ignore[no-untyped-def]
    response = client_for(desk.agent).get(
        seconds_url(london.pk), {"start": "2026-03-27T16:00:00Z", "end": "2026-03-30T10:00:00+01:00"}
    )

    assert response.status_code == 200
    assert response.json() == {"seconds": 2 * 3600}


def test_an_unencoded_plus_in_the_offset_is_understood(desk, london) -> None:  # type: ignore[no-untyped-def]
    response = client_for(desk.agent).get(f"{due_url(london.pk)}?start=2026-03-27T17:00:00+01:00&seconds=3600")

    assert response.status_code == 200
    # 16:00 GMT on Friday 27 March (before the clocks change) + 1 h
    assert response.json() == {"due_at": "2026-03-27T17:00:00Z"}


def test_24x7_calendar(desk) -> None:  # type: ignore[no-untyped-def]
    builtin = Calendar.objects.get(is_24x7=True)
    response = client_for(desk.agent).get(due_url(builtin.pk), {"start": "2026-03-28T12:00:00Z", "seconds": 86400})
    assert response.json() == {"due_at": "2026-03-29T12:00:00Z"}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("due", {"start": "2026-03-27T16:00:00", "seconds": 60}, "start"),  # naive
        ("due", {"start": "yesterday", "seconds": 60}, "start"),
        ("due", {"seconds": 60}, "start"),
        ("due", {"start": "2026-03-27T16:00:00Z", "seconds": -1}, "seconds"),
        ("due", {"start": "2026-03-27T16:00:00Z", "seconds": 10**30}, "seconds"),
        ("due", {"start": "2026-03-27T16:00:00Z", "seconds": "lots"}, "seconds"),
        ("due", {"start": "9999-12-31T23:59:59Z", "seconds": 60}, "start"),
        ("business-seconds", {"start": "2026-03-30T10:00:00Z", "end": "2026-03-27T16:00:00Z"}, "end"),
        ("business-seconds", {"start": "2026-03-30T10:00:00Z", "end": "2036-03-27T16:00:00Z"}, "end"),
        ("business-seconds", {"start": "2026-03-30T10:00:00Z", "end": "2026-03-31T10:00:00"}, "end"),
    ],
)
def test_bad_parameters_are_400_with_a_reason(desk, london, path, params, field) -> None:  # type: ignore[no-untyped-def]
    response = client_for(desk.agent).get(f"/api/v1/calendars/{london.pk}/{path}/", params)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_failed"
    assert field in body["fields"]


def test_naive_start_message_says_what_to_do(desk, london) -> None:  # type: ignore[no-untyped-def]
    response = client_for(desk.agent).get(due_url(london.pk), {"start": "2026-03-27T16:00:00", "seconds": 1})
    assert "offset" in response.json()["fields"]["start"][0]


def test_a_calendar_without_working_time_is_a_400(desk) -> None:  # type: ignore[no-untyped-def]
    empty = services.calendar_create(actor=None, name="Empty", time_zone="UTC")
    response = client_for(desk.agent).get(due_url(empty.pk), {"start": "2026-03-27T16:00:00Z", "seconds": 1})
    assert response.status_code == 400
    assert response.json()["code"] == "no_working_time"


def test_unknown_calendar_is_404(desk) -> None:  # type: ignore[no-untyped-def]
    response = client_for(desk.agent).get(due_url(999_999), {"start": "2026-03-27T16:00:00Z", "seconds": 1})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("role", ["requester", "other_requester"])
def test_requesters_get_404(desk, london, role) -> None:  # type: ignore[no-untyped-def]
    response = client_for(getattr(desk, role)).get(due_url(london.pk), {"start": "2026-03-27T16:00:00Z", "seconds": 1})
    assert response.status_code == 404


def test_anonymous_is_refused(london) -> None:  # type: ignore[no-untyped-def]
    response = Client().get(due_url(london.pk), {"start": "2026-03-27T16:00:00Z", "seconds": 1})
    assert response.status_code in (401, 403)


def test_query_count_does_not_grow_with_ranges_and_holidays(desk) -> None:  # type: ignore[no-untyped-def]
    small = services.calendar_create(actor=None, name="Small", time_zone="UTC", ranges=[(0, time(9), time(17))])
    large = services.calendar_create(
        actor=None,
        name="Large",
        time_zone="UTC",
        ranges=[(day, time(hour), time(hour, 30)) for day in range(7) for hour in range(24)],
        holidays=[(date(2026, 1, day), f"day {day}") for day in range(1, 29)],
    )
    client = client_for(desk.agent)

    counts = []
    for calendar in (small, large):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(due_url(calendar.pk), {"start": "2026-03-27T16:00:00Z", "seconds": 60})
        assert response.status_code == 200
        counts.append(len(captured))

    # session, user, memberships (desk check), calendar, ranges, holidays
    assert counts == [API_QUERIES, API_QUERIES]
