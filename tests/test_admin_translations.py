"""The admin's item form edits translations, checked as the API checks them."""

import json

import pytest
from django.urls import reverse

from recommender.models import Item

pytestmark = pytest.mark.django_db


def form_data(item: Item, translations) -> dict:
    return {
        "external_id": item.external_id,
        "title": item.title,
        "description": "",
        "category": "",
        "tags": "[]",
        "attributes": "{}",
        "translations": translations,
        "is_active": "on",
    }


@pytest.fixture
def jacket(settings):
    settings.RECOMMENDER_EMBED_ON_SAVE = False
    return Item.objects.create(external_id="d1", title="女士加长款保暖羽绒服")


def test_the_item_form_saves_translations(admin_client, jacket):
    url = reverse("admin:recommender_item_change", args=[jacket.pk])
    page = admin_client.get(url)
    assert b'name="translations"' in page.content
    english = {"en": {"title": "Women's long down jacket"}}
    response = admin_client.post(url, form_data(jacket, json.dumps(english)))
    assert response.status_code == 302
    jacket.refresh_from_db()
    assert jacket.translations == english
    # An emptied field is no translations.
    assert admin_client.post(url, form_data(jacket, "")).status_code == 302
    jacket.refresh_from_db()
    assert jacket.translations == {}


@pytest.mark.parametrize(
    ("translations", "message"),
    [
        ({"english": {"title": "Jacket"}}, "translations.english: not a language code"),
        ({"en": {"title": "x" * 501}}, "translations.en.title: must be at most 500 characters"),
        ({"en": {"brand": "x"}}, "translations.en.brand: unknown key"),
    ],
)
def test_the_item_form_refuses_bad_translations(admin_client, jacket, translations, message):
    url = reverse("admin:recommender_item_change", args=[jacket.pk])
    response = admin_client.post(url, form_data(jacket, json.dumps(translations)))
    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors["translations"][0]
    jacket.refresh_from_db()
    assert jacket.translations == {}
