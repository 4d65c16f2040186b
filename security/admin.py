"""Django admin for the directory and the audit log, plus the building blocks every app's admin uses:

- `EstimatedCountPaginator` and `IndexedAdmin`: change lists never run `COUNT(*)` over a big table;
- `ILikeContains`: a substring match that a trigram (gin_trgm_ops) index can serve, unlike Django's `icontains`;
- `AuditedAdmin`: every add, change and delete made in the admin (inline rows included) appends an audit row with
  the before and after picture, in the same transaction as the change.

Only active administrators reach the admin (`User.is_staff`). Being an admin does not reveal confidential tickets.
"""

import json
from typing import Any, ClassVar, cast

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.core.paginator import Paginator
from django.db import connections, transaction
from django.db.models import Model, QuerySet
from django.db.models.lookups import PatternLookup
from django.http import HttpRequest, HttpResponse
from django.utils.functional import cached_property

from security import permissions, selectors
from security.audit import audit_record, snapshot
from security.models import AuditLog, Membership, Team, User
from security.services import MEMBERSHIP_AUDIT_FIELDS, TEAM_AUDIT_FIELDS, USER_AUDIT_FIELDS

# --- building blocks --------------------------------------------------------------------------------------------


class EstimatedCountPaginator(Paginator):
    """Counts exactly up to `exact_limit` rows and estimates beyond, so a page costs the same at any table size.

    One query counts at most `exact_limit + 1` matching rows and reads the planner's row estimate for the table
    (`pg_class.reltuples`). Up to the limit the count is exact; past it, an unfiltered list reports the table
    estimate and a filtered one the planner's estimate for the filter (`EXPLAIN`, one more query), never less than
    the limit. Pages past the estimate are simply empty.
    """

    exact_limit = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        limited = queryset.order_by().values("pk")[: self.exact_limit + 1]
        sql, params = limited.query.get_compiler(using=queryset.db).as_sql()
        with connections[queryset.db].cursor() as cursor:
            cursor.execute(
                f"SELECT (SELECT count(*) FROM ({sql}) AS limited), "  # noqa: S608 - Django-compiled SQL
                "(SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass)",
                [*params, queryset.model._meta.db_table],
            )
            exact, table_estimate = cursor.fetchone()
        if exact <= self.exact_limit:
            return int(exact)
        if not queryset.query.where:
            return max(int(table_estimate or 0), exact)
        return max(self._planner_estimate(queryset), exact)

    @staticmethod
    def _planner_estimate(queryset: QuerySet[Any]) -> int:
        sql, params = queryset.order_by().values("pk").query.get_compiler(using=queryset.db).as_sql()
        with connections[queryset.db].cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            (plan,) = cursor.fetchone()
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])


class IndexedAdmin(admin.ModelAdmin):
    """Change lists that stay fast on big tables: estimated counts, no full-count query, no date hierarchy."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50


class ReadOnlyAdminMixin:
    """For rows that only services (or nobody) may write: the admin shows them and changes nothing."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ILikeContains(PatternLookup):
    """`column ILIKE '%term%'`. Django's `icontains` compiles to `UPPER(column) LIKE UPPER(…)`, which no index on the
    column can serve; ILIKE on the bare column uses a `gin_trgm_ops` index (for terms of three characters or more).
    Use it as an expression: `queryset.filter(ILikeContains(F("title"), term))`."""

    lookup_name = "ilike_contains"

    def get_rhs_op(self, connection: Any, rhs: str) -> str:
        return f"ILIKE {rhs}"


def admin_actor(request: HttpRequest) -> User:
    return cast(User, request.user)


