"""``manage.py load_demo`` loads the bilingual shop through the importers, once."""

import pytest
from django.core.management import call_command

from recommender import spaces
from recommender.models import Behaviour, EndUser, Item, ItemVector


@pytest.mark.django_db
def test_load_demo_twice_adds_nothing_the_second_time(capsys):
    call_command("load_demo")
    counts = (Item.objects.count(), EndUser.objects.count(), Behaviour.objects.count())
    assert counts[0] >= 300 and counts[1] >= 60 and counts[2] > 5000
    assert Item.objects.values("category").distinct().count() >= 8
    assert EndUser.objects.exclude(attributes__persona=None).count() == counts[1]
    # English texts are translations, not attributes (issue 18).
    assert Item.objects.filter(translations__en__title__isnull=False).count() == counts[0]
    assert not Item.objects.filter(attributes__has_any_keys=["title_en", "description_en"])
    space = spaces.active_space()
    assert (
        ItemVector.objects.filter(space=space).count()
        == Item.objects.filter(is_active=True).count()
    )
    call_command("load_demo")
    assert (Item.objects.count(), EndUser.objects.count(), Behaviour.objects.count()) == counts
    assert "0 new" in capsys.readouterr().out
