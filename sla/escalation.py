"""SLA escalations (issue 5, DESIGN.md §3 step 6; docs/sla-escalations.md).

An `EscalationLevel` is one more threshold of a clock, at `percent` of its target (75 = before the breach, 100 = at
it, 150 = after it). The timer machinery in `sla.services` fires it once at its exact instant (a
`ClockEvent(escalated, threshold=percent)`, unique per clock and percent) and then calls `clock_escalate`, inside the
same transaction, which runs the level's actions in a fixed order: raise the priority, reassign, notify. Each action
runs in its own savepoint: one that cannot run (the agent left the team, the ticket is closed, nobody to notify) is
recorded as failed and never stops the timer or the other actions. Each action is written to the ticket timeline (an
internal `sla_escalated` entry), the level's run is audited (`sla.escalation`), and `SlaEscalated` is published for
webhooks.

Notifications are `EscalationNotification` rows (Postgres is the truth). A level that keeps working hours queues
each recipient's row until their calendar opens (`WorkingHours`, else the policy's calendar); a periodic task sends
the due rows, and rows due at once get a task after commit. Sending locks the row and checks its state, so each
e-mail goes out once.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from itsm.errors import DomainError
from itsm.events import DomainEvent, publish
from itsm.queue import enqueue_on_commit
from security import permissions
from security.audit import audit_record
from security.models import Membership, User
from sla.calendar import NoWorkingTime
from sla.models import Clock, ClockEvent, EscalationLevel, EscalationNotification, WorkingHours
from sla.selectors import BusinessCalendars
from tickets.models import Ticket
from tickets.services.system import (
    ticket_assign_by_system,
    ticket_raise_priority_by_system,
    ticket_timeline_system_note,
)
from tickets.state import Priority

logger = logging.getLogger(__name__)

ESCALATED = ClockEvent.Kind.ESCALATED.value
DELIVERY_BATCH_SIZE = 200

REASON_LABELS = {"assignee": "assignee", "lead": "team lead", "manager": "manager", "named": "named user"}


@dataclass(frozen=True, kw_only=True)
class SlaEscalated(DomainEvent):
    """An escalation level fired on a clock; `actions` are the results as written to the timeline."""

    name: ClassVar[str] = "sla.escalated"
    ticket_id: int
    clock_id: int
    level_id: int
    threshold: int
    actions: tuple[dict[str, Any], ...] = field(default=())


def escalation_thresholds(clock: Clock, percents: Sequence[int] | None = None) -> list[tuple[str, int, int]]:
    """`(kind, percent, business seconds)` of the clock's escalation levels, in percent order (rounded up to the
    second, like the warnings: a level never fires before its percentage is reached). `percents` are the target's
    level percents when the caller already has them (batch firing: `escalation_percents_by_target`)."""
    if percents is None:
        rows = EscalationLevel.objects.filter(target_id=clock.target_id).order_by("percent")
        percents = list(rows.values_list("percent", flat=True))
    return [(ESCALATED, percent, -(-clock.target_seconds * percent // 100)) for percent in sorted(percents)]


def escalation_percents_by_target(target_ids: Iterable[int]) -> dict[int, list[int]]:
    """The level percents of each target, in one query (targets without levels are absent)."""
    by_target: dict[int, list[int]] = defaultdict(list)
    rows = EscalationLevel.objects.filter(target_id__in=set(target_ids)).order_by("target_id", "percent")
    for target_id, percent in rows.values_list("target_id", "percent"):
        by_target[target_id].append(percent)
    return dict(by_target)


def recipient_calendar_id(user: User, *, ticket_team_id: int | None, default_calendar_id: int) -> int:
    """Whose hours a recipient keeps: their own `WorkingHours`, else that of the ticket's team if they are in it,
    else that of their first team that has one (lowest id), else `default_calendar_id` (the policy's calendar)."""
    rows = list(
        WorkingHours.objects.filter(Q(user=user) | Q(team__memberships__user=user))
        .order_by("team_id")
        .values_list("user_id", "team_id", "calendar_id")
    )
    own = next((calendar_id for user_id, _t, calendar_id in rows if user_id is not None), None)
    if own is not None:
        return own
    of_ticket_team = next((c for _u, team_id, c in rows if team_id is not None and team_id == ticket_team_id), None)
    if of_ticket_team is not None:
        return of_ticket_team
    return next((c for _u, team_id, c in rows if team_id is not None), default_calendar_id)


def _name(user: User) -> str:
    return user.full_name or user.email


@dataclass
class _Result:
    action: str
    status: str  # "done" | "failed" | "unchanged"
    summary: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "status": self.status, "summary": self.summary, **self.data}


