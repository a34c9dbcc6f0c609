"""Saving an item queues its embedding after commit, only when its text changed; saving or
deleting an encoder space invalidates the cached active space in every process, and an
attribute declaration the attribute schema; any of those, a scenario or an experiment
the lists kept by ``serving.list_cache``; a scenario, a promotion, an experiment or a
variant the scenarios serving keeps (``serving.scenarios.remembered``)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import receiver

from recommender.conf import conf
from recommender.models import (
    EncoderSpace,
    Experiment,
    Item,
    ItemAttribute,
    ItemCooccurrence,
    ItemVector,
    Promotion,
    Scenario,
    Variant,
)


@receiver(post_save, sender=Item, dispatch_uid="recommender.item_text_changed")
def queue_embedding_on_text_change(sender, instance: Item, created: bool, **kwargs) -> None:
    if not conf.EMBED_ON_SAVE:
        return
    if not instance.is_active:
        return
    if not created and instance.text_snapshot() == instance._loaded_text:
        return
    instance._loaded_text = instance.text_snapshot()
    from recommender.tasks import enqueue_item_embeddings

    item_id = instance.pk
    transaction.on_commit(lambda: enqueue_item_embeddings([item_id]))


@receiver(post_save, sender=EncoderSpace, dispatch_uid="recommender.space_saved")
@receiver(post_delete, sender=EncoderSpace, dispatch_uid="recommender.space_deleted")
# A scenario may name a space, which then keeps user profiles too (spaces.profile_spaces).
@receiver(post_save, sender=Scenario, dispatch_uid="recommender.scenario_saved")
@receiver(post_delete, sender=Scenario, dispatch_uid="recommender.scenario_deleted")
def forget_serving_space(sender, **kwargs) -> None:
    from recommender import spaces

    spaces.spaces_changed()
    # Also after commit: another process may have re-read the old row in between.
    transaction.on_commit(spaces.spaces_changed)


@receiver(post_save, sender=ItemAttribute, dispatch_uid="recommender.attribute_saved")
@receiver(post_delete, sender=ItemAttribute, dispatch_uid="recommender.attribute_deleted")
def forget_attribute_schema(sender, **kwargs) -> None:
    from recommender import attributes

    attributes.invalidate()
    transaction.on_commit(attributes.invalidate)


@receiver(post_migrate, dispatch_uid="recommender.index_attributes")
def index_declared_attributes(sender, app_config=None, using="default", **kwargs) -> None:
    """After ``migrate``: the expression indexes of indexed number and timestamp
    attributes (a selective filter on an unindexed attribute falls back to a long HNSW
    scan). Built concurrently, so a large catalogue stays writable meanwhile."""
    if app_config is None or app_config.label != "recommender":
        return
    import logging

    from django.db import DatabaseError, connections

    from recommender import attributes

    try:
        statements = attributes.index_statements()
        with connections[using].cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    except DatabaseError:  # migrated backwards, before the attribute functions existed
        logging.getLogger(__name__).warning("attribute indexes not built", exc_info=True)


@receiver(post_save, sender=Item, dispatch_uid="recommender.catalogue_item_saved")
@receiver(post_delete, sender=Item, dispatch_uid="recommender.catalogue_item_deleted")
@receiver(post_save, sender=ItemVector, dispatch_uid="recommender.catalogue_vector_saved")
@receiver(post_delete, sender=ItemVector, dispatch_uid="recommender.catalogue_vector_deleted")
def catalogue_changed(sender, **kwargs) -> None:
    """What processes keep of a small catalogue (``serving.memory_search``) is read again."""
    from recommender import spaces

    if conf.IN_PROCESS_SEARCH_ITEMS > 0:
        spaces.catalogue_changed()


@receiver(post_save, sender=ItemCooccurrence, dispatch_uid="recommender.cooccurrence_saved")
@receiver(post_delete, sender=ItemCooccurrence, dispatch_uid="recommender.cooccurrence_deleted")
def cooccurrence_changed(sender, **kwargs) -> None:
    """What processes keep of a small catalogue's co-occurrence table is read again (the
    refreshes, which write it in SQL, say so themselves)."""
    from recommender.serving import memory_search

    if conf.IN_PROCESS_SEARCH_ITEMS > 0:
        memory_search.cooccurrence_changed()


@receiver(post_save, sender=Item, dispatch_uid="recommender.lists_item_saved")
@receiver(post_delete, sender=Item, dispatch_uid="recommender.lists_item_deleted")
@receiver(post_save, sender=Scenario, dispatch_uid="recommender.lists_scenario_saved")
@receiver(post_delete, sender=Scenario, dispatch_uid="recommender.lists_scenario_deleted")
@receiver(post_save, sender=Experiment, dispatch_uid="recommender.lists_experiment_saved")
@receiver(post_delete, sender=Experiment, dispatch_uid="recommender.lists_experiment_deleted")
@receiver(post_save, sender=EncoderSpace, dispatch_uid="recommender.lists_space_saved")
@receiver(post_delete, sender=EncoderSpace, dispatch_uid="recommender.lists_space_deleted")
@receiver(post_save, sender=ItemAttribute, dispatch_uid="recommender.lists_attribute_saved")
@receiver(post_delete, sender=ItemAttribute, dispatch_uid="recommender.lists_attribute_deleted")
def forget_kept_lists(sender, **kwargs) -> None:
    """No list kept before this change is served again (``serving.list_cache``): now, and
    after commit, as another process may have kept one from the old rows in between."""
    from recommender.serving import list_cache

    if not list_cache.enabled():
        return
    list_cache.changed()
    transaction.on_commit(list_cache.changed)


@receiver(post_save, sender=Scenario, dispatch_uid="recommender.config_scenario_saved")
@receiver(post_delete, sender=Scenario, dispatch_uid="recommender.config_scenario_deleted")
@receiver(post_save, sender=Promotion, dispatch_uid="recommender.config_promotion_saved")
@receiver(post_delete, sender=Promotion, dispatch_uid="recommender.config_promotion_deleted")
@receiver(post_save, sender=Experiment, dispatch_uid="recommender.config_experiment_saved")
@receiver(post_delete, sender=Experiment, dispatch_uid="recommender.config_experiment_deleted")
@receiver(post_save, sender=Variant, dispatch_uid="recommender.config_variant_saved")
@receiver(post_delete, sender=Variant, dispatch_uid="recommender.config_variant_deleted")
def forget_kept_scenarios(sender, **kwargs) -> None:
    """Serving reads scenarios and experiments again: now, and after commit, as another
    process may have kept the old rows in between."""
    from recommender.serving import scenarios

    scenarios.changed()
    transaction.on_commit(scenarios.changed)
