"""Encoder spaces, vectors in pgvector, the embedding pipeline through a real worker."""

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import override_settings

from recommender import spaces
from recommender.models import EncoderSpace, EndUser, Item, ItemVector, UserProfile
from recommender.serving import nearest
from recommender.spaces import embedding, vector_io
from recommender.tasks import build_space, refresh_stale_vectors
from recsite.testing import wait_for


def make_items(*titles_and_categories):
    return [
        Item.objects.create(external_id=f"i{n}", title=title, category=category)
        for n, (title, category) in enumerate(titles_and_categories)
    ]


@pytest.mark.django_db(transaction=True)
def test_saving_an_item_puts_a_vector_in_the_active_space(celery_worker):
    space = spaces.create_space("live", "hashing", {"dim": 64}, activate=True)
    item = Item.objects.create(external_id="d1", title="女士加长款保暖羽绒服", category="clothing")
    wait_for(lambda: ItemVector.objects.filter(space=space, item=item).exists(), message="vector")
    vector = ItemVector.objects.get(space=space, item=item)
    assert vector.text_hash == Item.objects.get(pk=item.pk).text_hash
    assert len(vector.embedding) == 64


@pytest.mark.django_db(transaction=True)
def test_edited_title_is_stale_until_a_refresh(celery_worker):
    with override_settings(RECOMMENDER_EMBED_ON_SAVE=False):
        space = spaces.create_space("stale", "hashing", {"dim": 64}, activate=True)
        (item,) = make_items(("机械键盘青轴", "electronics"))
        embedding.embed_items(space, [item.pk])
        assert spaces.coverage(space).stale == 0
        Item.objects.filter(pk=item.pk).update(title="机械键盘红轴")  # bypasses save()
        assert spaces.coverage(space).stale == 1
        assert list(spaces.items_needing_vectors(space)) == [item.pk]
    assert refresh_stale_vectors.delay().get(timeout=60) == {"stale": 1}
    wait_for(lambda: spaces.coverage(space).stale == 0, message="the refresh")
    text = embedding.item_text(Item.objects.get(pk=item.pk), space.text_template)
    assert text.startswith("机械键盘红轴")
    query = embedding.encoder_for(space).encode([text])[0]
    assert nearest.nearest_items(query, 1, space=space)[0].similarity == pytest.approx(1.0)


@pytest.mark.django_db(transaction=True)
def test_a_space_built_by_the_worker_is_ready_with_its_index(celery_worker):
    with override_settings(RECOMMENDER_EMBED_ON_SAVE=False):
        make_items(("女士加长款保暖羽绒服", "clothing"), ("机械键盘青轴", "electronics"))
        serving = spaces.create_space("serving", "hashing", {"dim": 32}, activate=True)
        space = spaces.create_space("next", "hashing", {"dim": 48})
    build_space.delay(space.pk).get(timeout=60)
    wait_for(lambda: EncoderSpace.objects.get(pk=space.pk).status == "ready", message="the build")
    # Built outside a transaction, so CONCURRENTLY: valid, and in the serving query plan.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            [spaces.index_name(space)],
        )
        assert cursor.fetchall() == [(True,)]
    assert ItemVector.objects.filter(space=space).count() == 2
    assert spaces.index_exists(serving)


@pytest.mark.django_db
def test_text_hash_follows_the_text_fields():
    (item,) = make_items(("有机绿茶礼盒", "food"))
    before = Item.objects.get(pk=item.pk).text_hash
    Item.objects.filter(pk=item.pk).update(attributes={"price": 99})
    assert Item.objects.get(pk=item.pk).text_hash == before  # price is not encoded
    Item.objects.filter(pk=item.pk).update(tags=["茶"])
    assert Item.objects.get(pk=item.pk).text_hash != before


@pytest.mark.django_db
def test_spaces_of_different_dimensions_coexist():
    items = make_items(("wireless earbuds", "electronics"), ("down jacket", "clothing"))
    small = spaces.create_space("small", "hashing", {"dim": 32}, activate=True)
    large = spaces.create_space("large", "hashing", {"dim": 300})
    for space in (small, large):
        embedding.embed_items(space, [item.pk for item in items])
    assert {len(v.embedding) for v in ItemVector.objects.filter(space=small)} == {32}
    assert {len(v.embedding) for v in ItemVector.objects.filter(space=large)} == {300}
    for space in (small, large):
        assert nearest.search_text("down jacket", 1, space=space)[0].item_id == items[1].pk


@pytest.mark.django_db
def test_activation_switches_what_a_cosine_query_returns():
    by_title, by_category = make_items(("keyboard", "fruit"), ("banana", "keyboard"))
    ids = [by_title.pk, by_category.pk]
    titles = spaces.create_space("titles", "hashing", {"dim": 64}, text_template="{title}")
    cats = spaces.create_space("cats", "hashing", {"dim": 64}, text_template="{category}")
    embedding.embed_items(titles, ids)
    embedding.embed_items(cats, ids)
    spaces.activate_space(titles)
    assert nearest.search_text("keyboard", 1)[0].item_id == by_title.pk
    spaces.activate_space(cats)
    assert nearest.search_text("keyboard", 1)[0].item_id == by_category.pk
    assert EncoderSpace.objects.filter(is_active=True).count() == 1


