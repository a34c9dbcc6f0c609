"""User profiles: the stored sums read back in binary, and the incremental update of an
event equal to a recompute from the log."""

import numpy as np

from recommender.ingest import events
from recommender.models import EndUser, UserProfile
from recommender.serving import profiles
from recommender.spaces import embedding


def test_profile_read_in_binary_matches_the_stored_sums(space, make_items):
    items = make_items(3)
    embedding.embed_items(space, [item.pk for item in items])
    for item in items:
        events.record_event(events.EventInput(user="u1", item=item.external_id, kind="like"))
    stored = UserProfile.objects.get(user__external_id="u1", space=space)
    state = profiles.load(stored.user_id, space)
    np.testing.assert_allclose(state.item_sum, np.asarray(stored.item_sum), rtol=1e-6)
    assert state.text_sum is None and state.events == 3
    assert state.ref_time == stored.ref_time


def test_an_event_folds_the_items_vector_into_an_existing_profile(space, make_items):
    items = make_items(2)
    embedding.embed_items(space, [item.pk for item in items])
    events.record_event(events.EventInput(user="u", item="sku-0", kind="like"))
    events.record_event(events.EventInput(user="u", item="sku-1", kind="like"))
    user = EndUser.objects.get(external_id="u")
    incremental = profiles.load(user.pk, space)
    exact = profiles.recompute(user.pk, space)
    assert incremental.events == exact.events == 2
    np.testing.assert_allclose(incremental.item_sum, exact.item_sum, rtol=1e-5, atol=1e-6)


def test_every_stored_column_of_an_event_update_equals_a_recompute(space, make_items):
    items = make_items(2)
    embedding.embed_items(space, [item.pk for item in items])
    events.record_event(events.EventInput(user="u", item="sku-0", kind="like"))
    before = UserProfile.objects.get(user__external_id="u", space=space).updated_at
    events.record_event(events.EventInput(user="u", kind="search", text="长款羽绒服"))
    events.record_event(events.EventInput(user="u", item="sku-1", kind="rating", value=4.0))
    user = EndUser.objects.get(external_id="u")
    stored = UserProfile.objects.get(user=user, space=space)
    exact = profiles.recompute(user.pk, space)
    assert stored.events == exact.events == 3 and stored.updated_at > before
    assert (stored.rating_sum, stored.rating_count) == (exact.rating_sum, exact.rating_count)
    assert stored.ref_time == exact.ref_time
    for name in ("item_sum", "text_sum"):
        np.testing.assert_allclose(
            np.asarray(getattr(stored, name)), getattr(exact, name), rtol=1e-5, atol=1e-6
        )
