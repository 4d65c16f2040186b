from django.urls import path

from security import webhook_pages

urlpatterns = [
    path("", webhook_pages.webhook_list, name="webhook_list"),
    path("new/", webhook_pages.webhook_create, name="webhook_create"),
    path("<int:pk>/", webhook_pages.webhook_detail, name="webhook_detail"),
    path("<int:pk>/edit/", webhook_pages.webhook_edit, name="webhook_edit"),
    path("<int:pk>/delete/", webhook_pages.webhook_delete, name="webhook_delete"),
    path("<int:pk>/rotate-secret/", webhook_pages.webhook_rotate, name="webhook_rotate"),
    path("<int:pk>/active/", webhook_pages.webhook_toggle, name="webhook_toggle"),
    path(
        "<int:pk>/deliveries/<str:delivery_id>/redeliver/",
        webhook_pages.delivery_redeliver,
        name="webhook_redeliver",
    ),
]
