"""Calendar rows: validation, constraints, the built-in 24×7 calendar, audited services and the row → maths bridge."""

from datetime import UTC, date, datetime, time

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from itsm.errors import PermissionDenied, ValidationFailed
from security.models import AuditLog
from sla import selectors, services
from sla.calendar import CountryHolidays
from sla.models import Calendar, Holiday, WorkingRange

pytestmark = pytest.mark.django_db


def london_office(**kwargs) -> Calendar:  # type: ignore[no-untyped-def]
    return services.calendar_create(
        actor=None,
        name=kwargs.pop("name", "London office"),
        time_zone="Europe/London",
        ranges=[(day, time(9), time(17)) for day in range(5)],
        holidays=[(date(2026, 1, 2), "Office closed")],
        **kwargs,
    )


def test_builtin_24x7_calendar_exists_once() -> None:
    builtin = Calendar.objects.get(is_24x7=True)
    assert builtin.name == "24×7"
    with pytest.raises(IntegrityError), transaction.atomic():
        Calendar.objects.create(name="Another", time_zone="UTC", is_24x7=True)
    business = selectors.business_calendar_for(builtin)
    assert business.is_24x7
    assert business.due_at(datetime(2026, 1, 1, tzinfo=UTC), 90) == datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone", "unknown_zone"),
        ({"time_zone": ""}, "time_zone", "blank"),
        ({"holiday_country": "XX"}, "holiday_country", "unknown_country"),
        ({"holiday_country": "GB", "holiday_subdivision": "NOPE"}, "holiday_subdivision", "unknown_subdivision"),
        ({"holiday_subdivision": "SCT"}, "holiday_subdivision", "subdivision_without_country"),
    ],
)
def test_invalid_calendar_fields_are_explained(fields: dict[str, str], field: str, code: str) -> None:
    calendar = Calendar(name="Bad", **{"time_zone": "UTC", **fields})
    with pytest.raises(ValidationError) as caught:
        calendar.full_clean()
    assert [error.code for error in caught.value.error_dict[field]] == [code]


def test_calendar_create_writes_rows_and_one_audit_row() -> None:
    calendar = london_office(holiday_country="gb", holiday_subdivision="eng")

    assert (calendar.holiday_country, calendar.holiday_subdivision) == ("GB", "ENG")
    assert WorkingRange.objects.filter(calendar=calendar).count() == 5
    assert list(Holiday.objects.filter(calendar=calendar).values_list("date", "name")) == [
        (date(2026, 1, 2), "Office closed")
    ]
    row = AuditLog.objects.get(action="calendar.create")
    assert row.object_id == str(calendar.pk)
    assert row.after["time_zone"] == "Europe/London"
    assert row.after["working_ranges"][0] == [0, "09:00:00", "17:00:00"]


def test_calendar_create_refuses_bad_input_and_writes_nothing() -> None:
    with pytest.raises(ValidationFailed) as caught:
        services.calendar_create(actor=None, name="Moon", time_zone="Moon/Base")
    assert "time_zone" in caught.value.fields
    with pytest.raises(ValidationFailed):
        services.calendar_create(
            actor=None, name="Dup", time_zone="UTC", ranges=[(0, time(9), time(12)), (0, time(9), time(17))]
        )
    with pytest.raises(ValidationFailed):
        services.calendar_create(actor=None, name="Weekday", time_zone="UTC", ranges=[(7, time(9), time(12))])
    assert not Calendar.objects.filter(name__in=["Moon", "Dup", "Weekday"]).exists()
    assert not AuditLog.objects.filter(action="calendar.create").exists()


def test_calendar_name_is_unique() -> None:
    london_office()
    with pytest.raises(ValidationFailed) as caught:
        london_office()
    assert "name" in caught.value.fields


def test_calendar_update_is_audited_and_idempotent(desk) -> None:  # type: ignore[no-untyped-def]
    calendar = london_office()

    services.calendar_update(actor=desk.admin, calendar=calendar, time_zone="Europe/London")
    assert not AuditLog.objects.filter(action="calendar.update").exists()

    services.calendar_update(
        actor=desk.admin, calendar=calendar, time_zone="Europe/Paris", ranges=[(0, time(8), time(12))]
    )
    row = AuditLog.objects.get(action="calendar.update")
    assert row.actor_id == desk.admin.pk
    assert (row.before["time_zone"], row.after["time_zone"]) == ("Europe/London", "Europe/Paris")
    assert row.after["working_ranges"] == [[0, "08:00:00", "12:00:00"]]


def test_only_admins_change_calendars(desk) -> None:  # type: ignore[no-untyped-def]
    calendar = london_office()
    with pytest.raises(PermissionDenied):
        services.calendar_update(actor=desk.lead, calendar=calendar, name="Mine")
    with pytest.raises(PermissionDenied):
        services.calendar_create(actor=desk.agent, name="Mine", time_zone="UTC")
    calendar.refresh_from_db()
    assert calendar.name == "London office"


def test_business_calendar_for_a_row() -> None:
    calendar = london_office(holiday_country="GB")
    loaded = selectors.calendar_list(user=_admin()).get(pk=calendar.pk)

    business = selectors.business_calendar_for(loaded)

    assert str(business.zone) == "Europe/London"
    assert len(business.ranges) == 5
    assert business.holiday_dates == frozenset({date(2026, 1, 2)})
    assert business.holiday_rule == CountryHolidays("GB")
    # Thursday 2026-01-01 is New Year's Day, Friday the 2nd is the office's own holiday
    assert business.next_working_instant(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2026, 1, 5, 9, tzinfo=UTC)


def _admin():  # type: ignore[no-untyped-def]
    from tests.factories import UserFactory

    return UserFactory(is_admin=True)
