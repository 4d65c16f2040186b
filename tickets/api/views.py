"""The ticket API: thin views that parse input with a serializer, load through the visibility-scoped selectors and
call the same services as the pages (so rules, audit rows and domain events are identical).

A ticket the caller may not see is a 404 identical to a missing one. Token scopes are declared per action in
`required_scopes` (enforced by `security.scopes.HasRequiredScopes`); internal notes also need `comments:internal`.
"""

from dataclasses import replace
from datetime import UTC
from typing import Any

from django.db import transaction
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from itsm.errors import NotFound, ValidationFailed
from security.models import Team, User
from security.scopes import Scope
from tickets import queues, selectors, services
from tickets.api import serializers as s
from tickets.api.base import IDEMPOTENCY_PARAMETER, ApiViewMixin
from tickets.api.schema import ErrorSerializer
from tickets.models import Attachment, Category, Ticket

READ = [Scope.TICKETS_READ.value]
WRITE = [Scope.TICKETS_WRITE.value]
DIRECTORY = [Scope.DIRECTORY_READ.value]

NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such ticket, or one you may not see.")
CONFLICT = OpenApiResponse(ErrorSerializer, description="Invalid transition, stale version or a key in use.")
KEY_REUSED = OpenApiResponse(ErrorSerializer, description="The Idempotency-Key was used with another request.")

# The list's query parameters besides the filters `tickets.queues.parse_queue` knows.
LIST_PARAMS = {"cursor", "page_size", "ordering"}
API_NAMES = {"sort": "ordering", "size": "page_size"}
FILTER_PARAMS = {"q", "state", "priority", "type", "category", "team", "assignee", "requester", *queues.DATE_FIELDS}


def _date_param(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.DATE, description=description)


LIST_PARAMETERS = [
    OpenApiParameter(
        "q",
        OpenApiTypes.STR,
        description='Full-text search over title and description (web-search syntax: words, "phrases", -not, or); '
        "a ticket number (`INC-000123`) also matches that ticket. At most 200 characters.",
    ),
    OpenApiParameter(
        "state", OpenApiTypes.STR, many=True, enum=list(queues.STATE_ORDER), description="Any of these states."
    ),
    OpenApiParameter("priority", OpenApiTypes.INT, many=True, enum=[1, 2, 3, 4], description="Any of these."),
    OpenApiParameter("type", OpenApiTypes.STR, enum=["incident", "request"]),
    OpenApiParameter("category", OpenApiTypes.INT, description="Category id."),
    OpenApiParameter("team", OpenApiTypes.INT, description="Team id."),
    OpenApiParameter("assignee", OpenApiTypes.STR, description="A user id, `me` or `none` (unassigned)."),
    OpenApiParameter("requester", OpenApiTypes.STR, description="A user id or an e-mail address."),
    _date_param("created_from", "Created on or after this day (UTC)."),
    _date_param("created_to", "Created on or before this day (UTC)."),
    _date_param("updated_from", "Updated on or after this day (UTC)."),
    _date_param("updated_to", "Updated on or before this day (UTC)."),
    OpenApiParameter(
        "ordering",
        OpenApiTypes.STR,
        enum=[sort for sort, _label in queues.SORT_CHOICES],
        description="Sort key, `-` for descending. Default `-updated`.",
    ),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="`next_cursor` or `previous_cursor` of a page."),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="1–100, default 50."),
]


def _as_list_params(request: Request) -> dict[str, list[str]]:
    """The API's query parameters in the desk queue's vocabulary (`tickets.queues.parse_queue`)."""
    params = dict(request.query_params.lists())
    unknown = sorted(set(params) - LIST_PARAMS - FILTER_PARAMS)
    if unknown:
        raise ValidationFailed(
            "Unknown query parameter.", fields={name[:100]: ["Unknown query parameter."] for name in unknown}
        )
    translated = {name: values for name, values in params.items() if name in FILTER_PARAMS}
    translated["queue"] = [queues.ALL]
    if "ordering" in params:
        translated["sort"] = params["ordering"]
    if "page_size" in params:
        translated["size"] = params["page_size"]
    return translated