class AuditedAdmin(IndexedAdmin):
    """Writes an audit row for every add, change and delete made through this admin, inside the admin's transaction.

    `audit_fields` names the fields in the before/after snapshots (foreign keys as ids); the action is
    `<audit_name>.admin_create|admin_change|admin_delete`. A save that changes none of the audited fields writes no row.
    Inline rows are audited the same way when their model is listed in `inline_audit_fields`.
    """

    audit_fields: tuple[str, ...] = ()
    audit_name = ""
    inline_audit_fields: ClassVar[dict[type[Model], tuple[str, ...]]] = {}

    def get_audit_name(self, model: type[Model] | None = None) -> str:
        model = model or self.model
        return (self.audit_name if model is self.model and self.audit_name else None) or model._meta.model_name or ""

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        before = None
        if change:
            current = type(obj)._default_manager.select_for_update().filter(pk=obj.pk).first()
            before = snapshot(current, self.audit_fields) if current is not None else None
        super().save_model(request, obj, form, change)
        after = snapshot(obj, self.audit_fields)
        if change and before == after:
            return
        action = "admin_change" if change else "admin_create"
        audit_record(
            actor=admin_actor(request),
            action=f"{self.get_audit_name()}.{action}",
            obj=obj,
            before=before,
            after=after,
        )

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        audit_record(
            actor=admin_actor(request),
            action=f"{self.get_audit_name()}.admin_delete",
            obj=obj,
            before=snapshot(obj, self.audit_fields),
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        # The bulk "delete selected" action: one audit row per object, all in one transaction.
        with transaction.atomic(using=queryset.db):
            for obj in queryset.select_for_update().order_by("pk"):
                self.delete_model(request, obj)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        fields = self.inline_audit_fields.get(formset.model)
        if not fields:
            super().save_formset(request, form, formset, change)
            return
        model = formset.model
        existing = [f.instance.pk for f in formset.initial_forms if f.instance.pk is not None]
        before = {
            obj.pk: snapshot(obj, fields)
            for obj in model._default_manager.select_for_update().filter(pk__in=existing).order_by("pk")
        }
        deleted = [(f.instance.pk, str(f.instance)) for f in formset.deleted_forms if f.instance.pk is not None]
        super().save_formset(request, form, formset, change)
        actor, name = admin_actor(request), self.get_audit_name(model)
        for obj in formset.new_objects:
            audit_record(actor=actor, action=f"{name}.admin_create", obj=obj, after=snapshot(obj, fields))
        for obj, _changed_fields in formset.changed_objects:
            after = snapshot(obj, fields)
            if after != before.get(obj.pk):
                audit_record(
                    actor=actor, action=f"{name}.admin_change", obj=obj, before=before.get(obj.pk), after=after
                )
        for pk, label in deleted:
            audit_record(
                actor=actor,
                action=f"{name}.admin_delete",
                object_type=model._meta.label_lower,
                object_id=str(pk),
                object_repr=label,
                before=before.get(pk),
            )


def distinct_values(model: type[Model], column: str) -> list[str]:
    """Distinct values of an indexed leading column, by skipping through the index (one query, a few index probes
    per value) instead of `SELECT DISTINCT` over the whole table."""
    table = connections["default"].ops.quote_name(model._meta.db_table)
    name = connections["default"].ops.quote_name(column)
    sql = f"""
        WITH RECURSIVE found(value) AS (
            (SELECT {name} FROM {table} ORDER BY {name} LIMIT 1)
            UNION ALL
            SELECT (SELECT t.{name} FROM {table} t WHERE t.{name} > found.value ORDER BY t.{name} LIMIT 1)
            FROM found WHERE found.value IS NOT NULL
        )
        SELECT value FROM found WHERE value IS NOT NULL
    """  # noqa: S608 - identifiers come from model metadata, quoted
    with connections["default"].cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


# --- users ------------------------------------------------------------------------------------------------------


def _clean_email(form: forms.ModelForm) -> str:
    email = User.objects.normalize_email((form.cleaned_data.get("email") or "").strip()).lower()
    taken = User.objects.filter(email__iexact=email)
    if form.instance.pk is not None:
        taken = taken.exclude(pk=form.instance.pk)
    if taken.exists():
        raise forms.ValidationError("A user with this e-mail address already exists.", code="email_taken")
    return email


class UserCreationAdminForm(BaseUserCreationForm):
    """E-mail, name and flags, and the password twice (validated, hashed with Argon2)."""

    class Meta:
        model = User
        fields = ("email", "full_name", "organisation", "time_zone", "is_manager", "is_security_officer", "is_admin")

    def clean_email(self) -> str:
        return _clean_email(self)


class UserChangeAdminForm(UserChangeForm):
    class Meta:
        model = User
        fields = (
            "email",
            "full_name",
            "organisation",
            "time_zone",
            "is_active",
            "is_manager",
            "is_security_officer",
            "is_admin",
        )

    def clean_email(self) -> str:
        return _clean_email(self)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user", "team")
    readonly_fields = ("created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).select_related("user", "team")


@admin.register(User)
class UserAdmin(AuditedAdmin, DjangoUserAdmin):
    audit_name = "user"
    audit_fields = (*USER_AUDIT_FIELDS, "time_zone")
    inline_audit_fields: ClassVar[dict[type[Model], tuple[str, ...]]] = {Membership: MEMBERSHIP_AUDIT_FIELDS}
    form = UserChangeAdminForm
    add_form = UserCreationAdminForm
    fieldsets = (
        (None, {"fields": ("email", "full_name", "password")}),
        ("Profile", {"fields": ("organisation", "time_zone")}),
        ("Access", {"fields": ("is_active", "is_manager", "is_security_officer", "is_admin")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "email",
                    "full_name",
                    "organisation",
                    "time_zone",
                    "is_manager",
                    "is_security_officer",
                    "is_admin",
                    "password1",
                    "password2",
                ),
            },
        ),
    )
    readonly_fields = ("last_login", "date_joined")
    list_display = ("email", "full_name", "organisation", "is_active", "is_manager", "is_security_officer", "is_admin")
    list_filter = ("is_active", "is_admin", "is_manager", "is_security_officer")
    search_fields = ("email",)
    search_help_text = "An e-mail address, or its beginning."
    ordering = ("email",)
    sortable_by = ("email",)
    filter_horizontal = ()
    inlines = (MembershipInline,)

    def get_inlines(self, request: HttpRequest, obj: Model | None) -> Any:
        return self.inlines if obj is not None else ()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[User], search_term: str
    ) -> tuple[QuerySet[User], bool]:
        # E-mails are stored lowercased: an exact match uses the unique index, a prefix the varchar_pattern_ops one.
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        if "@" in term and not term.endswith("@"):
            return queryset.filter(email=term), False
        return queryset.filter(email__startswith=term), False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # Tickets and the audit trail keep pointing at people: deactivate accounts instead of deleting them.
        return False

    @transaction.atomic
    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:  # noqa: A002
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            user = User.objects.get(pk=id)
            audit_record(
                actor=admin_actor(request),
                action="user.admin_password_change",
                obj=user,
                after={"password": "set" if user.has_usable_password() else "disabled"},
            )
        return response


