"""Bad input never crashes the API and never changes anything: a 4xx with `{"detail", "code", "fields"}`."""

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from security.models import AuditLog
from tests.api.conftest import api_client
from tickets.models import Attachment, Comment, Ticket, TicketEvent


def snapshot() -> tuple[int, ...]:
    return (
        Ticket.objects.count(),
        Comment.objects.count(),
        Attachment.objects.count(),
        TicketEvent.objects.count(),
        AuditLog.objects.count(),
    )


def assert_error(response, status: int, code: str, fields: Any = None) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", "code", "fields"}
    assert body["code"] == code
    if fields is not None:
        assert sorted(body["fields"]) == sorted(fields)
    return body


@pytest.fixture
def ticket(desk):  # type: ignore[no-untyped-def]
    return desk.ticket()


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        ('{"title": "x", ', "application/json", 400, "parse_error"),
        ("[1, 2]", "application/json", 400, "validation_failed"),
        ('"just a string"', "application/json", 400, "validation_failed"),
        ("null", "application/json", 400, "validation_failed"),
        ("title=x&category=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ("<ticket/>", "application/xml", 415, "unsupported_media_type"),
    ],
)
def test_malformed_bodies(desk, raw: str, content_type: str, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    before = snapshot()
    response = api_client(desk.agent).post("/api/v1/tickets/", data=raw, content_type=content_type)
    assert_error(response, status, code)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"title": 5, "category": "laptop"}, ["category"]),
        ({"title": ["a"], "category": 1}, ["title"]),
        ({"title": "x", "category": 1, "impact": "very"}, ["impact"]),
        ({"title": "x", "category": 2**70}, ["category"]),
        ({"title": "x", "category": -1}, ["category"]),
        ({"title": "x", "category": True}, ["category"]),
        ({"title": "nul \x00 byte", "category": 1}, ["title"]),
        ({"title": "x" * 201, "category": 1}, ["title"]),
        ({"category": 1}, ["title"]),
        ({"title": "x", "category": 1, "state": "closed"}, ["state"]),
        ({"title": "x", "category": 1, "number": "INC-1", "hack": 1}, ["number", "hack"]),
        ({"title": "x", "category": 999_999}, ["category"]),
        ({"title": "x", "category": 1, "requester": 999_999}, ["requester"]),
    ],
)
def test_wrong_types_and_unknown_fields_on_create(desk, body: dict, fields: list[str]) -> None:  # type: ignore[no-untyped-def]
    before = snapshot()
    response = api_client(desk.agent).post("/api/v1/tickets/", body, format="json")
    assert_error(response, 400, "validation_failed", fields)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["non_field_errors"]),
        ({"version": 1}, ["non_field_errors"]),
        ({"title": "renamed"}, ["title"]),
        ({"priority": 1}, ["reason"]),
        ({"priority": 9, "priority_reason": "x"}, ["priority"]),
        ({"priority_reason": "x"}, ["priority_reason"]),
        ({"impact": 1}, ["urgency"]),
        ({"assignee": "bo"}, ["assignee"]),
        ({"team": 999_999}, ["team"]),
    ],
)
def test_bad_updates(desk, ticket, body: dict, fields: list[str]) -> None:  # type: ignore[no-untyped-def]
    before = snapshot()
    response = api_client(desk.agent).patch(f"/api/v1/tickets/{ticket.number}/", body, format="json")
    assert_error(response, 400, "validation_failed", fields)
    assert snapshot() == before


