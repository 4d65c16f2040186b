"""Admin for SLA escalations (docs/sla-escalations.md): escalation levels inline on each target (reached from the
policy page's target rows), people's and teams' working hours, and the notifications read-only. Every change is
audited like the rest of `sla/admin.py`; a level's named users are part of its audit picture."""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from security.admin import AuditedAdmin, admin_actor
from security.audit import audit_record, snapshot
from security.models import Membership
from sla import services
from sla.admin import SLA_TARGET_AUDIT_FIELDS
from sla.models import EscalationLevel, EscalationNotification, SlaTarget, WorkingHours
from tickets.admin import ConfidentialScopedAdmin

ESCALATION_LEVEL_AUDIT_FIELDS = (
    "target",
    "percent",
    "name",
    "notify_assignee",
    "notify_team_leads",
    "notify_managers",
    "reassign_team",
    "reassign_agent",
    "raise_priority_to",
    "only_working_hours",
)
WORKING_HOURS_AUDIT_FIELDS = ("user", "team", "calendar")


def level_snapshot(level: EscalationLevel) -> dict[str, Any]:
    data = snapshot(level, ESCALATION_LEVEL_AUDIT_FIELDS)
    data["notify_users"] = sorted(level.notify_users.values_list("pk", flat=True))
    return data


class EscalationLevelForm(forms.ModelForm):
    class Meta:
        model = EscalationLevel
        fields = (
            "percent",
            "name",
            "notify_assignee",
            "notify_team_leads",
            "notify_managers",
            "notify_users",
            "reassign_team",
            "reassign_agent",
            "raise_priority_to",
            "only_working_hours",
        )

    def clean_notify_users(self) -> Any:
        users = self.cleaned_data.get("notify_users")
        if users:
            agents = set(Membership.objects.filter(user__in=users).values_list("user_id", flat=True))
            outsiders = [str(user) for user in users if user.pk not in agents]
            if outsiders:
                raise forms.ValidationError(
                    f"Only agents can be notified by name: {', '.join(outsiders)}.", code="not_an_agent"
                )
        return users

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("DELETE"):
            return data
        acts = (
            data.get("notify_assignee")
            or data.get("notify_team_leads")
            or data.get("notify_managers")
            or data.get("notify_users")
            or data.get("reassign_team")
            or data.get("reassign_agent")
            or data.get("raise_priority_to")
        )
        if not acts and not self.errors:
            raise forms.ValidationError("Choose at least one action for this level.", code="no_action")
        return data


class EscalationLevelInline(admin.StackedInline):
    model = EscalationLevel
    form = EscalationLevelForm
    extra = 0
    filter_horizontal = ("notify_users",)
    raw_id_fields = ("reassign_agent",)


@admin.register(SlaTarget)
class SlaTargetAdmin(AuditedAdmin):
    """A target with its escalation levels (the policy page lists targets and links here)."""

    audit_fields = SLA_TARGET_AUDIT_FIELDS
    list_display = ("__str__", "metric", "p1_seconds", "p2_seconds", "p3_seconds", "p4_seconds")
    list_select_related = ("policy",)
    list_filter = ("metric",)
    search_fields = ("policy__name",)
    inlines = (EscalationLevelInline,)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # A changed duration, pause or stop rule invalidates the target's running clocks, as on the policy page:
        # cancel them (never a breach) and re-sync open tickets. Level edits alone do not reset clocks: the timers
        # read the levels whenever they fire, so a running clock picks a new level up at its next threshold.
        if change and form.has_changed():
            services.policy_clocks_reset(actor=admin_actor(request), policy=form.instance.policy)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not EscalationLevel:
            super().save_formset(request, form, formset, change)
            return
        existing = [f.instance.pk for f in formset.initial_forms if f.instance.pk is not None]
        before = {
            level.pk: level_snapshot(level)
            for level in EscalationLevel.objects.select_for_update().filter(pk__in=existing).order_by("pk")
        }
        deleted = [(f.instance.pk, str(f.instance)) for f in formset.deleted_forms if f.instance.pk is not None]
        formset.save()
        actor = admin_actor(request)
        for level in formset.new_objects:
            audit_record(actor=actor, action="escalationlevel.admin_create", obj=level, after=level_snapshot(level))
        for level in [f.instance for f in formset.initial_forms if f.instance.pk in before]:
            after = level_snapshot(level)
            if after != before[level.pk]:
                audit_record(
                    actor=actor,
                    action="escalationlevel.admin_change",
                    obj=level,
                    before=before[level.pk],
                    after=after,
                )
        for pk, label in deleted:
            audit_record(
                actor=actor,
                action="escalationlevel.admin_delete",
                object_type=EscalationLevel._meta.label_lower,
                object_id=str(pk),
                object_repr=label,
                before=before.get(pk),
            )

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        for level in EscalationLevel.objects.filter(target_id=obj.pk).order_by("pk"):
            audit_record(
                actor=admin_actor(request),
                action="escalationlevel.admin_delete",
                obj=level,
                before=level_snapshot(level),
            )
        super().delete_model(request, obj)


@admin.register(WorkingHours)
class WorkingHoursAdmin(AuditedAdmin):
    audit_fields = WORKING_HOURS_AUDIT_FIELDS
    list_display = ("__str__", "user", "team", "calendar")
    list_select_related = ("user", "team", "calendar")
    raw_id_fields = ("user",)


@admin.register(EscalationNotification)
class EscalationNotificationAdmin(ConfidentialScopedAdmin):
    list_display = ("id", "ticket", "recipient", "threshold", "state", "deliver_after", "sent_at")
    list_filter = ("state",)
    list_select_related = ("ticket", "recipient")
    raw_id_fields = ("ticket", "clock", "level", "recipient")