def test_serving_space_follows_activation_and_ignores_caller_changes(space):
    other = spaces.create_space("other", "hashing", {"dim": 16})
    assert spaces.serving_space().pk == space.pk
    spaces.serving_space().name = "changed by a caller"
    assert spaces.serving_space().name == "fast"
    # A copy is a whole model of its own: every field, its own state, and it can be saved.
    served = spaces.serving_space()
    fresh = EncoderSpace.objects.get(pk=space.pk)
    assert {f.attname: getattr(served, f.attname) for f in EncoderSpace._meta.concrete_fields} == {
        f.attname: getattr(fresh, f.attname) for f in EncoderSpace._meta.concrete_fields
    }
    assert served._state is not spaces.serving_space()._state
    assert served._state.db == "default" and not served._state.adding
    served.save(update_fields=["name"])
    assert EncoderSpace.objects.get(pk=space.pk).name == "fast"
    spaces.activate_space(other)  # a save: seen at once in this process
    assert spaces.serving_space().pk == other.pk


def test_serving_space_sees_a_switch_made_by_another_process(space, monkeypatch):
    other = spaces.create_space("other", "hashing", {"dim": 16})
    assert spaces.serving_space().pk == space.pk
    # Another process switches: rows change without this process's signals, and the
    # shared token is bumped (what its signal handler does there).
    EncoderSpace.objects.filter(pk=space.pk).update(is_active=False)
    EncoderSpace.objects.filter(pk=other.pk).update(is_active=True)
    from django.core.cache import cache

    cache.set(spaces._VERSION_KEY, "bumped elsewhere", None)
    assert spaces.serving_space().pk == space.pk  # within CHECK_S: this process's copy
    monkeypatch.setattr(spaces, "CHECK_S", 0.0)
    assert spaces.serving_space().pk == other.pk


@pytest.mark.django_db
def test_the_served_search_uses_the_space_hnsw_index(hashing_space, monkeypatch):
    items = Item.objects.bulk_create(
        Item(external_id=f"i{n}", title=f"item {n} word{n % 97}") for n in range(300)
    )
    embedding.embed_items(hashing_space, [item.pk for item in items])
    user = EndUser.objects.create(external_id="u")
    # The statement nearest_rows sends, as serving calls it (exclusions, cosine features).
    sent = []
    monkeypatch.setattr(
        nearest.vector_io, "fetch", lambda sql, params, **_: sent.append((sql, params)) or []
    )
    nearest.nearest_rows(
        [1.0] + [0.0] * 63,
        50,
        space=hashing_space,
        history=nearest.HistoryExclusion(user.pk),
        cosine=nearest.CosineFeatures(np.ones(64, dtype=np.float32), dislikes_of=user.pk),
    )
    monkeypatch.undo()
    ((sql, params),) = sent
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ANALYZE recommender_itemvector")
        # At 300 rows scanning and sorting is rightly cheapest (the index wins from a few
        # thousand rows); the point here is that the query's expression matches the index.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        plan = "\n".join(row[0] for row in vector_io.fetch("EXPLAIN " + sql, params))
    assert spaces.index_name(hashing_space) in plan, plan


@pytest.mark.django_db
def test_embedding_twice_changes_nothing(hashing_space):
    items = make_items(("a", "x"), ("b", "y"))
    ids = [item.pk for item in items]
    first = embedding.embed_items(hashing_space, ids)
    stamps = dict(ItemVector.objects.values_list("item_id", "updated_at"))
    second = embedding.embed_items(hashing_space, ids)
    assert (first.embedded, second.embedded, second.skipped) == (2, 0, 2)
    assert dict(ItemVector.objects.values_list("item_id", "updated_at")) == stamps


@pytest.mark.django_db
def test_a_building_space_gets_its_index_when_its_build_completes(hashing_space):
    items = make_items(("a", "x"), ("b", "y"))
    other = spaces.create_space("other", "hashing", {"dim": 16})
    assert not spaces.index_exists(other)  # vectors are not inserted into a graph one by one
    embedding.embed_items(other, [items[0].pk])
    assert not spaces.mark_ready_if_complete(other)  # one item still lacks a vector
    assert not spaces.index_exists(other)
    embedding.embed_items(other, [items[1].pk])
    assert spaces.mark_ready_if_complete(other)
    assert spaces.index_exists(other)
    assert EncoderSpace.objects.get(pk=other.pk).status == "ready"


@pytest.mark.django_db
def test_activating_a_space_before_its_build_completes_creates_its_index(hashing_space):
    other = spaces.create_space("other", "hashing", {"dim": 16})
    spaces.activate_space(other)
    assert spaces.index_exists(other)
    assert spaces.index_exists(hashing_space)


