"""Hostile input to the webhook API and pages never gives a 500."""

import pytest
from rest_framework.test import APIClient

from security import webhooks
from tests.web.conftest import signed_in


@pytest.fixture(autouse=True)
def _loopback(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/webhooks/99999999999999999999999999/",
        "/api/v1/webhooks/99999999999999999999999999/deliveries/",
        "/api/v1/webhooks/{pk}/deliveries/?cursor=0001-01-01T00:00:00%2B14:00|00000000-0000-0000-0000-000000000000",
        "/api/v1/webhooks/{pk}/deliveries/?cursor=garbage",
        "/api/v1/webhooks/?cursor=99999999999999999999999999",
        "/security/webhooks/?before=99999999999999999999999999",
        "/security/webhooks/99999999999999999999999999/",
    ],
)
def test_odd_ids_and_cursors(desk, path):
    subscription = webhooks.webhook_create(
        actor=desk.agent, name="x", url="http://127.0.0.1:9/", event_types=["ticket.created"]
    ).subscription
    client = APIClient()
    client.force_login(desk.agent)
    if path.startswith("/security/"):
        client = signed_in(desk.agent)
    response = client.get(path.replace("{pk}", str(subscription.pk)))
    assert response.status_code in (200, 404)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x\x00", "url": "http://127.0.0.1:9/", "event_types": ["ticket.created"]},
        {"name": "x", "url": "http://" + "a" * 70 + ".example/", "event_types": ["ticket.created"]},
        {"name": "x", "url": "http://exa mple.com/", "event_types": ["ticket.created"]},
        {"name": "x", "url": "http://127.0.0.1:99999/", "event_types": ["ticket.created"]},
        {"name": "x", "url": "http://[::1/", "event_types": ["ticket.created"]},
        {"name": "x" * 101, "url": "http://127.0.0.1:9/", "event_types": ["ticket.created"]},
        {"name": "x", "url": "http://127.0.0.1:9/", "event_types": [None]},
        {"name": "x", "url": "http://127.0.0.1:9/", "event_types": ["ticket.created"], "is_active": "maybe"},
    ],
)
def test_odd_bodies_are_400(desk, body):
    client = APIClient()
    client.force_login(desk.agent)
    response = client.post("/api/v1/webhooks/", body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"detail", "code", "fields"}
