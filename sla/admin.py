"""Admin for business calendars: ranges and holidays inline, every change audited (`AuditedAdmin`), and a preview on
the change page ("starting at X, a target of D is due at Y") computed with the calendar maths."""

from datetime import UTC, datetime
from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest, HttpResponse

from security.admin import AuditedAdmin, ReadOnlyAdminMixin, admin_actor
from security.audit import audit_record, snapshot
from sla import selectors, services
from sla.calendar import NoWorkingTime, format_duration, parse_duration
from sla.models import (
    Calendar,
    Clock,
    ClockEvent,
    ClockOutcome,
    ClockSegment,
    Holiday,
    SlaPolicy,
    SlaTarget,
    WorkingRange,
)
from sla.services import CALENDAR_AUDIT_FIELDS, HOLIDAY_AUDIT_FIELDS, WORKING_RANGE_AUDIT_FIELDS
from tickets.admin import ConfidentialScopedAdmin


class WorkingRangeInline(admin.TabularInline):
    model = WorkingRange
    extra = 0


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 0


class PreviewForm(forms.Form):
    """ "Starting at X (the calendar's local time), a target of D is due at Y"."""

    preview_start = forms.CharField(
        label="Starting at (local)", widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"})
    )
    preview_target = forms.CharField(label="Target", help_text="e.g. 8h, 2d, 90m, 1h 30m (1d = 24 business hours)")

    def clean_preview_start(self) -> datetime:
        text = self.cleaned_data["preview_start"].strip()
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise forms.ValidationError("Use a local date and time such as 2026-03-30T09:00.") from exc
        if value.tzinfo is not None:
            raise forms.ValidationError("Give the calendar's local time, without an offset.")
        return value.replace(microsecond=0)

    def clean_preview_target(self) -> int:
        try:
            return parse_duration(self.cleaned_data["preview_target"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(Calendar)
class CalendarAdmin(AuditedAdmin):
    audit_fields = CALENDAR_AUDIT_FIELDS
    inline_audit_fields: ClassVar[dict[type[Model], tuple[str, ...]]] = {
        WorkingRange: WORKING_RANGE_AUDIT_FIELDS,
        Holiday: HOLIDAY_AUDIT_FIELDS,
    }
    list_display = ("name", "time_zone", "is_24x7", "holiday_country", "holiday_subdivision", "created_at")
    list_filter = ("is_24x7",)
    search_fields = ("name",)
    readonly_fields = ("is_24x7", "created_at")
    inlines = (WorkingRangeInline, HolidayInline)
    change_form_template = "admin/sla/calendar/change_form.html"

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if isinstance(obj, Calendar) and obj.is_24x7:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        # Ranges and holidays go with the calendar (cascade): record each before the calendar's own row.
        for model, fields in self.inline_audit_fields.items():
            for child in model._default_manager.filter(calendar_id=obj.pk).order_by("pk"):
                audit_record(
                    actor=admin_actor(request),
                    action=f"{model._meta.model_name}.admin_delete",
                    obj=child,
                    before=snapshot(child, fields),
                )
        super().delete_model(request, obj)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), **self.preview_context(request, object_id)}
        return super().change_view(request, object_id, form_url, extra_context)

    def preview_context(self, request: HttpRequest, object_id: str) -> dict[str, Any]:
        calendar = (
            Calendar.objects.prefetch_related("working_ranges", "holidays").filter(pk=object_id).first()
            if object_id.isdigit()
            else None
        )
        if calendar is None:
            return {}
        submitted = "preview_start" in request.GET
        form = PreviewForm(request.GET if submitted else None)
        context: dict[str, Any] = {"preview_form": form, "preview_zone": calendar.time_zone}
        if not submitted or not form.is_valid():
            return context
        business = selectors.business_calendar_for(calendar)
        local_start: datetime = form.cleaned_data["preview_start"]
        seconds: int = form.cleaned_data["preview_target"]
        start = business.boundary(local_start)  # a skipped local time starts when the clock jumps past it
        try:
            due = business.due_at(start, seconds)
        except NoWorkingTime as exc:
            context["preview_error"] = str(exc)
            return context
        context["preview"] = {
            "start_local": start.astimezone(business.zone),
            "start_utc": start.astimezone(UTC),
            "target": format_duration(seconds),
            "due_local": due.astimezone(business.zone),
            "due_utc": due.astimezone(UTC),
        }
        return context


