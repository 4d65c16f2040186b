"""Reads for service level management. Calendars are visible to desk users (agents, leads, managers, security
officers) and administrators; anyone else gets the same 404 as for a missing calendar."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holidays_package
from django.db.models import Case, Exists, F, IntegerField, OuterRef, Q, QuerySet, Value, When, prefetch_related_objects

from itsm.errors import NotFound
from security import permissions
from security.models import User
from sla.calendar import BusinessCalendar, CalendarUsage, CountryHolidays, WeeklyRange, calendar_usage
from sla.models import Calendar, Clock, ClockEvent, ClockSegment, SlaPolicy
from sla.state import DueDerivation, Segment, derive_due, due_state, figures
from tickets import queues
from tickets import selectors as ticket_selectors
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
    explain: "ClockExplain | None" = None

    @property
    def ticks(self) -> bool:
        """Whether the shown remaining time moves second by second right now (running, inside working hours)."""
        return self.clock_state == Clock.State.RUNNING and self.is_working_now

    @property
    def remaining_text(self) -> str:
        return remaining_text(self.state, self.remaining_seconds)


class BusinessCalendars:
    """`BusinessCalendar`s by calendar id, each built (one query with its ranges and holidays) once per instance:
    one instance per handler call, task or batch."""

    def __init__(self) -> None:
        self._by_id: dict[int, BusinessCalendar] = {}

    def get(self, calendar_id: int) -> BusinessCalendar:
        if calendar_id not in self._by_id:
            row = Calendar.objects.prefetch_related("working_ranges", "holidays").get(pk=calendar_id)
            self._by_id[calendar_id] = business_calendar_for(row)
        return self._by_id[calendar_id]


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


@dataclass(frozen=True)
class ClockExplain:
    """The Explain view of one clock: how its due instant was derived, and the calendar's windows and holidays
    between its start and its due instant (or `now`, or its finish, when there is none)."""

    derivation: DueDerivation
    usage: CalendarUsage
    usage_until: datetime
    holiday_names: tuple[tuple[date, str], ...]
    calendar_name: str


def _holiday_names(calendar: Calendar, days: Sequence[date], explicit: dict[date, str]) -> tuple[tuple[date, str], ...]:
    """Each day's name: the calendar's own holiday's, else the country's (the `holidays` package, built once per
    year rather than once per day), else "Holiday"."""
    by_year: dict[int, Any] = {}

    def name(day: date) -> str:
        if day in explicit:
            return explicit[day] or "Holiday"
        if not calendar.holiday_country:
            return "Holiday"
        if day.year not in by_year:
            by_year[day.year] = holidays_package.country_holidays(
                calendar.holiday_country, subdiv=calendar.holiday_subdivision or None, years=day.year
            )
        return str(by_year[day.year].get(day) or "Public holiday")

    return tuple((day, name(day)) for day in days)


def clock_explain(
    *, calendar_row: Calendar, calendar: BusinessCalendar, ledger: list[Segment], target_seconds: int, at: datetime
) -> ClockExplain:
    """Pure apart from the calendar row's prefetched holidays: no query."""
    derivation = derive_due(ledger, calendar, target_seconds=target_seconds, now=at)
    started = ledger[0].start if ledger else at
    until = max(derivation.due_at or at, started)
    usage = calendar_usage(calendar, started, until)
    explicit = {holiday.date: holiday.name for holiday in calendar_row.holidays.all()} if not calendar.is_24x7 else {}
    names = _holiday_names(calendar_row, usage.holidays, explicit)
    return ClockExplain(
        derivation=derivation, usage=usage, usage_until=until, holiday_names=names, calendar_name=calendar_row.name
    )


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
                explain=clock_explain(
                    calendar_row=calendars[policy.calendar_id],
                    calendar=calendar,
                    ledger=ledger,
                    target_seconds=clock.target_seconds,
                    at=at,
                ),
            )
        )
    return views


# --- the queue "Due" column and the "Breaching soon" queue -----------------------------------------------------------


@dataclass(frozen=True)
class DueView:
    """A ticket's most urgent open clock, as a queue cell: read from the clock's stored columns (no ledger, no
    calendar), so a whole page costs one query."""

    clock_id: int
    ticket_id: int
    state: str  # ok | warning | breached | paused
    due_at: datetime | None
    metric_label: str
    policy: str
    breached_at: datetime | None
    now: datetime = field(repr=False, compare=False)

    @property
    def relative_text(self) -> str:
        """Wall time to the due instant: "in 2 h 14 m", "overdue by 35 m"; "paused" without a due instant."""
        if self.due_at is None:
            return "paused"
        seconds = int((self.due_at - self.now).total_seconds())
        if seconds <= 0:
            return f"overdue by {format_short_duration(seconds)}"
        return f"in {format_short_duration(seconds)}"

    @property
    def label(self) -> str:
        return {"ok": "On time", "warning": "Warning", "breached": "Breached", "paused": "Paused"}[self.state]


def _with_warned(queryset: QuerySet[Clock]) -> QuerySet[Clock]:
    # A correlated EXISTS on the unique (clock, kind, threshold) index: part of the same query.
    return queryset.annotate(
        has_warned=Exists(ClockEvent.objects.filter(clock_id=OuterRef("pk"), kind=ClockEvent.Kind.WARNED))
    )


