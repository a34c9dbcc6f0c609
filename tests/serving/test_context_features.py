"""Features from the request's context and the user's attributes: the hour, the device,
and the categories a user's segment and a device engage with."""

from datetime import timedelta

import pytest
from django.utils import timezone

from recommender.models import Behaviour, EndUser, Item
from recommender.serving import context_features
from recommender.serving.candidates import candidate_pool
from recommender.serving.pipeline import RecommendationRequest

# 06:00 yesterday in the site's time zone: a quarter of the way round the clock.
AS_OF = timezone.localtime(timezone.now() - timedelta(days=1)).replace(
    hour=6, minute=0, second=0, microsecond=0
)


@pytest.fixture
def shop(db):
    """Students engage with tea (3 of 4 events), office workers with keyboards (3 of 4);
    their phone events are tea and their desktop events keyboards."""
    tea = [
        Item.objects.create(external_id=f"tea-{n}", title=f"绿茶 {n}", category="tea")
        for n in range(3)
    ]
    keys = [
        Item.objects.create(external_id=f"key-{n}", title=f"键盘 {n}", category="keyboard")
        for n in range(3)
    ]
    tastes = {"students": tea + keys[:1], "office": keys + tea[:1]}
    for segment, items in tastes.items():
        for u in range(2):
            user = EndUser.objects.create(
                external_id=f"{segment}-{u}", attributes={"segment": segment}
            )
            for n, item in enumerate(items):
                Behaviour.objects.create(
                    user=user,
                    item=item,
                    kind="view",
                    context={"device": "phone" if item.category == "tea" else "desktop"},
                    occurred_at=AS_OF - timedelta(hours=2 + n),
                )
    return {"tea": tea, "keyboard": keys}


def pool_features(user, **request) -> dict[str, dict[str, float]]:
    """Category → the features of one of its candidates in ``user``'s pool as of 06:00."""
    pool = candidate_pool(
        RecommendationRequest(user=user, as_of=AS_OF, exclude_seen=False, **request)
    )
    return {c.category: c.features for c in pool.candidates}


def test_hour_six_is_a_quarter_of_the_way_round_the_clock():
    features = context_features.request_features(AS_OF, {})
    assert features["hour_sin"] == pytest.approx(1.0)
    assert features["hour_cos"] == pytest.approx(0.0, abs=1e-9)
    evening = context_features.request_features(AS_OF + timedelta(hours=12), {})
    assert evening["hour_sin"] == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("context", "mobile"),
    [
        ({"device": "mobile"}, 1.0),
        ({"device": "Phone"}, 1.0),
        ({"device": "tablet"}, 1.0),
        ({"device": "app"}, 1.0),
        ({"device": "desktop"}, 0.0),
        ({"device": 3}, 0.0),
        ({}, 0.0),
    ],
)
def test_a_mobile_context_sets_is_mobile(context, mobile):
    assert context_features.request_features(AS_OF, context)["is_mobile"] == mobile


def test_each_segment_gets_the_category_taste_of_its_own_users(shop):
    students = pool_features(EndUser.objects.get(external_id="students-0"))
    office = pool_features(EndUser.objects.get(external_id="office-1"))
    assert students["tea"]["segment_category_affinity"] == pytest.approx(0.75)
    assert students["keyboard"]["segment_category_affinity"] == pytest.approx(0.25)
    assert office["tea"]["segment_category_affinity"] == pytest.approx(0.25)
    assert office["keyboard"]["segment_category_affinity"] == pytest.approx(0.75)
    # The per-request features ride along on every candidate.
    assert students["tea"]["hour_sin"] == pytest.approx(1.0)


def test_without_a_segment_attribute_the_feature_is_zero(shop, settings):
    newcomer = EndUser.objects.create(external_id="newcomer", attributes={"lang": "zh"})
    assert {f["segment_category_affinity"] for f in pool_features(newcomer).values()} == {0.0}
    # Another attribute names the segment: nobody has it.
    settings.RECOMMENDER_SEGMENT_ATTRIBUTE = "persona"
    student = EndUser.objects.get(external_id="students-0")
    assert {f["segment_category_affinity"] for f in pool_features(student).values()} == {0.0}


