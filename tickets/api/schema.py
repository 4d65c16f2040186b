"""OpenAPI generation: every operation documents the token scopes it needs and the one error body.

`ScopedAutoSchema` reads the view's `required_scopes` (the same declaration `security.scopes.HasRequiredScopes`
enforces), puts the scopes in the operation's description and in an `x-required-scopes` extension. The
`add_error_responses` hook gives every operation the shared `Error` body for the 4xx statuses any API request can get.
"""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from security.scopes import required_scopes_for

# Statuses every endpoint may answer, whatever it does: bad input, no credentials, a token without the scope (or a
# forbidden action), the wrong method, a body that is too large or not JSON, too many requests.
COMMON_ERRORS: dict[str, str] = {
    "400": "Invalid input: malformed JSON, wrong types, unknown fields or a rule violation (`fields` says which).",
    "401": "Not authenticated.",
    "403": "Authenticated, but this token lacks the scope (`insufficient_scope`) or the user may not do this.",
    "405": "Method not allowed.",
    "406": "The Accept header asks for a format this endpoint cannot give.",
    "413": "The request body is too large.",
    "415": "Unsupported media type.",
    "429": "Too many requests; retry after the `Retry-After` header's seconds.",
}
# Statuses only some operations answer (they declare them in their own `responses`).
DETAIL_ERRORS: dict[str, str] = {
    "404": "No such object, or one this user may not see: both look the same.",
    "409": "Conflict: an invalid transition, a stale `version`, or an `Idempotency-Key` still in use.",
    "422": "The `Idempotency-Key` was already used with a different request.",
}


class ErrorSerializer(serializers.Serializer):
    """Every error response: a sentence, a stable machine-readable code and per-field messages."""

    detail = serializers.CharField(help_text="What went wrong, for people.")
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `validation_failed`, `not_found`.")
    fields = serializers.DictField(  # type: ignore[assignment]  # DRF moves declared fields off the class
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field name → messages; empty when the error is not about one field.",
    )


class ScopedAutoSchema(AutoSchema):
    def _scopes(self) -> list[str] | None:
        request = getattr(self.view, "request", None)
        if request is None:
            return None
        return list(required_scopes_for(self.view, request) or []) if hasattr(self.view, "required_scopes") else None

    def get_operation(self, *args: Any, **kwargs: Any) -> Any:
        # After every override (an `extend_schema(description=...)` replaces `get_description` wholesale).
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        scopes = self._scopes()
        if scopes is None:
            note = "API tokens cannot call this endpoint (browser sessions only)."
        elif scopes:
            note = "Token scopes required: " + ", ".join(f"`{scope}`" for scope in scopes) + "."
        else:
            note = "Any API token may call this endpoint."
        operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
        operation["x-required-scopes"] = scopes or []
        return operation


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Postprocessing hook: the `Error` component, on every operation, for every common error status."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "Error",
        {
            "type": "object",
            "description": ErrorSerializer.__doc__,
            "properties": {
                "detail": {"type": "string"},
                "code": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            },
            "required": ["detail", "code", "fields"],
        },
    )
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in COMMON_ERRORS.items():
                # A view may have declared the status with a description only; the body is always the Error one.
                responses.setdefault(status, {"description": description})["content"] = error
            for status, description in DETAIL_ERRORS.items():
                if status in responses:
                    responses[status] = {"description": description, "content": error}
    return result
