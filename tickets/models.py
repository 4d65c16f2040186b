"""Incidents and service requests: categories, the priority matrix, tickets, their timeline, comments, attachments."""

from typing import ClassVar

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import F, Q, Value
from django.utils import timezone

from tickets.state import Level, PendingReason, Priority, TicketState, TicketType


class Category(models.Model):
    """A node in the category tree. Each category routes new tickets to its default team."""

    class Kind(models.TextChoices):
        HARDWARE = "hardware", "Hardware"
        SOFTWARE = "software", "Software"
        LOGISTICS = "logistics", "Logistics and materials"
        ROUTINE_MAINTENANCE = "routine_maintenance", "Routine maintenance"
        EMERGENCY_MAINTENANCE = "emergency_maintenance", "Emergency maintenance"
        SYSADMIN = "sysadmin", "System administration"
        SECURITY = "security", "Security"

    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    portal_label = models.CharField(
        max_length=150, blank=True, help_text="How requesters see it in the portal, in plain words."
    )
    default_type = models.CharField(max_length=16, choices=TicketType.choices, default=TicketType.INCIDENT)
    default_team = models.ForeignKey(
        "security.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="categories"
    )
    is_confidential = models.BooleanField(
        default=False, help_text="Tickets in this category are security tickets: visible to the security team only."
    )
    is_active = models.BooleanField(default=True)
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("sort_order", "name")
        verbose_name_plural = "categories"
        indexes: ClassVar = [models.Index(fields=("parent", "sort_order"), name="tickets_category_parent")]

    def __str__(self) -> str:
        return f"{self.parent.name} › {self.name}" if self.parent_id and self.parent else self.name


class PriorityMatrixEntry(models.Model):
    """One cell of the impact × urgency → priority matrix (loaded with the default by migration 0002)."""

    impact = models.PositiveSmallIntegerField(choices=Level.choices)
    urgency = models.PositiveSmallIntegerField(choices=Level.choices)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)

    class Meta:
        ordering = ("impact", "urgency")
        verbose_name_plural = "priority matrix"
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("impact", "urgency"), name="tickets_priority_cell_unique"),
        ]

    def __str__(self) -> str:
        return f"impact {self.get_impact_display()} × urgency {self.get_urgency_display()} → P{self.priority}"


# The columns the SLA dashboards filter tickets on (sla/reports.py `_ticket_conditions`).
REPORT_COLUMNS = ("id", "team", "category", "priority", "type", "is_confidential", "sla_policy_ids")