def test_every_grouping_attribute_the_user_has_counts_alike(shop):
    # Two teenagers who chose keyboards; a student who is also a teenager gets the mean of
    # the students' taste (tea 0.75, keyboard 0.25) and the teenagers' (keyboard 1.0).
    for u in range(2):
        teen = EndUser.objects.create(external_id=f"teen-{u}", attributes={"age_band": "13-19"})
        Behaviour.objects.create(
            user=teen, item=shop["keyboard"][1], kind="view", occurred_at=AS_OF - timedelta(hours=1)
        )
    student = EndUser.objects.create(
        external_id="student-teen",
        attributes={"segment": "students", "age_band": "13-19", "language": ["zh"]},
    )
    assert context_features.user_segments(student) == [
        ("segment", "students"),
        ("age_band", "13-19"),
    ]
    assert context_features.segment_shares(student, AS_OF) == pytest.approx(
        {"tea": 0.375, "keyboard": 0.625}
    )
    teen = EndUser.objects.get(external_id="teen-0")
    assert context_features.segment_shares(teen, AS_OF) == pytest.approx({"keyboard": 1.0})


def test_a_segment_that_is_a_number_matches_as_json_reads_it(shop):
    tea = shop["tea"][0]
    for u in range(2):
        user = EndUser.objects.create(external_id=f"cohort-{u}", attributes={"segment": 3})
        Behaviour.objects.create(
            user=user, item=tea, kind="like", occurred_at=AS_OF - timedelta(hours=1)
        )
    user = EndUser.objects.get(external_id="cohort-0")
    assert context_features.segment_shares(user, AS_OF) == {"tea": 1.0}


def test_the_device_context_gets_the_categories_engaged_from_that_device(shop):
    student = EndUser.objects.get(external_id="students-0")
    phone = pool_features(student, context={"device": "phone"})
    desktop = pool_features(student, context={"device": "desktop"})
    assert phone["tea"]["context_category_affinity"] == pytest.approx(1.0)
    assert phone["keyboard"]["context_category_affinity"] == 0.0
    assert phone["tea"]["is_mobile"] == 1.0
    assert desktop["keyboard"]["context_category_affinity"] == pytest.approx(1.0)
    assert desktop["tea"]["is_mobile"] == 0.0
    unknown = pool_features(student)
    assert {f["context_category_affinity"] for f in unknown.values()} == {0.0}


def test_events_after_the_request_and_negative_ones_do_not_count(shop):
    student = EndUser.objects.get(external_id="students-0")
    keyboard = shop["keyboard"][0]
    Behaviour.objects.create(
        user=student, item=keyboard, kind="view", occurred_at=AS_OF + timedelta(minutes=1)
    )
    Behaviour.objects.create(
        user=student, item=keyboard, kind="dislike", occurred_at=AS_OF - timedelta(hours=1)
    )
    Behaviour.objects.create(
        user=student,
        item=keyboard,
        kind="rating",
        value=1.0,
        occurred_at=AS_OF - timedelta(hours=1),
    )
    assert context_features.segment_shares(student, AS_OF) == pytest.approx(
        {"tea": 0.75, "keyboard": 0.25}
    )


def test_share_tables_are_shared_through_the_cache_for_a_few_minutes(shop):
    student = EndUser.objects.get(external_id="students-0")
    now = timezone.now()
    before = context_features.segment_shares(student, now)
    Behaviour.objects.create(
        user=student, item=shop["keyboard"][0], kind="view", occurred_at=now - timedelta(hours=1)
    )
    assert context_features.segment_shares(student, now) == before  # the cached table
    later = now + timedelta(seconds=context_features.CACHE_SECONDS)
    assert context_features.segment_shares(student, later) != before


def test_old_events_count_when_the_window_holds_none(shop):
    months_later = AS_OF + timedelta(days=context_features.WINDOW_DAYS + 30)
    assert context_features.device_shares("phone", months_later) == {"tea": 1.0}
    assert context_features.device_shares("watch", AS_OF) == {}


def test_a_request_without_a_user_or_context_gets_zero_shares(shop):
    pool = candidate_pool(RecommendationRequest(as_of=AS_OF)).candidates
    assert pool
    for candidate in pool:
        assert candidate.features["segment_category_affinity"] == 0.0
        assert candidate.features["context_category_affinity"] == 0.0
        assert candidate.features["is_mobile"] == 0.0
