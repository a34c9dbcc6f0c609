"""API views: read the request, call one domain function, serialise the result."""

from __future__ import annotations

from dataclasses import replace

from django.db import IntegrityError, transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from recommender import dbroute, health, sharedcache, shopper_tokens, spaces
from recommender.api import serializers as s
from recommender.ingest import events, privacy
from recommender.ingest.fields import ImportFailed, Row
from recommender.ingest.items import import_items
from recommender.learning import experiment_results, online_metrics
from recommender.models import Behaviour, EndUser, Experiment, Item
from recommender.serving import (
    business,
    experiments,
    explain,
    list_cache,
    pipeline,
    scenarios,
    served_lists,
    shown,
)
from recommender.spaces import vector_io


def _lang(request, value: str | None) -> str:
    return explain.pick_language(value, request.headers.get("Accept-Language"))


def _item_pks(external_ids: list[str], field: str) -> list[int]:
    found = dict(Item.objects.filter(external_id__in=external_ids).values_list("external_id", "pk"))
    missing = [external_id for external_id in external_ids if external_id not in found]
    if missing:
        raise ValidationError({field: [f"unknown item {missing[0]!r}"]})
    return [found[external_id] for external_id in external_ids]


def _list_response(
    results,
    user: EndUser | None,
    lang: str,
    scenario,
    *,
    endpoint: str,
    context=None,
    earlier: frozenset[int] = frozenset(),
    variant: str = "",
) -> Response:
    """The list as JSON, logged (``recommendation_id``) for the online loop."""
    name = scenario.name if scenario else None
    recommendation_id = served_lists.record(
        results,
        endpoint=endpoint,
        user=user,
        scenario=name or "",
        variant=variant,
        context=context,
        earlier=earlier,
    )
    external_id = user.external_id if user else None
    return Response(s.recommendation_list_data(results, external_id, lang, name, recommendation_id))


def _kept_response(request, found, user: EndUser, lang: str, scenario) -> HttpResponse:
    """A kept list's answer (``list_cache.serve``, which logged it): its items as they
    were rendered when it was kept, put into the response as they are when the caller
    takes plain JSON (the renderer's own encoding, ``shown.to_json``), else built again."""
    name = scenario.name if scenario else None
    renderer = request.accepted_renderer
    plain = type(renderer) is JSONRenderer and "indent" not in request.accepted_media_type
    if found.items_json is not None and plain:
        head = {
            "user": user.external_id,
            "lang": lang,
            "scenario": name,
            "recommendation_id": found.recommendation_id,
        }
        body = shown.to_json(head)[:-1] + b',"items":' + found.items_json + b"}"
        return HttpResponse(body, content_type=renderer.media_type)
    return Response(
        s.recommendation_list_data(
            found.results(), user.external_id, lang, name, found.recommendation_id
        )
    )


def _scenario(name: str | None):
    """The scenario a request names (or the default one); 400 for an unknown name."""
    try:
        return scenarios.resolve(name)
    except scenarios.UnknownScenario as exc:
        raise ValidationError({"scenario": [str(exc)]}) from None


def _reads_ahead(view):
    """A list endpoint (of a ``ReadsAhead`` view): the small keys every list reads from the
    shared cache (versions and stamps) come in one round trip, the throttle's
    (``sharedcache.read_ahead``)."""
    view.reads_ahead = True
    return view


class ReadsAhead:
    """A view with list endpoints (``_reads_ahead``): their read ahead spans the whole
    request, so that the throttle, which runs before the endpoint, reads it along."""

    def dispatch(self, request, *args, **kwargs):
        handler = getattr(self, request.method.lower(), None)
        if not getattr(handler, "reads_ahead", False):
            return super().dispatch(request, *args, **kwargs)
        with sharedcache.read_ahead():
            return super().dispatch(request, *args, **kwargs)


def _served(serve, *args, **kwargs):
    """``serve(*args)``; a rule that cannot bind to this request (a ``$parameter`` not
    given, a user attribute of the wrong type) is the caller's 400, not a 500."""
    try:
        return serve(*args, **kwargs)
    except business.RuleFailure as exc:
        raise ValidationError({exc.field: [exc.message]}) from None


def _given(data) -> set[str]:
    """The parameters a caller gave explicitly (a scenario fills only the others)."""
    return set(data.keys()) if hasattr(data, "keys") else set()


class HealthSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    database = serializers.CharField()
    broker = serializers.CharField()
    counts = serializers.DictField(child=serializers.IntegerField())
    active_space = serializers.DictField(allow_null=True)
    worker_last_seen = serializers.DateTimeField(allow_null=True)


class LivenessSerializer(serializers.Serializer):
    ok = serializers.BooleanField()


class HealthView(APIView):
    """Liveness: whether this process reaches its database (200 or 503). Open to anyone
    (load balancers, uptime probes), throttled per address, and it discloses nothing."""

    authentication_classes = []
    permission_classes = []
    throttle_scope = "health"

    @extend_schema(responses={200: LivenessSerializer, 503: LivenessSerializer})
    def get(self, request):
        if health.live():
            return Response({"ok": True})
        return Response({"ok": False}, status=503, headers={"Retry-After": "5"})


class HealthDetailView(APIView):
    """Database, broker and workers; the active space and its coverage; table sizes.
    Needs a read key or a staff login; cached for a few seconds."""

    throttle_scope = "health"

    @extend_schema(responses=HealthSerializer)
    def get(self, request):
        report = health.cached_check()
        return Response(HealthSerializer(report).data, status=200 if report.ok else 503)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    user = serializers.CharField()
    expires_in = serializers.IntegerField()


class TokenView(APIView):
    """Issue a shopper token (for your site's backend, with a write key): the browser
    sends it as ``Authorization: Shopper <token>`` and may then read only this shopper's
    recommendations and search, and post only this shopper's events."""

    required_scopes = {"post": "write"}
    throttle_scope = "tokens"

    @extend_schema(
        request=s.TokenRequestSerializer,
        responses={201: TokenSerializer, 410: OpenApiTypes.OBJECT},
    )
    def post(self, request):
        data = s.TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = data.validated_data["user"]
        if privacy.recently_forgotten([user]):
            # As for events: a forgotten user comes back only through POST users.
            return Response(
                {"detail": "this user was forgotten; create them again with POST users"},
                status=status.HTTP_410_GONE,
            )
        if data.validated_data["create"]:
            EndUser.objects.get_or_create(external_id=user)
        return Response(
            {
                "token": shopper_tokens.issue(user),
                "user": user,
                "expires_in": shopper_tokens.ttl_seconds(),
            },
            status=status.HTTP_201_CREATED,
        )


class ConflictSafeCreate:
    """A create that loses a race to a concurrent one answers 400, not 500."""

    def perform_create(self, serializer):
        try:
            with transaction.atomic():
                serializer.save()
        except IntegrityError:
            raise ValidationError({"id": ["already exists"]}) from None