# --- policies (audited) and the clock ledger (read-only) -------------------------------------------------------------

SLA_POLICY_AUDIT_FIELDS = ("name", "kind", "is_active", "precedence", "ticket_types", "priorities", "team", "calendar")
SLA_TARGET_AUDIT_FIELDS = (
    "policy",
    "metric",
    "p1_seconds",
    "p2_seconds",
    "p3_seconds",
    "p4_seconds",
    "pause_states",
    "warning_percents",
    "on_reopen",
    "name",
    "start_states",
    "stop_states",
)


class SlaTargetInline(admin.TabularInline):
    model = SlaTarget
    extra = 0
    show_change_link = True  # escalation levels are edited on the target's page (sla/admin_escalation.py)


@admin.register(SlaPolicy)
class SlaPolicyAdmin(AuditedAdmin):
    audit_fields = SLA_POLICY_AUDIT_FIELDS
    inline_audit_fields: ClassVar[dict[type[Model], tuple[str, ...]]] = {SlaTarget: SLA_TARGET_AUDIT_FIELDS}
    list_display = ("name", "kind", "is_active", "precedence", "team", "calendar", "created_at")
    list_filter = ("kind", "is_active")
    list_select_related = ("team", "calendar")
    search_fields = ("name",)
    filter_horizontal = ("categories",)
    readonly_fields = ("created_at",)
    inlines = (SlaTargetInline,)
    actions = ("deactivate_policies",)

    # Edits go through `sla.services.policy_update` / `policy_deactivate` (audited there, and they cancel the
    # policy's open clocks and re-sync open tickets); creation stays the audited admin save.

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        if not change or not isinstance(obj, SlaPolicy):
            super().save_model(request, obj, form, change)
            return
        changes = {
            name: form.cleaned_data[name] for name in form.changed_data if name in services.POLICY_UPDATABLE_FIELDS
        }
        categories = form.cleaned_data["categories"] if "categories" in form.changed_data else None
        request._sla_policy_reset = bool(changes or categories is not None)  # type: ignore[attr-defined]
        if changes.keys() == {"is_active"} and not changes["is_active"] and categories is None:
            services.policy_deactivate(actor=admin_actor(request), policy=obj)
        else:
            services.policy_update(actor=admin_actor(request), policy=obj, categories=categories, **changes)
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        targets_changed = any(formset.has_changed() for formset in formsets)
        if change and targets_changed and not getattr(request, "_sla_policy_reset", False):
            services.policy_clocks_reset(actor=admin_actor(request), policy=form.instance)

    @admin.action(description="Deactivate the selected policies (cancels their open clocks)")
    def deactivate_policies(self, request: HttpRequest, queryset: Any) -> None:
        for policy in queryset.order_by("pk"):
            services.policy_deactivate(actor=admin_actor(request), policy=policy)


class ClockSegmentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ClockSegment
    extra = 0
    fields = ("kind", "start", "end")
    readonly_fields = fields


class ClockEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ClockEvent
    extra = 0
    fields = ("kind", "at", "threshold", "data")
    readonly_fields = fields


@admin.register(Clock)
class ClockAdmin(ConfidentialScopedAdmin):
    list_display = ("id", "ticket", "target", "team", "state", "started_at", "next_deadline_at", "breached_at")
    list_filter = ("state",)
    list_select_related = ("ticket", "target__policy", "team")
    raw_id_fields = ("ticket", "target", "team")
    inlines = (ClockSegmentInline, ClockEventInline)


@admin.register(ClockOutcome)
class ClockOutcomeAdmin(ConfidentialScopedAdmin):
    ticket_path = "clock__ticket__"
    list_display = ("id", "clock", "met", "business_seconds_used", "target_seconds", "policy", "team", "finished_at")
    list_filter = ("met",)
    list_select_related = ("clock", "policy", "team")
    raw_id_fields = ("clock", "team", "category", "policy")


from sla import admin_escalation  # noqa: E402, F401 - registers the escalation admin (after the names it imports)
