"""Service level management: business calendars (DESIGN.md §4), policies, targets and the clock ledger
(docs/sla.md). The maths lives in `sla/calendar.py` and `sla/state.py`; `sla.selectors.business_calendar_for` turns
a `Calendar` row into a `BusinessCalendar`."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Now


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


# --- policies, targets and the clock ledger (issue 5) ----------------------------------------------------------------


def validate_pause_states(value: list[str]) -> None:
    from tickets.state import OPEN_STATES

    allowed = sorted(OPEN_STATES)
    unknown = [state for state in value if state not in allowed]
    if unknown:
        raise ValidationError(
            "%(unknown)s cannot pause a clock (choose among %(allowed)s).",
            code="unknown_pause_state",
            params={"unknown": ", ".join(unknown), "allowed": ", ".join(allowed)},
        )


def validate_warning_percents(value: list[int]) -> None:
    if any(not 0 < percent < 100 for percent in value) or len(set(value)) != len(value):
        raise ValidationError("Warnings are distinct percentages between 1 and 99.", code="invalid_warning_percents")


def default_pause_states() -> list[str]:
    return ["pending"]


def default_warning_percents() -> list[int]:
    return [50, 75, 90]


class SlaPolicy(models.Model):
    """Which tickets get which targets. An empty match list means "any". Among the active SLA policies matching a
    ticket only the one with the LOWEST `precedence` applies (ties: the oldest policy, lowest id); every active OLA
    policy whose `team` is the ticket's team applies (an OLA clock belongs to that team)."""

    class Kind(models.TextChoices):
        SLA = "sla", "SLA (toward the requester)"
        OLA = "ola", "OLA (toward a team)"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=3, choices=Kind.choices, default=Kind.SLA)
    is_active = models.BooleanField(default=True)
    precedence = models.IntegerField(default=100, help_text="Lower wins among matching SLA policies.")
    ticket_types = ArrayField(models.CharField(max_length=16), default=list, blank=True)
    categories = models.ManyToManyField("tickets.Category", blank=True, related_name="+")
    priorities = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)
    team = models.ForeignKey(
        "security.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="OLA only."
    )
    calendar = models.ForeignKey(Calendar, on_delete=models.PROTECT, related_name="policies")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("kind", "precedence", "id")
        constraints = (
            models.UniqueConstraint(fields=("name",), name="sla_policy_name_unique"),
            models.CheckConstraint(
                condition=Q(kind="sla", team__isnull=True) | Q(kind="ola", team__isnull=False),
                name="sla_policy_team_iff_ola",
            ),
        )

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.kind == self.Kind.OLA and self.team_id is None:
            raise ValidationError({"team": ValidationError("An OLA belongs to a team.", code="ola_without_team")})
        if self.kind == self.Kind.SLA and self.team_id is not None:
            raise ValidationError({"team": ValidationError("Only an OLA has a team.", code="sla_with_team")})
        from tickets.state import Priority, TicketType

        if any(value not in TicketType.values for value in self.ticket_types):
            raise ValidationError({"ticket_types": ValidationError("Unknown ticket type.", code="unknown_type")})
        if any(value not in Priority.values for value in self.priorities):
            raise ValidationError({"priorities": ValidationError("Unknown priority.", code="unknown_priority")})


def validate_ticket_states(value: list[str]) -> None:
    from tickets.state import TicketState

    unknown = [state for state in value if state not in TicketState.values]
    if unknown:
        raise ValidationError(
            "%(unknown)s is not a ticket state.", code="unknown_state", params={"unknown": ", ".join(unknown)}
        )


def default_stop_states() -> list[str]:
    return ["resolved"]


