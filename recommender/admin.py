"""Catalogue management for operators: items, end users with their timelines, behaviours."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from recommender import apikeys, spaces
from recommender.ingest import limits, privacy
from recommender.learning import experiment_results
from recommender.models import (
    ApiKey,
    Behaviour,
    CooccurrenceRefresh,
    EncoderSpace,
    EndUser,
    EvaluationRun,
    Experiment,
    Item,
    ItemAttribute,
    Promotion,
    Scenario,
    ServedList,
    Variant,
)
from recommender.serving import business, experiments, pipeline, scenarios


def _checked(check, value, **kwargs):
    """``check(value)``, with a refusal shown on the form field (``limits``' reason)."""
    try:
        return check(value, **kwargs)
    except limits.InvalidValue as exc:
        raise ValidationError(str(exc) if exc.path else exc.reason) from None


class ItemAdminForm(forms.ModelForm):
    """The item form checks ids, attributes and translations as the API and the importers
    do."""

    class Meta:
        model = Item
        fields = [
            "external_id",
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
        ]

    def clean_external_id(self):
        return _checked(limits.check_external_id, self.cleaned_data["external_id"])

    def clean_translations(self):
        # An emptied field is no translations, not a JSON null.
        return _checked(limits.check_translations, self.cleaned_data["translations"] or {})

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("available_from"), cleaned.get("available_until")
        if start and end and end <= start:
            self.add_error("available_until", _("must be later than “available from”"))
        return cleaned

    def clean_attributes(self):
        # An emptied field is no attributes, not a JSON null.
        return _checked(limits.check_attributes, self.cleaned_data["attributes"] or {})


class EndUserAdminForm(forms.ModelForm):
    """The user form checks the id and the attributes' size as the API does."""

    class Meta:
        model = EndUser
        fields = ["external_id", "attributes"]

    def clean_external_id(self):
        return _checked(limits.check_external_id, self.cleaned_data["external_id"])

    def clean_attributes(self):
        return _checked(
            limits.check_json,
            self.cleaned_data["attributes"] or {},
            limit=limits.max_attributes_bytes(),
            path="attributes",
        )


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    form = ItemAdminForm
    list_display = (
        "title", "external_id", "category", "is_active", "is_hidden", "available_until",
        "updated_at",
    )  # fmt: skip
    list_filter = ("is_active", "is_hidden", "category")
    search_fields = ("external_id", "title", "description", "category")
    readonly_fields = ("created_at", "updated_at")
    list_per_page = 50
    actions = ("activate", "deactivate", "reembed")

    def get_actions(self, request):
        # No bulk delete: an item leaves the catalogue by "deactivate"; its behaviour
        # history is training and evaluation data (Behaviour.item is PROTECT).
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description=_("Re-embed selected items in every maintained space"))
    def reembed(self, request, queryset):
        from recommender.tasks import embed_items

        ids = list(queryset.filter(is_active=True).values_list("pk", flat=True))
        for space in spaces.maintained_spaces():
            for start in range(0, len(ids), 256):
                embed_items.delay(space.pk, ids[start : start + 256], True)
        self.message_user(
            request,
            ngettext("%d item queued for embedding.", "%d items queued for embedding.", len(ids))
            % len(ids),
            messages.SUCCESS,
        )

    @admin.action(description=_("Activate selected items"))
    def activate(self, request, queryset):
        count = queryset.update(is_active=True)
        self.message_user(
            request,
            ngettext("%d item activated.", "%d items activated.", count) % count,
            messages.SUCCESS,
        )

    @admin.action(description=_("Deactivate selected items"))
    def deactivate(self, request, queryset):
        count = queryset.update(is_active=False)
        self.message_user(
            request,
            ngettext("%d item deactivated.", "%d items deactivated.", count) % count,
            messages.SUCCESS,
        )


class BehaviourTimeline(admin.TabularInline):
    """The user's most recent events, newest first, read-only."""

    model = Behaviour
    fields = ("occurred_at", "kind", "item", "value", "text")
    readonly_fields = fields
    ordering = ("-occurred_at",)
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = _("behaviour timeline")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("item")


