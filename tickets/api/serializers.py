"""Input and output serializers of the ticket API. Inputs are strict (unknown fields are refused); outputs are
plain shapes built from already visibility-scoped objects."""

from datetime import UTC
from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from security.models import Team, User
from tickets.models import Attachment, Category, Comment, Ticket, TicketEvent
from tickets.state import Level, PendingReason, Priority, TicketState, TicketType

# Ids and versions are bigint columns: a larger number is bad input, not a database overflow.
MAX_ID = 2**63 - 1

# --- inputs --------------------------------------------------------------------------------------------------------


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare (a typo must not be silently ignored) and read-only ones."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Send a JSON object."]}, code="invalid")
        writable = {name for name, field in self.fields.items() if not field.read_only}
        unknown = sorted(key for key in data if key not in writable)
        if unknown:
            raise serializers.ValidationError(
                {str(key)[:100]: ["Unknown or read-only field."] for key in unknown}, code="unknown_field"
            )
        return super().to_internal_value(data)


def _text(max_length: int, **kwargs: Any) -> serializers.CharField:
    return serializers.CharField(max_length=max_length, trim_whitespace=True, **kwargs)


class TicketCreateInputSerializer(StrictSerializer):
    title = _text(200, help_text="One line; required.")
    description = _text(50_000, required=False, allow_blank=True, default="", help_text="HTML is sanitised.")
    category = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, help_text="Category id (GET /api/v1/categories/)."
    )
    type = serializers.ChoiceField(
        choices=TicketType.choices, required=False, help_text="Defaults to the category's type."
    )
    impact = serializers.ChoiceField(choices=Level.choices, required=False, default=Level.MEDIUM)
    urgency = serializers.ChoiceField(choices=Level.choices, required=False, default=Level.MEDIUM)
    requester = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="User id; agents may raise on behalf of someone. Default: the caller.",
    )


class TicketUpdateInputSerializer(StrictSerializer):
    """Each field is changed by its own service, in one transaction; fields not listed here are read-only."""

    version = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="The version you read; a stale one is refused with 409 `stale`.",
    )
    priority = serializers.ChoiceField(
        choices=Priority.choices,
        allow_null=True,
        required=False,
        help_text="Override (with `priority_reason`), or null to follow the matrix.",
    )
    priority_reason = _text(500, required=False, allow_blank=True)
    impact = serializers.ChoiceField(choices=Level.choices, required=False)
    urgency = serializers.ChoiceField(choices=Level.choices, required=False)
    category = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    team = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="Move to this team (clears the assignee unless `assignee` is given).",
    )
    assignee = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, allow_null=True, required=False, help_text="User id, or null to unassign."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "priority_reason" in attrs and "priority" not in attrs:
            raise serializers.ValidationError({"priority_reason": ["Send it with `priority`."]})
        if ("impact" in attrs) != ("urgency" in attrs):
            raise serializers.ValidationError(
                {"urgency" if "impact" in attrs else "impact": ["Send impact and urgency together."]}
            )
        if not (set(attrs) - {"version"}):
            raise serializers.ValidationError({"non_field_errors": ["Nothing to change."]})
        return attrs


class TransitionInputSerializer(StrictSerializer):
    state = serializers.ChoiceField(choices=TicketState.choices, help_text="Target state.")
    reason = _text(1000, required=False, allow_blank=True, default="", help_text="Required to cancel or reopen.")
    pending_reason = serializers.ChoiceField(
        choices=PendingReason.choices, required=False, help_text="Required when the target is `pending`."
    )
    version = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)


class AssignInputSerializer(StrictSerializer):
    assignee = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, allow_null=True, help_text="User id, or null to unassign."
    )
    team = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, help_text="Move to this team at the same time."
    )
    version = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)


class CommentInputSerializer(StrictSerializer):
    body = _text(50_000, help_text="HTML is sanitised.")
    is_internal = serializers.BooleanField(
        required=False, default=False, help_text="An internal note: needs the `comments:internal` scope."
    )


class AttachmentInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The file; type and size are checked as in the browser.")
    is_internal = serializers.BooleanField(required=False, default=False)


# --- list query ----------------------------------------------------------------------------------------------------


