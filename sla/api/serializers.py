"""Input and output serializers of the calendar endpoints."""

import re
from datetime import UTC, datetime
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# A target longer than this is a typo, not a service level (and it bounds the day-by-day walk).
MAX_TARGET_SECONDS = 366 * 86_400
# An unencoded "+02:00" in a query string arrives as " 02:00"; put the sign back rather than reject it.
_SPACE_FOR_PLUS = re.compile(r" (\d{2}(?::?\d{2})?)$")


@extend_schema_field(OpenApiTypes.DATETIME)
class AwareDateTimeField(serializers.Field):
    """ISO 8601 with an explicit offset or `Z`; naive values are refused rather than guessed."""

    default_error_messages = {
        "invalid": "Not an ISO 8601 date-time (e.g. 2026-03-30T09:00:00+01:00).",
        "range": "Use a date between the years 1900 and 2999.",
        "naive": "Give a time zone offset or Z (e.g. 2026-03-30T09:00:00Z); naive date-times are ambiguous.",
    }

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str):
            self.fail("invalid")
        text = _SPACE_FOR_PLUS.sub(r"+\1", data.strip())
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            self.fail("invalid")
        if value.tzinfo is None or value.utcoffset() is None:
            self.fail("naive")
        if not 1900 <= value.year <= 2999:
            self.fail("range")
        return value

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class DueQuerySerializer(serializers.Serializer):
    start = AwareDateTimeField()
    seconds = serializers.IntegerField(min_value=0, max_value=MAX_TARGET_SECONDS)


class BusinessSecondsQuerySerializer(serializers.Serializer):
    start = AwareDateTimeField()
    end = AwareDateTimeField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": ["The end is before the start."]})
        if (attrs["end"] - attrs["start"]).total_seconds() > MAX_TARGET_SECONDS * 3:
            raise serializers.ValidationError({"end": ["The span is longer than three years."]})
        return attrs


class DueSerializer(serializers.Serializer):
    due_at = serializers.DateTimeField(default_timezone=None)


class BusinessSecondsSerializer(serializers.Serializer):
    seconds = serializers.IntegerField()


class ClockSegmentSerializer(serializers.Serializer):
    kind = serializers.CharField()
    start = serializers.DateTimeField(default_timezone=UTC)
    end = serializers.DateTimeField(default_timezone=UTC, allow_null=True)
    business_seconds = serializers.IntegerField()


class DueStepSerializer(serializers.Serializer):
    start = serializers.DateTimeField(default_timezone=UTC)
    end = serializers.DateTimeField(default_timezone=UTC)
    business_seconds = serializers.IntegerField(source="seconds")


class WindowRunSerializer(serializers.Serializer):
    """Consecutive working days whose windows read the same on the calendar's local clock."""

    first_day = serializers.DateField()
    last_day = serializers.DateField()
    days = serializers.IntegerField()
    windows = serializers.SerializerMethodField()
    business_seconds = serializers.IntegerField(source="seconds")

    def get_windows(self, run: Any) -> list[list[str]]:
        return [[start.isoformat(), end.isoformat()] for start, end in run.windows]


class HolidaySerializer(serializers.Serializer):
    date = serializers.DateField()
    name = serializers.CharField()


class ClockExplainSerializer(serializers.Serializer):
    """`sla.selectors.ClockExplain`: how the due instant was derived, and the calendar's windows and holidays between
    the start and the due instant. Computed from what the panel already loaded: no extra query."""

    calendar = serializers.CharField(source="calendar_name")
    target_business_seconds = serializers.IntegerField(source="derivation.target")
    elapsed_business_seconds = serializers.IntegerField(source="derivation.elapsed")
    paused_seconds = serializers.IntegerField(source="derivation.paused")
    elapsed_before_anchor = serializers.IntegerField(source="derivation.elapsed_before")
    remaining_from_anchor = serializers.IntegerField(source="derivation.remaining")
    anchor = serializers.DateTimeField(source="derivation.anchor", default_timezone=UTC, allow_null=True)
    due_at = serializers.DateTimeField(source="derivation.due_at", default_timezone=UTC, allow_null=True)
    steps = DueStepSerializer(source="derivation.steps", many=True)
    more_steps = serializers.IntegerField(source="derivation.more_steps")
    more_steps_seconds = serializers.IntegerField(source="derivation.more_seconds")
    is_24x7 = serializers.BooleanField(source="usage.is_24x7")
    working_days = WindowRunSerializer(source="usage.runs", many=True)
    more_working_day_runs = serializers.IntegerField(source="usage.more_runs")
    more_working_day_seconds = serializers.IntegerField(source="usage.more_seconds")
    holidays = serializers.SerializerMethodField()
    more_holidays = serializers.IntegerField(source="usage.more_holidays")
    until = serializers.DateTimeField(source="usage_until", default_timezone=UTC)

    def get_holidays(self, explain: Any) -> list[dict[str, str]]:
        return [{"date": day.isoformat(), "name": name} for day, name in explain.holiday_names]


class TicketClockSerializer(serializers.Serializer):
    """One clock of `sla.selectors.clocks_for_ticket`; instants in UTC, durations in business seconds."""

    policy = serializers.CharField()
    kind = serializers.CharField()
    team = serializers.CharField(allow_null=True)
    metric = serializers.CharField()
    state = serializers.CharField()
    clock_state = serializers.CharField()
    started_at = serializers.DateTimeField(default_timezone=UTC)
    due_at = serializers.DateTimeField(default_timezone=UTC, allow_null=True)
    target_business_seconds = serializers.IntegerField(source="target_seconds")
    elapsed_business_seconds = serializers.IntegerField(source="elapsed_seconds")
    remaining_business_seconds = serializers.IntegerField(source="remaining_seconds")
    paused_seconds = serializers.IntegerField()
    breached_at = serializers.DateTimeField(default_timezone=UTC, allow_null=True)
    met_at = serializers.DateTimeField(default_timezone=UTC, allow_null=True)
    finished_at = serializers.DateTimeField(default_timezone=UTC, allow_null=True)
    time_zone = serializers.CharField()
    segments = ClockSegmentSerializer(many=True)
    explain = ClockExplainSerializer()
