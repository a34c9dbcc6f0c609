"""The keyword source: items whose title or tags contain a query's jieba keywords,
found through the GIN index of character bigrams."""

from __future__ import annotations

import functools

from django.db import connection
from django.db.models.sql import Query

from encoders import textprep
from recommender import dbroute
from recommender.models import KEYWORD_TEXT, Item, KeywordBigrams
from recommender.serving.filters import Filters, item_where


@functools.lru_cache(maxsize=1)
def _bigrams_sql() -> tuple[str, tuple]:
    """The indexed expression (``item_keyword_bigrams``) as SQL, compiled by the ORM once
    so that the statement below matches the index exactly."""
    query = Query(Item)
    expression = KeywordBigrams(KEYWORD_TEXT).resolve_expression(query)
    sql, params = expression.as_sql(query.get_compiler(connection=connection), connection)
    return sql, tuple(params)


def keyword_sql(words: list[str], k: int, filters: Filters) -> tuple[str, list]:
    """One statement for every word (the ORM built one query per word, ~2 ms each): per
    word, at most ``k`` items whose bigrams hold the word's (on the GIN index) and whose
    title or tags contain it, case-insensitively; rows of (item id, word's position)."""
    table = Item._meta.db_table
    bigrams, bigram_params = _bigrams_sql()
    where, where_params = item_where(filters)
    sql = (
        "SELECT i.id FROM unnest(%s::text[]) AS w(word) CROSS JOIN LATERAL ("
        f"SELECT {table}.id FROM {table} "
        f"WHERE {bigrams} @> recommender_bigrams(upper(w.word)) "
        f"AND (strpos(upper({table}.title), upper(w.word)) > 0 "
        f"OR strpos(upper({table}.tags::text), upper(w.word)) > 0) "
        f"AND NOT ({table}.id = ANY(%s::bigint[])) AND {where} "
        "LIMIT %s) AS i"
    )
    params = [
        list(words),
        *bigram_params,
        sorted(filters.exclude_ids),
        *where_params,
        k,
    ]
    return sql, params


def keyword_matches(text: str, k: int, filters: Filters) -> dict[int, int]:
    """Items whose title or tags contain the query's jieba keywords: id → keywords matched."""
    words = [word for word in textprep.keywords(text, top_k=5) if len(word) >= 2]
    if not words:
        return {}
    sql, params = keyword_sql(words, k * 2, filters)
    matched: dict[int, int] = {}
    with dbroute.read_connection().cursor() as cursor:
        cursor.execute(sql, params)
        for (item_id,) in cursor.fetchall():
            matched[item_id] = matched.get(item_id, 0) + 1
    return dict(sorted(matched.items(), key=lambda kv: -kv[1])[:k])
