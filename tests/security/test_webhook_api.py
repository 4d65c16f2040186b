"""`/api/v1/webhooks/`: CRUD, delivery log, redelivery; permissions, scopes, error bodies and query counts."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from security import webhooks
from security.models import AuditLog, WebhookDelivery, WebhookSubscription
from security.token_services import token_create
from security.webhook_delivery import delivery_attempt, due_delivery_ids
from tests.webhook_receiver import running_receiver

URL = "http://127.0.0.1:9/hook"


@pytest.fixture(autouse=True)
def _loopback(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def client_for(user, scopes=None) -> APIClient:  # type: ignore[no-untyped-def]
    """A session-like client for `user`, or with `scopes` a real API token of theirs sent as a Bearer header."""
    client = APIClient()
    if scopes is None:
        client.force_authenticate(user=user)
        return client
    created = token_create(
        actor=user, owner=user, name="webhook tests", scopes=scopes, expires_at=timezone.now() + timedelta(days=1)
    )
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.secret}")
    return client


def _state() -> list[dict]:
    return list(WebhookSubscription.objects.order_by("pk").values())


def test_create_returns_the_secret_once_and_audits(desk):
    response = client_for(desk.agent).post(
        "/api/v1/webhooks/",
        {"name": "Pager", "url": URL, "event_types": ["ticket.created", "ticket.assigned"]},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    subscription = WebhookSubscription.objects.get()
    assert body["secret"] == webhooks.signing_secret(subscription)
    assert {k: body[k] for k in ("id", "name", "url", "event_types", "is_active", "owner")} == {
        "id": subscription.pk,
        "name": "Pager",
        "url": URL,
        "event_types": ["ticket.assigned", "ticket.created"],
        "is_active": True,
        "owner": {"id": desk.agent.pk, "name": "Ada Agent"},
    }
    assert "secret" not in client_for(desk.agent).get(f"/api/v1/webhooks/{subscription.pk}/").json()
    assert AuditLog.objects.filter(action="webhook.create", object_id=str(subscription.pk)).count() == 1


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "x", "url": "http://10.0.0.1/", "event_types": ["ticket.created"]}, {"url"}),
        ({"name": "x", "url": URL, "event_types": ["nope"]}, {"event_types"}),
        ({"name": "x", "url": URL, "event_types": ["ticket.created"], "secret": "mine"}, {"secret"}),
        ({"name": "", "url": URL, "event_types": ["ticket.created"]}, {"name"}),
        ({"name": "x", "url": 5, "event_types": "ticket.created"}, {"event_types"}),
        (["not", "an", "object"], {"non_field_errors"}),
    ],
)
def test_bad_input_is_a_400_with_fields_and_changes_nothing(desk, body, fields):
    response = client_for(desk.agent).post("/api/v1/webhooks/", body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"detail", "code", "fields"}
    assert set(response.json()["fields"]) == fields
    assert WebhookSubscription.objects.count() == 0


def test_malformed_json_is_a_400(desk):
    response = client_for(desk.agent).post("/api/v1/webhooks/", "{", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_requesters_get_403_and_nothing_is_created(desk):
    client = client_for(desk.requester)
    assert client.get("/api/v1/webhooks/").status_code == 403
    response = client.post(
        "/api/v1/webhooks/", {"name": "x", "url": URL, "event_types": ["ticket.created"]}, format="json"
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "You cannot manage webhooks.", "code": "permission_denied", "fields": {}}
    assert WebhookSubscription.objects.count() == 0


def test_anonymous_is_refused():
    response = APIClient().get("/api/v1/webhooks/")
    assert (response.status_code, response["WWW-Authenticate"][:6]) == (401, "Bearer")


@pytest.mark.parametrize("method", ["get", "patch", "put", "delete"])
def test_someone_elses_subscription_is_a_404_and_unchanged(desk, method):
    subscription = webhooks.webhook_create(actor=desk.agent, name="Mine", url=URL, event_types=["ticket.created"])
    before = _state()
    audit = AuditLog.objects.count()
    response = getattr(client_for(desk.agent2), method)(
        f"/api/v1/webhooks/{subscription.subscription.pk}/",
        {"name": "Taken", "url": URL, "event_types": ["ticket.created"]},
        format="json",
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "No such webhook.", "code": "not_found", "fields": {}}
    assert _state() == before
    assert AuditLog.objects.count() == audit


def test_admins_see_and_manage_every_subscription(desk):
    created = webhooks.webhook_create(actor=desk.agent, name="Agent's", url=URL, event_types=["ticket.created"])
    webhooks.webhook_create(actor=desk.lead, name="Lead's", url=URL, event_types=["ticket.created"])
    admin = client_for(desk.admin)
    assert [row["name"] for row in admin.get("/api/v1/webhooks/").json()["results"]] == ["Lead's", "Agent's"]
    assert [row["name"] for row in client_for(desk.agent).get("/api/v1/webhooks/").json()["results"]] == ["Agent's"]
    response = admin.patch(f"/api/v1/webhooks/{created.subscription.pk}/", {"is_active": False}, format="json")
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert AuditLog.objects.filter(action="webhook.disable", actor=desk.admin).count() == 1


def test_patch_update_rotate_and_delete(desk):
    created = webhooks.webhook_create(actor=desk.agent, name="Pager", url=URL, event_types=["ticket.created"])
    pk = created.subscription.pk
    client = client_for(desk.agent)
    response = client.patch(f"/api/v1/webhooks/{pk}/", {"event_types": ["ticket.commented"]}, format="json")
    assert response.json()["event_types"] == ["ticket.commented"]
    rotated = client.post(f"/api/v1/webhooks/{pk}/rotate-secret/").json()["secret"]
    assert rotated != created.secret
    assert rotated == webhooks.signing_secret(WebhookSubscription.objects.get())
    assert client.delete(f"/api/v1/webhooks/{pk}/").status_code == 204
    assert WebhookSubscription.objects.count() == 0
    actions = list(AuditLog.objects.order_by("seq").values_list("action", flat=True))
    assert actions[-3:] == ["webhook.update", "webhook.rotate_secret", "webhook.delete"]


@pytest.mark.parametrize(
    ("scopes", "expected"), [(["webhooks:manage"], 200), (["tickets:read"], 403), (["sla:read", "tickets:write"], 403)]
)
def test_tokens_need_the_webhooks_manage_scope(desk, scopes, expected):
    response = client_for(desk.agent, scopes=scopes).get("/api/v1/webhooks/")
    assert response.status_code == expected
    response = client_for(desk.agent, scopes=scopes).post(
        "/api/v1/webhooks/", {"name": "x", "url": URL, "event_types": ["ticket.created"]}, format="json"
    )
    assert response.status_code == (201 if expected == 200 else 403)
    assert WebhookSubscription.objects.count() == (1 if expected == 200 else 0)


def test_event_types_endpoint(desk):
    body = client_for(desk.agent).get("/api/v1/webhooks/event-types/").json()
    assert {"name": "ticket.created", "label": "Ticket created"} in body


def test_delivery_log_shows_attempts_and_redeliver(desk):
    with running_receiver() as receiver:
        created = webhooks.webhook_create(actor=desk.agent, name="R", url=receiver.url, event_types=["ticket.created"])
        receiver.secret = created.secret
        receiver.statuses = [500]
        desk.ticket()
        delivery_id = due_delivery_ids()[0]
        delivery_attempt(delivery_id)
        client = client_for(desk.agent)
        base = f"/api/v1/webhooks/{created.subscription.pk}/deliveries/"
        log = client.get(base).json()
        assert [(d["id"], d["state"], d["attempts"]) for d in log["results"]] == [(delivery_id, "pending", 1)]
        attempt = log["results"][0]["attempt_log"][0]
        assert (attempt["number"], attempt["status_code"], attempt["response_excerpt"]) == (1, 500, '{"ok": false}')
        # still pending: redelivery is refused, nothing changes
        response = client.post(f"{base}{delivery_id}/redeliver/")
        assert response.status_code == 409
        assert response.json()["code"] == "delivery_queued"
        WebhookDelivery.objects.update(state="failed", next_attempt_at=None)
        response = client.post(f"{base}{delivery_id}/redeliver/")
        assert response.status_code == 202
        assert response.json()["state"] == "pending"
        detail = client.get(f"{base}{delivery_id}/").json()
        assert detail["payload"]["id"] == delivery_id
        # another agent: 404 on the log, the delivery and redelivery
        other = client_for(desk.agent2)
        assert other.get(base).status_code == 404
        assert other.get(f"{base}{delivery_id}/").status_code == 404
        assert other.post(f"{base}{delivery_id}/redeliver/").status_code == 404
        assert client.get(f"{base}not-a-uuid/").status_code == 404


def _queries(client: APIClient, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_list_endpoints_cost_the_same_at_two_sizes(desk):
    subscription = webhooks.webhook_create(actor=desk.agent, name="S0", url=URL, event_types=["ticket.created"])
    desk.ticket()
    client = client_for(desk.agent)
    small = (
        _queries(client, "/api/v1/webhooks/"),
        _queries(client, f"/api/v1/webhooks/{subscription.subscription.pk}/deliveries/"),
    )
    for n in range(1, 8):
        webhooks.webhook_create(actor=desk.agent, name=f"S{n}", url=URL, event_types=["ticket.created"])
    for _ in range(6):
        desk.ticket()
    delivery_attempt(due_delivery_ids()[0])
    client = client_for(desk.agent)
    large = (
        _queries(client, "/api/v1/webhooks/"),
        _queries(client, f"/api/v1/webhooks/{subscription.subscription.pk}/deliveries/"),
    )
    assert WebhookDelivery.objects.filter(subscription=subscription.subscription).count() == 7
    assert small == large
    assert small == (1, 3)


def test_admins_cannot_redirect_rekey_or_read_someone_elses_webhook(desk):
    created = webhooks.webhook_create(
        actor=desk.security_agent, name="SOC", url=URL, event_types=["ticket.created"]
    ).subscription
    desk.ticket(title="Phish", category=desk.phishing)
    delivery = WebhookDelivery.objects.get()
    admin = client_for(desk.admin)
    before = _state()
    response = admin.patch(f"/api/v1/webhooks/{created.pk}/", {"url": "http://127.0.0.1:8/mine"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "not_webhook_owner"
    assert admin.post(f"/api/v1/webhooks/{created.pk}/rotate-secret/").status_code == 403
    assert _state() == before
    body = admin.get(f"/api/v1/webhooks/{created.pk}/deliveries/{delivery.pk}/").json()
    assert body["payload"] is None
    owner = client_for(desk.security_agent).get(f"/api/v1/webhooks/{created.pk}/deliveries/{delivery.pk}/").json()
    assert owner["payload"]["data"]["ticket"]["title"] == "Phish"


def test_errors_inside_a_list_field_are_flat_messages_naming_the_item(desk):
    # DRF reports a list item's error as {"1": [...]}; the error body keeps `fields` as {name: [str]}
    response = client_for(desk.agent).post(
        "/api/v1/webhooks/", {"name": "x", "url": URL, "event_types": ["ticket.created", "bad\u0000"]}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["fields"] == {"event_types": ["[1] Null characters are not allowed."]}
    assert WebhookSubscription.objects.count() == 0
