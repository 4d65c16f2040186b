"""`/dashboards/sla/`, its CSV export and `GET /api/v1/reports/sla/`: who may see them, what they show (exactly, over
the known history of tests/sla/dashboard_data.py), bad input, and a constant number of queries."""

import csv
import io
import json
import re
from urllib.parse import urlencode

import pytest
import time_machine

from sla.models import ClockOutcome
from tests.sla.dashboard_data import NOW, PERIOD, build_history
from tests.web.conftest import signed_in

PAGE = "/dashboards/sla/"
CSV = "/dashboards/sla/outcomes.csv"
API = "/api/v1/reports/sla/"
# session, user, memberships; filter choices; JIT off; outcome figures (totals, trend, teams, categories in one
# statement), live, lists, flow with CSAT, backlog (10); plus the report transaction's two ends, which Django counts
# too (SAVEPOINT and RELEASE inside the test's transaction, BEGIN and COMMIT in production: 12 there as well)
PAGE_QUERIES = 10 + 2


@pytest.fixture
def history(desk):  # type: ignore[no-untyped-def]
    return build_history(desk)


def get(client, url: str, params: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    with time_machine.travel(NOW, tick=False):
        return client.get(f"{url}?{urlencode({**PERIOD, **(params or {})})}")


def tiles(content: bytes) -> dict[str, str]:
    """`data-tile` name → its text with whitespace collapsed."""
    found = {}
    for name, body in re.findall(rb'data-tile="([a-z_]+)">(.*?)</div>', content, re.S):
        text = re.sub(rb"<[^>]+>", b" ", body).decode()
        found[name.decode()] = " ".join(text.split())
    return found


def chart_data(content: bytes) -> dict:  # type: ignore[type-arg]
    match = re.search(rb'<script id="dashboard-data" type="application/json">(.*?)</script>', content, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_manager_sees_every_tile_exactly(desk, history) -> None:  # type: ignore[no-untyped-def]
    response = get(signed_in(desk.manager), PAGE)
    assert response.status_code == 200
    assert tiles(response.content) == {
        "first_response_compliance": "First response compliance 75.0 % 3 met of 4",
        "resolution_compliance": "Resolution compliance 66.7 % 2 met of 3",
        "breaches": "Breaches in the period 2 clocks that finished breached",
        "at_risk": "At risk now 1 open tickets ≥ 75 % elapsed",
        "breached_now": "Breached now 1 open tickets past a target",
        "first_response_times": "Time to first response 22 m 30 s median · 1 h 33 m p90 "
        "business time; wall clock 22 m 30 s · 1 h 33 m",
        "resolution_times": "Time to resolve 2 h 0 m median · 4 h 24 m p90 "
        "business time; wall clock 4 h 0 m · 4 h 48 m",
        "csat": "Satisfaction 3.50 / 5 66.7 % answered (2 of 3 resolved)",
    }


def test_manager_sees_every_chart_series_exactly(desk, history) -> None:  # type: ignore[no-untyped-def]
    response = get(signed_in(desk.manager), PAGE)
    data = chart_data(response.content)
    assert data["trend"] == {
        "bucket": "day",
        "labels": ["2026-03-02", "2026-03-03", "2026-03-04"],
        "first_response": [66.7, None, 100.0],
        "resolution": [66.7, None, None],
    }
    assert data["breaches_by_team"] == {"labels": ["Desktop support", "Network"], "values": [2, 0]}
    assert data["breaches_by_category"] == {"labels": ["Laptop", "VPN"], "values": [2, 0]}
    assert data["flow"] == {
        "labels": ["2026-03-02", "2026-03-03", "2026-03-04"],
        "created": [3, 1, 2],
        "resolved": [3, 0, 0],
    }
    assert data["backlog"] == {
        "labels": ["< 1 day", "1–3 days", "3–7 days", "7–30 days", "30+ days"],
        "datasets": [
            {"label": "New", "values": [1, 1, 0, 0, 0]},
            {"label": "Assigned", "values": [0, 0, 0, 0, 0]},
            {"label": "In progress", "values": [1, 0, 0, 0, 0]},
            {"label": "Pending", "values": [0, 0, 0, 0, 0]},
        ],
    }
    # the heatmap: Monday 10, 11 and 12 h, Tuesday 9 h, Wednesday 8 and 11 h, one ticket each
    cells = re.findall(rb'title="(\w+) (\d+):00 \xe2\x80\x94 (\d+)"', response.content)
    busy = {(day.decode(), int(hour)) for day, hour, count in cells if count != b"0"}
    assert busy == {("Mon", 10), ("Mon", 11), ("Mon", 12), ("Tue", 9), ("Wed", 8), ("Wed", 11)}
    # teams ranked by compliance, lowest first, each linking to the queue behind it
    table = response.content.split(b"data-teams", 1)[1].split(b"</table>", 1)[0]
    assert table.index(b"Desktop support") < table.index(b"Network")
    queue = f"/desk/?queue=all&amp;team={desk.desktop.pk}&amp;updated_from=2026-03-02&amp;updated_to=2026-03-04"
    assert queue.encode() in table
    t4, t5 = history.tickets["T4"].number, history.tickets["T5"].number
    breached = response.content.split(b'data-list="breached"', 1)[1].split(b"</table>", 1)[0]
    at_risk = response.content.split(b'data-list="at_risk"', 1)[1].split(b"</table>", 1)[0]
    assert re.findall(rb"(?:INC|REQ)-\d+", breached)[::2] == [t4.encode(), t4.encode()]
    assert re.findall(rb"(?:INC|REQ)-\d+", at_risk)[::2] == [t5.encode()]


def test_lead_sees_only_their_team_on_the_page_in_the_csv_and_in_the_api(desk, history) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(desk.lead)
    page = get(client, PAGE)
    assert page.status_code == 200
    assert tiles(page.content)["first_response_compliance"] == "First response compliance 50.0 % 1 met of 2"
    assert tiles(page.content)["at_risk"] == "At risk now 0 open tickets ≥ 75 % elapsed"
    assert b"Network" not in page.content
    assert chart_data(page.content)["breaches_by_team"] == {"labels": ["Desktop support"], "values": [2]}
    rows = list(csv.reader(io.StringIO(b"".join(get(client, CSV).streaming_content).decode())))
    assert {row[5] for row in rows[1:]} == {"Desktop support"}
    assert len(rows) == 1 + 4
    api = get(client, API, {"group_by": "team"}).json()
    assert [group["label"] for group in api["groups"]] == ["Desktop support"]
    assert api["totals"]["first_response_met"] == 1
    # asking for another team is an invalid choice everywhere, not its figures
    for url in (PAGE, CSV, API):
        response = get(client, url, {"team": str(desk.network.pk)})
        assert response.status_code == 400, url
    assert get(client, API, {"team": str(desk.network.pk)}).json()["fields"]["team"]


@pytest.mark.parametrize("who", ["agent", "requester", "security_officer", "admin", "network_agent"])
def test_anyone_else_gets_a_404_everywhere(desk, history, who) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(getattr(desk, who))
    for url in (PAGE, CSV, API):
        assert get(client, url).status_code == 404, url
    assert b"Dashboards" not in get(client, "/portal/").content


def test_signed_out_goes_to_the_login_page(desk) -> None:  # type: ignore[no-untyped-def]
    from django.test import Client

    response = Client().get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/") or "login" in response["Location"]


def test_nav_link_for_managers_and_leads(desk) -> None:  # type: ignore[no-untyped-def]
    for user in (desk.manager, desk.lead):
        assert b'href="/dashboards/sla/"' in signed_in(user).get("/portal/").content


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"range": "fortnight"}, "range"),
        ({"from": "2026-02-30"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-03-01"}, "to"),
        ({"from": "1999-12-31"}, "from"),
        ({"from": "2020-01-01", "to": "2026-03-04"}, "to"),
        ({"team": "abc"}, "team"),
        ({"team": "999999999999999999999"}, "team"),
        ({"category": "-1"}, "category"),
        ({"priority": "9"}, "priority"),
        ({"type": "problem"}, "type"),
        ({"policy": "0"}, "policy"),
        ({"bucket": "hour"}, "bucket"),
        ({"group_by": "assignee"}, "group_by"),
        ({"from": "\x00"}, "from"),
    ],
)
def test_bad_filters_are_field_errors_never_500(desk, params, field) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(desk.manager)
    page = get(client, PAGE, params)
    assert page.status_code == 400
    assert b"errorlist" in page.content
    assert get(client, CSV, params).status_code == 400
    body = get(client, API, params).json()
    assert (body["code"], list(body["fields"])) == ("validation_failed", [field])


