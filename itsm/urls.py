from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("security.urls")),
    path("", include("tickets.urls")),
    path("dashboards/", include("sla.urls")),
    path("api/v1/", include("tickets.api.urls")),
    path("api/v1/", include("sla.api.urls")),
    path("api/v1/", include("security.api.urls")),
]

# API paths answer with the JSON error body, pages with the HTML error pages.
handler404 = "itsm.api.page_not_found"
handler500 = "itsm.api.server_error"