@admin.register(EndUser)
class EndUserAdmin(admin.ModelAdmin):
    form = EndUserAdminForm
    list_display = ("external_id", "created_at")
    search_fields = ("external_id",)
    readonly_fields = ("created_at",)
    inlines = [BehaviourTimeline]

    # Deleting a user here is forgetting them, as DELETE users/{id} is: their events,
    # profiles and admin log entries go, and a tombstone stops in-flight events.
    def delete_model(self, request, obj):
        privacy.forget_user(obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            privacy.forget_user(user)


@admin.register(Behaviour)
class BehaviourAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "kind", "user", "item", "value", "short_text")
    list_filter = ("kind", "occurred_at")
    date_hierarchy = "occurred_at"
    search_fields = ("user__external_id", "item__external_id", "item__title", "text", "event_id")
    list_select_related = ("user", "item")
    raw_id_fields = ("user", "item")
    readonly_fields = ("created_at",)
    show_full_result_count = False

    @admin.display(description=_("text"))
    def short_text(self, obj: Behaviour) -> str:
        return obj.text[:60]


@admin.register(EncoderSpace)
class EncoderSpaceAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "plugin",
        "dim",
        "status",
        "is_active",
        "index_precision",
        "coverage_display",
        "stale_display",
    )
    # The index precision and graph change with `manage.py encoder_space reindex`, which
    # rebuilds the index before the fields say so.
    readonly_fields = (
        "dim",
        "status",
        "is_active",
        "index_precision",
        "index_m",
        "index_ef_construction",
        "created_at",
        "activated_at",
    )
    fields = ("name", "plugin", "options", "text_template") + readonly_fields
    actions = ("activate_space", "build")

    def get_readonly_fields(self, request, obj=None):
        # A space's model and text are fixed once it exists: change them by a new space.
        if obj is not None:
            return ("name", "plugin", "options", "text_template") + self.readonly_fields
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        created = spaces.create_space(
            obj.name, obj.plugin, obj.options, text_template=obj.text_template
        )
        obj.pk, obj.dim = created.pk, created.dim
        from recommender.tasks import build_space

        build_space.delay(created.pk)

    def _coverage(self, obj):
        if not hasattr(obj, "_coverage_cache"):
            obj._coverage_cache = spaces.coverage(obj)
        return obj._coverage_cache

    @admin.display(description=_("coverage"))
    def coverage_display(self, obj):
        cover = self._coverage(obj)
        return f"{cover.vectors}/{cover.active_items} ({cover.ratio:.0%})"

    @admin.display(description=_("stale"))
    def stale_display(self, obj):
        return self._coverage(obj).stale

    @admin.action(description=_("Activate the selected space"))
    def activate_space(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one space."), messages.ERROR)
            return
        space = queryset.get()
        try:
            spaces.activate_space(space)
        except ValidationError as exc:
            self.message_user(request, exc.messages[0], messages.ERROR)
            return
        self.message_user(request, _("%s is now the active space.") % space.name)

    @admin.action(description=_("Queue missing and stale vectors"))
    def build(self, request, queryset):
        from recommender.tasks import build_space

        for space in queryset:
            build_space.delay(space.pk)
        self.message_user(request, _("Build queued."), messages.SUCCESS)


@admin.register(CooccurrenceRefresh)
class CooccurrenceRefreshAdmin(admin.ModelAdmin):
    list_display = ("finished_at", "kind", "items", "rows", "seconds", "last_event_id")
    list_filter = ("kind",)

    def has_add_permission(self, request):
        return False  # refreshes come from the hourly task, `load_demo` and evaluation

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(EvaluationRun)
class EvaluationRunAdmin(admin.ModelAdmin):
    list_display = ("created_at", "protocol", "space", "cases", "ndcg_full", "ndcg_best_baseline")
    readonly_fields = (
        "created_at",
        "protocol",
        "space",
        "params",
        "cases",
        "metrics",
        "report_dir",
        "seconds",
    )

    def has_add_permission(self, request):
        return False  # runs come from `manage.py evaluate` or the beat schedule

    @admin.display(description=_("NDCG@10 (full)"))
    def ndcg_full(self, obj):
        values = obj.headline()
        best = max(
            (v for k, v in values.items() if k.startswith("full") and v is not None), default=None
        )
        return "—" if best is None else f"{best:.4f}"

    @admin.display(description=_("NDCG@10 (best baseline)"))
    def ndcg_best_baseline(self, obj):
        values = [v for k, v in obj.headline().items() if not k.startswith("full") and v]
        return "—" if not values else f"{max(values):.4f}"


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "scope", "is_active", "created_at", "last_used_at")
    list_filter = ("scope", "is_active")
    fields = ("name", "scope", "is_active", "prefix", "created_at", "last_used_at")
    readonly_fields = ("prefix", "created_at", "last_used_at")

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, plain = apikeys.create_key(obj.name, obj.scope)
        obj.pk, obj.prefix = key.pk, key.prefix
        self.message_user(
            request,
            _("API key created. Copy it now, it is not shown again: %s") % plain,
            messages.WARNING,
        )