class ItemViewSet(ReadsAhead, ConflictSafeCreate, viewsets.ModelViewSet):
    """The catalogue. Ids in URLs are the site's own item ids (external ids)."""

    queryset = Item.objects.order_by("pk")
    serializer_class = s.ItemSerializer
    lookup_field = "external_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"

    # Withdrawing an item from the catalogue is an admin action; a write key may not.
    required_scopes = {"destroy": "admin"}
    throttle_scopes = {"similar": "recommendations", "bulk": "bulk", "destroy": "admin"}
    # A shopper's page may show an item and the items like it.
    shopper_access = {"retrieve": "any", "similar": "any"}

    def perform_destroy(self, instance):
        """``DELETE`` withdraws the item (``is_active=False``): users' behaviour history
        with it is training and evaluation data, and is never erased."""
        Item.objects.filter(pk=instance.pk).update(is_active=False)

    @extend_schema(
        request=s.BulkItemsSerializer,
        responses=inline_serializer(
            "BulkItemsResult",
            {"created": serializers.IntegerField(), "updated": serializers.IntegerField()},
        ),
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        """Upsert up to 1,000 items by id, all or nothing. An existing item gets only the
        fields given (the rest stay as they are); a new item needs a title."""
        data = s.BulkItemsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rows = [
            Row(f"items[{index}]", record)
            for index, record in enumerate(data.validated_data["items"])
        ]
        try:
            report = import_items(rows)
        except ImportFailed as exc:  # the same id twice, a new item without title
            field = {"external_id": "id"}.get(exc.column, exc.column)
            message = f"{exc.where}: {field}: {exc.message}" if field else str(exc)
            raise ValidationError({"items": [message]}) from None
        from recommender.tasks import enqueue_item_embeddings

        ids = list(
            Item.objects.filter(
                external_id__in=[r.values["external_id"] for r in rows]
            ).values_list("pk", flat=True)
        )
        transaction.on_commit(lambda: enqueue_item_embeddings(ids))
        return Response({"created": report.created, "updated": report.updated})

    @extend_schema(parameters=[s.SimilarQuerySerializer], responses=s.RecommendationListSerializer)
    @action(detail=True, methods=["get"])
    @_reads_ahead
    def similar(self, request, id=None):
        """Items similar to this one (nearest in the active space, and co-occurrence)."""
        item = self.get_object()
        p = s.validated_input(s.SimilarQuerySerializer, request.query_params.dict())
        lang = _lang(request, p.get("lang"))
        scenario = _scenario(p.get("scenario"))
        config, variant = experiments.assign(scenario, None)
        k = p["k"]
        if config is not None and config.k and "k" not in request.query_params:
            k = min(config.k, s.max_k_explained())
        context = {"item": item.external_id}
        wanted = pipeline.RecommendationRequest(
            k=k, lang=lang, context=context, **s.rule_request(p)
        )
        wanted = scenarios.apply(config, wanted, {"k"})
        results = _served(pipeline.similar_items, item, k, lang=lang, request=wanted)
        return _list_response(
            results, None, lang, scenario, endpoint="similar", context=context, variant=variant
        )


def _user_named(external_id: str, *, profile_space: int | None = None) -> EndUser | None:
    """The user with this external id, read with one precomposed statement (routed as the
    ORM's reads are): the ORM's query building cost a cached list's answer more than the
    query itself. With ``profile_space``, the same statement reads what the list cache
    keys a list by (``list_cache.profile_row``): the user's stored profile row there.

    Read in binary (``vector_io.fetch``): Django's text loader of ``timestamptz`` is Python,
    and its two times were a tenth of a kept list's answer (py-spy, in process)."""
    fields = EndUser._meta.concrete_fields
    table = EndUser._meta.db_table
    columns = ", ".join(f"u.{f.column}" for f in fields)
    params: list = [external_id]
    if profile_space is not None:
        columns += ", " + list_cache.PROFILE_COLUMNS
        joined = f"{table} u LEFT JOIN {list_cache.PROFILE_TABLE} p ON {list_cache.PROFILE_JOIN}"
        params.insert(0, profile_space)
    else:
        joined = f"{table} u"
    db = dbroute.read_connection()
    rows = vector_io.fetch(
        f"SELECT {columns} FROM {joined} WHERE u.external_id = %s", params, using=db
    )
    if not rows:
        return None
    row = rows[0]
    # Binary values are already Python's (the attributes' JSON decoded), as ``from_db`` takes.
    user = EndUser.from_db(db.alias, [f.attname for f in fields], list(row[: len(fields)]))
    if profile_space is not None:
        list_cache.read_with(user, profile_space, row[len(fields) :])
    return user


class UserViewSet(ReadsAhead, ConflictSafeCreate, viewsets.ModelViewSet):
    """End users of the site. ``DELETE`` forgets the user and everything naming them."""

    queryset = EndUser.objects.order_by("pk")
    serializer_class = s.EndUserSerializer
    lookup_field = "external_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"

    # Privacy operations on a person's data need an admin key (or a staff session).
    required_scopes = {"destroy": "admin", "export": "admin"}
    throttle_scopes = {"recommendations": "recommendations", "destroy": "admin", "export": "admin"}
    shopper_access = {"retrieve": "url", "recommendations": "url"}

    def get_object(self):
        """The user the URL names (``_user_named``; for a list the list cache keys, with
        their profile row in the serving space), then the object permissions, as DRF's
        ``get_object`` does."""
        profile_space = None
        if self.action == "recommendations" and list_cache.enabled():
            space = spaces.serving_space()
            profile_space = space.pk if space is not None else None
        user = _user_named(self.kwargs[self.lookup_url_kwarg], profile_space=profile_space)
        if user is None:
            raise Http404("No EndUser matches the given query.")
        self.check_object_permissions(self.request, user)
        return user

    def perform_create(self, serializer):
        super().perform_create(serializer)
        # Registering an id on purpose lifts its tombstone: events may recreate it again.
        privacy.clear_tombstone(serializer.instance.external_id)

    @extend_schema(
        responses={
            204: OpenApiResponse(description="the user and everything naming them are gone"),
            202: inline_serializer(
                "ForgetQueued", {"status": serializers.ChoiceField(choices=["queued"])}
            ),
        }
    )
    def destroy(self, request, *args, **kwargs):
        """Forget the user: delete them and every row naming them. A long history is
        deleted by a background task (202); events for the id are refused meanwhile and
        for a grace period after."""
        outcome = privacy.forget(self.get_object())
        if outcome.queued:
            return Response({"status": "queued"}, status=status.HTTP_202_ACCEPTED)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def export(self, request, id=None):
        """Everything stored about this user."""
        return Response(privacy.export_user(self.get_object()))

    @extend_schema(
        parameters=[s.RecommendationQuerySerializer],
        responses=s.RecommendationListSerializer,
        examples=[
            OpenApiExample(
                "An explained list",
                response_only=True,
                value={
                    "user": "u-0001",
                    "lang": "zh",
                    "items": [
                        {
                            "id": "sku-00005",
                            "title": "高性价比男士夹克外套",
                            "category": "clothing",
                            "attributes": {"price": 309.9, "brand": "Linmu"},
                            "score": 1.28,
                            "sources": ["keyword", "popular", "query"],
                            "reason": {
                                "type": "intent",
                                "text": (
                                    "与你的搜索“我最近在找一件外套,性价比高且质量好的”相关："
                                    "性价比、外套"
                                ),
                                "keywords": ["性价比", "外套"],
                            },
                            "blurb": (
                                "这款Linmu 高性价比男士夹克外套主打做工、薄棉，¥309.90，"
                                "符合你想要的性价比。"
                            ),
                        }
                    ],
                },
            )
        ],
    )
    @action(detail=True, methods=["get"])
    @_reads_ahead
    def recommendations(self, request, id=None):
        """A ranked, diverse, explained list for this user (free-text intent in ``q``)."""
        user = self.get_object()
        p = s.validated_input(s.RecommendationQuerySerializer, request.query_params.dict())
        lang = _lang(request, p.get("lang"))
        ranges = {}
        if p.get("price_min") is not None or p.get("price_max") is not None:
            ranges["price"] = (p.get("price_min"), p.get("price_max"))
        scenario = _scenario(p.get("scenario"))
        config, variant = experiments.assign(scenario, user)
        wanted = pipeline.RecommendationRequest(
            user=user,
            k=p["k"],
            category=p.get("category"),
            attribute_ranges=ranges,
            diversity=p["diversity"],
            exclude_seen=p["exclude_seen"],
            query=p.get("q") or None,
            lang=lang,
            explain=p["explain"],
            category_cap=p.get("category_cap"),
            context={key: p[key] for key in ("device", "page") if key in p},
            **s.rule_request(p),
        )
        capped = s.max_k_explained() if p["explain"] or p.get("q") else None
        wanted = scenarios.apply(config, wanted, _given(request.query_params), max_k=capped)
        earlier: frozenset[int] = frozenset()
        if p.get("recommendation_id"):  # the next page of a list
            try:
                earlier = served_lists.served_in(p["recommendation_id"].hex)
            except served_lists.UnknownList as exc:
                raise ValidationError({"recommendation_id": [str(exc)]}) from None
            wanted = replace(wanted, exclude=earlier)
            wanted.context["continues"] = p["recommendation_id"].hex
        name = scenario.name if scenario else ""
        kept_as, token = None, None
        if list_cache.enabled():
            kept_as = list_cache.key(wanted, scenario=name, variant=variant)
            log = served_lists.to_log(
                endpoint="recommendations",
                user=user,
                scenario=name,
                variant=variant,
                context=wanted.context,
                earlier=earlier,
            )
            found = list_cache.serve(kept_as, log)
            if found.kept:
                list_cache.served_again(user)
                return _kept_response(request, found, user, lang, scenario)
            token = found.token
        started = timezone.now()
        results = _served(pipeline.recommend, wanted)
        if kept_as is not None:
            list_cache.put(kept_as, results, token, wanted.lang, request=wanted, since=started)
            list_cache.remember(wanted, scenario=name, variant=variant, token=token)
        return _list_response(
            results,
            user,
            lang,
            scenario,
            endpoint="recommendations",
            context=wanted.context,
            earlier=earlier,
            variant=variant,
        )


_DETAIL = inline_serializer("Detail", {"detail": serializers.CharField()})


class BehaviourViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Behaviour events: post one or a batch; list a user's events."""

    serializer_class = s.BehaviourSerializer
    required_scopes = {"create": "events", "batch": "events"}
    throttle_scopes = {"create": "events", "batch": "batch"}
    # A shopper may post their own events (one, or a batch: a page's impressions) and read
    # their own history.
    shopper_access = {"create": "body", "batch": "events", "list": "query"}

    def get_queryset(self):
        return Behaviour.objects.select_related("user", "item").order_by("-occurred_at", "-pk")

    @extend_schema(parameters=[s.BehaviourListQuerySerializer])
    def list(self, request, *args, **kwargs):
        params = s.BehaviourListQuerySerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        user = get_object_or_404(EndUser, external_id=params.validated_data["user"])
        queryset = self.get_queryset().filter(user=user)
        page = self.paginate_queryset(queryset)
        if page is None:
            return Response(s.BehaviourSerializer(queryset, many=True).data)
        return self.get_paginated_response(s.BehaviourSerializer(page, many=True).data)

    @extend_schema(
        request=s.BehaviourInputSerializer,
        responses={
            201: s.RecordedSerializer,
            200: s.RecordedSerializer,
            409: OpenApiResponse(
                _DETAIL, description="the user used this event_id for a different event"
            ),
            410: OpenApiResponse(_DETAIL, description="the user was recently forgotten"),
        },
        examples=[
            OpenApiExample(
                "A like",
                value={
                    "user": "u-0001",
                    "item": "sku-00001",
                    "kind": "like",
                    "event_id": "app-7f3a",
                },
                request_only=True,
            ),
            OpenApiExample(
                "A search (no item)",
                value={
                    "user": "u-0001",
                    "kind": "search",
                    "text": "我最近在找一件外套，性价比高且质量好的",
                },
                request_only=True,
            ),
            OpenApiExample(
                "A rating",
                value={"user": "u-0001", "item": "sku-00045", "kind": "rating", "value": 4.5},
                request_only=True,
            ),
        ],
    )
    def create(self, request, *args, **kwargs):
        """Record one event (idempotent per user by ``event_id``); the profile updates at
        once. A repeat answers 200 with the stored event, or 409 if its payload differs."""
        data = s.validated_input(s.BehaviourInputSerializer, request.data)
        try:
            recorded = events.record_event(events.EventInput(**data))
        except events.UnknownItem as exc:
            raise ValidationError({"item": [str(exc)]}) from None
        except events.EventConflict as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except events.UserForgotten as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_410_GONE)
        code = status.HTTP_201_CREATED if recorded.created else status.HTTP_200_OK
        return Response(s.recorded_data(recorded), status=code)

    @extend_schema(
        request=s.BehaviourBatchSerializer,
        responses={
            201: s.BatchResultSerializer,
            409: OpenApiResponse(
                inline_serializer(
                    "BatchConflict",
                    {"detail": serializers.CharField(), "index": serializers.IntegerField()},
                ),
                description="a user's event_id was used for a different event (at index)",
            ),
        },
    )
    @action(detail=False, methods=["post"])
    def batch(self, request):
        """Record up to 5,000 events, all or nothing; a repeated (user, event_id) counts
        once, events of recently forgotten users are skipped."""
        data = s.validated_input(s.BehaviourBatchSerializer, request.data)
        batch = [events.EventInput(**event) for event in data["events"]]
        try:
            result = events.record_events(batch)
        except events.UnknownItem as exc:
            raise ValidationError({"events": {exc.index: {"item": [str(exc)]}}}) from None
        except events.EventConflict as exc:
            return Response(
                {"detail": str(exc), "index": exc.index}, status=status.HTTP_409_CONFLICT
            )
        return Response(s.BatchResultSerializer(result).data, status=status.HTTP_201_CREATED)


