"""The Explain view of the desk SLA panel on an office-hours calendar with holidays: derivation, windows, holidays,
and escaping of policy, calendar and holiday names (issue 5)."""

import re
from datetime import UTC, date, datetime, time, timedelta
from html import unescape

import time_machine

from sla import services as sla_services
from sla.models import SlaPolicy, SlaTarget
from tests.web.conftest import signed_in

HOUR = 3600
THURSDAY = datetime(2026, 4, 2, 15, 0, tzinfo=UTC)  # 16:00 BST, before Easter


def explain_text(content: bytes) -> str:
    html = content.decode()
    match = re.search(r'<details class="sla-explain".*?</details>', html, re.S)
    assert match is not None
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", match.group(0))).split())


def test_explain_shows_the_derivation_windows_and_holidays_and_escapes_names(desk) -> None:  # type: ignore[no-untyped-def]
    calendar = sla_services.calendar_create(
        actor=None,
        name="<b>Office</b> & co",
        time_zone="Europe/London",
        ranges=[(day, time(9), time(17)) for day in range(5)],
        holidays=[(date(2026, 4, 3), "Good Friday"), (date(2026, 4, 6), "<script>alert(1)</script> Monday")],
    )
    policy = SlaPolicy.objects.create(name="<i>Gold</i>", calendar=calendar)
    SlaTarget.objects.create(
        policy=policy, metric="resolution", p1_seconds=8 * HOUR, p2_seconds=8 * HOUR, p3_seconds=8 * HOUR,
        p4_seconds=8 * HOUR,
    )  # fmt: skip
    with time_machine.travel(THURSDAY, tick=False) as traveller:
        ticket = desk.ticket(title="Printer on fire")
        traveller.shift(timedelta(minutes=30))

        response = signed_in(desk.agent).get(f"/desk/tickets/{ticket.number}/")
        api = signed_in(desk.agent).get(f"/api/v1/tickets/{ticket.number}/sla/")

    html = response.content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Monday" in html
    assert "&lt;i&gt;Gold&lt;/i&gt;" in html
    assert "<i>Gold</i>" not in html
    assert "&lt;b&gt;Office&lt;/b&gt; &amp; co" in html
    text = explain_text(response.content)
    # 1 h on Thursday afternoon, nothing on Good Friday, the weekend or Easter Monday, 7 h on Tuesday.
    assert "Target 8 h of business time (28800 s)" in text
    assert "Elapsed 1800 s in running segments" in text
    assert "Paused 0 s of business time paused" in text
    assert "Remaining 28800 − 0 = 28800 s (8 h), laid from 2 Apr 2026 16:00:00 BST" in text
    assert "Thu 2 Apr 2026 16:00:00 – 17:00:00 BST: 3600 s" in text
    assert "Tue 7 Apr 2026 09:00:00 – 16:00:00 BST: 25200 s" in text
    assert "Due Tue 7 Apr 2026 16:00:00 BST (Europe/London)" in text
    assert "Calendar “<b>Office</b> & co” (Europe/London), 2 Apr 16:00 to 7 Apr 2026 16:00" in text
    assert "Thu 2 Apr 2026: 16:00–17:00 · 1 h" in text
    assert "Tue 7 Apr 2026: 09:00–16:00 · 7 h" in text
    assert "Fri 3 Apr 2026 — Good Friday" in text
    assert "Mon 6 Apr 2026 — <script>alert(1)</script> Monday" in text  # (unescaped here by `explain_text`)

    explain = api.json()["clocks"][0]["explain"]
    assert explain["due_at"] == "2026-04-07T15:00:00Z"
    assert explain["steps"] == [
        {"start": "2026-04-02T15:00:00Z", "end": "2026-04-02T16:00:00Z", "business_seconds": HOUR},
        {"start": "2026-04-07T08:00:00Z", "end": "2026-04-07T15:00:00Z", "business_seconds": 7 * HOUR},
    ]
    assert explain["working_days"] == [
        {"first_day": "2026-04-02", "last_day": "2026-04-02", "days": 1, "windows": [["16:00:00", "17:00:00"]],
         "business_seconds": HOUR},
        {"first_day": "2026-04-07", "last_day": "2026-04-07", "days": 1, "windows": [["09:00:00", "16:00:00"]],
         "business_seconds": 7 * HOUR},
    ]  # fmt: skip
    assert explain["holidays"] == [
        {"date": "2026-04-03", "name": "Good Friday"},
        {"date": "2026-04-06", "name": "<script>alert(1)</script> Monday"},
    ]
    assert explain["calendar"] == "<b>Office</b> & co"  # JSON: the client escapes, as for every name
