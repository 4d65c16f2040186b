"""Service level management. So far: business calendars (DESIGN.md §4). The maths lives in `sla/calendar.py`;
`sla.selectors.business_calendar_for` turns a `Calendar` row into a `BusinessCalendar`."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


def validate_time_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            "%(value)s is not a known IANA time zone (e.g. Europe/London).",
            code="unknown_zone",
            params={"value": value},
        ) from exc


def validate_holiday_country(value: str) -> None:
    if value and value not in holidays_package.list_supported_countries():
        raise ValidationError(
            "%(value)s is not a country the holidays package knows (use an ISO 3166 code such as GB or DE).",
            code="unknown_country",
            params={"value": value},
        )


class Calendar(models.Model):
    """Working hours in one IANA zone: weekly ranges, explicit holidays and optionally a country's public holidays.

    The built-in 24×7 calendar (`is_24x7`, created by migration 0002, at most one) ignores ranges and holidays.
    """

    name = models.CharField(max_length=100)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    is_24x7 = models.BooleanField(default=False, editable=False)
    holiday_country = models.CharField(
        max_length=8, blank=True, validators=[validate_holiday_country], help_text="ISO 3166 code, e.g. GB."
    )
    holiday_subdivision = models.CharField(max_length=16, blank=True, help_text="e.g. SCT for Scotland.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)
        constraints = (
            models.UniqueConstraint(fields=("name",), name="sla_calendar_name_unique"),
            models.UniqueConstraint(fields=("is_24x7",), condition=Q(is_24x7=True), name="sla_calendar_one_24x7"),
            models.CheckConstraint(
                condition=Q(holiday_subdivision="") | ~Q(holiday_country=""),
                name="sla_calendar_subdivision_needs_country",
            ),
        )

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.holiday_subdivision:
            if not self.holiday_country:
                raise ValidationError(
                    {
                        "holiday_subdivision": ValidationError(
                            "A subdivision needs a country.", code="subdivision_without_country"
                        )
                    }
                )
            known = holidays_package.list_supported_countries().get(self.holiday_country)
            if known is not None and self.holiday_subdivision not in known:
                message = f"{self.holiday_subdivision} is not a subdivision of {self.holiday_country}."
                raise ValidationError({"holiday_subdivision": ValidationError(message, code="unknown_subdivision")})


class WorkingRange(models.Model):
    """Local wall-clock working hours on one weekday. `end_time <= start_time` ends on the next day (a night shift;
    00:00–00:00 is the whole day). The range belongs to the day it starts on."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0
        TUESDAY = 1
        WEDNESDAY = 2
        THURSDAY = 3
        FRIDAY = 4
        SATURDAY = 5
        SUNDAY = 6

    calendar = models.ForeignKey(Calendar, on_delete=models.CASCADE, related_name="working_ranges")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start_time = models.TimeField()
    end_time = models.TimeField()

    class Meta:
        ordering = ("weekday", "start_time")
        constraints = (
            models.CheckConstraint(condition=Q(weekday__gte=0, weekday__lte=6), name="sla_range_weekday_valid"),
            models.UniqueConstraint(fields=("calendar", "weekday", "start_time"), name="sla_range_unique_start"),
        )

    def __str__(self) -> str:
        day = self.Weekday(self.weekday).label
        return f"{day} {self.start_time:%H:%M}–{self.end_time:%H:%M}"

    def clean(self) -> None:
        super().clean()
        for name in ("start_time", "end_time"):
            value = getattr(self, name)
            if value is not None and value.microsecond:
                raise ValidationError({name: ValidationError("Use whole seconds.", code="fractional_seconds")})


class Holiday(models.Model):
    """An explicit non-working local date: ranges that start on it do not count."""

    calendar = models.ForeignKey(Calendar, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ("date",)
        constraints = (models.UniqueConstraint(fields=("calendar", "date"), name="sla_holiday_unique_date"),)

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.name}".strip()
