"""`Idempotency-Key` on API POSTs: a retry replays the first response and acts once, even when two requests with the
same key run at the same time (two threads, two database connections, committed transactions)."""

import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from itsm.events import subscribe, unsubscribe
from tests.api.conftest import api_client
from tests.web.conftest import png
from tickets.events import TicketCreated
from tickets.models import Attachment, Comment, IdempotencyKey, Ticket
from tickets.services.idempotency import idempotency_cleanup
from tickets.tasks import idempotency_cleanup_task


def create(client, key: str | None, title: str = "Printer on fire", category: int | None = None):  # type: ignore[no-untyped-def]
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post("/api/v1/tickets/", {"title": title, "category": category}, format="json", **headers)


def test_a_retried_create_returns_the_first_result_and_makes_no_second_ticket(desk) -> None:  # type: ignore[no-untyped-def]
    client = api_client(desk.agent)

    first = create(client, "4f1c-create-1", category=desk.laptop.pk)
    retry = create(client, "4f1c-create-1", category=desk.laptop.pk)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert list(Ticket.objects.values_list("number", flat=True)) == [first.json()["number"]]
    key = IdempotencyKey.objects.get()
    assert (key.user_id, key.key, key.method, key.path, key.response_status) == (
        desk.agent.pk,
        "4f1c-create-1",
        "POST",
        "/api/v1/tickets/",
        201,
    )


def test_without_a_key_every_post_acts(desk) -> None:  # type: ignore[no-untyped-def]
    client = api_client(desk.agent)
    create(client, None, category=desk.laptop.pk)
    create(client, None, category=desk.laptop.pk)
    assert Ticket.objects.count() == 2
    assert IdempotencyKey.objects.count() == 0


def test_keys_belong_to_their_user(desk) -> None:  # type: ignore[no-untyped-def]
    create(api_client(desk.agent), "shared-key", category=desk.laptop.pk)
    create(api_client(desk.agent2), "shared-key", category=desk.laptop.pk)
    assert Ticket.objects.count() == 2


def test_a_key_reused_with_another_body_is_refused_and_changes_nothing(desk) -> None:  # type: ignore[no-untyped-def]
    client = api_client(desk.agent)
    create(client, "key-7", category=desk.laptop.pk)

    response = create(client, "key-7", title="Something else", category=desk.laptop.pk)

    assert response.status_code == 422
    assert response.json() == {
        "detail": "This Idempotency-Key was already used with a different request. Use a new key for a new request.",
        "code": "idempotency_key_reused",
        "fields": {"Idempotency-Key": ["Already used with another method, path or body."]},
    }
    assert Ticket.objects.count() == 1


def test_a_key_reused_on_another_endpoint_is_refused(desk) -> None:  # type: ignore[no-untyped-def]
    client = api_client(desk.agent)
    ticket = Ticket.objects.get(number=create(client, "key-8", category=desk.laptop.pk).json()["number"])

    response = client.post(
        f"/api/v1/tickets/{ticket.number}/comments/", {"body": "hi"}, format="json", HTTP_IDEMPOTENCY_KEY="key-8"
    )

    assert response.status_code == 422
    assert Comment.objects.count() == 0


def test_a_failed_request_does_not_burn_its_key(desk) -> None:  # type: ignore[no-untyped-def]
    client = api_client(desk.agent)

    refused = create(client, "key-9", category=999_999)
    accepted = create(client, "key-9", category=999_999)

    assert refused.status_code == accepted.status_code == 400
    assert IdempotencyKey.objects.count() == 0
    assert create(client, "key-10", category=desk.laptop.pk).status_code == 201


def test_whitespace_and_overlong_keys_are_bad_input(desk) -> None:  # type: ignore[no-untyped-def]
    client = api_client(desk.agent)
    for key in ("has space", "x" * 256, "tab\tkey"):
        response = create(client, key, category=desk.laptop.pk)
        assert response.status_code == 400
        assert list(response.json()["fields"]) == ["Idempotency-Key"]
    assert Ticket.objects.count() == 0


def test_comment_transition_and_upload_replay_too(desk) -> None:  # type: ignore[no-untyped-def]
    ticket = desk.ticket()
    client = api_client(desk.agent)
    base = f"/api/v1/tickets/{ticket.number}/"

    replies = [
        client.post(f"{base}comments/", {"body": "On it"}, format="json", HTTP_IDEMPOTENCY_KEY="c1") for _ in range(2)
    ]
    moves = [
        client.post(f"{base}transition/", {"state": "in_progress"}, format="json", HTTP_IDEMPOTENCY_KEY="t1")
        for _ in range(2)
    ]
    # A multipart retry has a new boundary: the same file is still the same request.
    uploads = [
        client.post(f"{base}attachments/", {"file": png()}, format="multipart", HTTP_IDEMPOTENCY_KEY="u1")
        for _ in range(2)
    ]

    assert [r.status_code for r in replies + moves + uploads] == [201, 201, 200, 200, 201, 201]
    assert replies[0].json() == replies[1].json()
    assert uploads[0].json() == uploads[1].json()
    assert Comment.objects.count() == 1
    assert Attachment.objects.count() == 1
    assert ticket.events.filter(kind="state_changed").count() == 1


def test_keys_live_a_day_then_the_periodic_task_removes_them(desk) -> None:  # type: ignore[no-untyped-def]
    client = api_client(desk.agent)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        create(client, "old", category=desk.laptop.pk)
    with time_machine.travel(start + timedelta(hours=23, minutes=59), tick=False):
        assert idempotency_cleanup() == 0
        assert create(client, "old", category=desk.laptop.pk).status_code == 201
        assert Ticket.objects.count() == 1
        create(client, "recent", category=desk.laptop.pk)
    with time_machine.travel(start + timedelta(hours=24, minutes=1), tick=False):
        assert idempotency_cleanup_task() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["recent"]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_requests_with_the_same_key_make_one_ticket(committed_db, desk) -> None:  # type: ignore[no-untyped-def]
    # Each request holds its transaction open a while after creating the ticket, so the two really overlap.
    def linger(event: TicketCreated) -> None:
        time.sleep(0.4)

    subscribe(TicketCreated, linger)
    barrier = threading.Barrier(2)
    responses: list[tuple[int, dict, bool]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            client = api_client(desk.agent)
            barrier.wait()
            response = create(client, "race-1", category=desk.laptop.pk)
            responses.append((response.status_code, response.json(), response.has_header("Idempotent-Replayed")))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        unsubscribe(TicketCreated, linger)

    assert errors == []
    assert sorted(replayed for _status, _body, replayed in responses) == [False, True]
    assert [status for status, _body, _replayed in responses] == [201, 201]
    assert responses[0][1] == responses[1][1]
    assert list(Ticket.objects.values_list("number", flat=True)) == [responses[0][1]["number"]]
    assert IdempotencyKey.objects.count() == 1