class ScenarioAdminForm(forms.ModelForm):
    """A scenario's sources, weights and bounds are checked as serving will read them."""

    class Meta:
        model = Scenario
        fields = ["name", "description", "is_default", *experiments.CONFIG_FIELDS]

    def clean(self):
        cleaned = super().clean()
        # The base Meta's fields: the admin's subclass adds read-only ones (the preview).
        names = ScenarioAdminForm.Meta.fields
        candidate = Scenario(**{name: cleaned.get(name) for name in names})
        for field, reason in scenarios.problems(candidate).items():
            self.add_error(field, reason)
        return cleaned


class PromotionAdminForm(forms.ModelForm):
    class Meta:
        model = Promotion
        fields = ["name", "filter", "share", "is_active"]

    def clean(self):
        cleaned = super().clean()
        candidate = Promotion(**{name: cleaned.get(name) for name in self.Meta.fields})
        for field, reason in scenarios.promotion_problems(candidate).items():
            if field in cleaned or field in self.errors:
                self.add_error(field, reason)
        return cleaned


class PromotionInline(admin.TabularInline):
    model = Promotion
    form = PromotionAdminForm
    extra = 0


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    form = ScenarioAdminForm
    list_display = ("name", "is_default", "k", "sources", "use_learned_ranker", "updated_at")
    search_fields = ("name", "description")
    inlines = [PromotionInline]
    readonly_fields = ("preview_link",)

    @admin.display(description=_("preview"))
    def preview_link(self, obj):
        if obj is None or obj.pk is None:
            return _("save the scenario first")
        url = reverse("admin:recommender_scenario_preview", args=[obj.pk])
        return format_html(
            '<a class="button" href="{}">{}</a>', url, _("Preview this scenario for a user")
        )

    def get_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path("<int:pk>/preview/", preview, name="recommender_scenario_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request, pk):
        """The list this scenario (its rules, promotions, sources and scorer) serves a
        user now, as the API would, without logging it."""
        scenario = get_object_or_404(scenarios.with_promotions(Scenario.objects), pk=pk)
        if not self.has_view_permission(request, scenario):
            raise PermissionDenied
        user_id = request.GET.get("user", "").strip()
        results, error, user = None, None, None
        if user_id:
            user = EndUser.objects.filter(external_id=user_id).first()
            if user is None:
                error = _("no user with the id %(id)s") % {"id": user_id}
            else:
                wanted = scenarios.apply(
                    scenario, pipeline.RecommendationRequest(user=user, lang="en")
                )
                try:
                    results = pipeline.recommend(wanted)
                except business.RuleFailure as exc:
                    error = exc.message
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Preview of %(name)s") % {"name": scenario.name},
            "scenario": scenario,
            "user_id": user_id,
            "results": results,
            "error": error,
        }
        return TemplateResponse(request, "admin/recommender/scenario_preview.html", context)