def test_custom_range_needs_both_days(desk) -> None:  # type: ignore[no-untyped-def]
    with time_machine.travel(NOW, tick=False):
        body = signed_in(desk.manager).get(f"{API}?range=custom&from=2026-03-01").json()
    assert body["fields"] == {"to": ["Give the last day (YYYY-MM-DD)."]}


def test_presets_are_local_periods_ending_today(desk) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(desk.manager)
    expected = {
        "today": ("2026-03-04", "2026-03-04"),
        "7d": ("2026-02-26", "2026-03-04"),
        "30d": ("2026-02-03", "2026-03-04"),
        "quarter": ("2026-01-01", "2026-03-04"),
    }
    for preset, (first, last) in expected.items():
        with time_machine.travel(NOW, tick=False):
            period = client.get(f"{API}?range={preset}").json()["period"]
        assert (period["first_day"], period["last_day"]) == (first, last)
    with time_machine.travel(NOW, tick=False):
        assert client.get(API).json()["period"]["preset"] == "30d"


def test_api_returns_the_same_figures_as_the_page(desk, history) -> None:  # type: ignore[no-untyped-def]
    body = get(signed_in(desk.manager), API, {"group_by": "day"}).json()
    assert body["period"] == {
        "preset": "custom",
        "first_day": "2026-03-02",
        "last_day": "2026-03-04",
        "start": "2026-03-02T00:00:00Z",
        "end": "2026-03-05T00:00:00Z",
        "time_zone": "UTC",
    }
    totals = body["totals"]
    assert (totals["first_response_met"], totals["first_response_finished"], totals["first_response_compliance"]) == (
        3,
        4,
        75.0,
    )
    assert (totals["resolution_compliance"], totals["breaches"]) == (66.7, 2)
    assert (totals["resolution_wall_p50"], totals["resolution_wall_p90"]) == (14400.0, 17280.0)
    assert (body["at_risk_tickets"], body["breached_tickets"]) == (1, 1)
    assert (body["csat_average"], body["csat_rated"], body["csat_resolved"], body["csat_response_rate"]) == (
        3.5,
        2,
        3,
        66.7,
    )
    assert [(group["key"], group["first_response_compliance"]) for group in body["groups"]] == [
        ("2026-03-02", 66.7),
        ("2026-03-04", 100.0),
    ]
    by_policy = get(signed_in(desk.manager), API, {"group_by": "policy"}).json()["groups"]
    assert [(group["key"], group["label"], group["breaches"]) for group in by_policy] == [
        (history.policy.pk, "Standard", 2)
    ]


