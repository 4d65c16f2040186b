"""Directory and access: users, teams, memberships, the append-only audit log and webhook subscriptions."""

import uuid
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import F
from django.db.models.functions import Lower
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> "User":
        if not email:
            raise ValueError("Users need an e-mail address")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> "User":
        fields.setdefault("is_admin", True)
        return self.create_user(email, password, **fields)

    def get_by_natural_key(self, username: str | None) -> "User":
        return self.get(email=(username or "").strip().lower())


class User(AbstractBaseUser):
    """Everyone who signs in. Requesters are users with no team membership; agents and leads have memberships.

    Global flags: `is_manager` (dashboards over every team), `is_security_officer` (confidential tickets and the
    audit log) and `is_admin` (Django admin and settings pages). `is_service_account` marks an integration's account.
    """

    email = models.EmailField(max_length=254, unique=True)
    full_name = models.CharField(max_length=150)
    is_active = models.BooleanField(default=True)
    is_manager = models.BooleanField(default=False)
    is_security_officer = models.BooleanField(default=False)
    is_admin = models.BooleanField(default=False)
    # A non-person account for an integration (monitoring, HR system…): it acts only through API tokens, never signs
    # in to the browser, and sees what its team memberships show it (docs/api-tokens.md).
    is_service_account = models.BooleanField(default=False)
    organisation = models.CharField(max_length=150, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["full_name"]

    class Meta:
        ordering = ("full_name", "id")
        constraints: ClassVar = [
            models.UniqueConstraint(Lower("email"), name="security_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.full_name} <{self.email}>" if self.full_name else self.email

    # Django admin asks these three; only admins get in.
    @property
    def is_staff(self) -> bool:
        return self.is_active and self.is_admin

    @property
    def is_superuser(self) -> bool:
        return self.is_active and self.is_admin

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return self.is_active and self.is_admin

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_active and self.is_admin

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


class Team(models.Model):
    """A group of agents that owns a queue. `is_security` teams work confidential (security) tickets."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    email = models.EmailField(blank=True)
    is_security = models.BooleanField(default=False)
    auto_assign = models.BooleanField(
        default=False, help_text="Assign new tickets round robin among the team's agents."
    )
    # Round-robin cursor: the member who got the last automatic assignment. Read and moved under a row lock.
    last_auto_assignee = models.ForeignKey(
        "security.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        AGENT = "agent", "Agent"
        LEAD = "lead", "Team lead"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.AGENT)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("team_id", "user_id")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("user", "team"), name="security_membership_user_team_unique"),
            models.CheckConstraint(condition=models.Q(role__in=["agent", "lead"]), name="security_membership_role"),
        ]
        indexes: ClassVar = [models.Index(fields=("team", "role"), name="security_membership_team_role")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class AuditLog(models.Model):
    """One append-only row per change to tickets, access and settings-like objects.

    Rows form a hash chain: `hash = sha256(prev_hash + canonical(row))`, and `seq` numbers the chain without gaps.
    Unique constraints on `seq` and `prev_hash` make a fork impossible even if a writer skipped the chain lock, and a
    database trigger (migration 0002) refuses UPDATE, DELETE and TRUNCATE. `manage.py audit_verify` walks the chain.
    """

    seq = models.BigIntegerField(unique=True)
    at = models.DateTimeField()
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False)
    actor_label = models.CharField(max_length=300, blank=True)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, unique=True)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ("-seq",)
        indexes: ClassVar = [
            models.Index(fields=("object_type", "object_id", "seq"), name="security_audit_object"),
            models.Index(fields=("actor", "seq"), name="security_audit_actor"),
            models.Index(fields=("action", "seq"), name="security_audit_action"),
            models.Index(fields=("at",), name="security_audit_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_type}:{self.object_id}"


class ServiceAccountManager(UserManager):
    def get_queryset(self) -> models.QuerySet["User"]:
        return super().get_queryset().filter(is_service_account=True)


class ServiceAccount(User):
    """The admin's view of service accounts: users with `is_service_account`, managed on their own admin page."""

    objects = ServiceAccountManager()  # type: ignore[misc]

    class Meta:
        proxy = True
        ordering = ("email",)


# API tokens live in their own module; importing them here registers the model with the app.
from security.tokens import ApiToken  # noqa: E402, F401


class WebhookSubscription(models.Model):
    """An integrator's endpoint: where to POST which domain events (see docs/webhooks.md).

    The signing secret is never stored: only `secret_salt`, from which the secret is derived with the server's
    `WEBHOOK_SIGNING_KEY` (`security.webhooks.signing_secret`). A subscription is disabled after repeated failed
    deliveries (`disabled_at`, `disabled_reason`) and can be enabled again by its owner.
    """

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="webhook_subscriptions")
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    event_types = ArrayField(models.CharField(max_length=64), default=list)
    secret_salt = models.CharField(max_length=64)
    is_active = models.BooleanField(default=True)
    # Deliveries in a row that ended failed (every retry exhausted); reset by any successful attempt.
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-id",)
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("owner", "name"), name="security_webhook_owner_name_unique"),
        ]
        indexes: ClassVar = [
            # The outbox asks "which active subscriptions want this event?" on every published event.
            GinIndex(fields=("event_types",), condition=models.Q(is_active=True), name="security_webhook_active_types"),
            models.Index(fields=("owner", "-id"), name="security_webhook_owner"),
        ]

    def __str__(self) -> str:
        return self.name


class WebhookDelivery(models.Model):
    """One event for one subscription (the outbox row), written in the transaction that published the event.

    `id` is the stable `X-Webhook-Id`: every attempt and every redelivery of this row carries it. While a worker is
    sending, the row is `sending` and `next_attempt_at` holds the end of its lease: nobody else sends it before then.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event_name = models.CharField(max_length=64)
    event_id = models.UUIDField()
    payload = models.JSONField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    retry_until = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(state__in=["pending", "sending", "delivered", "failed"]),
                name="security_webhook_delivery_state",
            ),
            models.CheckConstraint(
                condition=~models.Q(state__in=["pending", "sending"]) | models.Q(next_attempt_at__isnull=False),
                name="security_webhook_delivery_due_has_time",
            ),
            models.UniqueConstraint(fields=("subscription", "event_id"), name="security_webhook_delivery_once"),
        ]
        indexes: ClassVar = [
            # The sweeper's "due now" scan: pending rows whose time has come and sending rows whose lease ran out.
            models.Index(
                fields=("next_attempt_at",),
                condition=models.Q(state__in=["pending", "sending"]),
                name="security_webhook_delivery_due",
            ),
            models.Index(F("subscription"), F("created_at").desc(), F("id").desc(), name="security_webhook_log"),
            # Pruning the log: finished deliveries by age.
            models.Index(
                fields=("created_at",),
                condition=models.Q(state__in=["delivered", "failed"]),
                name="security_webhook_finished",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} → {self.subscription_id} ({self.state})"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery: what the receiver answered, how fast, or why it could not be reached."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=1000, blank=True)
    error = models.CharField(max_length=300, blank=True)
    is_success = models.BooleanField(default=False)
    # Still open: the worker has not reported back (yet). An attempt left open past its lease is closed as lost.
    is_open = models.BooleanField(default=False)

    class Meta:
        ordering = ("delivery", "number")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("delivery", "number"), name="security_webhook_attempt_number_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}"
