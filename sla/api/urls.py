from django.urls import path

from sla.api import reports, views

app_name = "sla_api"

urlpatterns = [
    path("calendars/<int:pk>/due/", views.CalendarDueView.as_view(), name="calendar-due"),
    path(
        "calendars/<int:pk>/business-seconds/",
        views.CalendarBusinessSecondsView.as_view(),
        name="calendar-business-seconds",
    ),
    path("reports/sla/", reports.SlaReportView.as_view(), name="reports-sla"),
    path("tickets/<str:number>/sla/", views.TicketSlaView.as_view(), name="ticket-sla"),
]
