"""`/api/v1/` routes owned by security: webhook subscriptions and deliveries (issue 6)."""

from django.urls import URLPattern, URLResolver, path

from security.api.webhook_views import DeliveryViewSet, WebhookViewSet

_webhooks = WebhookViewSet.as_view
_deliveries = DeliveryViewSet.as_view

urlpatterns: list[URLPattern | URLResolver] = [
    path("webhooks/", _webhooks({"get": "list", "post": "create"}), name="api-webhook-list"),
    path("webhooks/event-types/", _webhooks({"get": "event_types"}), name="api-webhook-event-types"),
    path(
        "webhooks/<int:pk>/",
        _webhooks({"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}),
        name="api-webhook-detail",
    ),
    path("webhooks/<int:pk>/rotate-secret/", _webhooks({"post": "rotate_secret"}), name="api-webhook-rotate-secret"),
    path("webhooks/<int:webhook_pk>/deliveries/", _deliveries({"get": "list"}), name="api-webhook-deliveries"),
    path(
        "webhooks/<int:webhook_pk>/deliveries/<str:pk>/",
        _deliveries({"get": "retrieve"}),
        name="api-webhook-delivery",
    ),
    path(
        "webhooks/<int:webhook_pk>/deliveries/<str:pk>/redeliver/",
        _deliveries({"post": "redeliver"}),
        name="api-webhook-redeliver",
    ),
]
