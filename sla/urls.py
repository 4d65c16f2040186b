from django.urls import path

from sla import views

urlpatterns = [
    path("sla/", views.sla_dashboard, name="sla_dashboard"),
    path("sla/outcomes.csv", views.sla_dashboard_csv, name="sla_dashboard_csv"),
]
