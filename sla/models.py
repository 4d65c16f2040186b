"""Service level management: business calendars (DESIGN.md §4), policies, targets and the clock ledger
(docs/sla.md). The maths lives in `sla/calendar.py` and `sla/state.py`; `sla.selectors.business_calendar_for` turns
a `Calendar` row into a `BusinessCalendar`."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q


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


class SlaTarget(models.Model):
    """One metric of a policy: a business-time duration per priority (P1–P4), the ticket states that pause it and
    the warning thresholds (percent of the target)."""

    class Metric(models.TextChoices):
        FIRST_RESPONSE = "first_response", "First response"
        RESOLUTION = "resolution", "Resolution"

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

    class Meta:
        ordering = ("policy", "metric")
        constraints = (
            models.UniqueConstraint(fields=("policy", "metric"), name="sla_target_unique_metric"),
            models.CheckConstraint(
                condition=Q(p1_seconds__gt=0, p2_seconds__gt=0, p3_seconds__gt=0, p4_seconds__gt=0),
                name="sla_target_durations_positive",
            ),
        )

    def __str__(self) -> str:
        return f"{self.policy} · {self.get_metric_display()}"

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

    class Meta:
        ordering = ("id",)
        indexes = (
            models.Index(fields=("next_deadline_at",), condition=Q(state="running"), name="sla_clock_deadline_running"),
            models.Index(fields=("ticket", "state"), name="sla_clock_ticket_state"),
            models.Index(fields=("due_at", "id"), condition=Q(state="running"), name="sla_clock_due_running"),
            # The dashboards (sla/reports.py): open clocks per ticket, and the breached list oldest breach first.
            models.Index(
                fields=("ticket",), condition=Q(state__in=("running", "paused")), name="sla_clock_open_ticket"
            ),
            models.Index(
                fields=("breached_at", "id"),
                condition=Q(state__in=("running", "paused"), breached_at__isnull=False),
                name="sla_clock_open_breached",
            ),
        )
        constraints = (
            models.UniqueConstraint(
                fields=("ticket", "target", "team"),
                condition=Q(state__in=("running", "paused")),
                nulls_distinct=False,
                name="sla_clock_one_open_per_target",
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

    clock = models.ForeignKey(Clock, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)

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
        )

    def __str__(self) -> str:
        return (
            f"{self.kind}{f' {self.threshold}%' if self.threshold is not None else ''} at {self.at:%Y-%m-%d %H:%M:%S}"
        )


class ClockOutcome(models.Model):
    """One row per clock that finished met or breached (cancelled clocks have none), for reporting."""

    clock = models.OneToOneField(Clock, on_delete=models.CASCADE, related_name="outcome")
    met = models.BooleanField()
    business_seconds_used = models.PositiveIntegerField()
    target_seconds = models.PositiveIntegerField()
    team = models.ForeignKey("security.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    priority = models.PositiveSmallIntegerField()
    category = models.ForeignKey("tickets.Category", on_delete=models.PROTECT, related_name="+")
    policy = models.ForeignKey(SlaPolicy, on_delete=models.PROTECT, related_name="outcomes")
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ("finished_at", "id")
        indexes = (
            models.Index(fields=("finished_at",), name="sla_outcome_finished"),
            models.Index(fields=("team", "finished_at"), name="sla_outcome_team_finished"),
            # The dashboards' filters (sla/reports.py).
            models.Index(fields=("category", "finished_at"), name="sla_outcome_category_finished"),
            models.Index(fields=("policy", "finished_at"), name="sla_outcome_policy_finished"),
            models.Index(fields=("priority", "finished_at"), name="sla_outcome_priority_finished"),
        )

    def __str__(self) -> str:
        return f"{'met' if self.met else 'breached'}: {self.business_seconds_used}/{self.target_seconds} s"
