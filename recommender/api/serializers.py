"""Parsing and validation of API input, and the shapes of API output."""

from __future__ import annotations

import math

from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from recommender import explain
from recommender.api.parsers import depth, problems
from recommender.importing import BEHAVIOUR_KINDS
from recommender.models import Behaviour, EndUser, Item

MAX_TEXT = 2000
MAX_K = 200


def _clean_text(value: str, field: str = "text") -> str:
    if "\x00" in value:
        raise serializers.ValidationError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise serializers.ValidationError("must be valid Unicode (no lone surrogates)") from None
    return value


class CleanCharField(serializers.CharField):
    """A CharField that rejects NUL bytes and lone surrogates with a clear message."""

    def to_internal_value(self, data):
        return _clean_text(super().to_internal_value(data))


class FiniteFloatField(serializers.FloatField):
    """A FloatField that rejects NaN and infinities (DRF's accepts "nan" in query strings)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            raise serializers.ValidationError("must be a finite number")
        return value


class JSONObjectField(serializers.DictField):
    """A JSON object of bounded nesting (attributes, context)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if depth(value) > 8:
            raise serializers.ValidationError("nested deeper than 8 levels")
        problem = problems(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class RejectUnknownFields:
    """Unknown fields are an error (with their names), not silently dropped."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


class ImmutableId:
    """The ``id`` (external id) of an existing row cannot be changed by an update."""

    def validate_id(self, value):
        if self.instance is not None and value != self.instance.external_id:
            raise serializers.ValidationError("an id cannot change")
        return value


class StrictSerializer(RejectUnknownFields, serializers.Serializer):
    pass


class ItemSerializer(ImmutableId, RejectUnknownFields, serializers.ModelSerializer):
    id = CleanCharField(
        source="external_id",
        min_length=1,
        max_length=200,
        validators=[UniqueValidator(Item.objects.all(), "an item with this id already exists")],
    )
    title = CleanCharField(min_length=1, max_length=500)
    attributes = JSONObjectField(required=False)
    description = CleanCharField(allow_blank=True, required=False, max_length=20000)
    category = CleanCharField(allow_blank=True, required=False, max_length=200)
    tags = serializers.ListField(
        child=CleanCharField(max_length=100), required=False, max_length=100
    )

    class Meta:
        model = Item
        fields = [
            "id",
            "title",
            "description",
            "category",
            "tags",
            "attributes",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


class UpsertItemSerializer(ItemSerializer):
    """An item in a bulk upsert: an existing id is an update, not an error."""

    id = CleanCharField(source="external_id", min_length=1, max_length=200)


class BulkItemsSerializer(StrictSerializer):
    items = UpsertItemSerializer(many=True, allow_empty=False, max_length=1000)


class EndUserSerializer(ImmutableId, RejectUnknownFields, serializers.ModelSerializer):
    id = CleanCharField(
        source="external_id",
        min_length=1,
        max_length=200,
        validators=[UniqueValidator(EndUser.objects.all(), "a user with this id already exists")],
    )
    attributes = JSONObjectField(required=False)

    class Meta:
        model = EndUser
        fields = ["id", "attributes", "created_at"]
        read_only_fields = ["created_at"]


class BehaviourInputSerializer(StrictSerializer):
    user = CleanCharField(min_length=1, max_length=200)
    item = CleanCharField(min_length=1, max_length=200, required=False, allow_null=True)
    kind = serializers.ChoiceField(choices=BEHAVIOUR_KINDS)
    value = FiniteFloatField(required=False, allow_null=True, min_value=-1e6, max_value=1e6)
    text = CleanCharField(required=False, allow_blank=True, max_length=MAX_TEXT, default="")
    context = JSONObjectField(required=False, default=dict)
    event_id = CleanCharField(min_length=1, max_length=200, required=False, allow_null=True)
    occurred_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate(self, attrs):
        if attrs["kind"] != "search" and not attrs.get("item"):
            raise serializers.ValidationError({"item": ["required unless kind is 'search'"]})
        if attrs["kind"] == "search" and not attrs.get("text"):
            raise serializers.ValidationError({"text": ["a search needs its text"]})
        if attrs["kind"] == "rating" and attrs.get("value") is None:
            raise serializers.ValidationError({"value": ["a rating needs a value"]})
        return attrs


class BehaviourBatchSerializer(StrictSerializer):
    events = BehaviourInputSerializer(many=True, allow_empty=False, max_length=5000)


class BehaviourSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.external_id")
    item = serializers.CharField(source="item.external_id", allow_null=True)

    class Meta:
        model = Behaviour
        fields = ["event_id", "user", "item", "kind", "value", "text", "context", "occurred_at"]


class RecordedSerializer(serializers.Serializer):
    created = serializers.BooleanField()
    profile_updated = serializers.BooleanField()
    behaviour = BehaviourSerializer()


_OCCURRED_AT = serializers.DateTimeField()


def recorded_data(recorded) -> dict:
    """What ``RecordedSerializer(recorded).data`` gives, built directly: the event POST is
    the hottest write path, and a ModelSerializer costs ~1 ms per call to set up."""
    behaviour = recorded.behaviour
    return {
        "created": recorded.created,
        "profile_updated": recorded.profile_updated,
        "behaviour": {
            "event_id": behaviour.event_id,
            "user": behaviour.user.external_id,
            "item": behaviour.item.external_id if behaviour.item_id is not None else None,
            "kind": behaviour.kind,
            "value": behaviour.value,
            "text": behaviour.text,
            "context": behaviour.context,
            "occurred_at": _OCCURRED_AT.to_representation(behaviour.occurred_at),
        },
    }


class BatchResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    profiles_updated = serializers.IntegerField()


class RecommendationQuerySerializer(StrictSerializer):
    """Query parameters of ``GET users/{id}/recommendations`` (and search)."""

    k = serializers.IntegerField(min_value=1, max_value=MAX_K, default=10)
    category = CleanCharField(required=False, min_length=1, max_length=200)
    diversity = FiniteFloatField(min_value=0.0, max_value=1.0, default=0.0)
    exclude_seen = serializers.BooleanField(default=True)
    q = CleanCharField(required=False, max_length=500, allow_blank=True)
    lang = serializers.ChoiceField(choices=explain.LANGUAGES, required=False)
    explain = serializers.BooleanField(default=True)
    price_min = FiniteFloatField(required=False, min_value=0, max_value=1e12)
    price_max = FiniteFloatField(required=False, min_value=0, max_value=1e12)
    category_cap = serializers.IntegerField(required=False, min_value=1, max_value=MAX_K)
    device = CleanCharField(required=False, max_length=50)
    page = CleanCharField(required=False, max_length=200)

    def validate(self, attrs):
        low, high = attrs.get("price_min"), attrs.get("price_max")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"price_min": ["must not exceed price_max"]})
        return attrs


class SearchQuerySerializer(StrictSerializer):
    q = CleanCharField(min_length=1, max_length=500)
    user = CleanCharField(required=False, min_length=1, max_length=200)
    k = serializers.IntegerField(min_value=1, max_value=MAX_K, default=10)
    category = CleanCharField(required=False, min_length=1, max_length=200)
    lang = serializers.ChoiceField(choices=explain.LANGUAGES, required=False)


class SimilarQuerySerializer(StrictSerializer):
    k = serializers.IntegerField(min_value=1, max_value=MAX_K, default=10)
    lang = serializers.ChoiceField(choices=explain.LANGUAGES, required=False)


class SessionRecommendationSerializer(StrictSerializer):
    """Body of ``POST recommendations``: recommendations for an anonymous session."""

    positive = serializers.ListField(
        child=CleanCharField(max_length=200), required=False, default=list, max_length=100
    )
    negative = serializers.ListField(
        child=CleanCharField(max_length=200), required=False, default=list, max_length=100
    )
    text = CleanCharField(required=False, allow_blank=True, max_length=500)
    user = CleanCharField(required=False, min_length=1, max_length=200)
    k = serializers.IntegerField(min_value=1, max_value=MAX_K, default=10)
    category = CleanCharField(required=False, min_length=1, max_length=200)
    diversity = FiniteFloatField(min_value=0.0, max_value=1.0, default=0.0)
    lang = serializers.ChoiceField(choices=explain.LANGUAGES, required=False)

    def validate(self, attrs):
        if not (attrs.get("positive") or attrs.get("negative") or attrs.get("text")):
            raise serializers.ValidationError(
                {"positive": ["give positive or negative item ids, or a text"]}
            )
        return attrs


class ReasonSerializer(serializers.Serializer):
    type = serializers.CharField()
    text = serializers.CharField()
    keywords = serializers.ListField(child=serializers.CharField())


class RecommendedItemSerializer(serializers.Serializer):
    id = serializers.CharField(source="item.external_id")
    title = serializers.CharField(source="item.title")
    category = serializers.CharField(source="item.category")
    attributes = serializers.DictField(source="item.attributes")
    score = serializers.FloatField()
    sources = serializers.ListField(child=serializers.CharField())
    reason = ReasonSerializer(allow_null=True)
    blurb = serializers.CharField(allow_null=True)


class RecommendationListSerializer(serializers.Serializer):
    user = serializers.CharField(allow_null=True)
    lang = serializers.CharField()
    items = RecommendedItemSerializer(many=True)


def recommendation_list_data(results, user: str | None, lang: str) -> dict:
    """What ``RecommendationListSerializer(...).data`` gives, built directly: every list the
    API serves goes through here, and DRF's field machinery costs ~1 ms per list of 10."""
    return {
        "user": user,
        "lang": lang,
        "items": [
            {
                "id": str(result.item.external_id),
                "title": str(result.item.title),
                "category": str(result.item.category),
                "attributes": (
                    None
                    if result.item.attributes is None
                    else {str(key): value for key, value in result.item.attributes.items()}
                ),
                "score": float(result.score),
                "sources": [str(source) for source in result.sources],
                "reason": (
                    {
                        "type": str(result.reason.type),
                        "text": str(result.reason.text),
                        "keywords": [str(word) for word in result.reason.keywords],
                    }
                    if result.reason is not None
                    else None
                ),
                "blurb": None if result.blurb is None else str(result.blurb),
            }
            for result in results
        ],
    }


class BehaviourListQuerySerializer(serializers.Serializer):
    user = CleanCharField(min_length=1, max_length=200)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    offset = serializers.IntegerField(required=False, min_value=0)
