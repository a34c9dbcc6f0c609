"""Text templates that read item translations (``{title[en]}``), and the text hash that
covers them."""

import hashlib

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from recommender import signals, spaces
from recommender.models import Item, ItemVector
from recommender.spaces import embedding

pytestmark = pytest.mark.django_db

TEMPLATE = "{title}|{title[en]}|{description[en]}|{title[en-GB]}|{description[ja]}"


def test_translated_placeholders_render_the_translation_or_the_main_text():
    item = Item(
        title="羽绒服",
        description="连帽",
        translations={"en": {"title": "Down jacket"}, "en-GB": {"title": "Down coat"}},
    )
    text = embedding.item_text(item, TEMPLATE)
    assert text == "羽绒服|Down jacket|连帽|Down coat|连帽"
    assert embedding.item_text(item, spaces.DEFAULT_TEXT_TEMPLATE) == "羽绒服\n\n\n连帽"


def test_templates_without_translations_never_read_them(django_assert_num_queries):
    Item.objects.create(external_id="i1", title="绿茶", translations={"en": {"title": "Tea"}})
    item = Item.objects.only("title", "category", "tags", "description").get()
    with django_assert_num_queries(0):
        assert embedding.item_text(item, "{title} {category}") == "绿茶"


@pytest.mark.parametrize(
    "template",
    [
        "{title[en]}",
        "{description[zh-Hant]}\n{title}",
        "{title[en-GB]:>5}",
        "{{literal}} {tags}",
        spaces.DEFAULT_TEXT_TEMPLATE,
    ],
)
def test_check_template_accepts_the_fields_and_translations(template):
    assert spaces.check_template(template) == template


@pytest.mark.parametrize(
    "template",
    [
        "{title[english]}",
        "{title[0]}",
        "{category[en]}",
        "{tags[en]}",
        "{price}",
        "{}",
        "{title.upper}",
        "{title[en]:{width}}",
        "{title",
    ],
)
def test_check_template_refuses_other_fields(template):
    with pytest.raises(ValidationError):
        spaces.check_template(template)


def _hash_without_translations(item_id: int) -> str:
    """The text hash as migration 0003 defined it (title, category, tags, description)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT title || chr(31) || category || chr(31) || tags::text || chr(31) "
            "|| description FROM recommender_item WHERE id = %s",
            [item_id],
        )
        (text,) = cursor.fetchone()
    return hashlib.md5(text.encode()).hexdigest()


def test_an_item_without_translations_keeps_its_old_hash():
    item = Item.objects.create(
        external_id="i1", title="绿茶", category="food", tags=["茶"], description="明前"
    )
    assert Item.objects.get(pk=item.pk).text_hash == _hash_without_translations(item.pk)
    Item.objects.filter(pk=item.pk).update(translations={"en": {"title": "Green tea"}})
    assert Item.objects.get(pk=item.pk).text_hash != _hash_without_translations(item.pk)
    Item.objects.filter(pk=item.pk).update(translations={})
    assert Item.objects.get(pk=item.pk).text_hash == _hash_without_translations(item.pk)


def test_a_translation_change_makes_the_vector_stale(settings):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    space = spaces.create_space("english", "hashing", {"dim": 32}, text_template="{title[en]}")
    item = Item.objects.create(
        external_id="i1", title="绿茶", translations={"en": {"title": "Green tea"}}
    )
    embedding.embed_items(space, [item.pk])
    assert spaces.coverage(space).stale == 0
    before = ItemVector.objects.get(space=space, item=item).embedding
    Item.objects.filter(pk=item.pk).update(translations={"en": {"title": "Oolong tea"}})
    assert spaces.coverage(space).stale == 1
    assert list(spaces.items_needing_vectors(space)) == [item.pk]
    assert embedding.embed_items(space, [item.pk]).embedded == 1
    assert spaces.coverage(space).stale == 0
    after = ItemVector.objects.get(space=space, item=item).embedding
    assert list(after) != list(before)
    expected = embedding.encoder_for(space).encode(["Oolong tea"])[0]
    assert list(after) == pytest.approx(list(expected), abs=1e-6)


def test_saving_changed_translations_queues_the_item(settings, monkeypatch):
    settings.RECOMMENDER_EMBED_ON_SAVE = True
    queued = []
    monkeypatch.setattr("recommender.tasks.enqueue_item_embeddings", lambda ids: queued.extend(ids))
    monkeypatch.setattr(signals.transaction, "on_commit", lambda fn: fn())
    item = Item.objects.create(external_id="i1", title="绿茶")
    queued.clear()
    item = Item.objects.get(pk=item.pk)
    item.save()
    assert queued == []  # nothing changed
    item.translations["en"] = {"title": "Green tea"}  # changed in place
    item.save()
    assert queued == [item.pk]