@pytest.mark.django_db
def test_retiring_drops_vectors_and_index(hashing_space):
    other = spaces.create_space("other", "hashing", {"dim": 16})
    (item,) = make_items(("x", "y"))
    embedding.embed_items(other, [item.pk])
    assert spaces.mark_ready_if_complete(other)
    assert spaces.index_exists(other)
    spaces.retire_space(other)
    assert not spaces.index_exists(other)
    assert not ItemVector.objects.filter(space=other).exists()
    with pytest.raises(ValidationError, match="active"):
        spaces.retire_space(hashing_space)


@pytest.mark.django_db
def test_bad_template_is_rejected():
    with pytest.raises(ValidationError, match="price"):
        spaces.create_space("bad", "hashing", {}, text_template="{title} {price}")


@pytest.mark.django_db
def test_encoder_space_commands(capsys):
    make_items(("女士加长款保暖羽绒服", "clothing"), ("机械键盘青轴", "electronics"))
    call_command(
        "encoder_space", "create", "h1", "--plugin", "hashing", "--option", "dim=48", "--inline"
    )
    call_command("encoder_space", "create", "h2", "--plugin", "hashing", "--option", "dim=24")
    with pytest.raises(CommandError, match="covers 0% of active items"):
        call_command("encoder_space", "activate", "h2")
    call_command("encoder_space", "activate", "h1")
    call_command("encoder_space", "list")
    out = capsys.readouterr().out
    assert "* h1" in out and "2/2 vectors (100%)" in out and "ready" in out
    assert "h2" in out and "0/2 vectors (0%)" in out
    with pytest.raises(CommandError, match="No encoder plugin named 'nope'"):
        call_command("encoder_space", "create", "h3", "--plugin", "nope")


@pytest.mark.django_db
def test_embed_command_creates_the_default_space(capsys, settings):
    settings.RECOMMENDER_ENCODERS = {"default": {"PLUGIN": "hashing", "OPTIONS": {"dim": 32}}}
    make_items(("有机绿茶礼盒", "food"))
    call_command("embed", "--no-progress")
    assert "embedded 1 items" in capsys.readouterr().out
    space = spaces.active_space()
    assert (space.name, space.status, space.dim) == ("default", "ready", 32)
    call_command("embed", "--no-progress")
    assert "embedded 0 items" in capsys.readouterr().out


def test_model_bound_tasks_go_to_the_embed_queue():
    from recsite.celery import app

    def queue_of(name):
        return app.amqp.router.route({}, name)["queue"].name

    assert queue_of("recommender.embed_items") == "embed"
    assert queue_of("recommender.refresh_stale_vectors") == "default"


@pytest.mark.django_db
def test_beat_schedules_are_installed():
    from django_celery_beat.models import PeriodicTask

    tasks = set(PeriodicTask.objects.values_list("task", flat=True))
    assert {"recommender.refresh_stale_vectors", "recommender.reembed_space"} <= tasks


@pytest.mark.django_db
def test_admin_lists_spaces_with_coverage(admin_client, hashing_space):
    items = make_items(("a", "x"), ("b", "y"))
    embedding.embed_items(hashing_space, [items[0].pk])
    response = admin_client.get("/admin/recommender/encoderspace/")
    assert response.status_code == 200
    assert "1/2 (50%)" in response.text


@pytest.mark.django_db(transaction=True)
def test_importing_items_queues_their_embedding(celery_worker, hashing_space, tmp_path, capsys):
    path = tmp_path / "items.csv"
    rows = "".join(f"sku{n},商品 {n} 号\n" for n in range(600))
    path.write_text("external_id,title\n" + rows, encoding="utf-8")
    call_command("import_items", str(path), "--no-progress")
    assert "queued embedding" in capsys.readouterr().out
    wait_for(lambda: spaces.coverage(hashing_space).missing == 0, message="imported items embedded")
    assert ItemVector.objects.filter(space=hashing_space).count() == 600


@pytest.mark.django_db(transaction=True)
def test_profile_recompute_task_matches_incremental_updates(celery_worker, hashing_space):
    from recommender.ingest import events
    from recommender.serving import profiles
    from recommender.tasks import recompute_profiles

    items = make_items(("羽绒服", "clothing"), ("键盘", "electronics"), ("绿茶", "food"))
    embedding.embed_items(hashing_space, [item.pk for item in items])
    for item, kind in zip(items, ["view", "purchase", "dislike"], strict=True):
        events.record_event(events.EventInput(user="p1", item=item.external_id, kind=kind))
    events.record_event(events.EventInput(user="p1", kind="search", text="保暖外套"))
    user_pk = EndUser.objects.get(external_id="p1").pk
    incremental = profiles.load(user_pk, hashing_space).vector()
    stamp = UserProfile.objects.get(user_id=user_pk, space=hashing_space).updated_at
    assert recompute_profiles.delay().get(timeout=60) == {"queued": 1}
    wait_for(
        lambda: UserProfile.objects.get(user_id=user_pk, space=hashing_space).updated_at > stamp,
        message="the recomputed profile",
    )
    exact = profiles.load(user_pk, hashing_space).vector()
    assert float(incremental @ exact) == pytest.approx(1.0, abs=1e-4)
