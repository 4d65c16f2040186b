from typing import Any

from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from security.throttle import LoginThrottle, throttled_message


class EmailAuthenticationForm(AuthenticationForm):
    """Sign in with e-mail address and password, refused without checking the password once throttled."""

    username = forms.EmailField(
        label="E-mail address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "The e-mail address or the password is not correct.",
        "throttled": "%(message)s",
    }

    def confirm_login_allowed(self, user: Any) -> None:
        """Service accounts act only through API tokens: they get the same answer as a wrong password."""
        super().confirm_login_allowed(user)
        if getattr(user, "is_service_account", False):
            raise self.get_invalid_login_error()

    def clean(self) -> dict[str, Any]:
        email = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if email is not None and password:
            throttle = LoginThrottle(email=email, request=self.request)
            retry_after = throttle.retry_after_seconds()
            if retry_after is not None:
                raise ValidationError(
                    self.error_messages["throttled"],
                    code="throttled",
                    params={"message": throttled_message(retry_after)},
                )
            self.user_cache = authenticate(self.request, username=email, password=password)
            if self.user_cache is None:
                throttle.record_failure()
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
            throttle.record_success()
        return self.cleaned_data