class SearchView(ReadsAhead, APIView):
    """Personalised search: items matching ``q``, the user's taste breaking ties."""

    throttle_scope = "recommendations"
    shopper_access = {"get": "query?"}

    @extend_schema(parameters=[s.SearchQuerySerializer], responses=s.RecommendationListSerializer)
    @_reads_ahead
    def get(self, request):
        p = s.validated_input(s.SearchQuerySerializer, request.query_params.dict())
        user = None
        if p.get("user"):
            user = get_object_or_404(EndUser, external_id=p["user"])
        lang = _lang(request, p.get("lang"))
        scenario = _scenario(p.get("scenario"))
        config, variant = experiments.assign(scenario, user)
        wanted = pipeline.search_request(
            p["q"], user, p["k"], lang, category=p.get("category"), **s.rule_request(p)
        )
        wanted = scenarios.apply(
            config, wanted, _given(request.query_params), max_k=s.max_k_explained()
        )
        results = _served(pipeline.recommend, wanted)
        return _list_response(results, user, lang, scenario, endpoint="search", variant=variant)


class SessionRecommendationView(ReadsAhead, APIView):
    """Recommendations for an anonymous session from liked/disliked items and a text."""

    required_scopes = {"post": "read"}  # it reads; it stores nothing
    throttle_scope = "recommendations"
    shopper_access = {"post": "body?"}

    @extend_schema(
        request=s.SessionRecommendationSerializer, responses=s.RecommendationListSerializer
    )
    @_reads_ahead
    def post(self, request):
        p = s.validated_input(s.SessionRecommendationSerializer, request.data)
        user = None
        if p.get("user"):
            user = get_object_or_404(EndUser, external_id=p["user"])
        lang = _lang(request, p.get("lang"))
        scenario = _scenario(p.get("scenario"))
        config, variant = experiments.assign(scenario, user)
        wanted = pipeline.RecommendationRequest(
            user=user,
            k=p["k"],
            category=p.get("category"),
            diversity=p["diversity"],
            query=p.get("text") or None,
            lang=lang,
            positive=_item_pks(p["positive"], "positive"),
            negative=_item_pks(p["negative"], "negative"),
            **s.rule_request(p),
        )
        wanted = scenarios.apply(config, wanted, _given(request.data), max_k=s.max_k_explained())
        results = _served(pipeline.recommend, wanted)
        return _list_response(results, user, lang, scenario, endpoint="session", variant=variant)


