"""Calendar maths over HTTP: `due/` and `business-seconds/` (desk users and admins; tokens need `sla:read`)."""

from datetime import UTC
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from itsm.errors import NotFound, ValidationFailed
from security import permissions
from security.models import User
from security.scopes import Scope
from sla import selectors
from sla.api.serializers import (
    BusinessSecondsQuerySerializer,
    BusinessSecondsSerializer,
    DueQuerySerializer,
    DueSerializer,
    TicketClockSerializer,
)
from sla.calendar import BusinessCalendar, NoWorkingTime
from tickets import selectors as ticket_selectors


class CalendarMathsView(APIView):
    """Parse the query, load the calendar through the selector (missing and forbidden are the same 404), answer."""

    query_serializer_class: type[serializers.Serializer]
    required_scopes = {"GET": [Scope.SLA_READ]}

    def get(self, request: Request, pk: int) -> Response:
        query = self.query_serializer_class(data=request.query_params)
        query.is_valid(raise_exception=True)
        user = request.user
        assert isinstance(user, User)  # noqa: S101 - IsAuthenticated ran first
        calendar = selectors.calendar_get(user=user, pk=pk)
        try:
            return Response(self.answer(selectors.business_calendar_for(calendar), query.validated_data))
        except NoWorkingTime as exc:
            raise ValidationFailed(str(exc), code="no_working_time") from exc

    def answer(self, business: BusinessCalendar, query: dict[str, Any]) -> Any:
        raise NotImplementedError


@extend_schema(
    summary="Business-time due instant",
    parameters=[DueQuerySerializer],
    responses={200: DueSerializer, 404: OpenApiResponse(description="No such calendar.")},
)
class CalendarDueView(CalendarMathsView):
    """`GET /api/v1/calendars/{id}/due/?start=<ISO 8601>&seconds=<N>` → `{"due_at": "<ISO 8601 UTC>"}`."""

    query_serializer_class = DueQuerySerializer

    def answer(self, business: BusinessCalendar, query: dict[str, Any]) -> Any:
        due = business.due_at(query["start"], query["seconds"])
        return DueSerializer({"due_at": due.astimezone(UTC)}).data


@extend_schema(
    summary="Business seconds between two instants",
    parameters=[BusinessSecondsQuerySerializer],
    responses={200: BusinessSecondsSerializer, 404: OpenApiResponse(description="No such calendar.")},
)
class CalendarBusinessSecondsView(CalendarMathsView):
    """`GET /api/v1/calendars/{id}/business-seconds/?start=...&end=...` → `{"seconds": N}`."""

    query_serializer_class = BusinessSecondsQuerySerializer

    def answer(self, business: BusinessCalendar, query: dict[str, Any]) -> Any:
        seconds = business.business_seconds(query["start"], query["end"])
        return BusinessSecondsSerializer({"seconds": seconds}).data


class TicketSlaResponseSerializer(serializers.Serializer):
    ticket = serializers.CharField()
    clocks = TicketClockSerializer(many=True)


@extend_schema(
    summary="A ticket's SLA clocks",
    responses={200: TicketSlaResponseSerializer, 404: OpenApiResponse(description="No such ticket.")},
)
class TicketSlaView(APIView):
    """`GET /api/v1/tickets/{number}/sla/` → `{"clocks": [...]}`: the ticket's clocks for people who see its internals.

    A ticket the caller cannot see is the same 404 as a missing one; a visible ticket whose internals the caller may
    not see (its requester) is a 404 too, since the SLA figures are internal."""

    required_scopes = {"GET": [Scope.TICKETS_READ, Scope.SLA_READ]}

    def get(self, request: Request, number: str) -> Response:
        user = request.user
        assert isinstance(user, User)  # noqa: S101 - IsAuthenticated ran first
        ticket = ticket_selectors.ticket_get(user=user, number=number)
        if not permissions.can_view_internal(user, ticket):
            raise NotFound("No such ticket.")
        clocks = selectors.clocks_for_ticket(user=user, ticket=ticket, now=timezone.now())
        return Response({"ticket": ticket.number, "clocks": TicketClockSerializer(clocks, many=True).data})
