"""The dashboards' filters: one form for the page, the CSV export and the report API, so all three read the same
parameters the same way (docs/dashboards.md "Filters"). Bad input is a field error, never an exception."""

from datetime import date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from django import forms

from security import permissions
from security.middleware import user_zone
from security.models import User
from sla.reports import GROUP_BYS, Options, ReportQuery
from tickets.state import Priority, TicketType

PRESETS = (
    ("today", "Today"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("quarter", "This quarter"),
    ("custom", "Custom"),
)
DEFAULT_PRESET = "30d"
MAX_SPAN_DAYS = 731
MIN_DATE, MAX_DATE = date(2000, 1, 1), date(2999, 12, 31)
# Longer periods chart by week unless the URL asks for days.
DAILY_UP_TO_DAYS = 92


def preset_days(preset: str, today: date) -> tuple[date, date]:
    """The first and last local day (inclusive) of a preset period ending today."""
    if preset == "today":
        return today, today
    if preset == "7d":
        return today - timedelta(days=6), today
    if preset == "quarter":
        return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1), today
    return today - timedelta(days=29), today


# Zone names that Postgres reads first as abbreviations with a fixed offset (no summer time), each with the zone it
# links to in the zone database since 2024b (with the same offsets since 1997 in older releases). Reports cut days in
# the linked zone: Postgres groups rows by local day (`AT TIME ZONE`), Python cuts the period, and for "CET" in
# summer the two would be an hour apart.
POSTGRES_ABBREVIATION_ZONES = {
    "CET": "Europe/Brussels",
    "MET": "Europe/Brussels",
    "EET": "Europe/Athens",
    "WET": "Europe/Lisbon",
}


def report_zone(zone: ZoneInfo) -> ZoneInfo:
    """The zone a viewer's reports are cut in: their own, or the zone it links to (`POSTGRES_ABBREVIATION_ZONES`)."""
    linked = POSTGRES_ABBREVIATION_ZONES.get(zone.key)
    return ZoneInfo(linked) if linked else zone


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


class DashboardFilterForm(forms.Form):
    range = forms.ChoiceField(choices=PRESETS, required=False, label="Period")
    team = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    category = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    priority = forms.TypedChoiceField(
        coerce=int, required=False, empty_value=None, choices=[("", "Any"), *Priority.choices]
    )
    type = forms.ChoiceField(required=False, choices=[("", "Any"), *TicketType.choices])
    policy = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    bucket = forms.ChoiceField(
        required=False, label="Trend by", choices=[("", "Auto"), ("day", "Day"), ("week", "Week")]
    )
    group_by = forms.ChoiceField(required=False, choices=[("", "None"), *((g, g) for g in GROUP_BYS)])

    def __init__(self, data: Any, *, user: User, options: Options, now: datetime) -> None:
        super().__init__(data)
        self.user = user
        self.now = now
        self.zone = report_zone(user_zone(user))
        # `from` is a Python keyword; the URL parameters are `from` and `to`.
        self.fields["from"] = forms.DateField(required=False, label="From", input_formats=["%Y-%m-%d"])
        self.fields["to"] = forms.DateField(required=False, label="To", input_formats=["%Y-%m-%d"])
        for name, empty, choices in (
            ("team", "All my teams", options.teams),
            ("category", "Any", options.categories),
            ("policy", "Any", options.policies),
        ):
            cast(forms.ChoiceField, self.fields[name]).choices = [("", empty), *choices]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        today = self.now.astimezone(self.zone).date()
        preset = data.get("range") or ""
        first, last = data.get("from"), data.get("to")
        if not preset:
            preset = "custom" if (first or last) else DEFAULT_PRESET
        data["range"] = preset
        if preset == "custom":
            if "from" in self.errors or "to" in self.errors:
                return data
            if first is None:
                self.add_error("from", "Give the first day (YYYY-MM-DD).")
            if last is None:
                self.add_error("to", "Give the last day (YYYY-MM-DD).")
            if first is None or last is None:
                return data
            for name, value in (("from", first), ("to", last)):
                if not MIN_DATE <= value <= MAX_DATE:
                    self.add_error(name, "Use a date between 2000-01-01 and 2999-12-31.")
                    return data
            if last < first:
                self.add_error("to", "The last day is before the first.")
                return data
            if (last - first).days + 1 > MAX_SPAN_DAYS:
                self.add_error("to", f"The period is longer than {MAX_SPAN_DAYS} days.")
                return data
        else:
            first, last = preset_days(preset, today)
        data["from"], data["to"] = first, last
        return data

    def report_query(self) -> ReportQuery:
        """The validated view (call after `is_valid()`)."""
        data = self.cleaned_data
        first, last = data["from"], data["to"]
        bucket = data.get("bucket") or ("day" if (last - first).days < DAILY_UP_TO_DAYS else "week")
        return ReportQuery(
            start=local_midnight(first, self.zone),
            end=local_midnight(last + timedelta(days=1), self.zone),
            first_day=first,
            last_day=last,
            zone=self.zone,
            now=self.now,
            bucket=bucket,
            scope_team_ids=permissions.sla_dashboard_team_scope(self.user),
            include_confidential=permissions.can_see_confidential(self.user),
            team_id=data.get("team"),
            category_id=data.get("category"),
            priority=data.get("priority"),
            ticket_type=data.get("type") or None,
            policy_id=data.get("policy"),
        )

    def error_fields(self) -> dict[str, list[str]]:
        return {name: [str(message) for message in messages] for name, messages in self.errors.items()}
