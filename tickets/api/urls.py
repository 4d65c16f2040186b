"""`/api/v1/` routes for tickets, categories, teams and users (issue 6), and the OpenAPI schema and its Swagger UI."""

from django.urls import URLPattern, URLResolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from tickets.api import views

router = SimpleRouter()
router.register("tickets", views.TicketViewSet, basename="api-ticket")
router.register("attachments", views.AttachmentViewSet, basename="api-attachment")
router.register("categories", views.CategoryViewSet, basename="api-category")
router.register("teams", views.TeamViewSet, basename="api-team")
router.register("users", views.UserViewSet, basename="api-user")

urlpatterns: list[URLPattern | URLResolver] = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    *router.urls,
]
