"""Input and output shapes of the webhook API (separate, as everywhere in the API)."""

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from security.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from security.webhooks import NAME_MAX_CHARS, URL_MAX_CHARS


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is a 400 instead of a silently ignored change."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class WebhookInputSerializer(StrictSerializer):
    name = serializers.CharField(max_length=NAME_MAX_CHARS)
    url = serializers.CharField(max_length=URL_MAX_CHARS)
    event_types = serializers.ListField(child=serializers.CharField(max_length=64), max_length=100)
    is_active = serializers.BooleanField(required=False)


class OwnerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="full_name")


class WebhookOutputSerializer(serializers.ModelSerializer):
    owner = OwnerSerializer()

    class Meta:
        model = WebhookSubscription
        fields: tuple[str, ...] = (
            "id",
            "name",
            "url",
            "event_types",
            "is_active",
            "consecutive_failures",
            "disabled_at",
            "disabled_reason",
            "owner",
            "created_at",
            "updated_at",
        )


class WebhookWithSecretSerializer(WebhookOutputSerializer):
    secret = serializers.CharField(help_text="The signing secret. Shown only in this response; store it now.")

    class Meta(WebhookOutputSerializer.Meta):
        fields: tuple[str, ...] = (*WebhookOutputSerializer.Meta.fields, "secret")


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ("number", "at", "status_code", "latency_ms", "response_excerpt", "error", "is_success", "is_open")


class DeliverySerializer(serializers.ModelSerializer):
    event = serializers.CharField(source="event_name")
    attempt_log = AttemptSerializer(many=True)

    class Meta:
        model = WebhookDelivery
        fields: tuple[str, ...] = (
            "id",
            "event",
            "event_id",
            "state",
            "attempts",
            "next_attempt_at",
            "retry_until",
            "created_at",
            "delivered_at",
            "last_status_code",
            "attempt_log",
        )


class DeliveryDetailSerializer(DeliverySerializer):
    payload = serializers.JSONField(allow_null=True, help_text="The body sent; null unless you own the webhook.")

    class Meta(DeliverySerializer.Meta):
        fields: tuple[str, ...] = (*DeliverySerializer.Meta.fields, "payload")


class EventTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]


def page_serializer(name: str, item: type[serializers.BaseSerializer]) -> type[serializers.Serializer]:
    """One keyset page `{"next", "previous", "results"}`; marked `many=False` so the schema of a `list` action is this
    object, not an array of them (the contract test checks responses against it)."""
    page = type(
        name,
        (serializers.Serializer,),
        {
            "next": serializers.CharField(allow_null=True),
            "previous": serializers.CharField(allow_null=True),
            "results": item(many=True),
        },
    )
    return extend_schema_serializer(many=False)(page)


WebhookPageSerializer = page_serializer("WebhookPage", WebhookOutputSerializer)
DeliveryPageSerializer = page_serializer("DeliveryPage", DeliverySerializer)
