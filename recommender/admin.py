"""Catalogue management for operators: items, end users with their timelines, behaviours."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from recommender.models import Behaviour, EndUser, Item


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("title", "external_id", "category", "is_active", "updated_at")
    list_filter = ("is_active", "category")
    search_fields = ("external_id", "title", "description", "category")
    readonly_fields = ("created_at", "updated_at")
    list_per_page = 50
    actions = ("activate", "deactivate")

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
    list_display = ("external_id", "created_at")
    search_fields = ("external_id",)
    readonly_fields = ("created_at",)
    inlines = [BehaviourTimeline]


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