class SlaTarget(models.Model):
    """One metric of a policy: a business-time duration per priority (P1–P4), the ticket states that pause it and
    the warning thresholds (percent of the target).

    `custom` targets are named clocks (`name`, e.g. "Time to contain") that start when the ticket enters one of
    `start_states` (empty: at creation), stop (met/breached) when it enters one of `stop_states` and pause in
    `pause_states` (docs/sla.md "Custom metrics"). `on_reopen` says what a reopen does to a clock stopped by
    `resolved`: continue it (the resolved interval counts as paused) or restart a new one."""

    class Metric(models.TextChoices):
        FIRST_RESPONSE = "first_response", "First response"
        RESOLUTION = "resolution", "Resolution"
        CUSTOM = "custom", "Custom"

    class OnReopen(models.TextChoices):
        CONTINUE = "continue", "Continue (the resolved interval counts as paused)"
        RESTART = "restart", "Restart from the reopen"

    policy = models.ForeignKey(SlaPolicy, on_delete=models.CASCADE, related_name="targets")
    metric = models.CharField(max_length=32, choices=Metric.choices)
    p1_seconds = models.PositiveIntegerField()
    p2_seconds = models.PositiveIntegerField()
    p3_seconds = models.PositiveIntegerField()
    p4_seconds = models.PositiveIntegerField()
    pause_states = ArrayField(
        models.CharField(max_length=16), default=default_pause_states, blank=True, validators=[validate_pause_states]
    )
    warning_percents = ArrayField(
        models.PositiveSmallIntegerField(),
        default=default_warning_percents,
        blank=True,
        validators=[validate_warning_percents],
    )
    on_reopen = models.CharField(max_length=8, choices=OnReopen.choices, default=OnReopen.CONTINUE)
    name = models.CharField(max_length=100, blank=True, help_text="Custom metrics only, e.g. Time to contain.")
    start_states = ArrayField(
        models.CharField(max_length=16),
        default=list,
        blank=True,
        validators=[validate_ticket_states],
        help_text="Custom metrics only: the clock starts on entering one of these (empty: at creation).",
    )
    stop_states = ArrayField(
        models.CharField(max_length=16),
        default=default_stop_states,
        blank=True,
        validators=[validate_ticket_states],
        help_text="Custom metrics only: the clock stops (met or breached) on entering one of these.",
    )

    class Meta:
        ordering = ("policy", "metric")
        constraints = (
            models.UniqueConstraint(
                fields=("policy", "metric"), condition=~Q(metric="custom"), name="sla_target_unique_metric"
            ),
            models.UniqueConstraint(
                fields=("policy", "name"), condition=Q(metric="custom"), name="sla_target_unique_custom_name"
            ),
            models.CheckConstraint(
                condition=Q(metric="custom", name__gt="") | (~Q(metric="custom") & Q(name="")),
                name="sla_target_name_iff_custom",
            ),
            models.CheckConstraint(
                condition=Q(p1_seconds__gt=0, p2_seconds__gt=0, p3_seconds__gt=0, p4_seconds__gt=0),
                name="sla_target_durations_positive",
            ),
        )

    def __str__(self) -> str:
        return f"{self.policy} · {self.label}"

    @property
    def label(self) -> str:
        return self.name if self.metric == self.Metric.CUSTOM else str(self.get_metric_display())

    def seconds_for(self, priority: int) -> int:
        """The target in business seconds for a ticket priority (1–4)."""
        if priority not in (1, 2, 3, 4):
            raise ValueError(f"priority must be 1 to 4, not {priority}")
        return int(getattr(self, f"p{priority}_seconds"))

    def clean(self) -> None:
        super().clean()
        for priority in (1, 2, 3, 4):
            name = f"p{priority}_seconds"
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValidationError({name: ValidationError("Use a positive duration.", code="non_positive")})
        if self.metric == self.Metric.CUSTOM:
            if not self.name.strip():
                raise ValidationError({"name": ValidationError("A custom metric needs a name.", code="name_required")})
            if not self.stop_states:
                raise ValidationError(
                    {"stop_states": ValidationError("A custom metric needs a stop state.", code="stop_required")}
                )
            overlap = set(self.start_states) & set(self.stop_states)
            if overlap:
                raise ValidationError(
                    {"stop_states": ValidationError("A state cannot both start and stop.", code="start_stop_overlap")}
                )
        elif self.name:
            raise ValidationError({"name": ValidationError("Only custom metrics have a name.", code="name_not_custom")})


