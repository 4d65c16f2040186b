"""Reads for service level management. Calendars are visible to desk users (agents, leads, managers, security
officers) and administrators; anyone else gets the same 404 as for a missing calendar."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import QuerySet, prefetch_related_objects

from itsm.errors import NotFound
from security import permissions
from security.models import User
from sla.calendar import BusinessCalendar, CountryHolidays, WeeklyRange
from sla.models import Calendar, Clock, ClockSegment, SlaPolicy
from sla.state import Segment, figures
from tickets.models import Ticket


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


def policy_names() -> list[str]:
    return list(SlaPolicy.objects.order_by("name").values_list("name", flat=True))


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


# --- the ticket's clocks (the desk SLA panel and `GET /api/v1/tickets/{number}/sla/`) --------------------------------


@dataclass(frozen=True)
class SegmentView:
    kind: str
    start: datetime
    end: datetime | None
    business_seconds: int


@dataclass(frozen=True)
class ClockView:
    """One clock as the panel and the API show it. `remaining_seconds` is signed (negative when overdue)."""

    id: int
    policy: str
    kind: str
    team: str | None
    metric: str
    metric_label: str
    clock_state: str
    state: str  # ok | warning | breached | paused | met | cancelled
    target_seconds: int
    target: str
    started_at: datetime
    due_at: datetime | None
    elapsed_seconds: int
    remaining_seconds: int
    paused_seconds: int
    breached_at: datetime | None
    finished_at: datetime | None
    met_at: datetime | None
    time_zone: str
    is_24x7: bool
    is_working_now: bool
    segments: tuple[SegmentView, ...]

    @property
    def ticks(self) -> bool:
        """Whether the shown remaining time moves second by second right now (running, inside working hours)."""
        return self.clock_state == Clock.State.RUNNING and self.is_working_now

    @property
    def remaining_text(self) -> str:
        return remaining_text(self.state, self.remaining_seconds)


def format_short_duration(seconds: int) -> str:
    """`8040` → `2 h 14 m`; under a minute in seconds; days of 24 hours (as `format_duration`)."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds} s"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes and not days:
        parts.append(f"{minutes} m")
    return " ".join(parts) or "0 s"


def remaining_text(state: str, remaining: int) -> str:
    # The state label already says paused / met / cancelled; only running clocks have time to tell.
    if state in {"paused", "met", "cancelled"}:
        return ""
    if remaining < 0 or (state == "breached" and remaining == 0):
        return f"overdue by {format_short_duration(remaining)}"
    return f"{format_short_duration(remaining)} left"


def _panel_state(clock: Clock, elapsed: int, warning_percents: list[int]) -> str:
    if clock.state == Clock.State.PAUSED:
        return "paused"
    if clock.state in (Clock.State.MET, Clock.State.BREACHED, Clock.State.CANCELLED):
        return str(clock.state)
    if elapsed >= clock.target_seconds:
        return "breached"
    if warning_percents and elapsed * 100 >= min(warning_percents) * clock.target_seconds:
        return "warning"
    return "ok"


def clocks_for_ticket(*, user: User, ticket: Ticket, now: datetime) -> list[ClockView]:
    """Every clock of `ticket` with its figures at `now`, for people who see the ticket's internals (others: []).

    Constant queries: the clocks (with target, policy, calendar and team), their segments, and — only when some clock
    runs on a calendar other than 24×7 — those calendars' ranges and holidays (two more), each calendar built once.
    """
    if not permissions.can_view_internal(user, ticket):
        return []
    clocks = list(
        Clock.objects.filter(ticket_id=ticket.pk)
        .select_related("target__policy__calendar", "team")
        .order_by("started_at", "id")
    )
    by_clock: dict[int, list[ClockSegment]] = defaultdict(list)
    for segment in ClockSegment.objects.filter(clock__ticket_id=ticket.pk).order_by("start", "id"):
        by_clock[segment.clock_id].append(segment)
    calendars = {clock.target.policy.calendar_id: clock.target.policy.calendar for clock in clocks}
    prefetch_related_objects(
        [calendar for calendar in calendars.values() if not calendar.is_24x7], "working_ranges", "holidays"
    )
    business = {pk: business_calendar_for(calendar) for pk, calendar in calendars.items()}
    working_now = {
        pk: calendars[pk].is_24x7 or calendar.business_seconds(now, now + timedelta(seconds=1)) > 0
        for pk, calendar in business.items()
    }
    views = []
    for clock in clocks:
        policy = clock.target.policy
        calendar = business[policy.calendar_id]
        rows = by_clock[clock.pk]
        ledger = [Segment(kind=row.kind, start=row.start, end=row.end) for row in rows]
        # A finished clock's open segment (there should be none) is read at its finish, not now.
        at = clock.finished_at or now
        result = figures(ledger, calendar, target_seconds=clock.target_seconds, now=at)
        segment_views = tuple(
            SegmentView(
                kind=row.kind,
                start=row.start,
                end=row.end,
                business_seconds=calendar.business_seconds(row.start, max(row.end or at, row.start)),
            )
            for row in rows
        )
        views.append(
            ClockView(
                id=clock.pk,
                policy=policy.name,
                kind=policy.kind,
                team=clock.team.name if clock.team is not None else None,
                metric=clock.target.metric,
                metric_label=clock.target.get_metric_display(),
                clock_state=clock.state,
                state=_panel_state(clock, result.elapsed, clock.target.warning_percents),
                target_seconds=clock.target_seconds,
                target=format_short_duration(clock.target_seconds),
                started_at=clock.started_at,
                due_at=result.due_at,
                elapsed_seconds=result.elapsed,
                remaining_seconds=clock.target_seconds - result.elapsed,
                paused_seconds=result.paused,
                breached_at=clock.breached_at,
                finished_at=clock.finished_at,
                met_at=clock.finished_at if clock.state == Clock.State.MET else None,
                time_zone=calendars[policy.calendar_id].time_zone,
                is_24x7=calendars[policy.calendar_id].is_24x7,
                is_working_now=working_now[policy.calendar_id],
                segments=segment_views,
            )
        )
    return views