class RateSerializer(serializers.Serializer):
    value = serializers.FloatField()
    low = serializers.FloatField(help_text="95% Wilson interval")
    high = serializers.FloatField()


class ScenarioDaySerializer(serializers.Serializer):
    scenario = serializers.CharField(help_text='"" for lists served without a scenario')
    day = serializers.DateField()
    lists = serializers.IntegerField()
    shown = serializers.IntegerField(help_text="items in the lists served")
    impressions = serializers.IntegerField()
    clicks = serializers.IntegerField()
    carts = serializers.IntegerField()
    purchases = serializers.IntegerField()
    ctr = RateSerializer(help_text="clicks per impression (per item shown without impressions)")
    conversion = RateSerializer(help_text="purchases per click")


class MetricsQuerySerializer(s.StrictSerializer):
    days = serializers.IntegerField(
        min_value=1, max_value=366, default=14, help_text="lists served in the last days"
    )
    scenario = serializers.SlugField(
        required=False,
        allow_blank=True,  # scenario= with no value: as if not given
        max_length=64,
        help_text="only the lists of this scenario; without it every scenario",
    )


def _online_breakdown(request, breakdown, serializer) -> Response:
    """A breakdown of ``online_metrics`` over the query's window and scenario."""
    params = MetricsQuerySerializer(data=request.query_params.dict())
    params.is_valid(raise_exception=True)
    found = breakdown(
        params.validated_data["days"], scenario=params.validated_data.get("scenario") or None
    )
    return Response(serializer(found, many=True).data)


