"""Readers for well-known public dataset layouts, producing importer rows.

``movielens``: the GroupLens CSV layout (movies.csv, ratings.csv, tags.csv). Items get
their text from the title, the genres and the users' tags; ratings become ``rating``
behaviours; each tag becomes a ``review``-like user text on the movie.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from recommender.ingest.fields import ImportFailed, Row
from recommender.ingest.files import read_rows

PRESETS = ("movielens",)
_YEAR = re.compile(r"\((\d{4})\)\s*$")
_MAX_TAGS = 20


def _movielens_dir(path: Path) -> Path:
    directory = path if path.is_dir() else path.parent
    if not (directory / "movies.csv").exists():
        raise ImportFailed(str(path), "not a MovieLens folder: movies.csv is missing")
    return directory


def _tags_by_movie(directory: Path) -> dict[str, list[str]]:
    tags_path = directory / "tags.csv"
    counts: dict[str, Counter] = defaultdict(Counter)
    if tags_path.exists():
        for row in read_rows(tags_path, "csv", label="tags.csv"):
            tag = row.values.get("tag", "").strip()
            if tag:
                counts[row.values["movieId"]][tag.lower()] += 1
    return {movie: [tag for tag, _ in c.most_common(_MAX_TAGS)] for movie, c in counts.items()}


def movielens_items(path: Path) -> Iterator[Row]:
    """One item per movie: title, genres as category and tags, users' tags appended."""
    directory = _movielens_dir(path)
    user_tags = _tags_by_movie(directory)
    for row in read_rows(directory / "movies.csv", "csv", label="movies.csv"):
        movie_id = row.values.get("movieId", "")
        title = row.values.get("title", "").strip()
        raw_genres = row.values.get("genres", "")
        genres = [g for g in raw_genres.split("|") if g and g != "(no genres listed)"]
        tags = list(dict.fromkeys(genres + user_tags.get(movie_id, [])))
        description = f"{title}. Genres: {', '.join(genres) or 'unknown'}."
        if user_tags.get(movie_id):
            description += f" Tags: {', '.join(user_tags[movie_id])}."
        attributes: dict = {"genres": genres}
        year = _YEAR.search(title)
        if year:
            attributes["year"] = int(year.group(1))
        yield Row(
            row.where,
            {
                "external_id": movie_id,
                "title": title,
                "description": description,
                "category": genres[0] if genres else "",
                "tags": tags,
                "attributes": attributes,
            },
        )


def movielens_behaviours(path: Path) -> Iterator[Row]:
    """Ratings as ``rating`` events and tags as ``review`` texts, with stable event ids."""
    directory = _movielens_dir(path)
    ratings = directory / "ratings.csv"
    if not ratings.exists():
        raise ImportFailed(str(path), "not a MovieLens folder: ratings.csv is missing")
    for row in read_rows(ratings, "csv", label="ratings.csv"):
        v = row.values
        yield Row(
            row.where,
            {
                "event_id": f"ml-r-{v.get('userId')}-{v.get('movieId')}",
                "user": v.get("userId"),
                "item": v.get("movieId"),
                "kind": "rating",
                "value": v.get("rating"),
                "occurred_at": v.get("timestamp"),
            },
        )
    tags = directory / "tags.csv"
    if tags.exists():
        for row in read_rows(tags, "csv", label="tags.csv"):
            v = row.values
            digest = hashlib.sha1(v.get("tag", "").encode()).hexdigest()[:10]
            yield Row(
                row.where,
                {
                    "event_id": f"ml-t-{v.get('userId')}-{v.get('movieId')}-{digest}",
                    "user": v.get("userId"),
                    "item": v.get("movieId"),
                    "kind": "review",
                    "text": v.get("tag", ""),
                    "occurred_at": v.get("timestamp"),
                },
            )
