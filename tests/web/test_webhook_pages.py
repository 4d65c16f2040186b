"""The webhook pages: who may open them, forms with field errors, the secret shown once, the delivery log with a
redeliver button, rotate/enable/disable/delete, escaping, and constant query counts."""

import pytest

from security import webhooks
from security.models import AuditLog, WebhookDelivery, WebhookSubscription
from security.webhook_delivery import delivery_attempt, due_delivery_ids
from tests.web.conftest import signed_in
from tests.webhook_receiver import running_receiver

URL = "http://127.0.0.1:9/hook"


@pytest.fixture(autouse=True)
def _loopback(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def _create(owner, name="Pager"):  # type: ignore[no-untyped-def]
    return webhooks.webhook_create(actor=owner, name=name, url=URL, event_types=["ticket.created"]).subscription


@pytest.mark.parametrize("who", ["requester", "other_requester"])
def test_requesters_get_404_everywhere(desk, who):
    subscription = _create(desk.agent)
    client = signed_in(getattr(desk, who))
    for url in ("/security/webhooks/", "/security/webhooks/new/", f"/security/webhooks/{subscription.pk}/"):
        assert client.get(url).status_code == 404
    assert (
        client.post("/security/webhooks/new/", {"name": "x", "url": URL, "event_types": ["ticket.created"]}).status_code
        == 404
    )
    assert WebhookSubscription.objects.count() == 1


@pytest.mark.parametrize("who", ["agent", "lead", "manager", "security_officer", "admin"])
def test_desk_people_and_admins_may_open_the_pages(desk, who):
    assert signed_in(getattr(desk, who)).get("/security/webhooks/").status_code == 200


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get("/security/webhooks/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_create_shows_the_secret_once(desk):
    client = signed_in(desk.agent)
    response = client.post(
        "/security/webhooks/new/", {"name": "Pager", "url": URL, "event_types": ["ticket.created", "ticket.assigned"]}
    )
    assert response.status_code == 200
    subscription = WebhookSubscription.objects.get()
    secret = webhooks.signing_secret(subscription)
    assert secret in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert subscription.event_types == ["ticket.assigned", "ticket.created"]
    assert secret not in client.get(f"/security/webhooks/{subscription.pk}/").content.decode()


def test_form_errors_are_shown_on_their_fields_and_nothing_is_saved(desk):
    client = signed_in(desk.agent)
    response = client.post("/security/webhooks/new/", {"name": "", "url": "http://10.1.1.1/x", "event_types": []})
    assert response.status_code == 400
    form = response.context["form"]
    assert set(form.errors) == {"name", "event_types"}
    response = client.post(
        "/security/webhooks/new/", {"name": "x", "url": "http://10.1.1.1/x", "event_types": ["ticket.created"]}
    )
    assert response.status_code == 400
    assert "private address" in response.context["form"].errors["url"][0]
    assert WebhookSubscription.objects.count() == 0


def test_other_agents_get_404_and_nothing_changes(desk):
    subscription = _create(desk.agent)
    client = signed_in(desk.agent2)
    base = f"/security/webhooks/{subscription.pk}/"
    assert client.get(base).status_code == 404
    assert client.get(f"{base}edit/").status_code == 404
    assert (
        client.post(f"{base}edit/", {"name": "Mine", "url": URL, "event_types": ["ticket.created"]}).status_code == 404
    )
    assert client.post(f"{base}delete/").status_code == 404
    assert client.post(f"{base}rotate-secret/").status_code == 404
    assert client.post(f"{base}active/", {"is_active": "0"}).status_code == 404
    after = WebhookSubscription.objects.get()
    assert (after.name, after.secret_salt, after.is_active) == ("Pager", subscription.secret_salt, True)
    assert list(AuditLog.objects.values_list("action", flat=True)) == ["webhook.create"]


def test_edit_toggle_rotate_delete(desk):
    subscription = _create(desk.agent)
    client = signed_in(desk.agent)
    base = f"/security/webhooks/{subscription.pk}/"
    response = client.post(f"{base}edit/", {"name": "Renamed", "url": URL, "event_types": ["ticket.commented"]})
    assert response.status_code == 302
    assert client.post(f"{base}active/", {"is_active": "0"}).status_code == 302
    assert WebhookSubscription.objects.get().is_active is False
    assert client.post(f"{base}active/", {"is_active": "1"}).status_code == 302
    response = client.post(f"{base}rotate-secret/")
    assert webhooks.signing_secret(WebhookSubscription.objects.get()) in response.content.decode()
    assert client.post(f"{base}delete/").status_code == 302
    assert WebhookSubscription.objects.count() == 0
    assert list(AuditLog.objects.order_by("seq").values_list("action", flat=True)) == [
        "webhook.create",
        "webhook.update",
        "webhook.disable",
        "webhook.enable",
        "webhook.rotate_secret",
        "webhook.delete",
    ]


def test_delivery_log_shows_attempts_escaped_and_redeliver(desk):
    with running_receiver() as receiver:
        created = webhooks.webhook_create(
            actor=desk.agent, name="<b>Hook</b>", url=receiver.url, event_types=["ticket.created"]
        )
        receiver.secret = created.secret
        desk.ticket()
        delivery_id = due_delivery_ids()[0]
        delivery_attempt(delivery_id)
    client = signed_in(desk.agent)
    page = client.get(f"/security/webhooks/{created.subscription.pk}/").content.decode()
    assert "&lt;b&gt;Hook&lt;/b&gt;" in page
    assert "<b>Hook</b>" not in page
    assert "HTTP 200" in page
    assert delivery_id in page
    assert "Redeliver" in page
    response = client.post(f"/security/webhooks/{created.subscription.pk}/deliveries/{delivery_id}/redeliver/")
    assert response.status_code == 302
    assert WebhookDelivery.objects.get().state == "pending"
    # again while it is queued: refused with a message, nothing changes
    response = client.post(
        f"/security/webhooks/{created.subscription.pk}/deliveries/{delivery_id}/redeliver/", follow=True
    )
    assert "already queued" in response.content.decode()
    assert (
        signed_in(desk.agent2)
        .post(f"/security/webhooks/{created.subscription.pk}/deliveries/{delivery_id}/redeliver/")
        .status_code
        == 404
    )


def test_list_and_detail_cost_the_same_queries_at_two_sizes(desk, django_assert_num_queries):
    subscription = _create(desk.agent, name="S0")
    desk.ticket()
    client = signed_in(desk.agent)
    client.get("/security/webhooks/")
    with django_assert_num_queries(4) as small_list:
        client.get("/security/webhooks/")
    with django_assert_num_queries(6) as small_detail:
        client.get(f"/security/webhooks/{subscription.pk}/")
    for number in range(1, 6):
        _create(desk.agent, name=f"S{number}")
    for _ in range(5):
        desk.ticket()
    delivery_attempt(due_delivery_ids()[0])
    with django_assert_num_queries(len(small_list.captured_queries)):
        client.get("/security/webhooks/")
    with django_assert_num_queries(len(small_detail.captured_queries)):
        client.get(f"/security/webhooks/{subscription.pk}/")


def test_admins_may_disable_but_not_edit_or_rekey_someone_elses_webhook(desk):
    subscription = _create(desk.agent)
    client = signed_in(desk.admin)
    base = f"/security/webhooks/{subscription.pk}/"
    page = client.get(base).content.decode()
    assert "Rotate secret" not in page
    assert f"{base}edit/" not in page
    assert client.get(f"{base}edit/").status_code == 404
    assert client.post(f"{base}edit/", {"name": "x", "url": URL, "event_types": ["ticket.created"]}).status_code == 404
    assert client.post(f"{base}rotate-secret/").status_code == 404
    assert client.post(f"{base}active/", {"is_active": "0"}).status_code == 302
    after = WebhookSubscription.objects.get()
    assert (after.name, after.url, after.secret_salt, after.is_active) == (
        "Pager",
        URL,
        subscription.secret_salt,
        False,
    )
