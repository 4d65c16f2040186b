"""Domain errors: a rule violation raised by a service, with a stable machine-readable `code`.

One DRF exception handler (`itsm.api.exception_handler`) and one view helper (`form_add_domain_error`) turn them into
`{"detail": ..., "code": ..., "fields": {...}}` bodies or form errors, so no rule violation ever becomes a 500.
"""

from typing import Any


class DomainError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, detail: str, *, code: str | None = None, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.fields: dict[str, list[str]] = fields or {}

    def as_dict(self) -> dict[str, Any]:
        return {"detail": self.detail, "code": self.code, "fields": self.fields}


class ValidationFailed(DomainError):
    code = "validation_failed"


class NotFound(DomainError):
    """Missing and forbidden look the same from outside (DESIGN.md §5)."""

    status_code = 404
    code = "not_found"


class PermissionDenied(DomainError):
    status_code = 403
    code = "permission_denied"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"
