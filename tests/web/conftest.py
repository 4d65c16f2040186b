"""Helpers for the HTML views: signed-in clients, uploads, and a way to compare error pages."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
_CSRF_TOKEN = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]+"')


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    # Argon2 is deliberately slow; these tests check the views, not the hasher.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def signed_in(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def png(name: str = "screen.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, PNG_BYTES, content_type="image/png")


def text_file(name: str = "notes.txt", content: bytes = b"line one\nline two\n") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/plain")


def without_csrf_tokens(content: bytes) -> bytes:
    """Pages carry a fresh masked CSRF token on every render; everything else must match byte for byte."""
    return _CSRF_TOKEN.sub(b'name="csrfmiddlewaretoken" value=""', content)


def template_names(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [template.name for template in response.templates]
