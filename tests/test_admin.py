"""The admin: item search/filters/bulk actions, user timelines, behaviour filters, zh-hans."""

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from recommender.models import Behaviour, EndUser, Item

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    jacket = Item.objects.create(
        external_id="d1", title="女士加长款保暖羽绒服", category="clothing"
    )
    keyboard = Item.objects.create(external_id="k1", title="机械键盘青轴", category="electronics")
    user = EndUser.objects.create(external_id="u1")
    Behaviour.objects.create(user=user, item=jacket, kind="view", event_id="e1")
    Behaviour.objects.create(user=user, item=keyboard, kind="purchase", event_id="e2")
    Behaviour.objects.create(user=user, kind="search", text="性价比高的外套", event_id="e3")
    return {"jacket": jacket, "keyboard": keyboard, "user": user}


def test_item_search_finds_chinese_titles(admin_client, shop):
    response = admin_client.get(reverse("admin:recommender_item_changelist"), {"q": "羽绒服"})
    assert response.status_code == 200
    assert "女士加长款保暖羽绒服" in response.text
    assert "机械键盘青轴" not in response.text


def test_item_filters_by_category(admin_client, shop):
    url = reverse("admin:recommender_item_changelist")
    response = admin_client.get(url, {"category": "electronics"})
    assert "机械键盘青轴" in response.text and "女士加长款保暖羽绒服" not in response.text


def test_bulk_deactivate_and_activate(admin_client, shop):
    url = reverse("admin:recommender_item_changelist")
    ids = [shop["jacket"].pk, shop["keyboard"].pk]
    admin_client.post(url, {"action": "deactivate", "_selected_action": ids})
    assert not Item.objects.filter(is_active=True).exists()
    admin_client.post(url, {"action": "activate", "_selected_action": ids[:1]})
    assert list(Item.objects.filter(is_active=True)) == [shop["jacket"]]


def test_user_page_shows_the_behaviour_timeline(admin_client, shop):
    response = admin_client.get(reverse("admin:recommender_enduser_change", args=[shop["user"].pk]))
    assert response.status_code == 200
    text = response.text
    assert "机械键盘青轴" in text and "性价比高的外套" in text
    # newest first
    assert text.index("性价比高的外套") < text.index("女士加长款保暖羽绒服")


def test_behaviours_filter_by_kind(admin_client, shop):
    url = reverse("admin:recommender_behaviour_changelist")
    response = admin_client.get(url, {"kind__exact": "search"})
    assert response.status_code == 200
    assert "性价比高的外套" in response.text
    assert "机械键盘青轴" not in response.text


def test_admin_speaks_simplified_chinese(admin_client_zh, shop):
    response = admin_client_zh.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "站点管理" in response.text  # Django's own catalogue
    assert "推荐系统" in response.text and "终端用户" in response.text  # ours


def test_item_list_in_chinese_names_columns_and_actions(admin_client_zh, shop):
    response = admin_client_zh.get(reverse("admin:recommender_item_changelist"))
    assert "类目" in response.text and "下架所选物品" in response.text


def test_event_id_is_unique():
    user = EndUser.objects.create(external_id="u1")
    item = Item.objects.create(external_id="i1", title="t")
    Behaviour.objects.create(user=user, item=item, kind="view", event_id="same")
    with pytest.raises(IntegrityError), transaction.atomic():
        Behaviour.objects.create(user=user, item=item, kind="view", event_id="same")
    # events without an id are never deduplicated
    Behaviour.objects.create(user=user, item=item, kind="view")
    Behaviour.objects.create(user=user, item=item, kind="view")
    assert Behaviour.objects.count() == 3


def test_only_searches_may_omit_the_item():
    user = EndUser.objects.create(external_id="u1")
    Behaviour.objects.create(user=user, kind="search", text="外套")
    with pytest.raises(IntegrityError), transaction.atomic():
        Behaviour.objects.create(user=user, kind="purchase")
