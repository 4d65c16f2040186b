from django.apps import AppConfig


class TicketsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tickets"

    def ready(self) -> None:
        from security.selectors import register_confidential_audit_scope
        from tickets.selectors import audit_hide_confidential_tickets

        register_confidential_audit_scope(audit_hide_confidential_tickets)

        from security.webhooks import register_subject_builder
        from tickets.events import TicketEventBase
        from tickets.webhooks import ticket_subject

        register_subject_builder(TicketEventBase, ticket_subject)
