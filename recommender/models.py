"""The catalogue (items), the people using the site (end users) and what they do (behaviours)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class EndUser(models.Model):
    """A shopper/reader/viewer of the client site, identified by the site's own id."""

    external_id = models.CharField(_("external id"), max_length=200, unique=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("end user")
        verbose_name_plural = _("end users")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.external_id


class Item(models.Model):
    """Something that can be recommended: a product, an article, a video."""

    external_id = models.CharField(_("external id"), max_length=200, unique=True)
    title = models.CharField(_("title"), max_length=500)
    description = models.TextField(_("description"), blank=True)
    category = models.CharField(_("category"), max_length=200, blank=True, db_index=True)
    tags = models.JSONField(_("tags"), default=list, blank=True)
    attributes = models.JSONField(
        _("attributes"), default=dict, blank=True, help_text=_("e.g. price, brand")
    )
    is_active = models.BooleanField(_("active"), default=True, db_index=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("item")
        verbose_name_plural = _("items")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class BehaviourKind(models.TextChoices):
    VIEW = "view", _("view")
    CLICK = "click", _("click")
    CART = "cart", _("add to cart")
    PURCHASE = "purchase", _("purchase")
    RATING = "rating", _("rating")
    LIKE = "like", _("like")
    DISLIKE = "dislike", _("dislike")
    SEARCH = "search", _("search")
    REVIEW = "review", _("review")
    SHARE = "share", _("share")


class Behaviour(models.Model):
    """One event: a user did something, usually to an item (searches have no item)."""

    user = models.ForeignKey(
        EndUser, on_delete=models.CASCADE, related_name="behaviours", verbose_name=_("user")
    )
    item = models.ForeignKey(
        Item,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="behaviours",
        verbose_name=_("item"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=BehaviourKind.choices)
    value = models.FloatField(_("value"), null=True, blank=True, help_text=_("e.g. a rating"))
    text = models.TextField(_("text"), blank=True, help_text=_("a search query or a review"))
    context = models.JSONField(_("context"), default=dict, blank=True)
    # Unique when given, so a client can retry an event without it counting twice.
    event_id = models.CharField(_("event id"), max_length=200, null=True, blank=True, unique=True)
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now, db_index=True)
    created_at = models.DateTimeField(_("received at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("behaviour")
        verbose_name_plural = _("behaviours")
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(fields=["user", "-occurred_at"], name="behaviour_user_time"),
            models.Index(fields=["item", "-occurred_at"], name="behaviour_item_time"),
            models.Index(fields=["kind", "-occurred_at"], name="behaviour_kind_time"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(item__isnull=False) | models.Q(kind__in=["search"]),
                name="behaviour_item_required_unless_search",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind} {self.item_id or self.text[:30]}"


class WorkerHeartbeat(models.Model):
    """The last time each Celery worker proved it can reach the database."""

    hostname = models.CharField(_("worker"), max_length=255, unique=True)
    seen_at = models.DateTimeField(_("last seen"))

    class Meta:
        verbose_name = _("worker heartbeat")
        verbose_name_plural = _("worker heartbeats")

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"
