"""The answers built without DRF's serializers equal what the documented serializers
give: the recorded event and the recommendation list."""

import pytest

from recommender.ingest import events
from recommender.models import EndUser
from recommender.spaces import embedding


@pytest.mark.parametrize(
    "event",
    [
        events.EventInput(user="u", item="sku-0", kind="rating", value=4.5, event_id="r-1"),
        events.EventInput(user="u", kind="search", text="长款羽绒服", context={"page": "home"}),
    ],
)
def test_the_event_answer_matches_its_documented_serializer(space, event, make_items):
    from recommender.api import serializers

    make_items(1)
    recorded = events.record_event(event)
    assert serializers.recorded_data(recorded) == serializers.RecordedSerializer(recorded).data
    again = events.record_event(event) if event.event_id else recorded
    assert serializers.recorded_data(again) == serializers.RecordedSerializer(again).data


@pytest.mark.parametrize("explained", [True, False])
def test_the_list_answer_matches_its_documented_serializer(space, explained, make_items):
    from recommender.api import serializers
    from recommender.serving.pipeline import RecommendationRequest, recommend

    items = make_items(12, attributes={"price": 99.5, "brand": "北辰"}, tags=["羽绒服"])
    embedding.embed_items(space, [item.pk for item in items])
    for item in items[:3]:
        events.record_event(events.EventInput(user="u1", item=item.external_id, kind="view"))
    user = EndUser.objects.get(external_id="u1")
    results = recommend(
        RecommendationRequest(user=user, k=6, query="羽绒服 款3", explain=explained, lang="en")
    )
    assert len(results) == 6
    assert any(r.reason and r.reason.keywords for r in results) == explained
    direct = serializers.recommendation_list_data(results, "u1", "en", "home", "ab12")
    payload = {
        "user": "u1",
        "lang": "en",
        "scenario": "home",
        "recommendation_id": "ab12",
        "items": results,
    }
    assert direct == serializers.RecommendationListSerializer(payload).data


def test_a_reused_query_serializer_keeps_nothing_of_the_query_before():
    import threading

    from rest_framework.exceptions import ValidationError

    from recommender.api import serializers

    query = serializers.RecommendationQuerySerializer
    assert serializers.validated_input(query, {"k": "3", "q": "外套"})["q"] == "外套"
    with pytest.raises(ValidationError) as refused:
        serializers.validated_input(query, {"k": "0", "diversity": "2"})
    assert set(refused.value.detail) == {"k", "diversity"}
    after = serializers.validated_input(query, {})
    assert after["k"] == 10 and "q" not in after and after["diversity"] == 0.0
    with pytest.raises(ValidationError) as unknown:
        serializers.validated_input(query, {"kk": "1"})
    assert set(unknown.value.detail) == {"kk"}
    # Each thread validates with its own serializer.
    mine = serializers._input_serializers.__dict__[query]
    theirs = []
    thread = threading.Thread(
        target=lambda: theirs.append(
            (
                serializers.validated_input(query, {"k": "7"})["k"],
                serializers._input_serializers.__dict__[query],
            )
        )
    )
    thread.start()
    thread.join()
    assert theirs[0][0] == 7 and theirs[0][1] is not mine


def test_a_reused_batch_serializer_reports_each_batchs_own_errors():
    from rest_framework.exceptions import ValidationError

    from recommender.api import serializers

    batch = serializers.BehaviourBatchSerializer
    good = {"events": [{"user": "u", "item": "sku-1", "kind": "view"}]}
    assert serializers.validated_input(batch, good)["events"][0]["kind"] == "view"
    with pytest.raises(ValidationError) as refused:
        serializers.validated_input(
            batch, {"events": [{"user": "u", "item": "sku-1", "kind": "view"}, {"user": "u"}]}
        )
    assert set(refused.value.detail["events"][1]) == {"kind"}
    again = serializers.validated_input(
        batch, {"events": [{"user": "v", "kind": "search", "text": "衣"}]}
    )
    assert [(e["user"], e["kind"]) for e in again["events"]] == [("v", "search")]
