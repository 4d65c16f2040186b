from django.urls import path

from sla.api import views

app_name = "sla_api"

urlpatterns = [
    path("calendars/<int:pk>/due/", views.CalendarDueView.as_view(), name="calendar-due"),
    path(
        "calendars/<int:pk>/business-seconds/",
        views.CalendarBusinessSecondsView.as_view(),
        name="calendar-business-seconds",
    ),
    path("tickets/<str:number>/sla/", views.TicketSlaView.as_view(), name="ticket-sla"),
]
