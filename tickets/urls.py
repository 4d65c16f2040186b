from django.urls import path

from tickets import views

urlpatterns = [
    # Agent desk
    path("desk/", views.desk, name="desk"),
    path("desk/tickets/<str:number>/", views.desk_ticket, name="desk_ticket"),
    path("desk/tickets/<str:number>/reply/", views.desk_reply, name="desk_reply"),
    path("desk/tickets/<str:number>/transition/", views.desk_transition, name="desk_transition"),
    path("desk/tickets/<str:number>/assign/", views.desk_assign, name="desk_assign"),
    path("desk/tickets/<str:number>/priority/", views.desk_priority, name="desk_priority"),
    path("desk/tickets/<str:number>/impact/", views.desk_impact, name="desk_impact"),
    # Requester portal
    path("portal/", views.portal, name="portal"),
    path("portal/new/", views.portal_new, name="portal_new"),
    path("portal/tickets/<str:number>/", views.portal_ticket, name="portal_ticket"),
    path("portal/tickets/<str:number>/reply/", views.portal_reply, name="portal_reply"),
    path("portal/tickets/<str:number>/confirm/", views.portal_confirm, name="portal_confirm"),
    path("portal/tickets/<str:number>/reopen/", views.portal_reopen, name="portal_reopen"),
    path("portal/tickets/<str:number>/withdraw/", views.portal_withdraw, name="portal_withdraw"),
    # Files are only ever served through this permission check.
    path("attachments/<int:pk>/", views.attachment_download, name="attachment_download"),
]
