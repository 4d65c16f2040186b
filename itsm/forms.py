"""Form helpers shared by every app's HTML views."""

from django import forms
from django.core.files.uploadedfile import UploadedFile

from itsm.errors import DomainError


def form_add_domain_error(form: forms.Form, exc: DomainError) -> None:
    """Show a service's refusal on the form that caused it.

    Errors for fields the form has go under those fields; errors for other fields, and the refusal itself when it
    names no field of the form, go to the top of the form. Call it after `form.is_valid()`.
    """
    placed = False
    for field, messages in exc.fields.items():
        if field in form.fields:
            form.add_error(field, list(messages))
            placed = True
        else:
            form.add_error(None, [f"{field.replace('_', ' ').capitalize()}: {message}" for message in messages])
    if not placed:
        form.add_error(None, exc.detail)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Any number of files (none when not required); each is checked by the service that stores it."""

    widget = MultipleFileInput

    def clean(self, data: object, initial: object = None) -> list[UploadedFile]:
        items = data if isinstance(data, list | tuple) else ([data] if data else [])
        cleaned = [super(MultipleFileField, self).clean(item, initial) for item in items]
        if self.required and not cleaned:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        return cleaned
