"""The SLA dashboard in Chromium: the charts are drawn from the page's data, a filter change redraws them from the
new figures, and the CSV downloads (over the known history of tests/sla/dashboard_data.py)."""

import csv
import io
import re

import pytest
from playwright.sync_api import expect

from tests.sla.dashboard_data import build_history

URL = "/dashboards/sla/?range=custom&from=2026-03-02&to=2026-03-04"


@pytest.fixture
def history(live_desk):  # type: ignore[no-untyped-def]
    return build_history(live_desk)


def chart_series(page, name: str) -> list[list]:  # type: ignore[no-untyped-def, type-arg]
    return page.evaluate(
        "name => window.dashboardCharts[name].data.datasets.map(set => set.data)",
        name,
    )


def chart_labels(page, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    return page.evaluate("name => window.dashboardCharts[name].data.labels", name)


def test_charts_render_from_data_update_on_a_filter_and_the_csv_downloads(live_desk, history, signed_in):  # type: ignore[no-untyped-def]
    # given
    page = signed_in(live_desk.manager)
    page.goto(URL)

    # then: every chart is drawn, from the figures of the page
    expect(page.locator("html[data-charts-ready=true]")).to_have_count(1)
    for name in ("trend", "flow", "breaches_by_team", "breaches_by_category", "backlog"):
        expect(page.locator(f'canvas[data-chart="{name}"][data-rendered=true]')).to_have_count(1)
        box = page.locator(f'canvas[data-chart="{name}"]').bounding_box()
        assert box is not None
        assert box["width"] > 100
        assert box["height"] > 100
    assert chart_series(page, "trend") == [[66.7, None, 100], [66.7, None, None]]
    assert chart_series(page, "flow") == [[3, 1, 2], [3, 0, 0]]
    assert chart_labels(page, "breaches_by_team") == ["Desktop support", "Network"]
    assert chart_series(page, "breaches_by_team") == [[2, 0]]

    # when: pick one team; the page reloads with the filter in the URL
    page.get_by_label("Team", exact=True).select_option(label="Network")
    expect(page).to_have_url(re.compile(rf"[?&]team={live_desk.network.pk}\b"))
    expect(page.locator("html[data-charts-ready=true]")).to_have_count(1)

    # then: the charts show that team's figures
    assert chart_labels(page, "breaches_by_team") == ["Network"]
    assert chart_series(page, "flow") == [[1, 0, 1], [1, 0, 0]]
    assert chart_series(page, "trend") == [[100, None, 100], [100, None, None]]
    expect(page.locator('[data-tile="first_response_compliance"] .dash-tile__value')).to_have_text("100.0 %")

    # when: export the view
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value

    # then: every outcome of the Network team in the period, and only those
    assert download.suggested_filename == "sla-outcomes-2026-03-02-2026-03-04.csv"
    path = download.path()
    assert path is not None
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.reader(io.StringIO(handle.read())))
    assert rows[0][0] == "outcome_id"
    assert sorted((row[1], row[3]) for row in rows[1:]) == sorted(
        [
            (history.tickets["T3"].number, "first_response"),
            (history.tickets["T3"].number, "resolution"),
            (history.tickets["T5"].number, "first_response"),
        ]
    )
