from django.apps import AppConfig


class SecurityConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "security"

    def ready(self) -> None:
        from itsm.events import subscribe_all
        from security.webhooks import outbox_write

        # The webhook outbox: every published event, in the publishing transaction (DESIGN.md §2).
        subscribe_all(outbox_write)
