"""Policy edits and deactivation (docs/sla.md "Policy edits"): the policy's open clocks are cancelled (never
breached), and the re-sync starts what matches now retroactively on open tickets, in batches, idempotently."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from itsm.errors import PermissionDenied
from security.models import AuditLog
from sla import services
from sla.models import Calendar, Clock, ClockEvent, ClockOutcome, ClockSegment, SlaPolicy, SlaTarget
from sla.state import PAUSED, RUNNING
from sla.tasks import clocks_resync_task
from tickets import services as ticket_services

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HOUR = 3600
RESOLUTION = SlaTarget.Metric.RESOLUTION


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def clock_time() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def make_policy(name: str, precedence: int, seconds: int) -> SlaPolicy:
    return services.policy_create(
        actor=None,
        name=name,
        calendar=Calendar.objects.get(is_24x7=True),
        precedence=precedence,
        targets=[(RESOLUTION, (seconds, seconds, seconds, seconds))],
    )


def segments(c: Clock) -> list[tuple[str, datetime, datetime | None]]:
    return [(s.kind, s.start, s.end) for s in ClockSegment.objects.filter(clock=c).order_by("start", "id")]


@pytest.fixture
def scene(desk, clock_time):  # type: ignore[no-untyped-def]
    """Best (1 h) applies over Fallback (4 h); the ticket waited on a vendor from 10:30 to 11:00; now it is 12:00,
    past Best's target (no timer has fired)."""
    best = make_policy("Best", 10, HOUR)
    fallback = make_policy("Fallback", 50, 4 * HOUR)
    ticket = desk.ticket()
    clock_time.move_to(at(0.5))
    ticket_services.ticket_transition(
        actor=desk.agent, ticket=ticket, to_state="pending", pending_reason="awaiting_vendor"
    )
    clock_time.move_to(at(1))
    ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="in_progress")
    clock_time.move_to(at(2))
    return best, fallback, ticket


def test_deactivating_cancels_the_clocks_without_breach_and_the_resync_starts_the_fallback_retroactively(  # type: ignore[no-untyped-def]
    desk, scene, django_capture_on_commit_callbacks
) -> None:
    best, fallback, ticket = scene
    with django_capture_on_commit_callbacks() as callbacks:
        services.policy_deactivate(actor=desk.admin, policy=best)
    assert len(callbacks) == 1  # the resync task, sent after commit

    [old] = Clock.objects.filter(ticket=ticket, target__policy=best)
    assert (old.state, old.finished_at, old.stop_reason, old.breached_at, old.due_at, old.next_deadline_at) == (
        Clock.State.CANCELLED,
        at(2),
        "policy_changed",
        None,
        None,
        None,
    )
    assert segments(old) == [(RUNNING, at(0), at(0.5)), (PAUSED, at(0.5), at(1)), (RUNNING, at(1), at(2))]
    assert not ClockEvent.objects.filter(clock=old, kind="breached").exists()
    assert not ClockOutcome.objects.exists()
    audit = AuditLog.objects.get(action="sla_policy.update")
    assert (audit.actor_id, audit.before["is_active"], audit.after["is_active"]) == (desk.admin.pk, True, False)

    assert services.clocks_resync(now=at(2)) == 1
    [new] = Clock.objects.filter(ticket=ticket, target__policy=fallback)
    assert (new.state, new.started_at, new.target_seconds, new.due_at) == (
        Clock.State.RUNNING,
        at(0),
        4 * HOUR,
        at(4.5),
    )
    assert segments(new) == [(RUNNING, at(0), at(0.5)), (PAUSED, at(0.5), at(1)), (RUNNING, at(1), None)]
    # idempotent: a second run (a redelivered task) writes nothing
    counts = (Clock.objects.count(), ClockEvent.objects.count(), ClockSegment.objects.count())
    assert clocks_resync_task.apply().get() == 1
    assert (Clock.objects.count(), ClockEvent.objects.count(), ClockSegment.objects.count()) == counts
    # deactivating again is a no-op (no audit row, no reset)
    services.policy_deactivate(actor=desk.admin, policy=best)
    assert AuditLog.objects.filter(action="sla_policy.update").count() == 1


