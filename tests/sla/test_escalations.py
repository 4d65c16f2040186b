"""SLA escalations (docs/sla-escalations.md): levels fire once at their exact instants through the timer machinery,
each action changes the ticket through the tickets services and is recorded on the timeline, in the audit trail and
as an `SlaEscalated` event; an action that cannot run is recorded as failed; notifications that keep the recipient's
working hours wait until their calendar opens and are sent once."""

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from itsm.events import DomainEvent, subscribe, unsubscribe
from security.models import AuditLog, Membership
from sla import escalation, rebuild, services
from sla import events as sla_events
from sla.models import (
    Calendar,
    Clock,
    ClockEvent,
    EscalationLevel,
    EscalationNotification,
    SlaPolicy,
    SlaTarget,
    WorkingHours,
)
from sla.tasks import deliver_due_escalation_notifications_task, fire_due_clock_task
from tickets import services as ticket_services
from tickets.models import Ticket, TicketEvent

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # London is on UTC in early March
HOUR = 3600
RESOLUTION = SlaTarget.Metric.RESOLUTION


def at(hours: float, base: datetime = MONDAY_10) -> datetime:
    return base + timedelta(hours=hours)


@pytest.fixture
def clock_time() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


@pytest.fixture
def published() -> Iterator[list[escalation.SlaEscalated]]:
    received: list[escalation.SlaEscalated] = []

    def handler(event: DomainEvent) -> None:
        assert isinstance(event, escalation.SlaEscalated)
        received.append(event)

    subscribe(escalation.SlaEscalated, handler)
    yield received
    unsubscribe(escalation.SlaEscalated, handler)


def make_target(*, calendar: Calendar | None = None, seconds: int = 4 * HOUR) -> SlaTarget:
    policy = SlaPolicy.objects.create(name="Standard", calendar=calendar or Calendar.objects.get(is_24x7=True))
    return SlaTarget.objects.create(
        policy=policy,
        metric=RESOLUTION,
        p1_seconds=seconds,
        p2_seconds=seconds,
        p3_seconds=seconds,
        p4_seconds=seconds,
        warning_percents=[],
    )


def resolution_clock(ticket: Ticket) -> Clock:
    return Clock.objects.get(ticket=ticket, target__metric=RESOLUTION)


def escalations(c: Clock) -> list[tuple[int | None, datetime]]:
    rows = ClockEvent.objects.filter(clock=c, kind=ClockEvent.Kind.ESCALATED).order_by("at", "threshold")
    return [(e.threshold, e.at) for e in rows]


def timeline(ticket: Ticket) -> list[tuple[str, bool, str]]:
    rows = TicketEvent.objects.filter(ticket=ticket, kind=TicketEvent.Kind.SLA_ESCALATED).order_by("id")
    return [(e.data["action"], e.is_internal, e.data["summary"]) for e in rows]


def office_calendar() -> Calendar:
    return services.calendar_create(
        actor=None, name="London office", time_zone="Europe/London", ranges=[(d, time(9), time(17)) for d in range(5)]
    )