class TicketListQuerySerializer(serializers.Serializer):
    """Documents the list's query parameters; `tickets.queues.parse_queue` does the parsing and validation."""

    state = serializers.ListField(child=serializers.ChoiceField(choices=TicketState.choices), required=False)
    priority = serializers.ListField(child=serializers.ChoiceField(choices=Priority.choices), required=False)
    type = serializers.ChoiceField(choices=TicketType.choices, required=False)


# --- outputs -------------------------------------------------------------------------------------------------------


class UserRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "full_name")
        read_only_fields = fields


class TeamRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ("id", "name")
        read_only_fields = fields


class CategoryRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ("id", "name")
        read_only_fields = fields


class UtcDateTimeField(serializers.DateTimeField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=UTC, read_only=True, **kwargs)


class TicketSerializer(serializers.ModelSerializer):
    pending_reason = serializers.ChoiceField(
        choices=PendingReason.choices, allow_blank=True, read_only=True, help_text="Empty unless `pending`."
    )
    requester = UserRefSerializer(read_only=True)
    category = CategoryRefSerializer(read_only=True)
    team = TeamRefSerializer(read_only=True, allow_null=True)
    assignee = UserRefSerializer(read_only=True, allow_null=True)
    created_at = UtcDateTimeField()
    updated_at = UtcDateTimeField()
    resolved_at = UtcDateTimeField(allow_null=True)
    closed_at = UtcDateTimeField(allow_null=True)

    class Meta:
        model = Ticket
        fields: tuple[str, ...] = (
            "number",
            "type",
            "title",
            "state",
            "pending_reason",
            "priority",
            "priority_is_overridden",
            "impact",
            "urgency",
            "is_confidential",
            "requester",
            "category",
            "team",
            "assignee",
            "created_at",
            "updated_at",
            "resolved_at",
            "closed_at",
            "version",
        )
        read_only_fields: tuple[str, ...] = fields


class TicketDetailSerializer(TicketSerializer):
    class Meta(TicketSerializer.Meta):
        fields = (*TicketSerializer.Meta.fields, "description", "priority_override_reason")
        read_only_fields = fields


@extend_schema_serializer(many=False)  # one page object, not a list of them
class TicketPageSerializer(serializers.Serializer):
    results = TicketSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as `cursor` for the next page; null at the end."
    )
    previous_cursor = serializers.CharField(allow_null=True)


class EventSerializer(serializers.ModelSerializer):
    actor = UserRefSerializer(read_only=True, allow_null=True)
    at = UtcDateTimeField()
    comment_id = serializers.IntegerField(read_only=True, allow_null=True)
    data = serializers.DictField(  # type: ignore[assignment]  # DRF moves declared fields off the class
        read_only=True, help_text="What changed: ids and values, depending on `kind`."
    )

    class Meta:
        model = TicketEvent
        fields = ("id", "at", "kind", "actor", "is_internal", "comment_id", "data")
        read_only_fields = fields


class CommentSerializer(serializers.ModelSerializer):
    author = UserRefSerializer(read_only=True)
    created_at = UtcDateTimeField()

    class Meta:
        model = Comment
        fields = ("id", "author", "body", "is_internal", "created_at")
        read_only_fields = fields


class AttachmentSerializer(serializers.ModelSerializer):
    uploaded_by = UserRefSerializer(read_only=True)
    created_at = UtcDateTimeField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = (
            "id",
            "filename",
            "content_type",
            "size",
            "sha256",
            "is_internal",
            "uploaded_by",
            "created_at",
            "download_url",
        )
        read_only_fields = fields

    def get_download_url(self, attachment: Attachment) -> str:
        return f"/api/v1/attachments/{attachment.pk}/download/"


class CategorySerializer(serializers.ModelSerializer):
    parent = serializers.IntegerField(  # type: ignore[assignment]  # DRF moves declared fields off the class
        source="parent_id", read_only=True, allow_null=True
    )
    default_team = serializers.IntegerField(source="default_team_id", read_only=True, allow_null=True)

    class Meta:
        model = Category
        fields = (
            "id",
            "name",
            "slug",
            "kind",
            "parent",
            "portal_label",
            "default_type",
            "default_team",
            "is_confidential",
        )
        read_only_fields = fields


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ("id", "name", "slug", "is_security")
        read_only_fields = fields


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "full_name", "email")
        read_only_fields = fields