def test_editing_durations_rebuilds_the_policy_clocks_from_the_ledger_of_the_ticket(desk, scene) -> None:  # type: ignore[no-untyped-def]
    best, _fallback, ticket = scene
    services.policy_update(actor=desk.admin, policy=best, targets=[(RESOLUTION, (HOUR, HOUR, 3 * HOUR, HOUR))])
    services.clocks_resync(now=at(2))
    old, new = Clock.objects.filter(ticket=ticket, target__policy=best).order_by("pk")
    assert (old.state, old.stop_reason) == (Clock.State.CANCELLED, "policy_changed")
    assert (new.state, new.started_at, new.target_seconds, new.due_at, new.breached_at) == (
        Clock.State.RUNNING,
        at(0),
        3 * HOUR,
        at(3.5),
        None,
    )
    audit = AuditLog.objects.get(action="sla_policy.update")
    assert audit.before["targets"][0][2] == [HOUR] * 4
    assert audit.after["targets"][0][2] == [HOUR, HOUR, 3 * HOUR, HOUR]


def test_non_admins_cannot_edit_policies_and_nothing_changes(desk, scene) -> None:  # type: ignore[no-untyped-def]
    best, _fallback, ticket = scene
    for actor in (desk.agent, desk.lead, desk.manager):
        with pytest.raises(PermissionDenied):
            services.policy_deactivate(actor=actor, policy=best)
        with pytest.raises(PermissionDenied):
            services.policy_update(actor=actor, policy=best, precedence=1)
    best.refresh_from_db()
    assert (best.is_active, best.precedence) == (True, 10)
    assert Clock.objects.get(ticket=ticket).state == Clock.State.RUNNING
    assert not AuditLog.objects.filter(action__startswith="sla_policy.update").exists()


def test_resync_runs_in_batches_over_every_open_ticket(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    tickets = [desk.ticket() for _ in range(3)]
    policy = make_policy("Late", 10, 4 * HOUR)  # created after the tickets: they have no clock yet
    clock_time.move_to(at(1))
    assert services.clocks_resync(batch_size=2, now=at(1)) == 3
    assert sorted(Clock.objects.filter(target__policy=policy).values_list("ticket_id", "started_at")) == [
        (t.pk, at(0)) for t in tickets
    ]


def test_admin_action_deactivates_through_the_service(desk, scene) -> None:  # type: ignore[no-untyped-def]
    best, _fallback, ticket = scene
    client = Client()
    client.force_login(desk.admin)
    response = client.post(
        reverse("admin:sla_slapolicy_changelist"), {"action": "deactivate_policies", "_selected_action": [best.pk]}
    )
    assert response.status_code == 302
    best.refresh_from_db()
    assert best.is_active is False
    assert Clock.objects.get(ticket=ticket, target__policy=best).state == Clock.State.CANCELLED
    assert AuditLog.objects.filter(action="sla_policy.update", actor=desk.admin).count() == 1


def test_admin_change_form_edit_goes_through_the_service(desk, scene) -> None:  # type: ignore[no-untyped-def]
    best, _fallback, ticket = scene
    target = best.targets.get()
    client = Client()
    client.force_login(desk.admin)
    response = client.post(
        reverse("admin:sla_slapolicy_change", args=[best.pk]),
        {
            "name": "Best",
            "kind": "sla",
            "is_active": "on",
            "precedence": "60",
            "ticket_types": "",
            "priorities": "",
            "calendar": best.calendar_id,
            "targets-TOTAL_FORMS": "1",
            "targets-INITIAL_FORMS": "1",
            "targets-0-id": target.pk,
            "targets-0-policy": best.pk,
            "targets-0-metric": RESOLUTION,
            "targets-0-p1_seconds": HOUR,
            "targets-0-p2_seconds": HOUR,
            "targets-0-p3_seconds": HOUR,
            "targets-0-p4_seconds": HOUR,
            "targets-0-pause_states": "pending",
            "targets-0-warning_percents": "50,75,90",
            "targets-0-on_reopen": "continue",
            "targets-0-name": "",
            "targets-0-start_states": "",
            "targets-0-stop_states": "resolved",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    best.refresh_from_db()
    assert best.precedence == 60
    assert Clock.objects.get(ticket=ticket, target__policy=best).state == Clock.State.CANCELLED
    audit = AuditLog.objects.get(action="sla_policy.update")
    assert (audit.before["precedence"], audit.after["precedence"]) == (10, 60)
    assert not AuditLog.objects.filter(action="slapolicy.admin_change").exists()