class ScenarioMetricsView(APIView):
    """Online metrics per scenario and day, from the served lists and the events that
    name them (admin key or staff)."""

    required_scopes = {"get": "admin"}
    throttle_scope = "admin"

    @extend_schema(parameters=[MetricsQuerySerializer], responses=ScenarioDaySerializer(many=True))
    def get(self, request):
        return _online_breakdown(request, online_metrics.scenario_days, ScenarioDaySerializer)


_SHOWN_HELP = "items shown (in the lists served)"
_CTR_HELP = "clicks per impression (per item shown without impressions)"


class VariantMetricsSerializer(serializers.Serializer):
    scenario = serializers.CharField(help_text='"" for lists served without a scenario')
    variant = serializers.CharField(help_text='"" for lists served outside an experiment')
    lists = serializers.IntegerField()
    shown = serializers.IntegerField(help_text=_SHOWN_HELP)
    impressions = serializers.IntegerField()
    clicks = serializers.IntegerField()
    carts = serializers.IntegerField()
    purchases = serializers.IntegerField()
    ctr = RateSerializer(help_text=_CTR_HELP)
    conversion = RateSerializer(help_text="purchases per click")


class VariantMetricsView(APIView):
    """Online metrics per scenario and variant (admin key or staff)."""

    required_scopes = {"get": "admin"}
    throttle_scope = "admin"

    @extend_schema(
        parameters=[MetricsQuerySerializer], responses=VariantMetricsSerializer(many=True)
    )
    def get(self, request):
        return _online_breakdown(request, online_metrics.variants, VariantMetricsSerializer)


