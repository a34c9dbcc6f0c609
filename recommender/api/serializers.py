"""Parsing and validation of API input, and the shapes of API output."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping

from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from recommender import behaviour
from recommender.api.parsers import depth, problems
from recommender.conf import conf
from recommender.ingest import eventbounds, limits
from recommender.models import Behaviour, EndUser, Item
from recommender.serving import business, explain, rules, shown
from recommender.serving.shown import public_attributes

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


class ExternalIdField(CleanCharField):
    """An item, user or event id, as ``limits.check_external_id`` allows.

    Whitespace is refused rather than trimmed: the id a client stores is the id it sends.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", limits.MAX_ID_LENGTH)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return limits.check_external_id(value)
        except limits.InvalidValue as exc:
            raise serializers.ValidationError(exc.reason) from None


class JSONObjectField(serializers.DictField):
    """A JSON object of bounded nesting and size (``limits.check_json``): user
    attributes, event context. ``max_bytes`` is a number or a function that reads the
    setting (so a changed setting applies without a restart)."""

    def __init__(self, *, max_bytes: int | Callable[[], int], **kwargs):
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def limit(self) -> int:
        return self.max_bytes() if callable(self.max_bytes) else self.max_bytes

    def check(self, value: dict) -> None:
        limits.check_json(value, limit=self.limit(), path=self.field_name)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if depth(value) > limits.MAX_DEPTH:
            raise serializers.ValidationError(f"nested deeper than {limits.MAX_DEPTH} levels")
        problem = problems(value)
        if problem:
            raise serializers.ValidationError(problem)
        try:
            self.check(value)
        except limits.InvalidValue as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class ItemAttributesField(JSONObjectField):
    """An item's ``attributes``: ``limits.check_attributes`` (bounded numbers, a sane price)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_bytes", limits.max_attributes_bytes)
        super().__init__(**kwargs)

    def check(self, value: dict) -> None:
        limits.check_attributes(value, limit=self.limit(), path=self.field_name)


class ItemTranslationsField(JSONObjectField):
    """An item's ``translations``: ``limits.check_translations`` (language codes to
    ``{"title": …, "description": …}``)."""

    def __init__(self, **kwargs):
        # check_translations bounds every text and the number of languages.
        kwargs.setdefault("max_bytes", 4 * limits.MAX_TRANSLATIONS * 21000)
        kwargs.setdefault(
            "help_text",
            'the texts in other languages: {"en": {"title": "…", "description": "…"}}',
        )
        super().__init__(**kwargs)

    def check(self, value: dict) -> None:
        limits.check_translations(value, path=self.field_name)


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


def _scenario_field() -> serializers.SlugField:
    return serializers.SlugField(
        required=False,
        allow_blank=True,  # scenario= with no value: as if not given
        max_length=64,
        help_text="a scenario's name (its defaults apply); without it the default scenario",
    )


class RuleParamsField(JSONObjectField):
    """The ``$parameters`` of filter and booster expressions: a JSON object (in a query
    string, its JSON text) of numbers, strings, booleans and lists of them."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_bytes", 4096)
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "help_text",
            'values of the expressions\' $parameters, a JSON object: {"max_price": 300}',
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                raise serializers.ValidationError("must be a JSON object") from None
        value = super().to_internal_value(data)
        for name, item in value.items():
            members = item if isinstance(item, list) else [item]
            if not all(isinstance(m, str | int | float | bool) for m in members):
                raise serializers.ValidationError(
                    f"{name}: a number, a string, a boolean or a list of them"
                )
        return value


class RuleFields(serializers.Serializer):
    """``filter``, ``boost`` and ``params``: business rules for one request
    (``docs/rules.md``), checked against the attribute schema here (400 with the column
    and the reason); the scenario's own rules apply as well."""

    filter = CleanCharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text='every item must pass it, e.g. price < 300 and "organic" in tags',
    )
    boost = CleanCharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text='multiplies scores, e.g. if(brand == "Lumetra", 1.2, 1.0)',
    )
    params = RuleParamsField()

    def validate_filter(self, value):
        return _checked_rule(value, "filter")

    def validate_boost(self, value):
        return _checked_rule(value, "boost")


def _checked_rule(text: str, kind: str) -> str:
    if text and text.strip():
        try:
            business.parse(text, kind)
        except rules.RuleError as exc:
            raise serializers.ValidationError(str(exc)) from None
    return text


