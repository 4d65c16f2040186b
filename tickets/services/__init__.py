"""Writes to tickets: every change goes through one of these services (see `tickets.services.tickets` for the
contract they all keep: lock, re-check permission, no-op when unchanged, timeline, version, audit, event)."""

from tickets.services.bulk import BulkOutcome, ticket_bulk_assign, ticket_bulk_transition
from tickets.services.satisfaction import satisfaction_rate
from tickets.services.saved_views import saved_view_create, saved_view_delete
from tickets.services.tickets import (
    TICKET_AUDIT_FIELDS,
    attachment_add,
    comment_add,
    priority_matrix,
    ticket_assign,
    ticket_change_category,
    ticket_create,
    ticket_override_priority,
    ticket_set_impact_urgency,
    ticket_transition,
    validate_upload,
)

__all__ = [
    "BulkOutcome",
    "TICKET_AUDIT_FIELDS",
    "attachment_add",
    "comment_add",
    "priority_matrix",
    "satisfaction_rate",
    "saved_view_create",
    "saved_view_delete",
    "ticket_assign",
    "ticket_bulk_assign",
    "ticket_bulk_transition",
    "ticket_change_category",
    "ticket_create",
    "ticket_override_priority",
    "ticket_set_impact_urgency",
    "ticket_transition",
    "validate_upload",
]