def _guarded(action: str, run: Any) -> _Result:
    """Run one action in a savepoint: a refusal or an unexpected error rolls back that action only."""
    try:
        with transaction.atomic():
            result: _Result = run()
    except DomainError as exc:
        return _Result(action, "failed", f"could not {action.replace('_', ' ')}: {exc.detail}", {"code": exc.code})
    except Exception:
        logger.exception("sla.escalation_action_failed", extra={"action": action})
        return _Result(action, "failed", f"could not {action.replace('_', ' ')}: unexpected error", {"code": "error"})
    return result


def _raise_priority(ticket: Ticket, priority: int, reason: str) -> _Result:
    before = Ticket.objects.get(pk=ticket.pk).priority
    after = ticket_raise_priority_by_system(ticket=ticket.pk, priority=priority, reason=reason).priority
    label = Priority(priority).label
    if after == before:
        return _Result("raise_priority", "unchanged", f"priority already {Priority(before).label}", {"to": before})
    return _Result("raise_priority", "done", f"raised the priority to {label}", {"from": before, "to": after})


def _reassign(ticket: Ticket, level: EscalationLevel) -> _Result:
    team, agent = level.reassign_team, level.reassign_agent
    updated = ticket_assign_by_system(ticket=ticket.pk, assignee=agent, team=team)
    parts = []
    if team is not None:
        parts.append(f"team {team.name}")
    if agent is not None:
        parts.append(_name(agent))
    return _Result(
        "reassign",
        "done",
        f"reassigned to {' / '.join(parts)}",
        {"team_id": updated.team_id, "assignee_id": updated.assignee_id},
    )


def _candidates(level: EscalationLevel, ticket: Ticket) -> list[tuple[str, list[User], str]]:
    """`(reason, users, why-empty)` for each kind of recipient the level names."""
    wanted: list[tuple[str, list[User], str]] = []
    if level.notify_assignee:
        assignee = User.objects.filter(pk=ticket.assignee_id, is_active=True).first() if ticket.assignee_id else None
        wanted.append(("assignee", [assignee] if assignee else [], "the ticket has no assignee"))
    if level.notify_team_leads:
        leads = (
            [
                m.user
                for m in Membership.objects.filter(
                    team_id=ticket.team_id, role=Membership.Role.LEAD, user__is_active=True
                ).select_related("user")
            ]
            if ticket.team_id is not None
            else []
        )
        wanted.append(("lead", leads, "the ticket's team has no lead"))
    if level.notify_managers:
        managers = list(User.objects.filter(is_manager=True, is_active=True).order_by("pk"))
        wanted.append(("manager", managers, "there is no manager"))
    named = [user for user in level.notify_users.all() if user.is_active]
    if named or level.notify_users.exists():
        wanted.append(("named", named, "the named users are no longer active"))
    return wanted


