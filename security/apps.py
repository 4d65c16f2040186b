from django.apps import AppConfig


class SecurityConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "security"

    def ready(self) -> None:
        # Registers the OpenAPI description of the token authentication with drf-spectacular.
        from itsm.events import subscribe_all
        from security import schema  # noqa: F401
        from security.webhooks import outbox_write

        # The webhook outbox: every published event, in the publishing transaction (DESIGN.md §2).
        subscribe_all(outbox_write)
