"""Forms of the API token page and of the admin's service-account tokens."""

import secrets
from datetime import datetime, timedelta

from django import forms
from django.utils import timezone

from security import permissions
from security.models import User
from security.scopes import Scope

LIFETIME_CHOICES = [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("180", "180 days"), ("366", "1 year")]


def scope_choices(owner: User) -> list[tuple[str, str]]:
    """The scopes `owner` may hold, in the order of `Scope`, labelled `scope — what it allows`."""
    grantable = permissions.token_grantable_scopes(owner)
    return [(value, f"{value} — {label}") for value, label in Scope.choices if value in grantable]


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What uses the token, e.g. “Nagios on mon-01”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    scopes = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, help_text="Grant only what the integration needs."
    )
    lifetime_days = forms.TypedChoiceField(label="Expires after", choices=LIFETIME_CHOICES, coerce=int, initial="90")
    # One per rendered form: a reload of the answer page re-sends the POST, and must not make a second token.
    submission = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: object, owner: User, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["scopes"].choices = scope_choices(owner)  # type: ignore[attr-defined]
        self.fields["submission"].initial = secrets.token_urlsafe(16)

    def expires_at(self) -> datetime:
        return timezone.now() + timedelta(days=self.cleaned_data["lifetime_days"])