def rule_request(p: Mapping) -> dict:
    """The ``RecommendationRequest`` fields of validated rule parameters."""
    return {
        "rules": (p["filter"],) if p.get("filter") else (),
        "boosts": (p["boost"],) if p.get("boost") else (),
        "params": dict(p.get("params") or {}),
    }


def max_k_explained() -> int:
    """The longest list served with reasons and blurbs (``RECOMMENDER_MAX_K_EXPLAINED``)."""
    return int(conf.MAX_K_EXPLAINED)


def check_explained_k(k: int, hint: str) -> None:
    """Refuse a ``k`` beyond :func:`max_k_explained`: each explained item costs a
    segmentation of its text and of the query, so an explained list's length is bounded
    more tightly than a bare one's (MAX_K). ``hint`` tells the caller how to get more."""
    cap = max_k_explained()
    if k > cap:
        raise serializers.ValidationError({"k": [f"at most {cap} for an explained list; {hint}"]})


def _k_field() -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1,
        max_value=MAX_K,
        default=10,
        help_text=(
            "list length; at most RECOMMENDER_MAX_K_EXPLAINED (50 by default) "
            f"when the list is explained or has a query, else {MAX_K}"
        ),
    )


class ItemSerializer(ImmutableId, RejectUnknownFields, serializers.ModelSerializer):
    id = ExternalIdField(
        source="external_id",
        min_length=1,
        validators=[UniqueValidator(Item.objects.all(), "an item with this id already exists")],
    )
    title = CleanCharField(min_length=1, max_length=500)
    attributes = ItemAttributesField(required=False)
    translations = ItemTranslationsField(required=False)
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
            "translations",
            "is_active",
            "available_from",
            "available_until",
            "is_hidden",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs):
        attrs = super().validate(attrs)
        start = attrs.get("available_from", getattr(self.instance, "available_from", None))
        end = attrs.get("available_until", getattr(self.instance, "available_until", None))
        if start and end and end <= start:
            raise serializers.ValidationError(
                {"available_until": ["must be later than available_from"]}
            )
        return attrs


class UpsertItemSerializer(ItemSerializer):
    """An item in a bulk upsert: an existing id is an update of the fields given (the
    title too may be left out then), a new id is a new item (which needs a title)."""

    id = ExternalIdField(source="external_id", min_length=1)
    title = CleanCharField(min_length=1, max_length=500, required=False)


class BulkItemsSerializer(StrictSerializer):
    items = UpsertItemSerializer(many=True, allow_empty=False, max_length=1000)


class EndUserSerializer(ImmutableId, RejectUnknownFields, serializers.ModelSerializer):
    id = ExternalIdField(
        source="external_id",
        min_length=1,
        validators=[UniqueValidator(EndUser.objects.all(), "a user with this id already exists")],
    )
    attributes = JSONObjectField(required=False, max_bytes=limits.max_attributes_bytes)

    class Meta:
        model = EndUser
        fields = ["id", "attributes", "created_at"]
        read_only_fields = ["created_at"]


class BehaviourInputSerializer(StrictSerializer):
    user = ExternalIdField(min_length=1)
    item = ExternalIdField(min_length=1, required=False, allow_null=True)
    kind = serializers.ChoiceField(choices=behaviour.KINDS)
    value = FiniteFloatField(required=False, allow_null=True, min_value=-1e6, max_value=1e6)
    text = CleanCharField(required=False, allow_blank=True, max_length=MAX_TEXT, default="")
    context = JSONObjectField(required=False, default=dict, max_bytes=limits.max_context_bytes)
    event_id = ExternalIdField(min_length=1, required=False, allow_null=True)
    occurred_at = serializers.DateTimeField(required=False, allow_null=True)
    recommendation_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="the list this event came from (the recommendation_id it was served with)",
    )
    position = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_K,
        help_text="the item's 1-based position in that list",
    )

    def validate_occurred_at(self, value):
        problem = eventbounds.time_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs):
        if attrs["kind"] != "search" and not attrs.get("item"):
            raise serializers.ValidationError({"item": ["required unless kind is 'search'"]})
        if attrs["kind"] == "search" and not attrs.get("text"):
            raise serializers.ValidationError({"text": ["a search needs its text"]})
        if attrs["kind"] == "rating" and attrs.get("value") is None:
            raise serializers.ValidationError({"value": ["a rating needs a value"]})
        problem = eventbounds.value_problem(attrs["kind"], attrs.get("value"))
        if problem:
            raise serializers.ValidationError({"value": [problem]})
        if attrs["kind"] == "impression" and not attrs.get("recommendation_id"):
            raise serializers.ValidationError(
                {"recommendation_id": ["an impression names the list it was shown in"]}
            )
        if attrs.get("position") is not None and not attrs.get("recommendation_id"):
            raise serializers.ValidationError(
                {"position": ["a position is within a list: give its recommendation_id"]}
            )
        return attrs


