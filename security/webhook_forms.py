"""The webhook subscription form (the service validates again, including the SSRF check)."""

from typing import Any

from django import forms

from security.webhooks import NAME_MAX_CHARS, URL_MAX_CHARS, event_types


class WebhookForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX_CHARS)
    url = forms.CharField(
        label="URL",
        max_length=URL_MAX_CHARS,
        help_text="Where to POST. Must be https:// or http:// on a public address.",
        widget=forms.URLInput(attrs={"placeholder": "https://hooks.example.com/desk"}),
    )
    event_types = forms.MultipleChoiceField(label="Events", widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["event_types"].choices = [  # type: ignore[attr-defined]
            (name, f"{label} ({name})") for name, label in event_types().items()
        ]
