"""Event inserts that look the user up themselves: new users, repeated event ids,
unknown items."""

import pytest

from recommender.ingest import events
from recommender.models import Behaviour, EndUser, UserProfile
from recommender.spaces import embedding


def test_an_event_for_a_new_user_creates_the_user_once(space, make_items):
    (item,) = make_items(1)
    embedding.embed_items(space, [item.pk])
    first = events.record_event(events.EventInput(user="new", item="sku-0", kind="view"))
    second = events.record_event(events.EventInput(user="new", item="sku-0", kind="like"))
    assert first.created and second.created
    assert first.behaviour.user_id == second.behaviour.user_id
    assert EndUser.objects.filter(external_id="new").count() == 1
    assert second.behaviour.user.external_id == "new"
    assert Behaviour.objects.filter(user__external_id="new").count() == 2


def test_a_repeated_event_id_returns_the_stored_event_and_writes_nothing(space, make_items):
    (item,) = make_items(1)
    embedding.embed_items(space, [item.pk])
    event = events.EventInput(user="u", item="sku-0", kind="cart", event_id="e-1", value=2.0)
    first = events.record_event(event)
    profile = UserProfile.objects.get(user__external_id="u")
    again = events.record_event(event)
    assert (first.created, again.created, again.profile_updated) == (True, False, False)
    assert again.behaviour.pk == first.behaviour.pk
    assert again.behaviour.item.external_id == "sku-0" and again.behaviour.value == 2.0
    assert Behaviour.objects.count() == 1
    assert UserProfile.objects.get(pk=profile.pk).events == profile.events


@pytest.mark.parametrize("user", ["known", "brand-new"])
def test_an_unknown_item_is_refused_and_writes_nothing(space, user, make_items):
    make_items(1)
    events.record_event(events.EventInput(user="known", item="sku-0", kind="view"))
    before = (Behaviour.objects.count(), EndUser.objects.count(), UserProfile.objects.count())
    with pytest.raises(events.UnknownItem, match="no-such-sku"):
        events.record_event(events.EventInput(user=user, item="no-such-sku", kind="like"))
    after = (Behaviour.objects.count(), EndUser.objects.count(), UserProfile.objects.count())
    assert after == before
