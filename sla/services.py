"""Writes for service level management: calendars. Every write is audited (`security.audit.audit_record`) as the
last step of its own transaction; only administrators (or the system, `actor=None`) may change calendars."""

from collections.abc import Sequence
from datetime import date, time
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from itsm.errors import PermissionDenied, ValidationFailed
from security import permissions
from security.audit import audit_record, snapshot
from security.models import User
from sla.models import Calendar, Holiday, WorkingRange

CALENDAR_AUDIT_FIELDS = ("name", "time_zone", "is_24x7", "holiday_country", "holiday_subdivision")
WORKING_RANGE_AUDIT_FIELDS = ("calendar", "weekday", "start_time", "end_time")
HOLIDAY_AUDIT_FIELDS = ("calendar", "date", "name")
CALENDAR_UPDATABLE_FIELDS = frozenset({"name", "time_zone", "holiday_country", "holiday_subdivision"})


def _require_admin(actor: User | None) -> None:
    if actor is not None and not permissions.can_manage_users(actor):
        raise PermissionDenied("Only administrators may change calendars.")


def _clean(obj: Calendar | WorkingRange | Holiday, message: str, **kwargs: Any) -> None:
    try:
        obj.full_clean(**kwargs)
    except ValidationError as exc:
        raise ValidationFailed(message, fields=exc.message_dict) from exc


def _calendar_snapshot(calendar: Calendar) -> dict[str, Any]:
    data = snapshot(calendar, CALENDAR_AUDIT_FIELDS)
    data["working_ranges"] = [
        [r.weekday, r.start_time.isoformat(), r.end_time.isoformat()]
        for r in calendar.working_ranges.order_by("weekday", "start_time")
    ]
    data["holidays"] = [[h.date.isoformat(), h.name] for h in calendar.holidays.order_by("date")]
    return data


@transaction.atomic
def calendar_create(
    *,
    actor: User | None,
    name: str,
    time_zone: str,
    holiday_country: str = "",
    holiday_subdivision: str = "",
    ranges: Sequence[tuple[int, time, time]] = (),
    holidays: Sequence[tuple[date, str]] = (),
) -> Calendar:
    """Create a calendar with its weekly ranges `(weekday, start, end)` and explicit holidays `(date, name)`.

    Invalid input (unknown zone or country, a taken name, duplicate ranges or dates) raises `ValidationFailed` and
    writes nothing. One audit row `calendar.create` holds the whole calendar."""
    _require_admin(actor)
    calendar = Calendar(
        name=name.strip(),
        time_zone=time_zone,
        holiday_country=holiday_country.strip().upper(),
        holiday_subdivision=holiday_subdivision.strip().upper(),
    )
    _clean(calendar, "The calendar is not valid.")
    try:
        with transaction.atomic():
            calendar.save(force_insert=True)
    except IntegrityError as exc:  # a concurrent create with the same name
        raise ValidationFailed("The calendar is not valid.", fields={"name": ["The name is taken."]}) from exc
    _add_children(calendar, ranges, holidays)
    audit_record(actor=actor, action="calendar.create", obj=calendar, after=_calendar_snapshot(calendar))
    return calendar


def _add_children(
    calendar: Calendar, ranges: Sequence[tuple[int, time, time]], holidays: Sequence[tuple[date, str]]
) -> None:
    working_ranges = [WorkingRange(calendar=calendar, weekday=w, start_time=s, end_time=e) for w, s, e in ranges]
    holiday_rows = [Holiday(calendar=calendar, date=d, name=n) for d, n in holidays]
    if len({(r.weekday, r.start_time) for r in working_ranges}) != len(working_ranges):
        raise ValidationFailed("Two ranges start at the same time on the same day.")
    if len({h.date for h in holiday_rows}) != len(holiday_rows):
        raise ValidationFailed("A holiday date is listed twice.")
    rows: list[WorkingRange | Holiday] = [*working_ranges, *holiday_rows]
    for row in rows:
        _clean(row, "A range or holiday is not valid.", exclude=["calendar"], validate_unique=False)
    WorkingRange.objects.bulk_create(working_ranges)
    Holiday.objects.bulk_create(holiday_rows)


@transaction.atomic
def calendar_update(
    *,
    actor: User | None,
    calendar: Calendar,
    ranges: Sequence[tuple[int, time, time]] | None = None,
    holidays: Sequence[tuple[date, str]] | None = None,
    **changes: Any,
) -> Calendar:
    """Change a calendar's fields (`name`, `time_zone`, `holiday_country`, `holiday_subdivision`) and, when given,
    replace its ranges and/or holidays. Locks the calendar row; returns it unchanged (no audit row) when nothing
    changes; otherwise writes one `calendar.update` audit row with the before and after pictures."""
    unknown = set(changes) - CALENDAR_UPDATABLE_FIELDS
    if unknown:
        raise ValidationFailed(f"Unknown calendar fields: {', '.join(sorted(unknown))}.")
    _require_admin(actor)
    calendar = Calendar.objects.select_for_update().get(pk=calendar.pk)
    before = _calendar_snapshot(calendar)
    changed = [name for name, value in changes.items() if getattr(calendar, name) != value]
    for name in changed:
        setattr(calendar, name, changes[name])
    if changed:
        _clean(calendar, "The calendar is not valid.")
        try:
            with transaction.atomic():
                calendar.save(update_fields=changed)
        except IntegrityError as exc:
            raise ValidationFailed("The calendar is not valid.", fields={"name": ["The name is taken."]}) from exc
    if ranges is not None:
        calendar.working_ranges.all().delete()
        _add_children(calendar, ranges, ())
    if holidays is not None:
        calendar.holidays.all().delete()
        _add_children(calendar, (), holidays)
    after = _calendar_snapshot(calendar)
    if after == before:
        return calendar
    audit_record(actor=actor, action="calendar.update", obj=calendar, before=before, after=after)
    return calendar
