"""What every ticket API view shares: JSON in and out, a body-size limit (413), the caller as a `User`, scope checks
for internal notes, and `Idempotency-Key` handling for POSTs."""

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from security import permissions
from security.models import User
from security.scopes import InsufficientScope, Scope, request_has_scope
from tickets.models import Ticket
from tickets.services.idempotency import idempotency_claim, idempotency_store

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_CHARS = 255

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    name=IDEMPOTENCY_HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Any unique string (a UUID) of 1–255 printable ASCII characters. A retry with the same key and the same body "
        "within 24 h returns the first response (same status and body, header `Idempotent-Replayed: true`) and does "
        "nothing again; the same key with a different request is refused with 422 `idempotency_key_reused`."
    ),
)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class ApiViewMixin(GenericAPIView):
    # Mixed into every ticket API view (a comment, not a docstring: the schema would show it as a description).

    renderer_classes = (JSONRenderer,)
    parser_classes: Any = (JSONParser,)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # DRF's JSON parser reads the whole stream whatever its size: refuse a big body before anything reads it.
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        content_type = request.META.get("CONTENT_TYPE", "")
        limit = (
            settings.TICKETS_ATTACHMENT_MAX_BYTES + 64 * 1024
            if content_type.startswith("multipart/")
            else settings.API_MAX_JSON_BYTES
        )
        if length > limit:
            raise PayloadTooLarge(f"The request body is too large (at most {limit} bytes).")
        super().initial(request, *args, **kwargs)

    @property
    def user(self) -> User:
        user = self.request.user
        assert isinstance(user, User)  # noqa: S101 - IsAuthenticated ran first
        return user

    def sees_internal(self, ticket: Ticket) -> bool:
        """Internal notes, events and attachments: for users who may see them, with a token that may read them."""
        return permissions.can_view_internal(self.user, ticket) and request_has_scope(
            self.request, Scope.COMMENTS_INTERNAL
        )

    def require_internal_scope(self) -> None:
        if not request_has_scope(self.request, Scope.COMMENTS_INTERNAL):
            raise InsufficientScope(
                [Scope.COMMENTS_INTERNAL], "Internal notes need a token with the comments:internal scope."
            )

    def idempotent(self, handler: Callable[[], Response]) -> Response:
        """Run `handler` once per `Idempotency-Key` (when the client sends one); a retry replays the first response.

        Only a success is stored: an error rolls the key back with everything else, so a corrected retry may reuse
        it. The key row and the work commit together, so a crash never leaves a key without its result."""
        key = self.request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return handler()
        if not (0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS) or not all(32 < ord(ch) < 127 for ch in key):
            raise exceptions.ValidationError(
                {IDEMPOTENCY_HEADER: [f"Use 1–{MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters, no spaces."]}
            )
        fingerprint = _fingerprint(self.request)
        with transaction.atomic():
            row = idempotency_claim(
                user=self.user,
                key=key,
                fingerprint=fingerprint,
                method=self.request.method or "POST",
                path=self.request.path,
            )
            if row.response_status is not None:
                return Response(row.response_body, status=row.response_status, headers={"Idempotent-Replayed": "true"})
            response = handler()
            if 200 <= response.status_code < 300:
                body = json.loads(json.dumps(response.data, cls=DjangoJSONEncoder))
                idempotency_store(row=row, status=response.status_code, body=body)
            else:
                transaction.set_rollback(True)
            return response


def _fingerprint(request: Request) -> str:
    """sha256 over the method, path and the parsed body (uploads by their content hash): what makes two requests
    "the same" whatever their JSON spacing or multipart boundary."""
    data = request.data
    if hasattr(data, "lists"):
        fields: Any = {
            name: [
                hashlib.sha256(b"".join(value.chunks())).hexdigest() if hasattr(value, "chunks") else str(value)
                for value in values
            ]
            for name, values in data.lists()
        }
        for upload in request.FILES.values():
            upload.seek(0)
    else:
        fields = data
    canonical = json.dumps(
        [request.method, request.path, fields], sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
