from django.apps import AppConfig


class TicketsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tickets"

    def ready(self) -> None:
        from security.selectors import register_confidential_audit_scope
        from tickets.selectors import audit_hide_confidential_tickets

        register_confidential_audit_scope(audit_hide_confidential_tickets)
