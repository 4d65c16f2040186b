from django.urls import path

from tickets import views, views_queue

urlpatterns = [
    # Agent desk
    path("desk/", views_queue.desk, name="desk"),
    path("desk/bulk/", views_queue.desk_bulk, name="desk_bulk"),
    path("desk/views/", views_queue.desk_view_create, name="desk_view_create"),
    path("desk/views/<int:pk>/delete/", views_queue.desk_view_delete, name="desk_view_delete"),
    path("desk/tickets/<str:number>/", views.desk_ticket, name="desk_ticket"),
    path("desk/tickets/<str:number>/reply/", views.desk_reply, name="desk_reply"),
    path("desk/tickets/<str:number>/transition/", views.desk_transition, name="desk_transition"),
    path("desk/tickets/<str:number>/assign/", views.desk_assign, name="desk_assign"),
    path("desk/tickets/<str:number>/priority/", views.desk_priority, name="desk_priority"),
    path("desk/tickets/<str:number>/impact/", views.desk_impact, name="desk_impact"),
    path("desk/tickets/<str:number>/team/", views.desk_team, name="desk_team"),
    path("desk/tickets/<str:number>/category/", views.desk_category, name="desk_category"),
    # In-place editing of the header: a field's form (a fragment for htmx, the page otherwise), and the closed header.
    path("desk/tickets/<str:number>/edit/<slug:field>/", views.desk_ticket_edit, name="desk_ticket_edit"),
    path("desk/tickets/<str:number>/header/", views.desk_ticket_header, name="desk_ticket_header"),
    # Requester portal
    path("portal/", views.portal, name="portal"),
    path("portal/new/", views.portal_new, name="portal_new"),
    path("portal/tickets/<str:number>/", views.portal_ticket, name="portal_ticket"),
    path("portal/tickets/<str:number>/reply/", views.portal_reply, name="portal_reply"),
    path("portal/tickets/<str:number>/confirm/", views.portal_confirm, name="portal_confirm"),
    path("portal/tickets/<str:number>/reopen/", views.portal_reopen, name="portal_reopen"),
    path("portal/tickets/<str:number>/withdraw/", views.portal_withdraw, name="portal_withdraw"),
    path("portal/tickets/<str:number>/rate/", views.portal_rate, name="portal_rate"),
    # Files are only ever served through this permission check.
    path("attachments/<int:pk>/", views.attachment_download, name="attachment_download"),
]
