"""Writes to tickets: every change goes through one of these services (see `tickets.services.tickets` for the
contract they all keep: lock, re-check permission, no-op when unchanged, timeline, version, audit, event)."""

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
    "TICKET_AUDIT_FIELDS",
    "attachment_add",
    "comment_add",
    "priority_matrix",
    "ticket_assign",
    "ticket_change_category",
    "ticket_create",
    "ticket_override_priority",
    "ticket_set_impact_urgency",
    "ticket_transition",
    "validate_upload",
]
