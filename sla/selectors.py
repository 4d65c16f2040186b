"""Reads for service level management. Calendars are visible to desk users (agents, leads, managers, security
officers) and administrators; anyone else gets the same 404 as for a missing calendar."""

from zoneinfo import ZoneInfo

from django.db.models import QuerySet

from itsm.errors import NotFound
from security import permissions
from security.models import User
from sla.calendar import BusinessCalendar, CountryHolidays, WeeklyRange
from sla.models import Calendar


def can_view_calendars(user: User) -> bool:
    return permissions.can_use_desk(user) or bool(user.is_authenticated and user.is_staff)


def calendar_list(*, user: User) -> QuerySet[Calendar]:
    if not can_view_calendars(user):
        return Calendar.objects.none()
    return Calendar.objects.prefetch_related("working_ranges", "holidays").order_by("name", "id")


def calendar_get(*, user: User, pk: int) -> Calendar:
    """The calendar with its ranges and holidays loaded (three queries). Missing and forbidden raise `NotFound`."""
    calendar = calendar_list(user=user).filter(pk=pk).first()
    if calendar is None:
        raise NotFound("No such calendar.")
    return calendar


def business_calendar_for(calendar: Calendar) -> BusinessCalendar:
    """The pure `BusinessCalendar` for a row (use the prefetched ranges and holidays of `calendar_get`)."""
    zone = ZoneInfo(calendar.time_zone)
    if calendar.is_24x7:
        return BusinessCalendar.always_open(zone)
    return BusinessCalendar(
        zone=zone,
        ranges=tuple(
            WeeklyRange(working_range.weekday, working_range.start_time, working_range.end_time)
            for working_range in calendar.working_ranges.all()
        ),
        holiday_dates=frozenset(holiday.date for holiday in calendar.holidays.all()),
        holiday_rule=(
            CountryHolidays(calendar.holiday_country, calendar.holiday_subdivision)
            if calendar.holiday_country
            else None
        ),
    )
