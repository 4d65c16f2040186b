"""The SLA dashboard (`/dashboards/sla/`) and its CSV export, for managers (every team) and team leads (their teams).

Anyone else gets the same 404 as a missing page. The filters live in the URL (`sla.forms.DashboardFilterForm`); every
figure comes from `sla.reports` in a constant number of statements (docs/dashboards.md)."""

import csv
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.views.decorators.http import require_safe

from security import permissions
from security.models import User
from sla import reports
from sla.forms import PRESETS, DashboardFilterForm
from sla.reports import AGE_BUCKETS, OPEN_STATE_ORDER, ReportQuery
from tickets.state import TicketState

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
HEAT_LEVELS = 5


def dashboard_form(user: User, params: Any, now: datetime | None = None) -> DashboardFilterForm:
    """The bound filter form of a dashboard user (one statement for the filter choices). Raises 404 for others."""
    if not permissions.can_view_sla_dashboard(user):
        raise Http404("No such page.")
    scope = permissions.sla_dashboard_team_scope(user)
    options = reports.options(scope_team_ids=scope, include_confidential=permissions.can_see_confidential(user))
    return DashboardFilterForm(params, user=user, options=options, now=now or timezone.now())


def _select(form: DashboardFilterForm, name: str) -> dict[str, Any]:
    """A filter's `<select>` as plain data for the page's own loop: Django renders a widget's every `<option>` through
    a template of its own, which cost more than some of the page's statements."""
    bound = form[name]
    field = bound.field
    assert isinstance(field, forms.ChoiceField)  # noqa: S101 - the filters are choice fields
    value = bound.value()
    current = "" if value is None else str(value)
    return {
        "name": bound.html_name,
        "id": bound.id_for_label,
        "label": bound.label,
        "errors": bound.errors,
        "options": [
            (str(key), str(label), str(key) == current) for key, label in cast(list[tuple[Any, Any]], field.choices)
        ],
    }


def _seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    total = round(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} m"
    if minutes:
        return f"{minutes} m {secs} s" if secs else f"{minutes} m"
    return f"{secs} s"


def _percent_text(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} %"


def _queue_url(q: ReportQuery, **extra: Any) -> str:
    """The desk queue behind a figure: the same team, category, priority and type, every state, updated in the
    period (finishing a clock updates its ticket)."""
    params: list[tuple[str, Any]] = [("queue", "all")]
    for name, value in (
        ("team", q.team_id),
        ("category", q.category_id),
        ("priority", q.priority),
        ("type", q.ticket_type),
    ):
        if value is not None and name not in extra:
            params.append((name, value))
    for name, value in extra.items():
        if isinstance(value, list | tuple):
            params.extend((name, item) for item in value)
        elif value is not None:
            params.append((name, value))
    return f"{reverse('desk')}?{urlencode(params)}"


def _period_params(q: ReportQuery) -> dict[str, str]:
    return {"updated_from": q.first_day.isoformat(), "updated_to": q.last_day.isoformat()}