class Clock(models.Model):
    """One target measured on one ticket (and, for an OLA, one team). `running`/`paused` are open; `met`,
    `breached` and `cancelled` are final. Every figure comes from the segments (sla/state.py); `next_deadline_at` (what
    the timers must wake up for) and `due_at` (the breach instant, for "Due" columns and "Breaching soon") are stored
    only to be indexed, and are None unless the clock runs."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        MET = "met", "Met"
        BREACHED = "breached", "Breached"
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATES = (State.RUNNING, State.PAUSED)

    class StopReason(models.TextChoices):
        RESOLVED = "resolved", "Resolved"
        FIRST_REPLY = "first_reply", "First public reply"
        STOP_STATE = "stop_state", "Custom stop state"
        TEAM_CHANGED = "team_changed", "Handed over to another team"
        TICKET_FINAL = "ticket_final", "Ticket closed or cancelled"
        NO_LONGER_MATCHES = "no_longer_matches", "Policy no longer matches"
        POLICY_CHANGED = "policy_changed", "Policy edited or deactivated"

    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="+")
    target = models.ForeignKey(SlaTarget, on_delete=models.PROTECT, related_name="clocks")
    team = models.ForeignKey("security.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    started_at = models.DateTimeField()
    target_seconds = models.PositiveIntegerField()
    next_deadline_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True, help_text="The breach instant while running (indexed).")
    breached_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(
        max_length=24, blank=True, help_text="Why a final clock stopped (docs/sla.md): resolved, first_reply, …"
    )

    class Meta:
        ordering = ("id",)
        indexes = (
            models.Index(fields=("next_deadline_at",), condition=Q(state="running"), name="sla_clock_deadline_running"),
            models.Index(fields=("ticket", "state"), name="sla_clock_ticket_state"),
            # Running clocks by due instant ("Breaching soon", the dashboards' at-risk list). `due_at` is set only
            # while a clock runs (the check below), so the index is on `due_at` alone: a range of due instants then
            # estimates from the column's own statistics. Conditioning on `state = 'running'` as well made Postgres
            # multiply the two shares, underestimate later pages about 20× and sort a bitmap scan (1.3 s at 1M).
            models.Index(fields=("due_at", "id"), condition=Q(due_at__isnull=False), name="sla_clock_due"),
            # Open clocks without a due instant (paused ones, and running ones whose calendar never reaches the
            # target), in id order: the end of the at-risk list.
            models.Index(
                fields=("id",),
                condition=Q(due_at__isnull=True, state__in=("running", "paused")),
                name="sla_clock_open_undue",
            ),
            # The dashboards (sla/reports.py): open clocks per ticket with every column the live counts read, so
            # counting the open clocks is an index-only scan (the heap of 56k open clocks cost a third of the
            # statement at 1M); and the breached list longest overdue first (the order it is shown in, so the list
            # reads the first rows of the index and stops).
            models.Index(
                fields=("ticket",),
                include=("id", "state", "breached_at", "due_at", "team", "target"),
                condition=Q(state__in=("running", "paused")),
                name="sla_clock_open_cover",
            ),
            models.Index(
                Coalesce("breached_at", "due_at"),
                "id",
                condition=Q(state__in=("running", "paused")),
                name="sla_clock_open_overdue",
            ),
        )
        constraints = (
            models.UniqueConstraint(
                fields=("ticket", "target", "team"),
                condition=Q(state__in=("running", "paused")),
                nulls_distinct=False,
                name="sla_clock_one_open_per_target",
            ),
            models.CheckConstraint(
                condition=Q(due_at__isnull=True) | Q(state="running"), name="sla_clock_due_only_while_running"
            ),
        )

    def __str__(self) -> str:
        return f"clock {self.pk} ({self.state})"


class ClockSegment(models.Model):
    """The ledger: `[start, end)` in UTC, running or paused; `end` is None for the one open segment."""

    class Kind(models.TextChoices):
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"

    clock = models.ForeignKey(Clock, on_delete=models.CASCADE, related_name="segments")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("clock", "start", "id")
        indexes = (models.Index(fields=("clock", "start"), name="sla_segment_clock_start"),)
        constraints = (
            models.UniqueConstraint(fields=("clock",), condition=Q(end__isnull=True), name="sla_segment_one_open"),
            models.CheckConstraint(condition=Q(end__isnull=True) | Q(end__gte=F("start")), name="sla_segment_order"),
        )

    def __str__(self) -> str:
        end = "…" if self.end is None else f"{self.end:%Y-%m-%d %H:%M:%S}"
        return f"{self.kind} [{self.start:%Y-%m-%d %H:%M:%S}, {end})"


class ClockEvent(models.Model):
    """What happened to a clock. `warned` and `breached` carry a `threshold` (percent; 100 for the breach) and are
    unique per (clock, kind, threshold), so each fires once."""

    class Kind(models.TextChoices):
        STARTED = "started", "Started"
        PAUSED = "paused", "Paused"
        RESUMED = "resumed", "Resumed"
        MET = "met", "Met"
        BREACHED = "breached", "Breached"
        CANCELLED = "cancelled", "Cancelled"
        RETARGETED = "retargeted", "Retargeted"
        WARNED = "warned", "Warned"
        REOPENED = "reopened", "Reopened"
        ESCALATED = "escalated", "Escalated"

    clock = models.ForeignKey(Clock, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    # When the row was written (the database's statement time), as opposed to `at`, the instant it is about: a timer's
    # lateness is `recorded_at - at` (bench/sla_timers.py).
    recorded_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        ordering = ("clock", "at", "id")
        constraints = (
            models.UniqueConstraint(
                fields=("clock", "kind", "threshold"),
                condition=Q(kind__in=("warned", "breached")),
                name="sla_clock_event_threshold_once",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=("warned", "breached")) | Q(threshold__isnull=False),
                name="sla_clock_event_threshold_required",
            ),
            # Escalation levels fire once per clock and level percent (docs/sla-escalations.md).
            models.UniqueConstraint(
                fields=("clock", "kind", "threshold"),
                condition=Q(kind="escalated"),
                name="sla_clock_event_escalation_once",
            ),
            models.CheckConstraint(
                condition=~Q(kind="escalated") | Q(threshold__isnull=False),
                name="sla_clock_event_escalation_threshold",
            ),
        )

    def __str__(self) -> str:
        return (
            f"{self.kind}{f' {self.threshold}%' if self.threshold is not None else ''} at {self.at:%Y-%m-%d %H:%M:%S}"
        )


class ClockOutcome(models.Model):
    """One row per clock that is finished met or breached (cancelled and open clocks have none), for reporting. A
    clock that a reopen continues loses its row (the ledger keeps the `met`/`breached` event) and gets a new one,
    with `is_after_reopen`, when it finishes again: one outcome per finished clock, never two."""

    clock = models.OneToOneField(Clock, on_delete=models.CASCADE, related_name="outcome")
    met = models.BooleanField()
    business_seconds_used = models.PositiveIntegerField()
    target_seconds = models.PositiveIntegerField()
    team = models.ForeignKey("security.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    priority = models.PositiveSmallIntegerField()
    category = models.ForeignKey("tickets.Category", on_delete=models.PROTECT, related_name="+")
    policy = models.ForeignKey(SlaPolicy, on_delete=models.PROTECT, related_name="outcomes")
    finished_at = models.DateTimeField()
    is_after_reopen = models.BooleanField(
        default=False, help_text="The clock was reopened (continued) before it finished this time."
    )
    # Copied from the clock and its target so the dashboards aggregate outcomes without joining a million clocks.
    metric = models.CharField(max_length=32)
    started_at = models.DateTimeField()
    # The ticket's type when the clock finished, like its priority and category: the dashboards filter on it.
    ticket_type = models.CharField(max_length=16)

    class Meta:
        ordering = ("finished_at", "id")
        indexes = (
            # Covering: the dashboards read every column they aggregate from the index alone (an index-only scan of
            # the period), never the heap (docs/dashboards.md "How it stays fast").
            models.Index(
                fields=("finished_at",),
                name="sla_outcome_finished_cover",
                include=(
                    "metric",
                    "met",
                    "business_seconds_used",
                    "started_at",
                    "team",
                    "category",
                    "priority",
                    "policy",
                    "ticket_type",
                ),
            ),
            # The dashboards' percentiles (one statement branch per metric) read only their metric's durations.
            models.Index(
                fields=("metric", "finished_at"),
                name="sla_outcome_metric_cover",
                include=(
                    "business_seconds_used",
                    "started_at",
                    "category",
                    "team",
                    "priority",
                    "policy",
                    "ticket_type",
                ),
            ),
            models.Index(fields=("team", "finished_at"), name="sla_outcome_team_finished"),
            # The dashboards' filters (sla/reports.py).
            models.Index(fields=("category", "finished_at"), name="sla_outcome_category_finished"),
            models.Index(fields=("policy", "finished_at"), name="sla_outcome_policy_finished"),
            models.Index(fields=("priority", "finished_at"), name="sla_outcome_priority_finished"),
        )

    def __str__(self) -> str:
        return f"{'met' if self.met else 'breached'}: {self.business_seconds_used}/{self.target_seconds} s"


# --- escalations (issue 5, docs/sla-escalations.md) -----------------------------------------------------------------


class EscalationLevel(models.Model):
    """What happens when a clock reaches `percent` of its target (75 = before the breach, 100 = at it, 150 = half a
    target after it), once per clock. The actions run in this order: raise the priority, reassign, notify."""

    target = models.ForeignKey(SlaTarget, on_delete=models.CASCADE, related_name="escalation_levels")
    percent = models.PositiveSmallIntegerField(
        help_text="Percent of the target: below 100 fires before the breach, 100 at it, above 100 after it."
    )
    name = models.CharField(max_length=100, blank=True)
    notify_assignee = models.BooleanField(default=False)
    notify_team_leads = models.BooleanField(default=False, help_text="The leads of the ticket's team.")
    notify_managers = models.BooleanField(default=False)
    notify_users = models.ManyToManyField(
        "security.User", blank=True, related_name="+", help_text="Named agents to notify."
    )
    reassign_team = models.ForeignKey(
        "security.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reassign_agent = models.ForeignKey(
        "security.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    raise_priority_to = models.PositiveSmallIntegerField(
        null=True, blank=True, choices=[(1, "P1"), (2, "P2"), (3, "P3")], help_text="Only ever raises it."
    )
    only_working_hours = models.BooleanField(
        default=False,
        help_text="Deliver notifications only during each recipient's working hours (queued until they open).",
    )

    class Meta:
        ordering = ("target", "percent")
        constraints = (
            models.UniqueConstraint(fields=("target", "percent"), name="sla_escalation_level_unique_percent"),
            models.CheckConstraint(
                condition=Q(percent__gte=1, percent__lte=1000), name="sla_escalation_level_percent_range"
            ),
            models.CheckConstraint(
                condition=Q(raise_priority_to__isnull=True) | Q(raise_priority_to__gte=1, raise_priority_to__lte=3),
                name="sla_escalation_level_priority_range",
            ),
        )

    def __str__(self) -> str:
        return f"{self.percent} %{f' {self.name}' if self.name else ''}"

    @property
    def notifies(self) -> bool:
        return self.notify_assignee or self.notify_team_leads or self.notify_managers

    def clean(self) -> None:
        super().clean()
        from security.models import Membership

        if self.percent is not None and not 1 <= self.percent <= 1000:
            raise ValidationError({"percent": ValidationError("Use 1 to 1000 percent.", code="percent_range")})
        if self.reassign_agent_id is not None:
            memberships = Membership.objects.filter(user_id=self.reassign_agent_id)
            if not memberships.exists():
                raise ValidationError(
                    {"reassign_agent": ValidationError("Only an agent can take tickets.", code="not_an_agent")}
                )
            if self.reassign_team_id is not None and not memberships.filter(team_id=self.reassign_team_id).exists():
                raise ValidationError(
                    {
                        "reassign_agent": ValidationError(
                            "The agent is not a member of the team to reassign to.", code="agent_not_in_team"
                        )
                    }
                )


class WorkingHours(models.Model):
    """The calendar whose opening hours a person (or, for its members, a team) keeps: escalations that deliver only
    during the recipient's working hours wait until it opens. Without one, the policy's calendar applies."""

    user = models.OneToOneField("security.User", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    team = models.OneToOneField("security.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    calendar = models.ForeignKey(Calendar, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name_plural = "working hours"
        constraints = (
            models.CheckConstraint(
                condition=Q(user__isnull=False, team__isnull=True) | Q(user__isnull=True, team__isnull=False),
                name="sla_working_hours_user_xor_team",
            ),
        )

    def __str__(self) -> str:
        return f"{self.user or self.team}: {self.calendar}"

    def clean(self) -> None:
        super().clean()
        if (self.user_id is None) == (self.team_id is None):
            raise ValidationError("Choose a person or a team, not both.", code="user_xor_team")


class EscalationNotification(models.Model):
    """One e-mail an escalation level owes one recipient. Postgres is the truth: a row is `queued` until its
    `deliver_after` (the recipient's next opening when the level keeps working hours), then `sent` once (row lock +
    state guard), or `skipped` when the ticket was closed or the recipient can no longer see it."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        SKIPPED = "skipped", "Skipped"

    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="+")
    clock = models.ForeignKey(Clock, on_delete=models.CASCADE, related_name="escalation_notifications")
    level = models.ForeignKey(EscalationLevel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    threshold = models.PositiveSmallIntegerField(help_text="The level's percent when it fired.")
    recipient = models.ForeignKey("security.User", on_delete=models.CASCADE, related_name="+")
    reasons = ArrayField(models.CharField(max_length=16), default=list, help_text="assignee, lead, manager, named.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    created_at = models.DateTimeField()
    deliver_after = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    detail = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ("deliver_after", "id")
        indexes = (
            models.Index(fields=("deliver_after", "id"), condition=Q(state="queued"), name="sla_escalation_notif_due"),
        )
        constraints = (
            models.UniqueConstraint(
                fields=("clock", "threshold", "recipient"), name="sla_escalation_notif_once_per_recipient"
            ),
            models.CheckConstraint(
                condition=~Q(state="sent") | Q(sent_at__isnull=False), name="sla_escalation_notif_sent_has_time"
            ),
        )

    def __str__(self) -> str:
        return f"{self.recipient_id} for clock {self.clock_id} at {self.threshold} % ({self.state})"


# --- report rollups (sla/rollups.py, docs/dashboards.md "Rollups") ----------------------------------------------------

HOURS = tuple(f"h{hour:02d}" for hour in range(24))


class ReportZone(models.Model):
    """A time zone the dashboards keep daily rollups for: days are cut in the viewer's zone, so each zone has its own.

    Triggers on tickets, ratings and outcomes add rows for every zone listed here from the moment it is listed;
    `sla.rollups.fill_zone` then replaces the zone's rows with a fresh count under a lock that holds ticket and outcome
    writes for its duration, and marks the zone ready. Reports read a zone's rollups only once it is ready."""

    name = models.CharField(primary_key=True, max_length=64, validators=[validate_time_zone])
    is_ready = models.BooleanField(default=False)
    requested_at = models.DateTimeField(auto_now_add=True)
    filled_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class OutcomeDay(models.Model):
    """Finished clocks counted per local day of one zone and per everything the dashboards filter and group on.

    Rows are added, never updated, by the `sla_rollup_outcome` trigger (+1 for a new or changed outcome's key, -1 for
    the old key), so concurrent writers never wait on each other; the key may repeat and readers sum.
    `sla.rollups.compact` folds repeated keys into one row. The ids are plain columns: a rollup never holds up the
    deletion of a team or category."""

    id = models.BigAutoField(primary_key=True)
    zone = models.CharField(max_length=64)
    day = models.DateField()
    team_id = models.BigIntegerField(null=True)
    category_id = models.BigIntegerField()
    priority = models.SmallIntegerField()
    policy_id = models.BigIntegerField()
    ticket_type = models.CharField(max_length=16)
    metric = models.CharField(max_length=32)
    finished = models.IntegerField()
    met = models.IntegerField()

    class Meta:
        indexes = (models.Index(fields=("zone", "day"), name="sla_outcomeday_zone_day"),)

    def __str__(self) -> str:
        return f"{self.zone} {self.day} {self.metric}: {self.met}/{self.finished} met"


class TicketDay(models.Model):
    """Tickets created (with the local hour they arrived in, `h00`…`h23`) or resolved (with their CSAT rating) per
    local day of one zone and per ticket filter. Added by the `sla_rollup_ticket` and `sla_rollup_rating` triggers,
    like `OutcomeDay`."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        RESOLVED = "resolved", "Resolved"

    id = models.BigAutoField(primary_key=True)
    zone = models.CharField(max_length=64)
    day = models.DateField()
    kind = models.CharField(max_length=8, choices=Kind.choices)
    team_id = models.BigIntegerField(null=True)
    category_id = models.BigIntegerField()
    priority = models.SmallIntegerField()
    type = models.CharField(max_length=16)
    is_confidential = models.BooleanField()
    sla_policy_ids = ArrayField(models.BigIntegerField())
    tickets = models.IntegerField()
    rated = models.IntegerField(default=0)
    score = models.IntegerField(default=0)
    locals().update({hour: models.IntegerField(default=0) for hour in HOURS})

    class Meta:
        indexes = (models.Index(fields=("zone", "day"), name="sla_ticketday_zone_day"),)

    def __str__(self) -> str:
        return f"{self.zone} {self.day} {self.kind}: {self.tickets}"
