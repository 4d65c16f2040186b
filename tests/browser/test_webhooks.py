"""Webhooks in Chromium: an agent subscribes a real receiver, copies the secret shown once, sees the delivery in the
log and redelivers it."""

import pytest
from playwright.sync_api import expect

from security.webhook_delivery import delivery_attempt, due_delivery_ids
from tests.webhook_receiver import running_receiver


@pytest.fixture(autouse=True)
def _loopback(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def test_subscribe_copy_the_secret_see_the_delivery_and_redeliver(live_desk, signed_in):
    with running_receiver() as receiver:
        # given
        page = signed_in(live_desk.agent)
        page.get_by_role("link", name="Webhooks").click()
        page.get_by_role("link", name="New webhook").click()

        # when: subscribing, with a mistake first
        page.get_by_label("Name").fill("Monitoring")
        page.get_by_label("URL").fill("http://10.9.8.7/hook")
        page.get_by_label("Ticket created (ticket.created)").check()
        page.get_by_role("button", name="Create webhook").click()
        expect(page.get_by_text("is a private address")).to_be_visible()
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_role("button", name="Create webhook").click()

        # then: the secret, once
        secret = page.get_by_label("Signing secret").inner_text().strip()
        assert secret.startswith("whsec_")
        receiver.secret = secret
        page.get_by_role("link", name="I have stored it").click()
        expect(page.get_by_role("heading", name="Monitoring")).to_be_visible()
        expect(page.get_by_text(secret)).to_have_count(0)

        # when: a ticket is raised and the worker's step runs
        live_desk.ticket(title="Disk full")
        delivery_id = due_delivery_ids()[0]
        delivery_attempt(delivery_id)
        page.reload()

        # then: the log shows the attempt; redeliver sends it again with the same id
        expect(page.get_by_text("HTTP 200")).to_be_visible()
        page.get_by_role("button", name="Redeliver").click()
        expect(page.get_by_text("Delivery queued again, with the same X-Webhook-Id.")).to_be_visible()
        delivery_attempt(delivery_id)
        assert [r.signature_ok for r in receiver.requests] == [True, True]
        assert [r.headers["X-Webhook-Id"] for r in receiver.requests] == [delivery_id, delivery_id]