def _due_view(clock: Clock, now: datetime) -> DueView:
    return DueView(
        clock_id=clock.pk,
        ticket_id=clock.ticket_id,
        state=due_state(
            clock_state=clock.state,
            due_at=clock.due_at,
            next_deadline_at=clock.next_deadline_at,
            has_warned=bool(getattr(clock, "has_warned", False)),
            now=now,
        ),
        due_at=clock.due_at,
        metric_label=clock.target.get_metric_display(),
        policy=clock.target.policy.name,
        breached_at=clock.breached_at,
        now=now,
    )


def due_for_tickets(*, user: User, tickets: Iterable[Ticket], now: datetime) -> dict[int, DueView]:
    """Ticket id → its most urgent open clock: the running one with the earliest due instant, else a paused one.
    Tickets whose internals `user` may not see (`can_view_internal`, checked on the loaded rows) are left out, and
    so are tickets without an open clock. Exactly one query (DISTINCT ON the ticket, over `sla_clock_ticket_state`),
    even for an empty page, so a page's cost never depends on its rows."""
    ids = sorted({ticket.pk for ticket in tickets if permissions.can_view_internal(user, ticket)})
    rows = (
        _with_warned(Clock.objects.filter(ticket_id__in=ids or [0], state__in=Clock.OPEN_STATES))
        .select_related("target__policy")
        .only(
            "ticket",
            "state",
            "due_at",
            "next_deadline_at",
            "breached_at",
            "target__metric",
            "target__policy__name",
        )  # fmt: skip
        .annotate(
            running_first=Case(
                When(state=Clock.State.RUNNING, then=Value(0)), default=Value(1), output_field=IntegerField()
            )
        )
        .order_by("ticket_id", "running_first", F("due_at").asc(nulls_last=True), "id")
        .distinct("ticket_id")
    )
    return {clock.ticket_id: _due_view(clock, now) for clock in rows}


@dataclass(frozen=True)
class BreachingRow:
    ticket: Ticket
    due: DueView


@dataclass(frozen=True)
class BreachingPage:
    rows: list[BreachingRow]
    next_cursor: queues.DueCursor | None
    previous_cursor: queues.DueCursor | None
    has_more: bool

    @property
    def items(self) -> list[Ticket]:
        return [row.ticket for row in self.rows]


def _due_range(query: queues.QueueQuery, now: datetime) -> Q:
    horizon = now + timedelta(seconds=query.within_seconds)
    if query.show == queues.BREACHED:
        return Q(due_at__lte=now)
    if query.show == queues.BOTH:
        return Q(due_at__lte=horizon)
    return Q(due_at__gt=now, due_at__lte=horizon)


def breaching_page(*, user: User, query: queues.QueueQuery, zone: tzinfo, now: datetime) -> BreachingPage:
    """One keyset page of "Breaching soon": running clocks due in the chosen range (`_due_range`) of the tickets
    whose internals `user` may see (with the page's filters), by (due_at, clock id) — the order of the partial index
    `sla_clock_due`, so the scan reads the index in order and stops after `size + 1` rows: no OFFSET, no
    COUNT. Each ticket is listed once, at its earliest clock in the range (a NOT EXISTS on `sla_clock_ticket_state`).
    One query, tickets and names joined."""
    in_range = _due_range(query, now)
    # A clock has a due instant only while it runs (a check constraint): the range alone selects running clocks.
    earlier = Clock.objects.filter(ticket_id=OuterRef("ticket_id"), state=Clock.State.RUNNING).filter(
        Q(due_at__lt=OuterRef("due_at")) | Q(due_at=OuterRef("due_at"), id__lt=OuterRef("id"))
    )
    if query.show == queues.SOON:
        earlier = earlier.filter(due_at__gt=now)
    tickets = ticket_selectors.queue_tickets(user=user, query=query, zone=zone)
    queryset: QuerySet[Any] = (
        _with_warned(Clock.objects.filter(in_range))
        .filter(ticket__in=tickets.values("pk"))
        .filter(~Exists(earlier))
        .select_related("target__policy", "ticket__requester", "ticket__category", "ticket__team", "ticket__assignee")
        .defer("ticket__description", "ticket__search_vector")
    )
    backwards = query.before is not None
    position = query.before if backwards else query.after
    cursor = position if isinstance(position, queues.DueCursor) else None
    if cursor is not None:
        if backwards:
            queryset = queryset.filter(due_at__lte=cursor.value).filter(
                Q(due_at__lt=cursor.value) | Q(due_at=cursor.value, id__lt=cursor.pk)
            )
        else:
            queryset = queryset.filter(due_at__gte=cursor.value).filter(
                Q(due_at__gt=cursor.value) | Q(due_at=cursor.value, id__gt=cursor.pk)
            )
    order = ("-due_at", "-id") if backwards else ("due_at", "id")
    size = query.size
    clocks = list(queryset.order_by(*order)[: size + 1])
    has_more = len(clocks) > size
    clocks = clocks[:size]
    if backwards:
        clocks.reverse()
    rows = [BreachingRow(ticket=clock.ticket, due=_due_view(clock, now)) for clock in clocks]

    def at(clock: Clock) -> queues.DueCursor:
        return queues.DueCursor(clock.due_at, clock.pk)  # type: ignore[arg-type]  # the range excludes NULL

    if not clocks:
        return BreachingPage(rows=[], next_cursor=None, previous_cursor=None, has_more=False)
    if backwards:
        return BreachingPage(
            rows=rows, next_cursor=at(clocks[-1]), previous_cursor=at(clocks[0]) if has_more else None, has_more=False
        )
    return BreachingPage(
        rows=rows,
        next_cursor=at(clocks[-1]) if has_more else None,
        previous_cursor=at(clocks[0]) if cursor is not None else None,
        has_more=has_more,
    )
