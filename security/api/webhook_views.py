"""`/api/v1/webhooks/`: subscriptions, their delivery log and redelivery (docs/webhooks.md).

Every endpoint needs the `webhooks:manage` scope on a token, and a user who may manage webhooks (agents, leads,
managers, security officers, admins). Users see their own subscriptions, admins every one; anything else is the
same 404 as a missing id. Writes go through `security.webhooks` services (audited)."""

from typing import Any
from urllib.parse import urlencode

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from security import permissions, webhooks
from security.api.webhook_serializers import (
    DeliveryDetailSerializer,
    DeliveryPageSerializer,
    DeliverySerializer,
    EventTypeSerializer,
    WebhookInputSerializer,
    WebhookOutputSerializer,
    WebhookPageSerializer,
    WebhookWithSecretSerializer,
)
from security.models import User
from security.scopes import Scope

SCOPES = [Scope.WEBHOOKS_MANAGE.value]
REQUIRED_SCOPES = dict.fromkeys(("GET", "POST", "PUT", "PATCH", "DELETE"), SCOPES)
ERROR = OpenApiResponse(description='Error body: {"detail": str, "code": str, "fields": {name: [str]}}')
ERRORS = {400: ERROR, 403: ERROR, 404: ERROR}
CURSOR = OpenApiParameter("cursor", str, description="Opaque keyset cursor from `next`.")


class CanManageWebhooks(BasePermission):
    message = "You cannot manage webhooks."

    def has_permission(self, request: Request, view: Any) -> bool:
        return permissions.can_manage_webhooks(request.user)  # type: ignore[arg-type]


def _user(request: Request) -> User:
    return request.user  # type: ignore[return-value]