@admin.register(ItemAttribute)
class ItemAttributeAdmin(admin.ModelAdmin):
    """The typed attribute schema: every write path checks it, rule filters are typed by
    it; an indexed number or timestamp gets an expression index (queued on save)."""

    list_display = ("name", "type", "required", "indexed", "description")
    list_filter = ("type", "indexed")

    def get_readonly_fields(self, request, obj=None):
        # A declared attribute keeps its name and type: stored values were checked
        # against them, and compiled filters read them so.
        return ("name", "type") if obj is not None else ()

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.indexed and obj.type in ("number", "timestamp"):
            from recommender.tasks import index_attributes

            transaction.on_commit(index_attributes.delay)
            self.message_user(request, _("Its index is being built in the background."))


@admin.register(ServedList)
class ServedListAdmin(admin.ModelAdmin):
    """Served lists are a log: readable here, written only by serving."""

    list_display = ("served_at", "endpoint", "scenario", "user", "id")
    list_filter = ("endpoint", "scenario")
    date_hierarchy = "served_at"
    raw_id_fields = ("user",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 2
    fields = ("position", "name", "share", "configuration")


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    """A/B tests on scenarios: start, stop, read the results, promote the winner."""

    list_display = ("name", "scenario", "is_running", "started_at", "stopped_at")
    list_filter = ("is_running",)
    readonly_fields = ("is_running", "started_at", "stopped_at", "results")
    inlines = [VariantInline]
    actions = ("start_experiments", "stop_experiments", "promote_winner")

    @admin.display(description=_("results"))
    def results(self, obj):
        if obj.pk is None:
            return "-"
        found = experiment_results.results(obj)
        # Numbers formatted first: format_html escapes its arguments into text.
        rows = [
            format_html(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                "<td>{}</td><td>{}</td></tr>",
                v.name,
                v.lists,
                v.impressions,
                v.clicks,
                f"{v.ctr.value:.2%} [{v.ctr.low:.2%}, {v.ctr.high:.2%}]",
                f"{v.conversion.value:.2%}",
                f"{v.revenue_per_mille:.1f}",
                "-" if v.p_value_vs_control is None else f"{v.p_value_vs_control:.4f}",
            )
            for v in found.variants
        ]
        srm = (
            _("sample ratio mismatch (p = %(p).4f): check the assignment")
            % {"p": found.srm_p_value}
            if found.sample_ratio_mismatch
            else _("no sample ratio mismatch")
        )
        header = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>"
            "<th>{}</th></tr>",
            _("variant"), _("lists"), _("impressions"), _("clicks"), _("CTR [95% CI]"),
            _("conversion"), _("revenue / 1000 impressions"), _("p vs control"),
        )  # fmt: skip
        body = format_html_join("", "{}", ((row,) for row in rows))
        return format_html("<table>{}{}</table><p>{}</p>", header, body, srm)

    @admin.action(description=_("Start the selected experiments"))
    def start_experiments(self, request, queryset):
        for experiment in queryset:
            try:
                experiments.start(experiment)
            except IntegrityError:
                self.message_user(
                    request,
                    _("%(name)s: its scenario already has a running experiment")
                    % {"name": experiment.name},
                    messages.ERROR,
                )

    @admin.action(description=_("Stop the selected experiments"))
    def stop_experiments(self, request, queryset):
        for experiment in queryset:
            experiments.stop(experiment)

    @admin.action(description=_("Promote the winner (best CTR, significantly above control)"))
    def promote_winner(self, request, queryset):
        for experiment in queryset:
            found = experiment_results.winner(experiment)
            if found is None:
                self.message_user(
                    request,
                    _("%(name)s: no variant beats the control significantly yet")
                    % {"name": experiment.name},
                    messages.WARNING,
                )
                continue
            experiments.promote(experiment, found)
            self.message_user(
                request,
                _("%(name)s: %(variant)s now serves %(scenario)s")
                % {"name": experiment.name, "variant": found.name, "scenario": experiment.scenario},
            )
