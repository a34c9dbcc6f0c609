"""The keyword source: items whose title or tags contain a query's jieba keywords,
found through the GIN index of character bigrams."""

from __future__ import annotations

from django.db.models import Q, Value

from encoders import textprep
from recommender.models import (
    KEYWORD_TEXT,
    Item,
    KeywordBigrams,
)
from recommender.serving.filters import Filters


def keyword_matches(text: str, k: int, filters: Filters) -> dict[int, int]:
    """Items whose title or tags contain the query's jieba keywords: id → keywords matched."""
    words = [word for word in textprep.keywords(text, top_k=5) if len(word) >= 2]
    if not words:
        return {}
    matched: dict[int, int] = {}
    for word in words:
        # The bigram containment finds the candidates on the index (item_keyword_bigrams);
        # icontains then keeps the exact substring matches.
        ids = (
            Item.objects.annotate(keyword_bigrams=KeywordBigrams(KEYWORD_TEXT))
            .filter(keyword_bigrams__contains=KeywordBigrams(Value(word.upper())))
            .filter(filters.item_q())
            .filter(Q(title__icontains=word) | Q(tags__icontains=word))
            .exclude(pk__in=list(filters.exclude_ids))
            .values_list("pk", flat=True)[: k * 2]
        )
        for item_id in ids:
            matched[item_id] = matched.get(item_id, 0) + 1
    return dict(sorted(matched.items(), key=lambda kv: -kv[1])[:k])
