from django.urls import path

from tickets import views

urlpatterns = [
    path("desk/", views.desk, name="desk"),
    path("portal/", views.portal, name="portal"),
]