def test_put_is_not_allowed(desk, ticket) -> None:  # type: ignore[no-untyped-def]
    response = api_client(desk.agent).put(f"/api/v1/tickets/{ticket.number}/", {"title": "x"}, format="json")
    assert_error(response, 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"state": "closed"}, 409, "invalid_transition"),
        ({"state": "assigned"}, 409, "needs_assignee"),
        ({"state": "cancelled"}, 400, "validation_failed"),
        ({"state": "pending"}, 400, "validation_failed"),
        ({"state": "flying"}, 400, "validation_failed"),
        ({"state": "pending", "pending_reason": "lunch"}, 400, "validation_failed"),
        ({"state": "resolved", "version": 99}, 409, "stale"),
    ],
)
def test_invalid_transitions(desk, ticket, body: dict, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    before = snapshot()
    response = api_client(desk.agent).post(f"/api/v1/tickets/{ticket.number}/transition/", body, format="json")
    assert_error(response, status, code)
    assert snapshot() == before


def test_comment_on_a_closed_ticket_is_a_conflict(desk, ticket) -> None:  # type: ignore[no-untyped-def]
    client = api_client(desk.agent)
    url = f"/api/v1/tickets/{ticket.number}/"
    client.post(f"{url}transition/", {"state": "resolved"}, format="json")
    client.post(f"{url}transition/", {"state": "closed"}, format="json")
    before = snapshot()
    response = client.post(f"{url}comments/", {"body": "late"}, format="json")
    assert_error(response, 409, "ticket_final")
    assert snapshot() == before


def test_huge_json_body_is_413_before_parsing(desk) -> None:  # type: ignore[no-untyped-def]
    before = snapshot()
    body = '{"title": "x", "category": 1, "description": "' + "a" * 300_000 + '"}'
    response = api_client(desk.agent).post("/api/v1/tickets/", data=body, content_type="application/json")
    assert_error(response, 413, "payload_too_large")
    assert snapshot() == before


def test_overlong_description_under_the_body_limit_is_a_field_error(desk, settings) -> None:  # type: ignore[no-untyped-def]
    response = api_client(desk.agent).post(
        "/api/v1/tickets/", {"title": "x", "category": 1, "description": "a" * 50_001}, format="json"
    )
    assert_error(response, 400, "validation_failed", ["description"])


def test_huge_upload_is_413(desk, ticket, settings) -> None:  # type: ignore[no-untyped-def]
    settings.TICKETS_ATTACHMENT_MAX_BYTES = 1024
    before = snapshot()
    upload = SimpleUploadedFile("big.txt", b"a" * 200_000, content_type="text/plain")
    response = api_client(desk.agent).post(
        f"/api/v1/tickets/{ticket.number}/attachments/", {"file": upload}, format="multipart"
    )
    assert_error(response, 413, "payload_too_large")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("run.exe", b"MZ\x90\x00", "This file type is not allowed."),
        ("fake.png", b"not a png at all", "The file's content does not match its type."),
        ("empty.txt", b"", None),
    ],
)
def test_uploads_get_the_pages_checks(desk, ticket, name: str, content: bytes, message: str | None) -> None:  # type: ignore[no-untyped-def]
    before = snapshot()
    upload = SimpleUploadedFile(name, content, content_type="application/octet-stream")
    response = api_client(desk.agent).post(
        f"/api/v1/tickets/{ticket.number}/attachments/", {"file": upload}, format="multipart"
    )
    body = assert_error(response, 400, "validation_failed")
    if message:
        assert body["detail"] == message
    assert snapshot() == before


def test_upload_without_a_file_or_with_extra_fields(desk, ticket) -> None:  # type: ignore[no-untyped-def]
    client = api_client(desk.agent)
    url = f"/api/v1/tickets/{ticket.number}/attachments/"
    assert_error(client.post(url, {"is_internal": "false"}, format="multipart"), 400, "validation_failed", ["file"])
    assert_error(
        client.post(url, {"file": SimpleUploadedFile("a.txt", b"hi"), "owner": "x"}, format="multipart"),
        400,
        "validation_failed",
        ["owner"],
    )
    assert_error(client.post(url, {"file": "x"}, format="json"), 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("?state=flying", ["state"]),
        ("?priority=9", ["priority"]),
        ("?ordering=password", ["ordering"]),
        ("?page_size=1000", ["page_size"]),
        ("?page_size=0", ["page_size"]),
        ("?created_from=yesterday", ["created_from"]),
        ("?cursor=garbage", ["cursor"]),
        ("?team=abc", ["team"]),
        ("?assignee=everyone", ["assignee"]),
        ("?limit=5&offset=10", ["limit", "offset"]),
        ("?q=" + "x" * 201, ["q"]),
    ],
)
def test_bad_list_parameters(desk, query: str, fields: list[str]) -> None:  # type: ignore[no-untyped-def]
    response = api_client(desk.agent).get(f"/api/v1/tickets/{query}")
    assert_error(response, 400, "validation_failed", fields)


def test_a_cursor_for_another_ordering_is_refused(desk) -> None:  # type: ignore[no-untyped-def]
    client = api_client(desk.agent)
    for number in range(3):
        desk.ticket(title=f"T{number}")
    cursor = client.get("/api/v1/tickets/?page_size=1").json()["next_cursor"]
    response = client.get(f"/api/v1/tickets/?page_size=1&ordering=priority&cursor={cursor}")
    assert_error(response, 400, "validation_failed", ["cursor"])


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/tickets/INC-999999/",
        "/api/v1/tickets/not%20a%20number/",
        "/api/v1/tickets/INC-999999/events/",
        "/api/v1/attachments/99999999999999999999/download/",
        "/api/v1/attachments/-1/download/",
        "/api/v1/categories/999999/",
        "/api/v1/users/999999/",
        "/api/v1/no-such-endpoint/",
    ],
)
def test_missing_objects_and_routes_are_json_404s(desk, url: str) -> None:  # type: ignore[no-untyped-def]
    assert_error(api_client(desk.agent).get(url), 404, "not_found")