class Ticket(models.Model):
    number = models.CharField(max_length=20, unique=True)
    type = models.CharField(max_length=16, choices=TicketType.choices)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Sanitised HTML.")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="requested_tickets")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="tickets")
    team = models.ForeignKey("security.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="tickets")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="assigned_tickets"
    )
    impact = models.PositiveSmallIntegerField(choices=Level.choices, default=Level.MEDIUM)
    urgency = models.PositiveSmallIntegerField(choices=Level.choices, default=Level.MEDIUM)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)
    priority_is_overridden = models.BooleanField(default=False)
    priority_override_reason = models.CharField(max_length=500, blank=True)
    state = models.CharField(max_length=16, choices=TicketState.choices, default=TicketState.NEW)
    pending_reason = models.CharField(max_length=32, choices=PendingReason.choices, blank=True)
    is_confidential = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # The SLA policies that have (or had) a clock on this ticket, written by the SLA engine when it opens a clock
    # (sla.services.note_ticket_policy; repaired by `manage.py sla_rebuild`): the dashboards' policy filter reads it
    # from the covering report indexes instead of probing the clocks of every ticket of the period.
    sla_policy_ids = ArrayField(
        models.BigIntegerField(),
        default=list,
        db_default=Value([], output_field=ArrayField(models.BigIntegerField())),  # for COPY and raw inserts too
        blank=True,
        editable=False,
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every change; pages send it back so a stale edit is refused instead of overwriting (issue #4).
    version = models.PositiveIntegerField(default=1)
    # Full-text search over title (weight A) and description (weight B), kept by Postgres itself, GIN-indexed.
    search_vector = models.GeneratedField(
        expression=SearchVector("title", weight="A", config="english")
        + SearchVector("description", weight="B", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ("-updated_at", "-id")
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(state__in=TicketState.values), name="tickets_ticket_state_valid"),
            models.CheckConstraint(condition=Q(type__in=TicketType.values), name="tickets_ticket_type_valid"),
            models.CheckConstraint(
                condition=(Q(state=TicketState.PENDING) & ~Q(pending_reason=""))
                | (~Q(state=TicketState.PENDING) & Q(pending_reason="")),
                name="tickets_ticket_pending_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(state=TicketState.ASSIGNED) | Q(assignee__isnull=False),
                name="tickets_ticket_assigned_has_assignee",
            ),
            models.CheckConstraint(
                condition=~Q(state__in=[TicketState.RESOLVED, TicketState.CLOSED]) | Q(resolved_at__isnull=False),
                name="tickets_ticket_resolved_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(state=TicketState.CLOSED) | Q(closed_at__isnull=False),
                name="tickets_ticket_closed_has_time",
            ),
            models.CheckConstraint(condition=Q(priority__gte=1, priority__lte=4), name="tickets_ticket_priority_range"),
            models.CheckConstraint(condition=Q(impact__gte=1, impact__lte=3), name="tickets_ticket_impact_range"),
            models.CheckConstraint(condition=Q(urgency__gte=1, urgency__lte=3), name="tickets_ticket_urgency_range"),
            models.CheckConstraint(
                condition=Q(priority_is_overridden=False) | ~Q(priority_override_reason=""),
                name="tickets_ticket_override_has_reason",
            ),
            models.CheckConstraint(condition=~Q(title=""), name="tickets_ticket_title_not_empty"),
        ]
        indexes: ClassVar = [
            # Team queues: team + state, newest activity first.
            models.Index(F("team"), F("state"), F("updated_at").desc(), F("id").desc(), name="tickets_team_state_upd"),
            # My tickets: assignee + state.
            models.Index(
                F("assignee"), F("state"), F("updated_at").desc(), F("id").desc(), name="tickets_assignee_state_upd"
            ),
            # Portal: a requester's own tickets.
            models.Index(F("requester"), F("created_at").desc(), F("id").desc(), name="tickets_requester_created"),
            # Portal: "My requests", newest activity first.
            models.Index(F("requester"), F("updated_at").desc(), F("id").desc(), name="tickets_requester_updated"),
            models.Index(F("updated_at").desc(), F("id").desc(), name="tickets_updated"),
            models.Index(F("created_at").desc(), F("id").desc(), name="tickets_created"),
            models.Index(fields=("category", "state"), name="tickets_category_state"),
            # Desk queue filtered by category, newest activity first (migration 0005).
            models.Index(F("category"), F("updated_at").desc(), F("id").desc(), name="tickets_category_upd"),
            # Desk queue "My teams' unassigned": open tickets nobody has taken, a small slice of the table, in the
            # queue's own order (migration 0005).
            models.Index(
                F("team"),
                F("updated_at").desc(),
                F("id").desc(),
                condition=Q(
                    assignee__isnull=True,
                    state__in=[TicketState.NEW, TicketState.ASSIGNED, TicketState.IN_PROGRESS, TicketState.PENDING],
                ),
                name="tickets_unassigned_open_upd",
            ),
            models.Index(fields=("priority", "state"), name="tickets_priority_state"),
            # Desk queues sorted by priority: (priority, id) is the keyset order itself (migration 0005).
            models.Index(fields=("priority", "id"), name="tickets_priority_id"),
            GinIndex(fields=("search_vector",), name="tickets_search_vector"),
            # Confidential tickets are few: this keeps "hide confidential" filters (admin, audit log) off a full scan.
            models.Index(fields=("id",), condition=Q(is_confidential=True), name="tickets_confidential"),
            # The SLA dashboards (sla/reports.py): created and resolved per day, CSAT, the open backlog by age. They
            # carry the dashboard's filter columns so those statements are index-only scans, not heap visits.
            models.Index(fields=("created_at",), include=REPORT_COLUMNS, name="tickets_created_report"),
            models.Index(
                fields=("resolved_at",),
                include=REPORT_COLUMNS,
                condition=Q(resolved_at__isnull=False),
                name="tickets_resolved",
            ),
            # Open tickets in id order: the live counts merge them with the open clocks' index (also in ticket id
            # order) instead of hashing both, and the backlog counts them by state and age.
            models.Index(
                fields=("id",),
                include=tuple(column for column in ("state", "created_at", *REPORT_COLUMNS) if column != "id"),
                condition=Q(state__in=("new", "assigned", "in_progress", "pending")),
                name="tickets_open_id",
            ),
            # Substring search on titles (admin search, quick find) uses a trigram GIN index.
            GinIndex(fields=("title",), name="tickets_title_trgm", opclasses=("gin_trgm_ops",)),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.state in {TicketState.NEW, TicketState.ASSIGNED, TicketState.IN_PROGRESS, TicketState.PENDING}


class TicketEvent(models.Model):
    """The append-only timeline: one row per change, with its actor and exact time."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        STATE_CHANGED = "state_changed", "State changed"
        ASSIGNED = "assigned", "Assignment changed"
        TEAM_CHANGED = "team_changed", "Team changed"
        PRIORITY_CHANGED = "priority_changed", "Priority changed"
        CATEGORY_CHANGED = "category_changed", "Category changed"
        COMMENTED = "commented", "Public reply"
        NOTE_ADDED = "note_added", "Internal note"
        ATTACHMENT_ADDED = "attachment_added", "Attachment added"
        SLA_ESCALATED = "sla_escalated", "SLA escalation"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    is_internal = models.BooleanField(default=False, help_text="Hidden from the requester.")
    data = models.JSONField(default=dict, blank=True)
    comment = models.ForeignKey("Comment", null=True, blank=True, on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ("at", "id")
        indexes: ClassVar = [models.Index(fields=("ticket", "at", "id"), name="tickets_event_timeline")]

    def __str__(self) -> str:
        return f"{self.ticket_id} {self.kind} at {self.at.isoformat()}"


class Comment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(help_text="Sanitised HTML.")
    is_internal = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "id")
        indexes: ClassVar = [models.Index(fields=("ticket", "created_at"), name="tickets_comment_ticket")]

    def __str__(self) -> str:
        return f"{'note' if self.is_internal else 'reply'} on {self.ticket_id}"


def attachment_path(instance: "Attachment", filename: str) -> str:
    # The stored name never comes from the user: only the content hash and a safe extension.
    now = timezone.now()
    return f"attachments/{now:%Y/%m}/{instance.sha256}{instance.extension}"


class Attachment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="attachments")
    comment = models.ForeignKey(Comment, null=True, blank=True, on_delete=models.SET_NULL, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, max_length=255)
    filename = models.CharField(max_length=200)
    extension = models.CharField(max_length=10)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    is_internal = models.BooleanField(default=False)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "id")
        indexes: ClassVar = [models.Index(fields=("ticket", "created_at"), name="tickets_attachment_ticket")]

    def __str__(self) -> str:
        return self.filename


class SavedView(models.Model):
    """A named set of desk filters and a sort, for its owner or shared with one of their teams."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    team = models.ForeignKey(
        "security.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="saved_views",
        help_text="Shared with this team; empty for a personal view.",
    )
    name = models.CharField(max_length=80)
    query = models.JSONField(default=dict, help_text="Validated filter and sort parameters.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("name", "id")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("owner", "name"), name="tickets_savedview_owner_name_unique"),
        ]
        indexes: ClassVar = [models.Index(fields=("team", "name"), name="tickets_savedview_team")]

    def __str__(self) -> str:
        return self.name


class SatisfactionRating(models.Model):
    """CSAT: the requester's 1–5 rating of a closed ticket, one per ticket, for the dashboards."""

    ticket = models.OneToOneField(Ticket, on_delete=models.CASCADE, related_name="satisfaction")
    rated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True, max_length=2000)
    # Copied from the ticket so reports group ratings without joining a million tickets.
    team = models.ForeignKey("security.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(score__gte=1, score__lte=5), name="tickets_rating_score_range"),
        ]
        indexes: ClassVar = [models.Index(fields=("team", "created_at"), name="tickets_rating_team_created")]

    def __str__(self) -> str:
        return f"{self.ticket_id}: {self.score}/5"


class IdempotencyKey(models.Model):
    """An API client's `Idempotency-Key` and the response it got, so a retried POST replays it instead of acting
    twice. The unique (user, key) row is inserted inside the request's transaction: a second request with the same
    key waits on that insert until the first commits, then replays its response (or takes over if it rolled back)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # sha256 of the method, path and canonical body: the same key with another request is refused, not replayed.
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("user", "key"), name="tickets_idempotency_user_key_unique"),
        ]
        # The hourly cleanup deletes by age.
        indexes: ClassVar = [models.Index(fields=("created_at",), name="tickets_idempotency_created")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