def _notify(
    ticket: Ticket, clock: Clock, level: EscalationLevel, percent: int, now: datetime, calendars: BusinessCalendars
) -> list[_Result]:
    """One result per kind of recipient; one `EscalationNotification` per person (reasons merged)."""
    results: list[_Result] = []
    reasons_by_user: dict[int, list[str]] = {}
    users: dict[int, User] = {}
    for reason, candidates, why_empty in _candidates(level, ticket):
        action = f"notify_{reason}"
        allowed = [user for user in candidates if permissions.can_view_ticket(user, ticket)]
        if not allowed:
            hidden = len(candidates) - len(allowed)
            why = f"{hidden} recipient(s) cannot see the ticket" if hidden else why_empty
            results.append(_Result(action, "failed", f"could not notify the {REASON_LABELS[reason]}: {why}"))
            continue
        for user in allowed:
            users[user.pk] = user
            reasons_by_user.setdefault(user.pk, []).append(reason)
        names = ", ".join(_name(user) for user in allowed)
        results.append(
            _Result(
                action, "done", f"notified {names} ({REASON_LABELS[reason]})", {"user_ids": [u.pk for u in allowed]}
            )
        )
    queued: dict[int, datetime] = {}
    for user_id, reasons in reasons_by_user.items():
        deliver_after, detail = now, ""
        if level.only_working_hours:
            calendar_id = recipient_calendar_id(
                users[user_id], ticket_team_id=ticket.team_id, default_calendar_id=clock.target.policy.calendar_id
            )
            try:
                deliver_after = max(now, calendars.get(calendar_id).next_working_instant(now))
            except NoWorkingTime:
                detail = "the recipient's calendar has no working time: sent at once"
        row = EscalationNotification.objects.create(
            ticket=ticket,
            clock=clock,
            level=level,
            threshold=percent,
            recipient=users[user_id],
            reasons=reasons,
            created_at=now,
            deliver_after=deliver_after,
            detail=detail,
        )
        if deliver_after <= now:
            from sla.tasks import deliver_escalation_notification_task  # the tasks module imports services

            enqueue_on_commit(deliver_escalation_notification_task, row.pk)
        else:
            queued[user_id] = deliver_after
    for result in results:
        later = {uid: queued[uid] for uid in result.data.get("user_ids", ()) if uid in queued}
        if later:
            result.data["queued_until"] = {str(uid): instant.isoformat() for uid, instant in later.items()}
            first = min(later.values())
            result.summary += f", queued until working hours ({first:%Y-%m-%d %H:%M} UTC)"
    return results


def clock_escalate(*, clock: Clock, percent: int, at: datetime, now: datetime) -> list[dict[str, Any]]:
    """Run the actions of the clock's level at `percent`, which just fired at `at` (the caller, `clock_fire_due`,
    holds the clock's row lock and the transaction, and has written the unique `ClockEvent(escalated)`, so this runs
    once per clock and level). Locks the ticket first so a deadlock with a concurrent ticket change aborts the whole
    firing (retried by the task and the reconciler) rather than one action. Returns the results as dicts."""
    level = (
        EscalationLevel.objects.select_related("reassign_team", "reassign_agent")
        .filter(target_id=clock.target_id, percent=percent)
        .first()
    )
    if level is None:  # deleted since the deadline was computed
        return []
    ticket = Ticket.objects.select_for_update().get(pk=clock.ticket_id)
    metric = clock.target.get_metric_display()
    when = "breach" if percent == 100 else (f"{percent} % of target" if percent < 100 else f"{percent} % (breached)")
    reason = f"SLA escalation: {metric} at {percent} % of its target"
    results: list[_Result] = []
    raise_to = level.raise_priority_to
    if raise_to is not None:
        results.append(_guarded("raise_priority", lambda: _raise_priority(ticket, raise_to, reason)))
    if level.reassign_team_id is not None or level.reassign_agent_id is not None:
        results.append(_guarded("reassign", lambda: _reassign(ticket, level)))
    ticket.refresh_from_db()
    calendars = BusinessCalendars()
    notify_results: list[_Result] = []

    def notify() -> _Result:
        notify_results.extend(_notify(ticket, clock, level, percent, now, calendars))
        return _Result("notify", "done", "")

    guarded = _guarded("notify", notify)
    results.extend(notify_results if guarded.status == "done" else [guarded])

    dicts = [result.as_dict() for result in results]
    for result in results:
        ticket_timeline_system_note(
            ticket=ticket,
            at=now,
            summary=f"SLA escalation ({metric}, {when}): {result.summary}",
            data={
                "clock_id": clock.pk,
                "level_id": level.pk,
                "threshold": percent,
                "action": result.action,
                "status": result.status,
            },
        )
    ClockEvent.objects.filter(clock=clock, kind=ESCALATED, threshold=percent).update(
        data={"level_id": level.pk, "actions": dicts, "fired_at": now.isoformat()}
    )
    audit_record(
        actor=None,
        action="sla.escalation",
        obj=ticket,
        after={"clock_id": clock.pk, "level_id": level.pk, "threshold": percent, "at": at, "actions": dicts},
    )
    publish(
        SlaEscalated(
            at=now,
            actor_id=None,
            ticket_id=ticket.pk,
            clock_id=clock.pk,
            level_id=level.pk,
            threshold=percent,
            actions=tuple(dicts),
        )
    )
    logger.info(
        "sla.escalated",
        extra={"clock_id": clock.pk, "threshold": percent, "failed": sum(r.status == "failed" for r in results)},
    )
    return dicts