def dashboard_context(q: ReportQuery) -> dict[str, Any]:
    # The outcome statement (the costliest, percentiles) runs beside the others, on a second connection.
    outcome_figures = reports.beside(
        reports.outcome_figure_sets, q, [q.bucket, "team", "category"], group_percentiles=False
    )
    live = reports.live_figures(q)
    lists = reports.clock_lists(q)
    flow = reports.flow(q)
    csat = flow.satisfaction
    backlog = reports.backlog(q)
    figure_sets = outcome_figures()
    totals = figure_sets[None][0]
    trend = {row.key: row for row in figure_sets[q.bucket]}
    by_team = figure_sets["team"]
    by_category = figure_sets["category"]

    buckets = reports.series_days(q.first_day, q.last_day, q.bucket)
    ranked = sorted(
        by_team,
        key=lambda row: (row.compliance if row.compliance is not None else 101.0, row.label),
    )
    state_labels = dict(TicketState.choices)
    busiest = max(flow.arrivals.values(), default=0)
    # Pre-formatted strings: 168 cells rendered through template lookups and number formatting cost more than every
    # statement of the page together.
    heatmap = []
    for dow in range(1, 8):
        cells = []
        for hour in range(24):
            count = flow.arrivals.get((dow, hour), 0)
            level = 0 if count == 0 else 1 + (HEAT_LEVELS - 1) * count // busiest
            cells.append(
                (f"heat heat-{level}", f"{WEEKDAYS[dow - 1]} {hour}:00 — {count}", str(count) if count else "")
            )
        heatmap.append({"day": WEEKDAYS[dow - 1], "cells": cells})
    # The 168 cells as one escaped fragment: rendered cell by cell through the template they were a third of the page's
    # template time.
    heatmap_html = format_html_join(
        "",
        '<tr><th scope="row">{}</th>{}</tr>',
        ((row["day"], format_html_join("", '<td class="{}" title="{}">{}</td>', row["cells"])) for row in heatmap),
    )
    charts = {
        "trend": {
            "bucket": q.bucket,
            "labels": [day.isoformat() for day in buckets],
            "first_response": [trend[day].first_response_compliance if day in trend else None for day in buckets],
            "resolution": [trend[day].resolution_compliance if day in trend else None for day in buckets],
        },
        "breaches_by_team": {"labels": [row.label for row in by_team], "values": [row.breaches for row in by_team]},
        "breaches_by_category": {
            "labels": [row.label for row in by_category],
            "values": [row.breaches for row in by_category],
        },
        "flow": {
            "labels": [day.isoformat() for day in flow.days],
            "created": flow.created,
            "resolved": flow.resolved,
        },
        "backlog": {
            "labels": [label for label, _days in AGE_BUCKETS],
            "datasets": [
                {
                    "label": str(state_labels[state]),
                    "values": [backlog.get((state, index), 0) for index in range(len(AGE_BUCKETS))],
                }
                for state in OPEN_STATE_ORDER
            ],
        },
    }
    period = _period_params(q)
    teams = [
        {
            "row": row,
            "first_response": _percent_text(row.first_response_compliance),
            "resolution": _percent_text(row.resolution_compliance),
            "compliance": _percent_text(row.compliance),
            "queue_url": _queue_url(q, team=row.key, **period) if row.key is not None else None,
            "open_url": _queue_url(q, team=row.key, state=list(OPEN_STATE_ORDER)) if row.key is not None else None,
        }
        for row in ranked
    ]
    tiles = {
        "first_response_compliance": _percent_text(totals.first_response_compliance),
        "resolution_compliance": _percent_text(totals.resolution_compliance),
        "first_response_counts": (totals.first_response_met, totals.first_response_finished),
        "resolution_counts": (totals.resolution_met, totals.resolution_finished),
        "breaches": totals.breaches,
        "at_risk": live.at_risk_tickets,
        "breached_now": live.breached_tickets,
        "first_response_business": (
            _seconds_text(totals.first_response_business_p50),
            _seconds_text(totals.first_response_business_p90),
        ),
        "first_response_wall": (
            _seconds_text(totals.first_response_wall_p50),
            _seconds_text(totals.first_response_wall_p90),
        ),
        "resolution_business": (
            _seconds_text(totals.resolution_business_p50),
            _seconds_text(totals.resolution_business_p90),
        ),
        "resolution_wall": (_seconds_text(totals.resolution_wall_p50), _seconds_text(totals.resolution_wall_p90)),
        "csat_average": "–" if csat.average is None else f"{csat.average:.2f} / 5",
        "csat_response_rate": _percent_text(csat.response_rate),
        "csat_counts": (csat.rated, csat.resolved),
    }
    return {
        "q": q,
        "totals": totals,
        "live": live,
        "csat": csat,
        "tiles": tiles,
        "charts": charts,
        "teams": teams,
        "breached_list": [row for row in lists if row.list == "breached"],
        "at_risk_list": [row for row in lists if row.list == "at_risk"],
        "heatmap": heatmap,
        "heatmap_html": heatmap_html,
        "hours": [str(hour) for hour in range(24)],
        "backlog_url": _queue_url(q, state=list(OPEN_STATE_ORDER)),
        "period_url": _queue_url(q, **period),
    }


@login_required
@require_safe
def sla_dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)  # noqa: S101 - login_required ran first
    form = dashboard_form(user, request.GET)
    context: dict[str, Any] = {
        "form": form,
        "presets": PRESETS,
        "filter_selects": [
            _select(form, name) for name in ("team", "category", "priority", "type", "policy", "bucket")
        ],
    }
    if not form.is_valid():
        return render(request, "sla/dashboard.html", context, status=400)
    q = form.report_query()
    with reports.report_transaction(q) as q:
        context.update(dashboard_context(q))
    context["csv_url"] = f"{reverse('sla_dashboard_csv')}?{request.GET.urlencode()}"
    context["api_url"] = f"{reverse('sla_api:reports-sla')}?{request.GET.urlencode()}"
    return render(request, "sla/dashboard.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


# A spreadsheet runs a cell starting with one of these as a formula (CSV injection); names are user-written text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_lines(q: ReportQuery) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(reports.CSV_COLUMNS)
    for row in reports.outcome_rows(q):
        yield writer.writerow([_cell(value) for value in row])


@login_required
@require_safe
def sla_dashboard_csv(request: HttpRequest) -> HttpResponseBase:
    """Every outcome behind the view, streamed from a server-side cursor (no row cap, constant memory)."""
    user = request.user
    assert isinstance(user, User)  # noqa: S101 - login_required ran first
    form = dashboard_form(user, request.GET)
    if not form.is_valid():
        return HttpResponse(
            "\n".join(f"{name}: {' '.join(messages)}" for name, messages in form.error_fields().items()),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    q = form.report_query()
    name = f"sla-outcomes-{q.first_day.isoformat()}-{q.last_day.isoformat()}.csv"
    response = StreamingHttpResponse(csv_lines(q), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
