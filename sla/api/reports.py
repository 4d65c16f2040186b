"""`GET /api/v1/reports/sla/`: the dashboard's figures as JSON (docs/dashboards.md "API").

Same parameters, same validation and same statements as `/dashboards/sla/`; `group_by` adds one row per team,
category, priority, policy, local day or local week. Managers and team leads only (others: 404); tokens need
`sla:read`."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from itsm.errors import ValidationFailed
from security.models import User
from sla import reports
from sla.forms import PRESETS
from sla.reports import GROUP_BYS, OutcomeFigures
from sla.views import dashboard_form
from tickets.api.schema import ErrorSerializer
from tickets.state import TicketType

_FIGURE_FIELDS = (
    "first_response_finished",
    "first_response_met",
    "resolution_finished",
    "resolution_met",
    "breaches",
    "first_response_business_p50",
    "first_response_business_p90",
    "first_response_wall_p50",
    "first_response_wall_p90",
    "resolution_business_p50",
    "resolution_business_p90",
    "resolution_wall_p50",
    "resolution_wall_p90",
)


class OutcomeFiguresSerializer(serializers.Serializer):
    """Finished clocks of a group: counts, compliance in percent (null when nothing finished), and the median and
    90th percentile durations in seconds, business time and wall-clock time."""

    key = serializers.JSONField(allow_null=True)
    label = serializers.CharField()  # type: ignore[assignment]  # a field, popped by the serializer metaclass
    first_response_finished = serializers.IntegerField()
    first_response_met = serializers.IntegerField()
    first_response_compliance = serializers.FloatField(allow_null=True)
    resolution_finished = serializers.IntegerField()
    resolution_met = serializers.IntegerField()
    resolution_compliance = serializers.FloatField(allow_null=True)
    breaches = serializers.IntegerField()
    first_response_business_p50 = serializers.FloatField(allow_null=True)
    first_response_business_p90 = serializers.FloatField(allow_null=True)
    first_response_wall_p50 = serializers.FloatField(allow_null=True)
    first_response_wall_p90 = serializers.FloatField(allow_null=True)
    resolution_business_p50 = serializers.FloatField(allow_null=True)
    resolution_business_p90 = serializers.FloatField(allow_null=True)
    resolution_wall_p50 = serializers.FloatField(allow_null=True)
    resolution_wall_p90 = serializers.FloatField(allow_null=True)


class PeriodSerializer(serializers.Serializer):
    preset = serializers.CharField()
    first_day = serializers.DateField()
    last_day = serializers.DateField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    time_zone = serializers.CharField()


class SlaReportSerializer(serializers.Serializer):
    period = PeriodSerializer()
    totals = OutcomeFiguresSerializer()
    at_risk_tickets = serializers.IntegerField()
    breached_tickets = serializers.IntegerField()
    csat_average = serializers.FloatField(allow_null=True)
    csat_rated = serializers.IntegerField()
    csat_resolved = serializers.IntegerField()
    csat_response_rate = serializers.FloatField(allow_null=True)
    group_by = serializers.CharField(allow_null=True)
    groups = OutcomeFiguresSerializer(many=True)


def figures_data(row: OutcomeFigures) -> dict[str, Any]:
    key = row.key.isoformat() if hasattr(row.key, "isoformat") else row.key
    data: dict[str, Any] = {"key": key, "label": row.label}
    data.update({name: getattr(row, name) for name in _FIGURE_FIELDS})
    data["first_response_compliance"] = row.first_response_compliance
    data["resolution_compliance"] = row.resolution_compliance
    return data


_PARAMETERS = [
    OpenApiParameter("range", OpenApiTypes.STR, enum=[value for value, _label in PRESETS], description="Default 30d."),
    OpenApiParameter("from", OpenApiTypes.DATE, description="First local day (with range=custom or alone)."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last local day, inclusive."),
    OpenApiParameter("team", OpenApiTypes.INT),
    OpenApiParameter("category", OpenApiTypes.INT),
    OpenApiParameter("priority", OpenApiTypes.INT, enum=[1, 2, 3, 4]),
    OpenApiParameter("type", OpenApiTypes.STR, enum=list(TicketType.values)),
    OpenApiParameter("policy", OpenApiTypes.INT),
    OpenApiParameter("group_by", OpenApiTypes.STR, enum=list(GROUP_BYS)),
]


class SlaReportView(APIView):
    required_scopes = {"GET": ["sla:read"]}

    @extend_schema(
        operation_id="reports_sla",
        summary="SLA figures of a period (the dashboard's tiles), optionally grouped",
        parameters=_PARAMETERS,
        # 404 for anyone who is neither a manager nor a team lead, like the dashboard page.
        responses={200: SlaReportSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        user = request.user
        assert isinstance(user, User)  # noqa: S101 - IsAuthenticated ran first
        form = dashboard_form(user, request.query_params)
        if not form.is_valid():
            raise ValidationFailed("Invalid input.", fields=form.error_fields())
        q = form.report_query()
        group_by = form.cleaned_data.get("group_by") or None
        with reports.report_transaction(q) as q:
            outcome_figures = reports.beside(reports.outcome_figure_sets, q, [group_by] if group_by else [])
            live = reports.live_figures(q)
            csat = reports.satisfaction(q)
            figure_sets = outcome_figures()
        totals = figure_sets[None][0]
        groups = figure_sets[group_by] if group_by else []
        data = {
            "period": {
                "preset": form.cleaned_data["range"],
                "first_day": q.first_day,
                "last_day": q.last_day,
                "start": q.start,
                "end": q.end,
                "time_zone": q.zone_name,
            },
            "totals": figures_data(totals),
            "at_risk_tickets": live.at_risk_tickets,
            "breached_tickets": live.breached_tickets,
            "csat_average": csat.average,
            "csat_rated": csat.rated,
            "csat_resolved": csat.resolved,
            "csat_response_rate": csat.response_rate,
            "group_by": group_by,
            "groups": [figures_data(row) for row in groups],
        }
        return Response(SlaReportSerializer(data).data)