# --- teams and memberships --------------------------------------------------------------------------------------


@admin.register(Team)
class TeamAdmin(AuditedAdmin):
    audit_fields = TEAM_AUDIT_FIELDS
    inline_audit_fields: ClassVar[dict[type[Model], tuple[str, ...]]] = {Membership: MEMBERSHIP_AUDIT_FIELDS}
    list_display = ("name", "slug", "email", "is_security", "auto_assign")
    list_filter = ("is_security", "auto_assign")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("last_auto_assignee", "created_at")
    inlines = (MembershipInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return super().get_queryset(request).select_related("last_auto_assignee")

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        # Memberships go with the team (cascade): record each of them before the team's own row.
        for membership in Membership.objects.filter(team_id=obj.pk).order_by("pk"):
            audit_record(
                actor=admin_actor(request),
                action="membership.admin_delete",
                obj=membership,
                before=snapshot(membership, MEMBERSHIP_AUDIT_FIELDS),
            )
        super().delete_model(request, obj)


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    audit_fields = MEMBERSHIP_AUDIT_FIELDS
    list_display = ("user", "team", "role", "created_at")
    list_filter = ("role", "team")
    list_select_related = ("user", "team")
    autocomplete_fields = ("user", "team")
    readonly_fields = ("created_at",)
    search_fields = ("user__email",)
    search_help_text = "A member's e-mail address, or its beginning."
    ordering = ("team__name", "user__email")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Membership], search_term: str
    ) -> tuple[QuerySet[Membership], bool]:
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        if "@" in term and not term.endswith("@"):
            return queryset.filter(user__email=term), False
        return queryset.filter(user__email__startswith=term), False


# --- audit log --------------------------------------------------------------------------------------------------


class _DistinctValueFilter(admin.SimpleListFilter):
    column = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, value) for value in distinct_values(AuditLog, self.column)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.column: value}) if value else queryset


class AuditActionFilter(_DistinctValueFilter):
    title = "action"
    parameter_name = "action"
    column = "action"


class AuditObjectTypeFilter(_DistinctValueFilter):
    title = "object type"
    parameter_name = "object_type"
    column = "object_type"


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdminMixin, IndexedAdmin):
    """The trail, read-only: the database refuses UPDATE and DELETE anyway, the admin does not offer them."""

    list_display = ("seq", "at", "actor_label", "action", "object_type", "object_id", "object_repr")
    list_filter = (AuditActionFilter, AuditObjectTypeFilter)
    search_fields = ("object_id",)
    search_help_text = "seq number, object id, 'type:id' (tickets.ticket:42) or an actor's e-mail."
    ordering = ("-seq",)
    sortable_by = ("seq",)
    fields = (
        "seq",
        "at",
        "actor",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "before",
        "after",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return permissions.can_view_audit_log(admin_actor(request))

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditLog]:
        return selectors.audit_visible_to(admin_actor(request))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuditLog], search_term: str
    ) -> tuple[QuerySet[AuditLog], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(seq=int(term)) | queryset.filter(object_id=term), False
        if "@" in term:
            return queryset.filter(actor__email=term.lower()), False
        if ":" in term:
            object_type, _, object_id = term.partition(":")
            return queryset.filter(object_type=object_type.strip().lower(), object_id=object_id.strip()), False
        return queryset.filter(object_id=term), False


# The User model has no groups or per-user permissions: access is the three flags and team memberships.
admin.site.unregister(Group)

# API tokens and service accounts have their own admin module.
from security import token_admin  # noqa: E402, F401