class BehaviourBatchSerializer(StrictSerializer):
    events = BehaviourInputSerializer(many=True, allow_empty=False, max_length=5000)


class BehaviourSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.external_id")
    item = serializers.CharField(source="item.external_id", allow_null=True)
    recommendation_id = serializers.UUIDField(format="hex", allow_null=True)

    class Meta:
        model = Behaviour
        fields = [
            "event_id",
            "user",
            "item",
            "kind",
            "value",
            "text",
            "context",
            "occurred_at",
            "recommendation_id",
            "position",
        ]


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
            "recommendation_id": (
                None if behaviour.recommendation_id is None else behaviour.recommendation_id.hex
            ),
            "position": behaviour.position,
        },
    }


class BatchResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    profiles_updated = serializers.IntegerField()
    forgotten = serializers.IntegerField(
        help_text="events skipped because their user was recently forgotten"
    )


class RecommendationQuerySerializer(RuleFields, StrictSerializer):
    """Query parameters of ``GET users/{id}/recommendations`` (and search)."""

    scenario = _scenario_field()
    k = _k_field()
    category = CleanCharField(required=False, min_length=1, max_length=200)
    diversity = FiniteFloatField(min_value=0.0, max_value=1.0, default=0.0)
    exclude_seen = serializers.BooleanField(default=True)
    q = CleanCharField(required=False, max_length=500, allow_blank=True)
    lang = serializers.ChoiceField(choices=explain.LANGUAGES, required=False)
    explain = serializers.BooleanField(default=True)
    price_min = FiniteFloatField(required=False, min_value=0, max_value=1e12)
    price_max = FiniteFloatField(required=False, min_value=0, max_value=1e12)
    category_cap = serializers.IntegerField(required=False, min_value=1, max_value=MAX_K)
    recommendation_id = serializers.UUIDField(
        required=False,
        help_text="the next page of this list: its next items, none it or its earlier pages served",
    )
    device = CleanCharField(required=False, max_length=50)
    page = CleanCharField(required=False, max_length=200)

    def validate(self, attrs):
        low, high = attrs.get("price_min"), attrs.get("price_max")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"price_min": ["must not exceed price_max"]})
        if attrs.get("q"):
            check_explained_k(attrs["k"], f"leave out q and pass explain=false for up to {MAX_K}")
        elif attrs["explain"]:
            check_explained_k(attrs["k"], f"pass explain=false for up to {MAX_K}")
        return attrs


# One serializer of each input class per thread (``validated_input``).
_input_serializers = threading.local()


def validated_input(serializer_class: type[serializers.Serializer], data) -> dict:
    """``serializer_class(data=data)``'s validated data, or a 400 (``ValidationError``) with
    each field's reason, as ``is_valid(raise_exception=True)`` gives; for serializers that
    only read input (no instance, no context): a query string, an event.

    DRF deep-copies every declared field for each new serializer, which re-runs each
    field's ``__init__``: 0.5 ms of a kept list's ~6 ms for the recommendation query's 19
    fields (measured with py-spy on a gunicorn worker). Such a serializer keeps nothing
    between two validations but their results, so each thread keeps one serializer of
    each class, with its bound fields, and clears those results before the next."""
    kept = _input_serializers.__dict__
    serializer = kept.get(serializer_class)
    if serializer is None:
        serializer = kept[serializer_class] = serializer_class(data=data)
    else:
        serializer.initial_data = data
        for name in ("_validated_data", "_errors", "_data"):
            serializer.__dict__.pop(name, None)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class SearchQuerySerializer(RuleFields, StrictSerializer):
    scenario = _scenario_field()
    q = CleanCharField(min_length=1, max_length=500)
    user = CleanCharField(required=False, min_length=1, max_length=200)
    k = _k_field()
    category = CleanCharField(required=False, min_length=1, max_length=200)
    lang = serializers.ChoiceField(choices=explain.LANGUAGES, required=False)

    def validate(self, attrs):
        check_explained_k(attrs["k"], "search results are always explained")
        return attrs


