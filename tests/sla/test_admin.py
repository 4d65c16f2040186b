"""Calendar admin: change list, add with inlines (audited), the due-instant preview, and the protected built-in."""

from datetime import time

import pytest
from django.test import Client
from django.urls import reverse

from security.models import AuditLog
from sla import services
from sla.models import Calendar, WorkingRange


@pytest.fixture
def admin_client_for(desk) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(desk.admin)
    return client


@pytest.fixture
def london(db) -> Calendar:  # type: ignore[no-untyped-def]
    return services.calendar_create(
        actor=None, name="London office", time_zone="Europe/London", ranges=[(d, time(9), time(17)) for d in range(5)]
    )


def test_changelist_lists_calendars(admin_client_for, london) -> None:  # type: ignore[no-untyped-def]
    response = admin_client_for.get(reverse("admin:sla_calendar_changelist"))
    assert response.status_code == 200
    assert "London office" in response.content.decode()
    assert "24×7" in response.content.decode()


def test_agents_cannot_reach_the_admin(desk, london) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(desk.agent)
    response = client.get(reverse("admin:sla_calendar_changelist"))
    assert response.status_code == 302


def test_add_with_ranges_and_holidays_is_audited(desk, admin_client_for) -> None:  # type: ignore[no-untyped-def]
    response = admin_client_for.post(
        reverse("admin:sla_calendar_add"),
        {
            "name": "Paris office",
            "time_zone": "Europe/Paris",
            "holiday_country": "FR",
            "holiday_subdivision": "",
            "working_ranges-TOTAL_FORMS": "1",
            "working_ranges-INITIAL_FORMS": "0",
            "working_ranges-0-weekday": "0",
            "working_ranges-0-start_time": "22:00",
            "working_ranges-0-end_time": "06:00",
            "holidays-TOTAL_FORMS": "1",
            "holidays-INITIAL_FORMS": "0",
            "holidays-0-date": "2026-08-14",
            "holidays-0-name": "Bridge day",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    calendar = Calendar.objects.get(name="Paris office")
    assert list(WorkingRange.objects.filter(calendar=calendar).values_list("start_time", "end_time")) == [
        (time(22), time(6))
    ]
    actions = sorted(AuditLog.objects.filter(actor_id=desk.admin.pk).values_list("action", flat=True))
    assert actions == ["calendar.admin_create", "holiday.admin_create", "workingrange.admin_create"]


def test_add_refuses_an_unknown_zone(admin_client_for) -> None:  # type: ignore[no-untyped-def]
    response = admin_client_for.post(
        reverse("admin:sla_calendar_add"),
        {
            "name": "Nowhere",
            "time_zone": "Nowhere/Town",
            "working_ranges-TOTAL_FORMS": "0",
            "working_ranges-INITIAL_FORMS": "0",
            "holidays-TOTAL_FORMS": "0",
            "holidays-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "is not a known IANA time zone" in response.content.decode()
    assert not Calendar.objects.filter(name="Nowhere").exists()


def test_preview_shows_the_due_instant_in_the_calendar_zone_and_utc(admin_client_for, london) -> None:  # type: ignore[no-untyped-def]
    url = reverse("admin:sla_calendar_change", args=[london.pk])

    response = admin_client_for.get(url, {"preview_start": "2026-03-27T16:00", "preview_target": "2h"})

    assert response.status_code == 200
    assert response.context["preview"]["target"] == "2h"
    text = response.content.decode()
    assert "2026-03-27 16:00:00 GMT" in text
    assert "2026-03-30 10:00:00 BST" in text
    assert "2026-03-30 09:00:00 UTC" in text


def test_preview_explains_bad_input(admin_client_for, london) -> None:  # type: ignore[no-untyped-def]
    url = reverse("admin:sla_calendar_change", args=[london.pk])

    response = admin_client_for.get(url, {"preview_start": "soon", "preview_target": "forever"})

    assert response.status_code == 200
    form = response.context["preview_form"]
    assert set(form.errors) == {"preview_start", "preview_target"}
    assert "preview" not in response.context


def test_change_page_without_preview_renders_the_empty_form(admin_client_for, london) -> None:  # type: ignore[no-untyped-def]
    response = admin_client_for.get(reverse("admin:sla_calendar_change", args=[london.pk]))
    assert response.status_code == 200
    assert 'id="calendar-preview"' in response.content.decode()


def test_the_builtin_calendar_cannot_be_deleted(admin_client_for) -> None:  # type: ignore[no-untyped-def]
    builtin = Calendar.objects.get(is_24x7=True)
    response = admin_client_for.post(reverse("admin:sla_calendar_delete", args=[builtin.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Calendar.objects.filter(pk=builtin.pk).exists()


def test_deleting_a_calendar_audits_its_rows(desk, admin_client_for, london) -> None:  # type: ignore[no-untyped-def]
    response = admin_client_for.post(reverse("admin:sla_calendar_delete", args=[london.pk]), {"post": "yes"})
    assert response.status_code == 302
    actions = list(AuditLog.objects.filter(actor_id=desk.admin.pk).order_by("seq").values_list("action", flat=True))
    assert actions.count("workingrange.admin_delete") == 5
    assert actions[-1] == "calendar.admin_delete"
