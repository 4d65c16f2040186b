"""Django admin for tickets.

Settings-like objects (categories, the priority matrix) are edited here, and every change is audited
(`security.admin.AuditedAdmin`). Tickets and their history (timeline events, comments, attachments) are read-only:
editing them field by field would bypass the services, the state table, the timeline and the audit trail; they are
worked in the desk. Confidential tickets and everything hanging off them are hidden from admins who are not
security officers or members of a security team.
"""

import re
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import F, Model, QuerySet
from django.http import HttpRequest

from security import permissions
from security.admin import (
    AuditedAdmin,
    ILikeContains,
    IndexedAdmin,
    ReadOnlyAdminMixin,
    admin_actor,
)
from tickets.models import Attachment, Category, Comment, PriorityMatrixEntry, Ticket, TicketEvent
from tickets.state import TicketType, format_number

CATEGORY_AUDIT_FIELDS = (
    "parent",
    "name",
    "slug",
    "kind",
    "portal_label",
    "default_type",
    "default_team",
    "is_confidential",
    "is_active",
    "sort_order",
)
NUMBER_TERM = re.compile(r"^(INC|REQ)-?(\d{1,12})$", re.IGNORECASE)
PREFIX_TYPE = {"INC": TicketType.INCIDENT, "REQ": TicketType.REQUEST}


def ticket_search(queryset: QuerySet[Any], search_term: str, prefix: str = "") -> QuerySet[Any]:
    """Ticket search that always hits an index: a number (`INC-000123`, `inc-123`, `123`) matches `number` exactly,
    an e-mail address the requester, anything else title words through the trigram index (`ILIKE`, every word).
    `prefix` is the path to the ticket from the searched model (`"ticket__"` for comments)."""
    term = search_term.strip()
    if not term:
        return queryset
    match = NUMBER_TERM.match(term)
    if match:
        ticket_type = PREFIX_TYPE[match.group(1).upper()]
        return queryset.filter(**{f"{prefix}number": format_number(ticket_type, int(match.group(2)))})
    if term.isdigit():
        numbers = [format_number(ticket_type, int(term)) for ticket_type in TicketType.values]
        return queryset.filter(**{f"{prefix}number__in": numbers})
    if "@" in term and " " not in term:
        return queryset.filter(**{f"{prefix}requester__email": term.lower()})
    return queryset.filter(*(ILikeContains(F(f"{prefix}title"), word) for word in term.split()))


# --- settings-like objects: editable, audited -------------------------------------------------------------------


@admin.register(Category)
class CategoryAdmin(AuditedAdmin):
    audit_fields = CATEGORY_AUDIT_FIELDS
    list_display = (
        "name",
        "parent",
        "kind",
        "default_type",
        "default_team",
        "portal_label",
        "is_confidential",
        "is_active",
        "sort_order",
    )
    list_filter = ("kind", "default_type", "is_confidential", "is_active", "default_team")
    list_select_related = ("parent", "default_team")
    search_fields = ("name", "slug", "portal_label")
    autocomplete_fields = ("parent", "default_team")
    prepopulated_fields = {"slug": ("name",)}
    ordering = ("sort_order", "name")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Category]:
        return super().get_queryset(request).select_related("parent", "default_team")


@admin.register(PriorityMatrixEntry)
class PriorityMatrixEntryAdmin(AuditedAdmin):
    """The nine cells of impact × urgency. Cells are changed, never added or removed."""

    audit_name = "priority_matrix"
    audit_fields = ("impact", "urgency", "priority")
    list_display = ("impact", "urgency", "priority")
    list_display_links = ("impact",)
    list_editable = ("priority",)
    readonly_fields = ("impact", "urgency")
    ordering = ("impact", "urgency")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


# --- tickets and their history: read-only, confidential ones hidden ---------------------------------------------


class ConfidentialScopedAdmin(ReadOnlyAdminMixin, IndexedAdmin):
    """Hides confidential tickets (and rows that belong to them) from admins who may not see them."""

    ticket_path = "ticket__"  # from this model to its ticket; "" for Ticket itself

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if permissions.can_see_confidential(admin_actor(request)):
            return queryset
        return queryset.filter(**{f"{self.ticket_path}is_confidential": False})

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        return ticket_search(queryset, search_term, self.ticket_path), False


class CategoryListFilter(admin.RelatedFieldListFilter):
    """The category filter with each label's parent loaded in the same query."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        categories = Category.objects.select_related("parent").order_by("sort_order", "name")
        return [(str(category.pk), str(category)) for category in categories]


class CommentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Comment
    fields = ("created_at", "author", "is_internal", "body")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[Comment]:
        return super().get_queryset(request).select_related("author")


class TicketEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = TicketEvent
    fk_name = "ticket"
    fields = ("at", "kind", "actor", "is_internal", "data")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[TicketEvent]:
        return super().get_queryset(request).select_related("actor")


@admin.register(Ticket)
class TicketAdmin(ConfidentialScopedAdmin):
    """Read-only: tickets change only through the services (the desk), which keep state rules, timeline and audit."""

    ticket_path = ""
    list_display = (
        "number",
        "title",
        "type",
        "state",
        "priority",
        "team",
        "category",
        "assignee",
        "requester",
        "updated_at",
    )
    list_select_related = ("team", "category", "category__parent", "assignee", "requester")
    list_filter = ("state", "type", "priority", "team", ("category", CategoryListFilter))
    search_fields = ("number", "title")
    search_help_text = "A ticket number (INC-000123), a requester's e-mail address, or words from the title."
    # Sorting is offered only on indexed columns; the default is the recent-activity index.
    ordering = ("-updated_at", "-id")
    sortable_by = ("number", "updated_at")
    inlines = (CommentInline, TicketEventInline)

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = super().get_list_filter(request)
        if permissions.can_see_confidential(admin_actor(request)):
            return (*filters, "is_confidential")
        return filters


@admin.register(TicketEvent)
class TicketEventAdmin(ConfidentialScopedAdmin):
    list_display = ("id", "ticket", "kind", "at", "actor", "is_internal")
    list_select_related = ("ticket", "actor")
    list_filter = ("kind", "is_internal")
    search_fields = ("ticket__number",)
    search_help_text = "A ticket number (INC-000123) or words from its title."
    ordering = ("-id",)
    sortable_by = ("id",)


@admin.register(Comment)
class CommentAdmin(ConfidentialScopedAdmin):
    list_display = ("id", "ticket", "author", "is_internal", "created_at")
    list_select_related = ("ticket", "author")
    list_filter = ("is_internal",)
    search_fields = ("ticket__number",)
    search_help_text = "A ticket number (INC-000123) or words from its title."
    ordering = ("-id",)
    sortable_by = ("id",)


class AttachmentTypeFilter(admin.SimpleListFilter):
    """The allowed content types from settings, instead of `SELECT DISTINCT` over the attachments table."""

    title = "content type"
    parameter_name = "content_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, value) for value in sorted(set(settings.TICKETS_ATTACHMENT_CONTENT_TYPES.values()))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(content_type=value) if value else queryset


@admin.register(Attachment)
class AttachmentAdmin(ConfidentialScopedAdmin):
    # The stored file is not linked: attachments are served only by the desk's permission-checking view.
    list_display = ("id", "filename", "ticket", "content_type", "size", "is_internal", "uploaded_by", "created_at")
    list_select_related = ("ticket", "uploaded_by")
    list_filter = ("is_internal", AttachmentTypeFilter)
    search_fields = ("ticket__number",)
    search_help_text = "A ticket number (INC-000123) or words from its title."
    exclude = ("file",)
    ordering = ("-id",)
    sortable_by = ("id",)
