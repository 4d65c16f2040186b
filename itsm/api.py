"""REST framework defaults shared by every app's API: one error body for every failure."""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from itsm.errors import DomainError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every error as `{"detail": str, "code": str, "fields": {name: [messages]}}`."""
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig | TooManyFieldsSent):
        # Django's own upload limits (DATA_UPLOAD_MAX_*) while parsing a form body: a 413, not an HTML 400.
        body = {"detail": "The request body is too large.", "code": "payload_too_large", "fields": {}}
        return Response(body, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = {str(name): _messages(errors) for name, errors in detail.items()}
        response.data = {"detail": "Invalid input.", "code": "validation_failed", "fields": fields}
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = {
            "detail": str(exc.detail) if not isinstance(exc.detail, dict | list) else "Request failed.",
            "code": codes if isinstance(codes, str) else "error",
            "fields": {},
        }
    return response


def _messages(errors: Any, path: str = "") -> list[str]:
    """A field's errors as a flat list of sentences. Nested fields (a list item, a nested object) keep where the
    error is as a prefix: `{"3": ["Null characters are not allowed."]}` becomes `["[3] Null characters are not
    allowed."]`, so `fields` is always `{name: [str]}` as the schema says."""
    if isinstance(errors, dict):
        return [message for key, value in errors.items() for message in _messages(value, f"{path}[{key}]")]
    if isinstance(errors, list | tuple):
        return [message for value in errors for message in _messages(value, path)]
    return [f"{path} {errors}" if path else str(errors)]


def _api_error(request: HttpRequest, status_code: int, detail: str, code: str) -> HttpResponse | None:
    if not request.path.startswith("/api/"):
        return None
    return JsonResponse({"detail": detail, "code": code, "fields": {}}, status=status_code)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """`handler404`: a URL no API route matches (e.g. `/api/v1/calendars/-1/due/`) gets the JSON error body too."""
    return _api_error(request, 404, "Not found.", "not_found") or defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """`handler500`: should never happen, but an API client still gets JSON it can parse."""
    return _api_error(request, 500, "Server error.", "server_error") or defaults.server_error(request)