# --- delivery ----------------------------------------------------------------------------------------------------


def _email(row: EscalationNotification) -> tuple[str, str]:
    ticket, clock = row.ticket, row.clock
    metric = clock.target.get_metric_display()
    state = "breached" if row.threshold >= 100 else "at risk"
    subject = f"[{ticket.number}] SLA {state}: {metric} at {row.threshold} % - {ticket.title}"
    due = f"{clock.breached_at:%Y-%m-%d %H:%M:%S} UTC" if clock.breached_at else "not yet"
    body = (
        f'{ticket.number} "{ticket.title}" has reached {row.threshold} % of its {metric.lower()} target '
        f"({clock.target.policy.name}).\n"
        f"Priority: {Priority(ticket.priority).label}. Breached at: {due}.\n"
        f"You are notified as: {', '.join(REASON_LABELS.get(r, r) for r in row.reasons)}."
    )
    return subject, body


@transaction.atomic
def escalation_notification_deliver(*, notification_id: int, now: datetime | None = None) -> str:
    """Send one queued notification if it is due. Locks the row (skipping one another worker holds) and checks its
    state, so a duplicate task or an overlapping periodic pass sends nothing twice; a failed send rolls back and the
    row stays queued. A ticket no longer open, or a recipient who left or can no longer see it, marks the row
    `skipped`. Returns what happened: sent, skipped, waiting, or the row's state."""
    now = now or timezone.now()
    row = (
        EscalationNotification.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("ticket", "recipient", "clock__target__policy")
        .filter(pk=notification_id)
        .first()
    )
    if row is None:
        return "gone"
    if row.state != EscalationNotification.State.QUEUED:
        return str(row.state)
    if row.deliver_after > now:
        return "waiting"
    ticket, recipient = row.ticket, row.recipient
    skip = ""
    if not ticket.is_open:
        skip = f"the ticket is {ticket.get_state_display().lower()}"
    elif not recipient.is_active or not permissions.can_view_ticket(recipient, ticket):
        skip = "the recipient can no longer see the ticket"
    if skip:
        row.state = EscalationNotification.State.SKIPPED
        row.detail = skip
        row.save(update_fields=["state", "detail"])
        return "skipped"
    subject, body = _email(row)
    send_mail(subject=subject, message=body, from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=[recipient.email])
    row.state = EscalationNotification.State.SENT
    row.sent_at = now
    row.save(update_fields=["state", "sent_at"])
    logger.info("sla.escalation_notified", extra={"notification_id": row.pk, "user_id": recipient.pk})
    return "sent"


def escalation_notifications_deliver_due(
    *, now: datetime | None = None, batch_size: int = DELIVERY_BATCH_SIZE
) -> dict[str, int]:
    """Send every queued notification whose `deliver_after` has come (celery-beat), in batches in due order (the
    partial index), each in its own transaction. A failed send is logged and left queued for the next pass."""
    now = now or timezone.now()
    counts = {"sent": 0, "skipped": 0, "failed": 0}
    after: tuple[datetime, int] | None = None
    while True:
        rows = EscalationNotification.objects.filter(state=EscalationNotification.State.QUEUED, deliver_after__lte=now)
        if after is not None:
            rows = rows.filter(Q(deliver_after__gt=after[0]) | Q(deliver_after=after[0], pk__gt=after[1]))
        batch = list(rows.order_by("deliver_after", "pk").values_list("deliver_after", "pk")[:batch_size])
        for _deliver_after, notification_id in batch:
            try:
                outcome = escalation_notification_deliver(notification_id=notification_id, now=now)
            except Exception:  # one bad address or SMTP hiccup must not hold up the others
                logger.exception("sla.escalation_notify_failed", extra={"notification_id": notification_id})
                counts["failed"] += 1
            else:
                if outcome in counts:
                    counts[outcome] += 1
        if len(batch) < batch_size:
            return counts
        after = batch[-1]
