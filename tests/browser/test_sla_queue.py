"""The "Breaching soon" queue and the SLA panel's Explain view in Chromium (issue 5, "What users see")."""

import re

from playwright.sync_api import expect

from sla.models import Calendar, SlaPolicy, SlaTarget

HOUR = 3600


def test_agent_opens_breaching_soon_sees_the_due_column_and_expands_explain(live_desk, signed_in):
    # given: a 24×7 policy (first response 1 h, resolution 2 h); a desktop ticket, and a network one Ada cannot see
    # (A transactional test that ran before may have emptied the tables, the built-in 24×7 calendar with them.)
    always, _ = Calendar.objects.get_or_create(is_24x7=True, defaults={"name": "24×7", "time_zone": "UTC"})
    policy = SlaPolicy.objects.create(name="Standard", calendar=always)
    for metric, seconds in (("first_response", HOUR), ("resolution", 2 * HOUR)):
        SlaTarget.objects.create(
            policy=policy, metric=metric, p1_seconds=seconds, p2_seconds=seconds, p3_seconds=seconds, p4_seconds=seconds
        )
    ticket = live_desk.ticket(title="Projector shows no picture")
    live_desk.ticket(category=live_desk.vpn, title="VPN drops every hour")
    page = signed_in(live_desk.agent)
    page.goto("/desk/")

    # when: Ada picks the "Breaching soon" queue
    page.get_by_role("navigation", name="Queues").get_by_role("link", name="Breaching soon").click()

    # then: one row, her team's ticket, with its first-response clock in the Due column
    expect(page).to_have_url(re.compile(r"[?&]queue=breaching\b"))
    rows = page.locator("table#queue-table tr[data-row-link]")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_contain_text(ticket.number)
    due = row.locator("td.queue-due")
    expect(due).to_contain_text("On time")
    expect(due).to_contain_text(re.compile(r"in (59 m|1 h)"))
    expect(due.locator("[data-due-state]")).to_have_attribute("data-due-state", "ok")
    expect(due.locator("[data-due-state]")).to_have_attribute("title", "First response · Standard")
    expect(page.get_by_role("columnheader", name=re.compile("^Due"))).to_have_attribute("aria-sort", "ascending")

    # when: she opens the ticket and expands Explain on its first clock
    row.get_by_role("link", name=ticket.number).click()
    expect(page).to_have_url(re.compile(rf"/desk/tickets/{ticket.number}/$"))
    panel = page.locator("#sla-panel")
    explain = panel.locator("details.sla-explain").first
    expect(explain.get_by_text("How the due instant was derived")).to_be_hidden()
    explain.locator("summary", has_text="Explain").click()

    # then: the derivation and the calendar are shown
    expect(explain.get_by_text("How the due instant was derived")).to_be_visible()
    expect(explain).to_contain_text("1 h of business time (3600 s)")
    expect(explain).to_contain_text("3600 − 0 = 3600 s (1 h)")
    expect(explain).to_contain_text("24×7: every second counts")