class SourceMetricsSerializer(serializers.Serializer):
    source = serializers.CharField(help_text='a candidate source; "" for items without one')
    shown = serializers.IntegerField(help_text=_SHOWN_HELP)
    impressions = serializers.IntegerField()
    clicks = serializers.IntegerField()
    carts = serializers.IntegerField()
    purchases = serializers.IntegerField()
    ctr = RateSerializer(help_text=_CTR_HELP)
    conversion = RateSerializer(help_text="purchases per click")


class SourceMetricsView(APIView):
    """Online metrics per candidate source: an event counts for every source of the item
    it names, so an item two sources proposed counts for both (admin key or staff)."""

    required_scopes = {"get": "admin"}
    throttle_scope = "admin"

    @extend_schema(
        parameters=[MetricsQuerySerializer], responses=SourceMetricsSerializer(many=True)
    )
    def get(self, request):
        return _online_breakdown(request, online_metrics.sources, SourceMetricsSerializer)


class PositionMetricsSerializer(serializers.Serializer):
    position = serializers.IntegerField(help_text="1-based position in the list")
    shown = serializers.IntegerField(help_text="lists with an item at this position")
    impressions = serializers.IntegerField()
    clicks = serializers.IntegerField()
    carts = serializers.IntegerField()
    purchases = serializers.IntegerField()
    ctr = RateSerializer(help_text=_CTR_HELP)


class PositionMetricsView(APIView):
    """The position curve: per position 1..N, items shown, impressions, clicks and CTR
    (admin key or staff)."""

    required_scopes = {"get": "admin"}
    throttle_scope = "admin"

    @extend_schema(
        parameters=[MetricsQuerySerializer], responses=PositionMetricsSerializer(many=True)
    )
    def get(self, request):
        return _online_breakdown(request, online_metrics.position_curve, PositionMetricsSerializer)


class CoverageMetricsSerializer(serializers.Serializer):
    scenario = serializers.CharField(help_text='"" for lists served without a scenario')
    lists = serializers.IntegerField()
    items_shown = serializers.IntegerField(help_text="distinct items shown, active or not")
    active_items_shown = serializers.IntegerField(help_text="of them, the active ones")
    active_items = serializers.IntegerField(help_text="active items in the catalogue")
    coverage = serializers.FloatField(help_text="active_items_shown / active_items")


class CoverageMetricsView(APIView):
    """Per scenario, the distinct items its lists showed against the active catalogue
    (admin key or staff)."""

    required_scopes = {"get": "admin"}
    throttle_scope = "admin"

    @extend_schema(
        parameters=[MetricsQuerySerializer], responses=CoverageMetricsSerializer(many=True)
    )
    def get(self, request):
        return _online_breakdown(request, online_metrics.coverage, CoverageMetricsSerializer)


class VariantResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    share = serializers.IntegerField()
    lists = serializers.IntegerField()
    impressions = serializers.IntegerField()
    clicks = serializers.IntegerField()
    purchases = serializers.IntegerField()
    revenue = serializers.FloatField()
    ctr = RateSerializer()
    conversion = RateSerializer()
    revenue_per_mille = serializers.FloatField(help_text="revenue per 1000 impressions")
    p_value_vs_control = serializers.FloatField(
        allow_null=True, help_text="two-proportion z-test of CTR against the control"
    )


class ExperimentResultsSerializer(serializers.Serializer):
    experiment = serializers.CharField()
    scenario = serializers.CharField()
    variants = VariantResultSerializer(many=True)
    srm_p_value = serializers.FloatField(allow_null=True)
    sample_ratio_mismatch = serializers.BooleanField()


class ExperimentMetricsView(APIView):
    """An experiment's results per variant, with significance and a sample-ratio check
    (admin key or staff)."""

    required_scopes = {"get": "admin"}
    throttle_scope = "admin"

    @extend_schema(responses=ExperimentResultsSerializer)
    def get(self, request, name: str):
        experiment = get_object_or_404(Experiment, name=name)
        return Response(ExperimentResultsSerializer(experiment_results.results(experiment)).data)