def _cursor_param(cursor: queues.Cursor | None, *, backwards: bool) -> str | None:
    if cursor is None:
        return None
    return ("b" if backwards else "a") + cursor.encode()


@extend_schema_view(
    list=extend_schema(
        summary="List tickets",
        description="Visible tickets, filtered, searched and sorted, one keyset page at a time (nothing is counted).",
        parameters=LIST_PARAMETERS,
        responses={200: s.TicketPageSerializer},
    ),
    retrieve=extend_schema(summary="Get a ticket", responses={200: s.TicketDetailSerializer, 404: NOT_FOUND}),
    create=extend_schema(
        summary="Raise a ticket",
        description="Routes it by category, computes the priority, writes the timeline and audit rows, starts SLAs.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.TicketCreateInputSerializer,
        responses={201: s.TicketDetailSerializer, 422: KEY_REUSED},
        examples=[
            OpenApiExample(
                "A laptop incident",
                value={"title": "Laptop does not boot", "category": 1, "impact": 2, "urgency": 1},
                request_only=True,
            )
        ],
    ),
    partial_update=extend_schema(
        summary="Update a ticket",
        description="Priority override (with `priority_reason`), impact and urgency, category, team and assignee; "
        "each through its service, all or nothing. Other fields are read-only.",
        request=s.TicketUpdateInputSerializer,
        responses={200: s.TicketDetailSerializer, 404: NOT_FOUND, 409: CONFLICT},
    ),
)
class TicketViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    lookup_field = "number"
    lookup_value_regex = "[A-Za-z0-9-]{1,20}"
    http_method_names = ["get", "post", "patch", "head", "options"]
    serializer_class = s.TicketDetailSerializer
    required_scopes = {
        "list": READ,
        "retrieve": READ,
        "events": READ,
        "comments": READ,
        "attachments": READ,
        "create": WRITE,
        "partial_update": WRITE,
        "transition": WRITE,
        "assign": WRITE,
        "comment_create": WRITE,
        "attachment_create": WRITE,
    }

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Ticket.objects.none()
        return selectors.ticket_visible_to(self.user)

    def _ticket(self) -> Ticket:
        return selectors.ticket_get(user=self.user, number=str(self.kwargs["number"]))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        parsed = queues.parse_queue(_as_list_params(request), default_queue=queues.ALL)
        raw_cursor = request.query_params.get("cursor", "")
        query = parsed.query
        # The desk's parameter names, in the API's words.
        errors = {API_NAMES.get(name, name): messages for name, messages in parsed.errors.items()}
        raw_size = request.query_params.get("page_size")
        if raw_size is not None and not (raw_size.isdigit() and 1 <= int(raw_size) <= queues.MAX_PAGE_SIZE):
            errors["page_size"] = [f"Use a whole number from 1 to {queues.MAX_PAGE_SIZE}."]
        if raw_cursor:
            direction, encoded = raw_cursor[:1], raw_cursor[1:]
            cursor = queues.decode_cursor(encoded, query.sort) if direction in {"a", "b"} else None
            if cursor is None:
                errors["cursor"] = ["Invalid cursor (or made for another ordering)."]
            elif direction == "a":
                query = replace(query, after=cursor)
            else:
                query = replace(query, before=cursor)
        if errors:
            raise ValidationFailed("Invalid query parameter.", fields=errors)
        page = selectors.ticket_queue(user=self.user, query=query, zone=UTC)
        return Response(
            {
                "results": s.TicketSerializer(page.items, many=True).data,
                "next_cursor": _cursor_param(page.next_cursor, backwards=False),
                "previous_cursor": _cursor_param(page.previous_cursor, backwards=True),
            }
        )

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(s.TicketDetailSerializer(self._ticket()).data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        def handler() -> Response:
            data = _valid(s.TicketCreateInputSerializer, request)
            requester = None
            if "requester" in data:
                requester = selectors.active_user(data["requester"])
                if requester is None:
                    raise ValidationFailed("Unknown requester.", fields={"requester": ["No such active user."]})
            ticket = services.ticket_create(
                actor=self.user,
                title=data["title"],
                description=data["description"],
                category=data["category"],
                type=data.get("type"),
                impact=data["impact"],
                urgency=data["urgency"],
                requester=requester,
            )
            return Response(s.TicketDetailSerializer(ticket).data, status=201)

        return self.idempotent(handler)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = _valid(s.TicketUpdateInputSerializer, request)
        ticket = self._ticket()
        version = data.get("version")

        def expected() -> int | None:
            # Only the first service checks the version the client read; the later ones see the first one's bump.
            nonlocal version
            value, version = version, None
            return value

        with transaction.atomic():
            changed: Ticket = ticket
            if "category" in data:
                changed = services.ticket_change_category(
                    actor=self.user, ticket=ticket.pk, category=data["category"], expected_version=expected()
                )
            if "impact" in data:
                changed = services.ticket_set_impact_urgency(
                    actor=self.user,
                    ticket=ticket.pk,
                    impact=data["impact"],
                    urgency=data["urgency"],
                    expected_version=expected(),
                )
            if "priority" in data:
                changed = services.ticket_override_priority(
                    actor=self.user,
                    ticket=ticket.pk,
                    priority=data["priority"],
                    reason=data.get("priority_reason", ""),
                    expected_version=expected(),
                )
            if "assignee" in data or "team" in data:
                changed = self._assign(
                    ticket,
                    assignee_id=data.get("assignee", changed.assignee_id if "team" not in data else None),
                    team_id=data.get("team"),
                    version=expected(),
                )
        return Response(s.TicketDetailSerializer(_reloaded(changed)).data)

    def _assign(self, ticket: Ticket, *, assignee_id: int | None, team_id: int | None, version: int | None) -> Ticket:
        assignee: User | None = None
        if assignee_id is not None:
            assignee = selectors.active_user(assignee_id)
            if assignee is None:
                raise ValidationFailed("Unknown assignee.", fields={"assignee": ["No such active user."]})
        team: Team | None = None
        if team_id is not None:
            team = selectors.team_by_id(team_id)
            if team is None:
                raise ValidationFailed("Unknown team.", fields={"team": ["No such team."]})
        return services.ticket_assign(
            actor=self.user, ticket=ticket.pk, assignee=assignee, team=team, expected_version=version
        )

    @extend_schema(
        summary="Change a ticket's state",
        description="Through the transition table, as on the ticket page: cancelling and reopening need a reason, "
        "pending needs a `pending_reason`. An impossible move is 409 `invalid_transition`.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.TransitionInputSerializer,
        responses={200: s.TicketDetailSerializer, 404: NOT_FOUND, 409: CONFLICT, 422: KEY_REUSED},
    )
    @action(detail=True, methods=["post"])
    def transition(self, request: Request, number: str) -> Response:
        def handler() -> Response:
            data = _valid(s.TransitionInputSerializer, request)
            ticket = self._ticket()
            changed = services.ticket_transition(
                actor=self.user,
                ticket=ticket.pk,
                to_state=data["state"],
                reason=data["reason"],
                pending_reason=data.get("pending_reason", ""),
                expected_version=data.get("version"),
            )
            return Response(s.TicketDetailSerializer(_reloaded(changed)).data)

        return self.idempotent(handler)

    @extend_schema(
        summary="Assign a ticket",
        description="To a member of its team (or of `team`, moving it there); `assignee: null` unassigns.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.AssignInputSerializer,
        responses={200: s.TicketDetailSerializer, 404: NOT_FOUND, 409: CONFLICT, 422: KEY_REUSED},
    )
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, number: str) -> Response:
        def handler() -> Response:
            data = _valid(s.AssignInputSerializer, request)
            ticket = self._ticket()
            changed = self._assign(
                ticket, assignee_id=data["assignee"], team_id=data.get("team"), version=data.get("version")
            )
            return Response(s.TicketDetailSerializer(_reloaded(changed)).data)

        return self.idempotent(handler)

    @extend_schema(
        summary="A ticket's timeline",
        description="Every change in time order. Internal entries only for users who may see internal notes, with a "
        "token that has `comments:internal`.",
        responses={200: s.EventSerializer(many=True), 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"])
    def events(self, request: Request, number: str) -> Response:
        ticket = self._ticket()
        events = selectors.timeline_for(user=self.user, ticket=ticket).select_related(None).select_related("actor")
        if not self.sees_internal(ticket):
            events = events.filter(is_internal=False)
        return Response(s.EventSerializer(events, many=True).data)

    @extend_schema(
        summary="A ticket's comments",
        description="Public replies; internal notes too for users who may see them, with `comments:internal`.",
        responses={200: s.CommentSerializer(many=True), 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"])
    def comments(self, request: Request, number: str) -> Response:
        ticket = self._ticket()
        comments = selectors.comments_for(user=self.user, ticket=ticket, include_internal=self.sees_internal(ticket))
        return Response(s.CommentSerializer(comments, many=True).data)

    @extend_schema(
        summary="Comment on a ticket",
        description="A public reply by default. `is_internal: true` adds an internal note: agents of the ticket's "
        "team only, with a token that also has `comments:internal`.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=s.CommentInputSerializer,
        responses={201: s.CommentSerializer, 404: NOT_FOUND, 409: CONFLICT, 422: KEY_REUSED},
    )
    @comments.mapping.post
    def comment_create(self, request: Request, number: str) -> Response:
        def handler() -> Response:
            data = _valid(s.CommentInputSerializer, request)
            ticket = self._ticket()
            if data["is_internal"]:
                self.require_internal_scope()
            comment = services.comment_add(
                actor=self.user, ticket=ticket.pk, body=data["body"], is_internal=data["is_internal"]
            )
            return Response(s.CommentSerializer(comment).data, status=201)

        return self.idempotent(handler)

    @extend_schema(
        summary="A ticket's attachments",
        description="Internal ones only for users who may see internal notes, with `comments:internal`.",
        responses={200: s.AttachmentSerializer(many=True), 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], parser_classes=[MultiPartParser])
    def attachments(self, request: Request, number: str) -> Response:
        ticket = self._ticket()
        attachments = selectors.attachments_for(user=self.user, ticket=ticket).select_related("uploaded_by")
        if not self.sees_internal(ticket):
            attachments = attachments.filter(is_internal=False)
        return Response(s.AttachmentSerializer(attachments, many=True).data)

    @extend_schema(
        summary="Attach a file",
        description="`multipart/form-data` with `file`; the same type, size and content checks as the pages. "
        "`is_internal: true` needs `comments:internal`.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request={"multipart/form-data": s.AttachmentInputSerializer},
        responses={201: s.AttachmentSerializer, 404: NOT_FOUND, 409: CONFLICT, 422: KEY_REUSED},
    )
    @attachments.mapping.post
    def attachment_create(self, request: Request, number: str) -> Response:
        def handler() -> Response:
            unknown = sorted(set(request.data) - {"file", "is_internal"})
            if unknown:
                raise ValidationFailed(
                    "Invalid input.", fields={str(name)[:100]: ["Unknown field."] for name in unknown}
                )
            serializer = s.AttachmentInputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            ticket = self._ticket()
            if data["is_internal"]:
                self.require_internal_scope()
            attachment = services.attachment_add(
                actor=self.user, ticket=ticket.pk, upload=data["file"], is_internal=data["is_internal"]
            )
            return Response(s.AttachmentSerializer(attachment).data, status=201)

        return self.idempotent(handler)


def _valid(serializer_class: type[s.StrictSerializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _reloaded(ticket: Ticket) -> Ticket:
    """The changed ticket with its relations for the response (the caller changed it: they may see the result even
    if it just moved out of their teams)."""
    return Ticket.objects.select_related("requester", "category", "team", "assignee").get(pk=ticket.pk)


class AttachmentViewSet(ApiViewMixin, viewsets.GenericViewSet):
    required_scopes = {"download": READ}
    queryset = Attachment.objects.none()
    lookup_value_regex = "[0-9]{1,18}"

    @extend_schema(
        summary="Download an attachment",
        description="The file, as an attachment download. Internal files need `comments:internal`.",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str) -> Any:
        try:
            attachment = selectors.attachment_get(user=self.user, pk=int(pk))
        except (ValueError, OverflowError) as exc:
            raise NotFound("No such attachment.") from exc
        if attachment.is_internal and not self.sees_internal(attachment.ticket):
            raise NotFound("No such attachment.")
        try:
            handle = attachment.file.storage.open(attachment.file.name or "", "rb")
        except FileNotFoundError as exc:
            raise NotFound("No such attachment.") from exc
        response = FileResponse(
            handle, as_attachment=True, filename=attachment.filename, content_type="application/octet-stream"
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response


class DirectoryPagination(CursorPagination):
    page_size = 100
    max_page_size = 100
    page_size_query_param = "page_size"
    ordering = "id"

    def decode_cursor(self, request: Request) -> Any:
        # DRF answers a bad cursor with 404; it is bad input, like every other malformed parameter.
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise ValidationFailed("Invalid cursor.", fields={"cursor": ["Invalid cursor."]}) from exc


@extend_schema_view(
    list=extend_schema(summary="List categories", description="Active categories (the same list the portal shows)."),
    retrieve=extend_schema(summary="Get a category", responses={200: s.CategorySerializer, 404: NOT_FOUND}),
)
class CategoryViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Category.objects.none()  # for the schema; requests read through the selector below
    lookup_value_regex = "[0-9]{1,18}"
    serializer_class = s.CategorySerializer
    pagination_class = DirectoryPagination
    required_scopes = {"list": READ, "retrieve": READ}

    def get_queryset(self) -> Any:
        return selectors.category_choices().select_related(None).order_by("id")

    def get_object(self) -> Category:
        try:
            return self.get_queryset().get(pk=int(self.kwargs["pk"]))
        except (Category.DoesNotExist, ValueError, OverflowError) as exc:
            raise NotFound("No such category.") from exc


@extend_schema_view(
    list=extend_schema(summary="List teams", description="Every team for desk users; none for requesters."),
    retrieve=extend_schema(summary="Get a team", responses={200: s.TeamSerializer, 404: NOT_FOUND}),
)
class TeamViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Team.objects.none()  # for the schema; requests read through the selector below
    lookup_value_regex = "[0-9]{1,18}"
    serializer_class = s.TeamSerializer
    pagination_class = DirectoryPagination
    required_scopes = {"list": DIRECTORY, "retrieve": DIRECTORY}

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Team.objects.none()
        return selectors.teams_visible_to(self.user).order_by("id")

    def get_object(self) -> Team:
        try:
            return self.get_queryset().get(pk=int(self.kwargs["pk"]))
        except (Team.DoesNotExist, ValueError, OverflowError) as exc:
            raise NotFound("No such team.") from exc


@extend_schema_view(
    list=extend_schema(
        summary="List users",
        description="Yourself, and for desk users the active members of your teams. `email=` finds one user by "
        "exact address (agents may find any active user, to raise a ticket on their behalf).",
        parameters=[OpenApiParameter("email", OpenApiTypes.EMAIL, description="Exact e-mail address.")],
    ),
    retrieve=extend_schema(summary="Get a user", responses={200: s.UserSerializer, 404: NOT_FOUND}),
)
class UserViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    queryset = User.objects.none()  # for the schema; requests read through the selector below
    lookup_value_regex = "[0-9]{1,18}"
    serializer_class = s.UserSerializer
    pagination_class = DirectoryPagination
    required_scopes = {"list": DIRECTORY, "retrieve": DIRECTORY}

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return User.objects.none()
        email = self.request.query_params.get("email", "") if self.action == "list" else ""
        return selectors.users_visible_to(self.user, email=email[:254]).order_by("id")

    def get_object(self) -> User:
        try:
            return self.get_queryset().get(pk=int(self.kwargs["pk"]))
        except (User.DoesNotExist, ValueError, OverflowError) as exc:
            raise NotFound("No such user.") from exc
