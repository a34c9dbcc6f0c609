"""Public datasets for the quality benchmark: where they live, how the project imports
them, and the same events as arrays for the outside baselines (benchmarks/DATASETS.md).

The data stays outside the repository (``../shared/data``); nothing here downloads.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.quality_baselines import Interactions

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# The lowest rating that counts as a positive engagement: the project's default
# (RECOMMENDER_POSITIVE_RATING, evaluate --min-rating), so a 3.5 is a target and a 3 is not.
POSITIVE_RATING = 3.5


@dataclass(frozen=True)
class Dataset:
    """A dataset folder and the import commands' arguments for it."""

    name: str
    path: Path
    items_args: tuple[str, ...]
    behaviours_args: tuple[str, ...]
    notes: str

    def interactions(self, min_rating: float = POSITIVE_RATING) -> Interactions:
        """Every stored event as arrays, in the order ``import_behaviours`` writes them."""
        return LOADERS[self.name](self.path, min_rating)


def movielens(path: Path | None = None) -> Dataset:
    """MovieLens latest-small through the project's ``--preset movielens``."""
    path = Path(path) if path else SHARED_DATA / "movielens-latest-small"
    return Dataset(
        name="movielens",
        path=path,
        items_args=(str(path), "--preset", "movielens", "--no-embed"),
        behaviours_args=(str(path), "--preset", "movielens"),
        notes=(
            "items: title + genres + the users' tags (up to 20 per movie); events: every "
            "rating (positive from 3.5) and every tag as a review (always positive), with "
            "their timestamps"
        ),
    )


def load_movielens(path: Path, min_rating: float = POSITIVE_RATING) -> Interactions:
    """ratings.csv then tags.csv, as the movielens preset imports them: a rating is
    positive from ``min_rating`` up, a tag (a review) always is."""
    with open(path / "movies.csv", newline="", encoding="utf-8") as f:
        item_ids = [row["movieId"] for row in csv.DictReader(f)]
    item_index = {item: i for i, item in enumerate(item_ids)}
    users: list[str] = []
    items: list[int] = []
    times: list[float] = []
    positive: list[bool] = []
    with open(path / "ratings.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            users.append(row["userId"])
            items.append(item_index[row["movieId"]])
            times.append(float(row["timestamp"]))
            positive.append(float(row["rating"]) >= min_rating)
    tags = path / "tags.csv"
    if tags.exists():
        with open(tags, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                users.append(row["userId"])
                items.append(item_index[row["movieId"]])
                times.append(float(row["timestamp"]))
                positive.append(True)
    user_ids = sorted(set(users), key=int)
    user_index = {user: u for u, user in enumerate(user_ids)}
    return Interactions(
        user=np.array([user_index[u] for u in users], dtype=np.int64),
        item=np.array(items, dtype=np.int64),
        time=np.array(times, dtype=np.float64),
        positive=np.array(positive, dtype=bool),
        user_ids=user_ids,
        item_ids=item_ids,
    )


LOADERS = {"movielens": load_movielens}
DATASETS = {"movielens": movielens}


def get(name: str, path: Path | None = None) -> Dataset:
    """The dataset called ``name`` (``DATASETS``), optionally from another folder."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")
    dataset = DATASETS[name](path)
    if not dataset.path.exists():
        raise FileNotFoundError(f"{dataset.path}: not found (see benchmarks/DATASETS.md)")
    return dataset