def test_levels_fire_once_at_their_exact_instants(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    target = make_target()
    for percent in (75, 100, 150):
        EscalationLevel.objects.create(target=target, percent=percent, notify_managers=True)
    c = resolution_clock(desk.ticket())
    assert c.next_deadline_at == at(3)

    assert services.clock_fire_due(clock_id=c.pk, now=at(3) - timedelta(seconds=1)) == []
    assert services.clock_fire_due(clock_id=c.pk, now=at(3)) == ["escalated:75"]
    c.refresh_from_db()
    assert c.next_deadline_at == at(4)
    assert services.clock_fire_due(clock_id=c.pk, now=at(4)) == ["breached:100", "escalated:100"]
    c.refresh_from_db()
    assert (c.state, c.breached_at, c.next_deadline_at, c.due_at) == (Clock.State.RUNNING, at(4), at(6), at(4))
    assert services.clock_fire_due(clock_id=c.pk, now=at(6)) == ["escalated:150"]

    # duplicates and late wake-ups change nothing
    assert services.clock_fire_due(clock_id=c.pk, now=at(9)) == []
    clock_time.move_to(at(10))
    assert fire_due_clock_task(c.pk) == []
    c.refresh_from_db()
    assert c.next_deadline_at is None
    assert escalations(c) == [(75, at(3)), (100, at(4)), (150, at(6))]
    assert EscalationNotification.objects.filter(clock=c).count() == 3  # the manager, once per level


def test_a_late_wake_up_fires_each_level_at_its_own_instant(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    target = make_target()
    EscalationLevel.objects.create(target=target, percent=50, notify_managers=True)
    EscalationLevel.objects.create(target=target, percent=125, notify_managers=True)
    c = resolution_clock(desk.ticket())

    assert services.clock_fire_due(clock_id=c.pk, now=at(7)) == ["breached:100", "escalated:50", "escalated:125"]
    assert escalations(c) == [(50, at(2)), (125, at(5))]


def test_breach_level_raises_priority_and_notifies_the_lead(desk, clock_time, published) -> None:  # type: ignore[no-untyped-def]
    # given: a P3 ticket assigned to Ada, and a breach level that raises it to P1 and tells the team lead
    target = make_target()
    level = EscalationLevel.objects.create(target=target, percent=100, notify_team_leads=True, raise_priority_to=1)
    ticket = desk.ticket()
    ticket_services.ticket_assign(actor=desk.lead, ticket=ticket, assignee=desk.agent)
    assert Ticket.objects.get(pk=ticket.pk).priority == 3
    c = resolution_clock(ticket)

    # when
    clock_time.move_to(at(4))
    assert services.clock_fire_due(clock_id=c.pk) == ["breached:100", "escalated:100"]

    # then: the priority, through the tickets service (its own timeline row, audit row and event)
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.priority_is_overridden, ticket.priority_override_reason) == (
        1,
        True,
        "SLA escalation: Resolution at 100 % of its target",
    )
    priority_event = TicketEvent.objects.get(ticket=ticket, kind=TicketEvent.Kind.PRIORITY_CHANGED)
    assert (priority_event.actor_id, priority_event.at, priority_event.data["from"], priority_event.data["to"]) == (
        None,
        at(4),
        3,
        1,
    )
    # each action on the timeline, internal
    assert timeline(ticket) == [
        ("raise_priority", True, "SLA escalation (Resolution, breach): raised the priority to P1 Critical"),
        ("notify_lead", True, "SLA escalation (Resolution, breach): notified Lee Lead (team lead)"),
    ]
    # one notification, due at once
    row = EscalationNotification.objects.get(clock=c)
    assert (row.recipient_id, row.reasons, row.state, row.deliver_after, row.threshold, row.level_id) == (
        desk.lead.pk,
        ["lead"],
        EscalationNotification.State.QUEUED,
        at(4),
        100,
        level.pk,
    )
    # the ledger, the audit trail and the published event
    event = ClockEvent.objects.get(clock=c, kind=ClockEvent.Kind.ESCALATED)
    assert [a["action"] for a in event.data["actions"]] == ["raise_priority", "notify_lead"]
    audit = AuditLog.objects.get(action="sla.escalation")
    assert (audit.actor_id, audit.object_id, audit.after["threshold"], audit.after["level_id"]) == (
        None,
        str(ticket.pk),
        100,
        level.pk,
    )
    assert [a["status"] for a in audit.after["actions"]] == ["done", "done"]
    assert AuditLog.objects.filter(action="ticket.priority", actor__isnull=True).count() == 1
    assert [(e.ticket_id, e.clock_id, e.level_id, e.threshold, len(e.actions)) for e in published] == [
        (ticket.pk, c.pk, level.pk, 100, 2)
    ]

    # and the e-mail goes out once
    mail.outbox.clear()
    assert escalation.escalation_notification_deliver(notification_id=row.pk) == "sent"
    assert escalation.escalation_notification_deliver(notification_id=row.pk) == "sent"  # the row's state: no mail
    assert [(m.subject, m.to) for m in mail.outbox] == [
        (f"[{ticket.number}] SLA breached: Resolution at 100 % - Laptop does not boot", ["lee@example.org"])
    ]
    assert mail.outbox[0].body == (
        f'{ticket.number} "Laptop does not boot" has reached 100 % of its resolution target (Standard).\n'
        "Priority: P1 Critical. Breached at: 2026-03-02 14:00:00 UTC.\n"
        "You are notified as: team lead."
    )
    row.refresh_from_db()
    assert (row.state, row.sent_at) == (EscalationNotification.State.SENT, at(4))


def test_after_breach_level_reassigns_then_notifies_the_new_assignee(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    target = make_target()
    EscalationLevel.objects.create(
        target=target, percent=150, reassign_team=desk.network, reassign_agent=desk.network_agent, notify_assignee=True
    )
    ticket = desk.ticket()
    c = resolution_clock(ticket)
    assert services.clock_fire_due(clock_id=c.pk, now=at(4)) == ["breached:100"]
    assert Ticket.objects.get(pk=ticket.pk).team_id == desk.desktop.pk

    clock_time.move_to(at(6))
    assert services.clock_fire_due(clock_id=c.pk) == ["escalated:150"]

    ticket.refresh_from_db()
    assert (ticket.team_id, ticket.assignee_id, ticket.state) == (desk.network.pk, desk.network_agent.pk, "assigned")
    assigned = TicketEvent.objects.get(ticket=ticket, kind=TicketEvent.Kind.ASSIGNED)
    assert (assigned.actor_id, assigned.data["to"]) == (None, desk.network_agent.pk)
    assert timeline(ticket) == [
        ("reassign", True, "SLA escalation (Resolution, 150 % (breached)): reassigned to team Network / Ned Network"),
        ("notify_assignee", True, "SLA escalation (Resolution, 150 % (breached)): notified Ned Network (assignee)"),
    ]
    assert list(EscalationNotification.objects.values_list("recipient_id", "reasons")) == [
        (desk.network_agent.pk, ["assignee"])
    ]


def test_an_action_that_cannot_run_is_recorded_as_failed_and_the_rest_still_run(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    # given: a level that hands the ticket to Bo, who has since left the team, and tells the (missing) assignee
    target = make_target()
    EscalationLevel.objects.create(
        target=target, percent=100, reassign_agent=desk.agent2, notify_assignee=True, notify_managers=True
    )
    ticket = desk.ticket()
    Membership.objects.filter(user=desk.agent2).delete()
    c = resolution_clock(ticket)

    # when
    assert services.clock_fire_due(clock_id=c.pk, now=at(4)) == ["breached:100", "escalated:100"]

    # then: the breach and escalation are recorded, the ticket is unchanged, the failures are on the timeline
    c.refresh_from_db()
    assert (c.state, c.breached_at) == (Clock.State.RUNNING, at(4))
    ticket.refresh_from_db()
    assert (ticket.team_id, ticket.assignee_id, ticket.version) == (desk.desktop.pk, None, 1)
    assert timeline(ticket) == [
        (
            "reassign",
            True,
            "SLA escalation (Resolution, breach): could not reassign: "
            "The assignee must be an active member of the ticket's team.",
        ),
        ("notify_assignee", True, "SLA escalation (Resolution, breach): could not notify the assignee: "
         "the ticket has no assignee"),
        ("notify_manager", True, "SLA escalation (Resolution, breach): notified Mia Manager (manager)"),
    ]  # fmt: skip
    actions = ClockEvent.objects.get(clock=c, kind=ClockEvent.Kind.ESCALATED).data["actions"]
    assert [(a["action"], a["status"], a.get("code")) for a in actions] == [
        ("reassign", "failed", "assignee_not_in_team"),
        ("notify_assignee", "failed", None),
        ("notify_manager", "done", None),
    ]
    assert list(EscalationNotification.objects.values_list("recipient_id", flat=True)) == [desk.manager.pk]


def test_confidential_tickets_are_not_mailed_to_people_who_cannot_see_them(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    target = make_target()
    EscalationLevel.objects.create(target=target, percent=100, notify_managers=True, raise_priority_to=2)
    ticket = desk.ticket(category=desk.phishing)
    c = resolution_clock(ticket)

    services.clock_fire_due(clock_id=c.pk, now=at(4))

    assert timeline(ticket) == [
        ("raise_priority", True, "SLA escalation (Resolution, breach): raised the priority to P2 High"),
        ("notify_manager", True, "SLA escalation (Resolution, breach): could not notify the manager: "
         "1 recipient(s) cannot see the ticket"),
    ]  # fmt: skip
    assert not EscalationNotification.objects.exists()


def test_working_hours_queue_the_notification_until_the_calendar_opens(desk, published) -> None:  # type: ignore[no-untyped-def]
    # given: a 24×7 policy breached Monday 22:00; the lead keeps London office hours, Bo has no hours of his own
    target = make_target()
    WorkingHours.objects.create(user=desk.lead, calendar=office_calendar())
    level = EscalationLevel.objects.create(target=target, percent=100, notify_team_leads=True, only_working_hours=True)
    level.notify_users.set([desk.agent2])
    monday_18 = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    breach = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
    tuesday_9 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    with time_machine.travel(monday_18, tick=False):
        ticket = desk.ticket()
    c = resolution_clock(ticket)
    mail.outbox.clear()

    # when: the breach fires at night
    assert services.clock_fire_due(clock_id=c.pk, now=breach) == ["breached:100", "escalated:100"]

    # then: the lead's e-mail waits for 09:00; Bo falls back to the policy's 24×7 calendar and is due at once
    rows = {r.recipient_id: r for r in EscalationNotification.objects.all()}
    assert {uid: (r.deliver_after, r.state) for uid, r in rows.items()} == {
        desk.lead.pk: (tuesday_9, "queued"),
        desk.agent2.pk: (breach, "queued"),
    }
    assert timeline(ticket)[0] == (
        "notify_lead",
        True,
        "SLA escalation (Resolution, breach): notified Lee Lead (team lead), "
        "queued until working hours (2026-03-03 09:00 UTC)",
    )

    assert escalation.escalation_notifications_deliver_due(now=breach) == {"sent": 1, "skipped": 0, "failed": 0}
    assert [m.to for m in mail.outbox] == [["bo@example.org"]]
    assert escalation.escalation_notifications_deliver_due(now=tuesday_9 - timedelta(seconds=1)) == {
        "sent": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert (
        escalation.escalation_notification_deliver(
            notification_id=rows[desk.lead.pk].pk, now=tuesday_9 - timedelta(seconds=1)
        )
        == "waiting"
    )
    assert len(mail.outbox) == 1

    # when the calendar opens, the periodic task sends it, once
    with time_machine.travel(tuesday_9 + timedelta(seconds=20), tick=False):
        assert deliver_due_escalation_notifications_task() == {"sent": 1, "skipped": 0, "failed": 0}
        assert deliver_due_escalation_notifications_task() == {"sent": 0, "skipped": 0, "failed": 0}
    assert [m.to for m in mail.outbox] == [["bo@example.org"], ["lee@example.org"]]
    lead_row = EscalationNotification.objects.get(recipient=desk.lead)
    assert (lead_row.state, lead_row.sent_at) == ("sent", tuesday_9 + timedelta(seconds=20))


def test_a_users_own_hours_win_over_the_teams(desk) -> None:  # type: ignore[no-untyped-def]
    office = office_calendar()
    night = services.calendar_create(
        actor=None, name="Night desk", time_zone="UTC", ranges=[(d, time(22), time(6)) for d in range(7)]
    )
    WorkingHours.objects.create(team=desk.desktop, calendar=office)
    WorkingHours.objects.create(user=desk.agent, calendar=night)
    policy_calendar = Calendar.objects.get(is_24x7=True).pk

    def calendar_of(user) -> int:  # type: ignore[no-untyped-def]
        return escalation.recipient_calendar_id(
            user, ticket_team_id=desk.desktop.pk, default_calendar_id=policy_calendar
        )

    assert calendar_of(desk.agent) == night.pk
    assert calendar_of(desk.agent2) == office.pk
    assert calendar_of(desk.network_agent) == policy_calendar


def test_a_queued_notification_is_skipped_when_the_ticket_is_resolved_first(desk) -> None:  # type: ignore[no-untyped-def]
    target = make_target(calendar=office_calendar(), seconds=HOUR)
    EscalationLevel.objects.create(target=target, percent=100, notify_team_leads=True, only_working_hours=True)
    monday_1630 = datetime(2026, 3, 2, 16, 30, tzinfo=UTC)
    with time_machine.travel(monday_1630, tick=False):
        ticket = desk.ticket()
    c = resolution_clock(ticket)
    breach = datetime(2026, 3, 3, 9, 30, tzinfo=UTC)
    # the breach fired at 09:30 but the worker ran it at 17:00:30, after the office closed: queued to Wednesday 09:00
    late = datetime(2026, 3, 3, 17, 0, 30, tzinfo=UTC)
    assert services.clock_fire_due(clock_id=c.pk, now=late) == ["breached:100", "escalated:100"]
    assert escalations(c) == [(100, breach)]
    row = EscalationNotification.objects.get()
    assert row.deliver_after == datetime(2026, 3, 4, 9, 0, tzinfo=UTC)

    with time_machine.travel(datetime(2026, 3, 3, 18, 0, tzinfo=UTC), tick=False):
        ticket_services.ticket_transition(actor=desk.agent, ticket=ticket, to_state="resolved")
    mail.outbox.clear()
    assert escalation.escalation_notifications_deliver_due(now=datetime(2026, 3, 4, 9, 0, tzinfo=UTC)) == {
        "sent": 0,
        "skipped": 1,
        "failed": 0,
    }
    row.refresh_from_db()
    assert (row.state, row.detail, row.sent_at, mail.outbox) == ("skipped", "the ticket is resolved", None, [])


def test_a_failed_send_leaves_the_row_queued_for_the_next_pass(desk, clock_time, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    target = make_target()
    EscalationLevel.objects.create(target=target, percent=100, notify_team_leads=True)
    c = resolution_clock(desk.ticket())
    services.clock_fire_due(clock_id=c.pk, now=at(4))

    def refuse(**kwargs: object) -> None:
        raise OSError("SMTP down")

    monkeypatch.setattr(escalation, "send_mail", refuse)
    assert escalation.escalation_notifications_deliver_due(now=at(4)) == {"sent": 0, "skipped": 0, "failed": 1}
    assert EscalationNotification.objects.get().state == "queued"
    monkeypatch.undo()
    mail.outbox.clear()
    assert escalation.escalation_notifications_deliver_due(now=at(5)) == {"sent": 1, "skipped": 0, "failed": 0}
    assert len(mail.outbox) == 1


def test_levels_are_validated(desk) -> None:  # type: ignore[no-untyped-def]
    target = make_target()
    with pytest.raises(ValidationError) as not_in_team:
        EscalationLevel(target=target, percent=100, reassign_team=desk.network, reassign_agent=desk.agent).full_clean()
    assert not_in_team.value.message_dict == {
        "reassign_agent": ["The agent is not a member of the team to reassign to."]
    }
    with pytest.raises(ValidationError) as requester:
        EscalationLevel(target=target, percent=100, reassign_agent=desk.requester).full_clean()
    assert requester.value.message_dict == {"reassign_agent": ["Only an agent can take tickets."]}
    with pytest.raises(ValidationError) as out_of_range:
        EscalationLevel(target=target, percent=0, notify_managers=True).full_clean()
    assert "percent" in out_of_range.value.message_dict


def test_agents_see_the_escalation_on_the_ticket_page_and_the_requester_does_not(desk, clock_time, client) -> None:  # type: ignore[no-untyped-def]
    target = make_target()
    EscalationLevel.objects.create(target=target, percent=100, notify_team_leads=True)
    ticket = desk.ticket()
    services.clock_fire_due(clock_id=resolution_clock(ticket).pk, now=at(4))
    summary = "SLA escalation (Resolution, breach): notified Lee Lead (team lead)"

    client.force_login(desk.agent)
    agent_page = client.get(reverse("desk_ticket", args=[ticket.number]))
    client.force_login(desk.requester)
    portal_page = client.get(reverse("portal_ticket", args=[ticket.number]))

    assert (agent_page.status_code, portal_page.status_code) == (200, 200)
    assert summary in agent_page.content.decode()
    assert "SLA escalation" not in portal_page.content.decode()
    assert "Lee Lead" not in portal_page.content.decode()


def test_the_reconcilers_batch_firing_escalates_and_publishes_like_one_clock_firing(
    desk, clock_time, published
) -> None:  # type: ignore[no-untyped-def]
    # given: two overdue clocks with a breach level, fired by the reconciler's batch path (not `clock_fire_due`)
    target = make_target()
    EscalationLevel.objects.create(target=target, percent=100, notify_managers=True)
    clocks = [resolution_clock(desk.ticket(title=f"Ticket {n}")) for n in range(2)]
    breaches: list[sla_events.ClockBreached] = []
    subscribe(sla_events.ClockBreached, breaches.append)
    try:
        # when
        counts = services.clocks_fire_overdue(now=at(5))
    finally:
        unsubscribe(sla_events.ClockBreached, breaches.append)

    # then: each clock breached and escalated once, at the breach instant, with its typed events and actions
    assert counts["fired"] == 2
    for c in clocks:
        assert escalations(c) == [(100, at(4))]
        assert EscalationNotification.objects.filter(clock=c).count() == 1
    assert sorted((e.clock_id, e.at) for e in breaches) == sorted((c.pk, at(4)) for c in clocks)
    assert sorted(e.clock_id for e in published) == sorted(c.pk for c in clocks)
    assert services.clocks_fire_overdue(now=at(6))["fired"] == 0


def test_rebuild_finds_nothing_to_repair_on_a_running_clock_whose_level_fired(desk, clock_time) -> None:  # type: ignore[no-untyped-def]
    target = make_target()
    EscalationLevel.objects.create(target=target, percent=75, notify_managers=True)
    c = resolution_clock(desk.ticket())
    assert services.clock_fire_due(clock_id=c.pk, now=at(3)) == ["escalated:75"]
    clock_time.move_to(at(3))

    report = rebuild.clocks_rebuild(dry_run=True)

    assert report.differences == []
