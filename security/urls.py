from django.contrib.auth import views as auth_views
from django.urls import include, path

from security import token_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("security/audit/", views.audit_log, name="audit_log"),
    path("security/tokens/", token_views.token_list, name="api_tokens"),
    path("security/tokens/<int:pk>/revoke/", token_views.token_revoke, name="api_token_revoke"),
    path("security/webhooks/", include("security.webhook_urls")),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    # Django's LogoutView accepts POST only: a link or an image tag cannot sign anyone out.
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("accounts/password/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/password/reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "accounts/password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
]
