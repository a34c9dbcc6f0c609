"""The candidate pool: items read in binary, candidates per source."""

import numpy as np

from recommender.ingest import events
from recommender.models import EndUser, Item
from recommender.serving import candidates, profiles
from recommender.spaces import embedding


def test_items_read_in_binary_equal_the_orms(space, make_items):

    items = make_items(3, tags=["羽绒服", "new"], attributes={"price": 399.5, "brand": "北辰"})
    Item.objects.filter(pk=items[1].pk).update(description="长款\n保暖", is_active=False)
    ids = [item.pk for item in items] + [10**9]  # an unknown id is left out, as in_bulk does
    embedding.embed_items(space, [items[0].pk])
    binary, vectors = candidates.load_items(ids, space)
    orm = Item.objects.in_bulk(ids)
    assert binary.keys() == orm.keys()
    assert vectors.keys() == {items[0].pk}
    np.testing.assert_array_equal(
        vectors[items[0].pk], profiles.item_vectors(space, [items[0].pk])[items[0].pk]
    )
    for pk, item in orm.items():
        for field in Item._meta.concrete_fields:
            assert getattr(binary[pk], field.attname) == getattr(item, field.attname), field
        assert not binary[pk]._state.adding


def test_candidates_per_source_follow_the_setting(space, settings, make_items):
    from recommender.serving.candidates import candidate_pool
    from recommender.serving.pipeline import RecommendationRequest

    items = make_items(60)
    embedding.embed_items(space, [item.pk for item in items])
    events.record_event(events.EventInput(user="u1", item=items[0].external_id, kind="view"))
    user = EndUser.objects.get(external_id="u1")
    for per_source in (30, 45):
        settings.RECOMMENDER_CANDIDATES_PER_SOURCE = per_source
        pool = candidate_pool(RecommendationRequest(user=user, k=5)).candidates
        assert sum("history" in c.sources for c in pool) == per_source
    pool = candidate_pool(RecommendationRequest(user=user, k=5, per_source=12)).candidates
    assert sum("history" in c.sources for c in pool) == 15  # at least 3k


def test_a_repeated_query_is_encoded_once(space, make_items, monkeypatch):
    from recommender.serving.candidates import candidate_pool
    from recommender.serving.pipeline import RecommendationRequest

    items = make_items(10)
    embedding.embed_items(space, [item.pk for item in items])
    encoder = embedding.encoder_for(space)
    encoded = []
    original = encoder.encode

    def counting(texts, *args, **kwargs):
        encoded.extend(texts)
        return original(texts, *args, **kwargs)

    monkeypatch.setattr(encoder, "encode", counting)
    first = candidate_pool(RecommendationRequest(query="羽绒服 款3", k=5)).candidates
    again = candidate_pool(RecommendationRequest(query="羽绒服 款3", k=5)).candidates
    assert encoded == ["羽绒服 款3"]
    assert [c.item_id for c in again] == [c.item_id for c in first]
    assert any(c.features.get("query_similarity", 0) > 0 for c in again)