def _next_url(request: Request, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    query = request.query_params.copy()
    query["cursor"] = cursor
    return request.build_absolute_uri(f"{request.path}?{urlencode(query)}")


@extend_schema_view(
    list=extend_schema(
        summary="List webhook subscriptions", parameters=[CURSOR], responses={200: WebhookPageSerializer, **ERRORS}
    ),
    retrieve=extend_schema(summary="A webhook subscription", responses={200: WebhookOutputSerializer, **ERRORS}),
    create=extend_schema(
        summary="Subscribe a URL to events",
        request=WebhookInputSerializer,
        responses={201: WebhookWithSecretSerializer, **ERRORS},
    ),
    partial_update=extend_schema(
        summary="Change name, URL, events or enable/disable",
        request=WebhookInputSerializer(partial=True),
        responses={200: WebhookOutputSerializer, **ERRORS},
    ),
    update=extend_schema(
        summary="Replace name, URL and events",
        request=WebhookInputSerializer,
        responses={200: WebhookOutputSerializer, **ERRORS},
    ),
    destroy=extend_schema(summary="Delete a subscription and its delivery log", responses={204: None, **ERRORS}),
)
class WebhookViewSet(viewsets.ViewSet):
    required_scopes = REQUIRED_SCOPES
    permission_classes = [*viewsets.ViewSet.permission_classes, CanManageWebhooks]

    def list(self, request: Request) -> Response:
        cursor = request.query_params.get("cursor", "")
        page = webhooks.webhook_list(user=_user(request), before_id=int(cursor) if cursor.isdigit() else None)
        return Response(
            {
                "next": _next_url(request, page.next_cursor),
                "previous": None,
                "results": WebhookOutputSerializer(page.rows, many=True).data,
            }
        )

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(WebhookOutputSerializer(webhooks.webhook_get(user=_user(request), pk=pk)).data)

    def create(self, request: Request) -> Response:
        serializer = WebhookInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        created = webhooks.webhook_create(
            actor=_user(request), name=data["name"], url=data["url"], event_types=data["event_types"]
        )
        subscription = created.subscription
        if data.get("is_active") is False:
            subscription = webhooks.webhook_set_active(actor=_user(request), subscription=subscription, is_active=False)
        body = {**WebhookOutputSerializer(subscription).data, "secret": created.secret}
        return Response(body, status=status.HTTP_201_CREATED)

    def _update(self, request: Request, pk: str, *, partial: bool) -> Response:
        subscription = webhooks.webhook_get(user=_user(request), pk=pk)
        serializer = WebhookInputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if {"name", "url", "event_types"} & set(data):
            subscription = webhooks.webhook_update(
                actor=_user(request),
                subscription=subscription,
                name=data.get("name"),
                url=data.get("url"),
                event_types=data.get("event_types"),
            )
        if "is_active" in data:
            subscription = webhooks.webhook_set_active(
                actor=_user(request), subscription=subscription, is_active=data["is_active"]
            )
        subscription = webhooks.webhook_get(user=_user(request), pk=subscription.pk)
        return Response(WebhookOutputSerializer(subscription).data)

    def update(self, request: Request, pk: str) -> Response:
        return self._update(request, pk, partial=False)

    def partial_update(self, request: Request, pk: str) -> Response:
        return self._update(request, pk, partial=True)

    def destroy(self, request: Request, pk: str) -> Response:
        subscription = webhooks.webhook_get(user=_user(request), pk=pk)
        webhooks.webhook_delete(actor=_user(request), subscription=subscription)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Replace the signing secret (shown once)",
        request=None,
        responses={200: WebhookWithSecretSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str) -> Response:
        subscription = webhooks.webhook_get(user=_user(request), pk=pk)
        rotated = webhooks.webhook_rotate_secret(actor=_user(request), subscription=subscription)
        body = {**WebhookOutputSerializer(rotated.subscription).data, "secret": rotated.secret}
        return Response(body)

    @extend_schema(summary="Event types one can subscribe to", responses={200: EventTypeSerializer(many=True)})
    @action(detail=False, methods=["get"], url_path="event-types")
    def event_types(self, request: Request) -> Response:
        return Response([{"name": name, "label": label} for name, label in webhooks.event_types().items()])


@extend_schema_view(
    list=extend_schema(
        summary="A subscription's delivery log, newest first, with every attempt",
        parameters=[CURSOR],
        responses={200: DeliveryPageSerializer, **ERRORS},
    ),
    retrieve=extend_schema(
        summary="One delivery with its payload", responses={200: DeliveryDetailSerializer, **ERRORS}
    ),
)
class DeliveryViewSet(viewsets.ViewSet):
    required_scopes = REQUIRED_SCOPES
    permission_classes = [*viewsets.ViewSet.permission_classes, CanManageWebhooks]

    def list(self, request: Request, webhook_pk: str) -> Response:
        subscription = webhooks.webhook_get(user=_user(request), pk=webhook_pk)
        page = webhooks.delivery_list(
            user=_user(request), subscription=subscription, cursor=request.query_params.get("cursor", "")
        )
        return Response(
            {
                "next": _next_url(request, page.next_cursor),
                "previous": None,
                "results": DeliverySerializer(page.rows, many=True).data,
            }
        )

    def retrieve(self, request: Request, webhook_pk: str, pk: str) -> Response:
        subscription = webhooks.webhook_get(user=_user(request), pk=webhook_pk)
        delivery = webhooks.delivery_get(user=_user(request), subscription=subscription, pk=pk)
        body = DeliveryDetailSerializer(delivery).data
        if not permissions.can_edit_webhook(_user(request), subscription.owner_id):
            body["payload"] = None  # what the owner may see, not necessarily what an admin may
        return Response(body)

    @extend_schema(
        summary="Send a finished delivery again (same X-Webhook-Id)",
        request=None,
        responses={202: DeliverySerializer, 409: ERROR, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def redeliver(self, request: Request, webhook_pk: str, pk: str) -> Response:
        subscription = webhooks.webhook_get(user=_user(request), pk=webhook_pk)
        delivery = webhooks.delivery_get(user=_user(request), subscription=subscription, pk=pk)
        webhooks.delivery_redeliver(actor=_user(request), delivery=delivery)
        delivery = webhooks.delivery_get(user=_user(request), subscription=subscription, pk=pk)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
