"""The API tokens page in Chromium: create a token, use it against the live API, revoke it, and it stops working."""

from datetime import time

import requests
from playwright.sync_api import expect

from sla import services as sla_services


def test_create_use_and_revoke_a_token(live_desk, signed_in, live_server):
    calendar = sla_services.calendar_create(
        actor=None, name="Office", time_zone="UTC", ranges=[(d, time(9), time(17)) for d in range(5)]
    )
    api_url = f"{live_server.url}/api/v1/calendars/{calendar.pk}/due/?start=2026-03-27T16:00:00Z&seconds=3600"
    page = signed_in(live_desk.agent)

    # given: the page, from the user menu
    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens", level=1)).to_be_visible()

    # when: a token is created
    page.get_by_label("Name").fill("Nagios on mon-01")
    page.get_by_label("sla:read — Read SLA clocks, calendars and reports").check()
    page.get_by_label("Expires after").select_option(label="30 days")
    page.get_by_role("button", name="Create token").click()

    # then: it is shown once, and works
    expect(page.get_by_text("it is shown only this once")).to_be_visible()
    secret = page.get_by_label("Token", exact=True).input_value()
    answer = requests.get(api_url, headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    assert (answer.status_code, answer.json()) == (200, {"due_at": "2026-03-27T17:00:00Z"})
    assert answer.headers["RateLimit-Remaining"] == str(int(answer.headers["RateLimit-Limit"]) - 1)
    page.reload()  # the browser sends the form again: no second token, and no secret
    expect(page.get_by_text("That form was already sent")).to_be_visible()
    expect(page.get_by_text("it is shown only this once")).to_have_count(0)

    # when: it is revoked, after confirming
    page.get_by_role("link", name="Revoke Nagios on mon-01").click()
    expect(page.get_by_role("heading", name="Revoke the token “Nagios on mon-01”?")).to_be_visible()
    page.get_by_role("button", name="Revoke token").click()

    # then: the list says so and the API refuses it
    expect(page.get_by_role("cell", name="revoked", exact=True)).to_be_visible()
    refused = requests.get(api_url, headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"
