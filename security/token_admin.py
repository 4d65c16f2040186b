"""Admin pages for API tokens and service accounts (imported by `security.admin`).

Admins see every token and revoke them (a list action through `token_revoke`, audited); they create tokens only for
service accounts, which cannot sign in to do it themselves. The new token's string is rendered once in the answer
to the add form, never stored. Nothing here edits or deletes a token: revocation keeps the row for the record.
"""

from datetime import timedelta
from typing import Any, ClassVar, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.forms import UserChangeForm
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from security import permissions, token_services
from security.admin import AuditedAdmin, IndexedAdmin, MembershipInline, _clean_email, admin_actor
from security.models import Membership, ServiceAccount, User
from security.scopes import Scope
from security.services import MEMBERSHIP_AUDIT_FIELDS, USER_AUDIT_FIELDS
from security.token_forms import LIFETIME_CHOICES
from security.tokens import ApiToken

_CREATED_ATTR = "_itsm_created_token"


class ServiceAccountTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Only scopes the service account could use are accepted: its team memberships and flags decide.",
    )
    lifetime_days = forms.TypedChoiceField(label="Expires after", choices=LIFETIME_CHOICES, coerce=int, initial="90")

    class Meta:
        model = ApiToken
        fields = ("user", "name")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "user" in self.fields:  # the add form; the read-only detail page has no editable fields
            user_field = cast(forms.ModelChoiceField, self.fields["user"])
            user_field.queryset = User.objects.filter(is_service_account=True, is_active=True).order_by("email")
            user_field.label = "Service account"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        owner, scopes = data.get("user"), data.get("scopes")
        if owner is not None and scopes:
            refused = sorted(set(scopes) - permissions.token_grantable_scopes(owner))
            if refused:
                self.add_error("scopes", f"Not available to this service account: {', '.join(refused)}.")
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(IndexedAdmin):
    form = ServiceAccountTokenForm
    list_display = ("name", "user", "display_prefix", "scope_list", "created_at", "expires_at", "last_used_at", "state")
    list_select_related = ("user",)
    search_fields = ("prefix",)
    search_help_text = "A token prefix (the 8 characters after itsm_), or an owner's e-mail address."
    ordering = ("-id",)
    sortable_by = ()
    actions = ("revoke_selected",)

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        if obj is None:
            return ("user", "name", "scopes", "lifetime_days")
        return (
            "user",
            "name",
            "display_prefix",
            "scope_list",
            "created_at",
            "created_by",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "revoked_by",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return () if obj is None else self.get_fields(request, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return super().get_queryset(request).select_related("user", "created_by", "revoked_by")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ApiToken], search_term: str
    ) -> tuple[QuerySet[ApiToken], bool]:
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        if "@" in term:
            return queryset.filter(user__email=term), False
        return queryset.filter(prefix=term.removeprefix("itsm_").split("_")[0]), False

    @admin.display(description="Prefix")
    def display_prefix(self, obj: ApiToken) -> str:
        return f"{obj.display_prefix}…"

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="Status")
    def state(self, obj: ApiToken) -> str:
        return obj.status(timezone.now())

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True).order_by("pk"):
            token_services.token_revoke(actor=admin_actor(request), token=token)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = form.cleaned_data
        created = token_services.token_create(
            actor=admin_actor(request),
            owner=data["user"],
            name=data["name"],
            scopes=data["scopes"],
            expires_at=timezone.now() + timedelta(days=data["lifetime_days"]),
        )
        # The admin logs and answers about `obj`: make it the saved row.
        obj.pk = created.token.pk
        obj.prefix = created.token.prefix
        setattr(request, _CREATED_ATTR, created)

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: str | None = None) -> HttpResponse:
        created = getattr(request, _CREATED_ATTR)
        response = TemplateResponse(
            request,
            "admin/security/apitoken/created.html",
            {**self.admin_site.each_context(request), "opts": self.opts, "created": created, "title": "Token created"},
        )
        response["Cache-Control"] = "no-store"
        return response


class ServiceAccountCreationForm(forms.ModelForm):
    class Meta:
        model = ServiceAccount
        fields = ("email", "full_name", "organisation")

    def clean_email(self) -> str:
        return _clean_email(self)


class ServiceAccountChangeForm(UserChangeForm):
    class Meta:
        model = ServiceAccount
        fields = ("email", "full_name", "organisation", "is_active")

    def clean_email(self) -> str:
        return _clean_email(self)


@admin.register(ServiceAccount)
class ServiceAccountAdmin(AuditedAdmin):
    """Accounts for integrations: no password, no browser sign-in; team memberships decide what their tokens see."""

    audit_name = "user"
    audit_fields = USER_AUDIT_FIELDS
    inline_audit_fields: ClassVar[dict[type[Model], tuple[str, ...]]] = {Membership: MEMBERSHIP_AUDIT_FIELDS}
    list_display = ("email", "full_name", "organisation", "is_active")
    list_filter = ("is_active",)
    search_fields = ("email",)
    ordering = ("email",)
    inlines = (MembershipInline,)

    def get_form(self, request: HttpRequest, obj: Model | None = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["form"] = ServiceAccountChangeForm if obj is not None else ServiceAccountCreationForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        if obj is None:
            return ("email", "full_name", "organisation")
        return ("email", "full_name", "organisation", "is_active", "date_joined")

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return ("date_joined",) if obj is not None else ()

    def get_inlines(self, request: HttpRequest, obj: Model | None) -> Any:
        return self.inlines if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.is_service_account = True
            obj.set_unusable_password()
        super().save_model(request, obj, form, change)