class SimilarQuerySerializer(RuleFields, StrictSerializer):
    scenario = _scenario_field()
    k = _k_field()
    lang = serializers.ChoiceField(choices=explain.LANGUAGES, required=False)

    def validate(self, attrs):
        check_explained_k(attrs["k"], "similar items are always explained")
        return attrs


class SessionRecommendationSerializer(RuleFields, StrictSerializer):
    """Body of ``POST recommendations``: recommendations for an anonymous session."""

    scenario = _scenario_field()
    positive = serializers.ListField(
        child=CleanCharField(max_length=200), required=False, default=list, max_length=100
    )
    negative = serializers.ListField(
        child=CleanCharField(max_length=200), required=False, default=list, max_length=100
    )
    text = CleanCharField(required=False, allow_blank=True, max_length=500)
    user = CleanCharField(required=False, min_length=1, max_length=200)
    k = _k_field()
    category = CleanCharField(required=False, min_length=1, max_length=200)
    diversity = FiniteFloatField(min_value=0.0, max_value=1.0, default=0.0)
    lang = serializers.ChoiceField(choices=explain.LANGUAGES, required=False)

    def validate(self, attrs):
        if not (attrs.get("positive") or attrs.get("negative") or attrs.get("text")):
            raise serializers.ValidationError(
                {"positive": ["give positive or negative item ids, or a text"]}
            )
        check_explained_k(attrs["k"], "session recommendations are always explained")
        return attrs


class ReasonEvidenceSerializer(serializers.Serializer):
    anchor = serializers.CharField(
        allow_null=True, help_text="the external id of the item the reason names (null: none)"
    )
    similarity = serializers.FloatField(
        allow_null=True, help_text="the item's cosine to the anchor (similarity reasons)"
    )
    cooccurrence = serializers.IntegerField(
        allow_null=True,
        help_text="the number of shoppers behind the co-occurrence (co_occurrence reasons)",
    )


class ReasonSerializer(serializers.Serializer):
    type = serializers.CharField()
    text = serializers.CharField()
    keywords = serializers.ListField(child=serializers.CharField())
    evidence = ReasonEvidenceSerializer(
        help_text="what a reason naming an item rests on (all null for other reasons)"
    )


class PublicAttributesField(serializers.DictField):
    """An item's attributes as a list shows them (:func:`public_attributes`)."""

    def to_representation(self, value):
        return super().to_representation(public_attributes(value))


class RecommendedItemSerializer(serializers.Serializer):
    id = serializers.CharField(source="item.external_id")
    title = serializers.CharField(source="item.title")
    category = serializers.CharField(source="item.category")
    attributes = PublicAttributesField(source="item.attributes")
    score = serializers.FloatField()
    sources = serializers.ListField(child=serializers.CharField())
    reason = ReasonSerializer(allow_null=True)
    blurb = serializers.CharField(allow_null=True)
    promotion = serializers.CharField(
        allow_null=True, help_text="the promotion whose slot this item fills (null: none)"
    )


class RecommendationListSerializer(serializers.Serializer):
    user = serializers.CharField(allow_null=True)
    lang = serializers.CharField()
    scenario = serializers.CharField(
        allow_null=True, help_text="the scenario that served the list (null: none)"
    )
    recommendation_id = serializers.CharField(
        allow_null=True,
        help_text="this list's id: send it with the events it leads to (null: logging off)",
    )
    items = RecommendedItemSerializer(many=True)


def recommendation_list_data(
    results,
    user: str | None,
    lang: str,
    scenario: str | None = None,
    recommendation_id: str | None = None,
) -> dict:
    """What ``RecommendationListSerializer(...).data`` gives, built directly: every list the
    API serves goes through here, and DRF's field machinery costs ~1 ms per list of 10."""
    return {
        "user": user,
        "lang": lang,
        "scenario": scenario,
        "recommendation_id": recommendation_id,
        "items": [shown.item_data(result, lang) for result in results],
    }


class TokenRequestSerializer(StrictSerializer):
    """Body of ``POST tokens``: the shopper (your site's user id) the token speaks for."""

    user = ExternalIdField(min_length=1)
    create = serializers.BooleanField(
        default=True, help_text="create the user if unknown (recommendations need one)"
    )


class BehaviourListQuerySerializer(serializers.Serializer):
    user = CleanCharField(min_length=1, max_length=200)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    offset = serializers.IntegerField(required=False, min_value=0)