def test_csv_streams_every_outcome_with_formula_cells_neutralised(desk, history) -> None:  # type: ignore[no-untyped-def]
    desk.desktop.name = "=HYPERLINK(1)"
    desk.desktop.save(update_fields=["name"])
    response = get(signed_in(desk.manager), CSV)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="sla-outcomes-2026-03-02-2026-03-04.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["outcome_id", "ticket", "ticket_type"]
    assert len(rows) == 1 + ClockOutcome.objects.count() == 8
    t1 = history.tickets["T1"].number
    assert rows[1][1:] == [
        t1,
        "incident",
        "first_response",
        "Standard",
        "'=HYPERLINK(1)",
        "Laptop",
        "3",
        "True",
        "1800",
        "3600",
        "1800",
        "2026-03-02T10:00:00",
        "2026-03-02T10:30:00",
    ]


def grow(desk, count: int) -> None:  # type: ignore[no-untyped-def]
    from tickets import services as ticket_services

    with time_machine.travel(NOW, tick=False):
        for number in range(count):
            ticket = desk.ticket(title=f"Grown {number}", category=desk.vpn if number % 2 else desk.laptop)
            ticket_services.comment_add(
                actor=desk.agent if number % 2 == 0 else desk.network_agent, ticket=ticket, body="ok"
            )
            ticket_services.ticket_transition(
                actor=desk.agent if number % 2 == 0 else desk.network_agent, ticket=ticket, to_state="resolved"
            )


@pytest.mark.parametrize("user", ["manager", "lead"])
def test_dashboard_queries_do_not_grow_with_the_data(desk, history, django_assert_num_queries, user) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(getattr(desk, user))
    params = {"team": str(desk.desktop.pk), "category": str(desk.laptop.pk), "priority": "3", "type": "incident"}
    with django_assert_num_queries(PAGE_QUERIES):
        assert get(client, PAGE).status_code == 200
    with django_assert_num_queries(PAGE_QUERIES):
        assert get(client, PAGE, params).status_code == 200
    grow(desk, 12)
    with django_assert_num_queries(PAGE_QUERIES):
        assert get(client, PAGE).status_code == 200
    with django_assert_num_queries(PAGE_QUERIES):
        assert get(client, PAGE, {**params, "policy": str(history.policy.pk)}).status_code == 200


def test_api_and_csv_queries_do_not_grow_with_the_data(desk, history, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    client = signed_in(desk.manager)
    # session, user, memberships, filter choices; API: JIT off, totals and groups, live, CSAT; CSV: the one cursor
    for size in ("small", "large"):
        with django_assert_num_queries(8 + 2):
            assert get(client, API, {"group_by": "team"}).status_code == 200
        with django_assert_num_queries(5):
            response = get(client, CSV)
            body = b"".join(response.streaming_content)
        assert body.count(b"\n") == 1 + ClockOutcome.objects.count()
        if size == "small":
            grow(desk, 12)


@pytest.mark.parametrize("user", ["manager", "lead"])
def test_the_page_from_rollups_is_the_page_from_raw_rows_in_the_same_queries(  # type: ignore[no-untyped-def]
    desk, history, django_assert_num_queries, user
) -> None:
    from sla import rollups

    viewer = getattr(desk, user)
    client = signed_in(viewer)
    views = [{}, {"team": str(desk.desktop.pk)}, {"priority": "3", "bucket": "week"}]
    raw = [get(client, PAGE, params) for params in views]
    assert not any(response.context["q"].rollups for response in raw)
    assert rollups.fill_zone(viewer.time_zone)
    for params, counted in zip(views, raw, strict=True):
        with django_assert_num_queries(PAGE_QUERIES):
            summed = get(client, PAGE, params)
        assert summed.context["q"].rollups
        assert tiles(summed.content) == tiles(counted.content)
        assert chart_data(summed.content) == chart_data(counted.content)
        assert summed.context["teams"] == counted.context["teams"]
        assert summed.context["heatmap"] == counted.context["heatmap"]
    assert sum(chart_data(raw[0].content)["flow"]["created"]) > 0  # the views compared were not empty
