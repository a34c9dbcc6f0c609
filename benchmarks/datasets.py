"""Public datasets for the quality benchmark: where they live, how the project imports
them, and the same events as arrays for the outside baselines (benchmarks/DATASETS.md).

The data stays outside the repository (``../shared/data``); nothing here downloads.
``synthetic-10k`` is generated here (seeded numpy) into ``.recsite/``: a synthetic dataset
for timing the pipeline at 10,000 users × 10,000 items, not a quality claim.
``amazon-beauty`` is read from ``.recsite/data-amazon-beauty``, which
``benchmarks/prepare_amazon_beauty.py`` writes from a file fetched by hand.
"""

from __future__ import annotations

import csv
import os
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


def _item_ids(path: Path, column: str) -> list[str]:
    """The item ids of a CSV file's ``column``, in file order (the import order)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [row[column] for row in csv.DictReader(f)]


def _interactions(
    users: list[str], items: list[int], times: list[float], positive, item_ids: list[str]
) -> Interactions:
    """Events as arrays, users numbered in the order of their (numeric) ids."""
    user_ids = sorted(set(users), key=int)
    user_index = {user: u for u, user in enumerate(user_ids)}
    return Interactions(
        user=np.array([user_index[u] for u in users], dtype=np.int64),
        item=np.array(items, dtype=np.int64),
        time=np.array(times, dtype=np.float64),
        positive=np.asarray(positive, dtype=bool),
        user_ids=user_ids,
        item_ids=item_ids,
    )


def load_movielens(path: Path, min_rating: float = POSITIVE_RATING) -> Interactions:
    """ratings.csv then tags.csv, as the movielens preset imports them: a rating is
    positive from ``min_rating`` up, a tag (a review) always is."""
    item_ids = _item_ids(path / "movies.csv", "movieId")
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
    return _interactions(users, items, times, positive, item_ids)


# --- A synthetic 10k × 10k dataset, for timing the pipeline at scale ------------------------

# 50 latent topics: a name, the words an item's title draws on, and the two genres it leans to.
# Items of one topic share words, so text similarity carries (some) signal.
TOPICS = """
ocean: sea wave sailor island harbor storm ship tide | Adventure Drama
space: star planet rocket orbit galaxy astronaut moon comet | Sci-Fi Adventure
robot: machine android circuit metal engine factory signal code | Sci-Fi Action
detective: clue murder alibi suspect case inspector witness motive | Mystery Crime
heist: vault bank thief safe diamond getaway crew plan | Crime Thriller
war: soldier battle trench general front siege regiment medal | War Drama
western: cowboy ranch sheriff saloon outlaw horse desert frontier | Western Action
romance: love heart kiss wedding letter promise summer bride | Romance Drama
ghost: haunted spirit shadow attic whisper curse grave midnight | Horror Mystery
vampire: blood fang castle count coffin bite night crypt | Horror Fantasy
zombie: undead plague outbreak survivor bunker horde infection quarantine | Horror Action
dragon: dragon sword knight quest kingdom wizard throne crown | Fantasy Adventure
fairy: fairy forest princess spell enchanted wish magic garden | Fantasy Children
school: school teacher student exam classroom graduation locker campus | Comedy Drama
sport: team coach champion match stadium season trophy rookie | Drama Comedy
music: song band guitar concert singer melody stage rhythm | Musical Drama
dance: dance ballet tango step studio rehearsal partner festival | Musical Romance
cooking: kitchen chef recipe restaurant bread feast dinner spice | Comedy Documentary
nature: wildlife jungle river mountain bear wolf eagle valley | Documentary Adventure
history: empire emperor ancient ruins dynasty pharaoh temple scroll | Documentary Drama
politics: president election senate campaign scandal vote minister capital | Drama Thriller
spy: agent secret mission code embassy defector cipher border | Thriller Action
courtroom: trial judge jury lawyer verdict evidence appeal testimony | Drama Crime
hospital: doctor nurse surgeon patient ward cure fever clinic | Drama Romance
family: mother father sister brother holiday home reunion grandma | Drama Comedy
kids: puppy toy cartoon playground birthday candy treehouse bunny | Children Animation
animals: cat dog horse farm barn pony kitten meadow | Children Comedy
city: street taxi subway apartment neon rooftop downtown traffic | Drama Comedy
road: highway car journey motel road map diner roadtrip | Adventure Comedy
gangster: mob boss gun debt cartel smuggler alley casino | Crime Action
martial: kung fu master temple fist monk tournament dojo | Action Adventure
disaster: earthquake flood volcano tornado fire rescue avalanche tsunami | Action Thriller
time: time machine future past clock paradox century loop | Sci-Fi Mystery
alien: alien invasion ufo contact signal abduction mothership probe | Sci-Fi Horror
pirate: pirate treasure parrot captain cannon map galleon plunder | Adventure Comedy
arctic: ice snow polar glacier expedition frost sled blizzard | Adventure Documentary
desert: sand dune oasis caravan nomad mirage camel sun | Adventure War
noir: rain cigarette dame private eye jazz night shadow | Film-Noir Crime
comedy: prank joke clown party mistake neighbor wedding chaos | Comedy Romance
superhero: hero villain power mask cape city rescue league | Action Sci-Fi
art: painter museum canvas portrait gallery sculpture muse forger | Drama Documentary
writer: novel poet typewriter library book manuscript author ink | Drama Romance
prison: cell escape warden inmate bars sentence yard tunnel | Crime Drama
horror: scream killer mask cabin woods blood slasher knife | Horror Thriller
mind: dream memory psychiatrist madness hypnosis identity amnesia mirror | Thriller Mystery
royal: queen king palace prince court duchess ball heir | Drama Romance
farm: harvest tractor field orchard village farmer rain barn | Drama Children
sea monster: shark whale monster depths reef diver submarine kraken | Horror Adventure
train: train station railway conductor locomotive tracks express platform | Adventure Mystery
cyber: hacker network virus computer password firewall drone glitch | Sci-Fi Thriller
"""
CONNECTORS = ("of the", "and the", "in the", "beyond the", "under the", "for the")
SYNTHETIC_SEED = 19
SYNTHETIC_DATA = ROOT / ".recsite"


def synthetic_size() -> tuple[int, int]:
    """Users and items, from BENCH_SYNTHETIC_USERS / BENCH_SYNTHETIC_ITEMS (default 10,000
    each; set them smaller to try the pipeline quickly)."""
    return (
        int(os.environ.get("BENCH_SYNTHETIC_USERS", 10_000)),
        int(os.environ.get("BENCH_SYNTHETIC_ITEMS", 10_000)),
    )


def generate_synthetic(path: Path, n_users: int, n_items: int, seed: int = SYNTHETIC_SEED) -> None:
    """Write movies.csv and ratings.csv in MovieLens's layout into ``path``.

    A synthetic TIMING dataset: it has the shape of a 10k × 10k catalogue and some
    structure (topics, interests, sequences) so that every stage does real work, but its
    quality figures say nothing about real data. Deterministic for a given seed and size.

    - Items: each belongs to one of the 50 TOPICS; its title is 2–4 of the topic's words
      (one word in five from another topic, as noise) and a year; its genres are the
      topic's two (the first always, the second half the time) plus, one time in five, a
      random one. Popularity within a topic is lognormal.
    - Users: 1–3 interests (topics, Dirichlet weights); about 45 ratings each (lognormal,
      8–400). Each next item is, with probability 0.5, near the previous one in its topic's
      order (sequential behaviour), with 0.4 a popular item of one of the user's topics,
      else a popular item of any topic. No item twice per user.
    - Ratings: half-stars from 0.5 to 5, higher within the user's interests (about three
      in four are 3.5 or more); timestamps strictly increasing per user, 2015–2024.
    """
    rng = np.random.default_rng(seed)
    topics = []
    for line in TOPICS.strip().splitlines():
        words, genres = line.split(":", 1)[1].split("|")
        topics.append((words.split(), genres.split()))
    all_genres = sorted({g for _, genres in topics for g in genres})
    n_topics = len(topics)

    # Items: topic, popularity, title, genres. Within a topic, item order is the "sequence"
    # users walk along.
    item_topic = rng.integers(n_topics, size=n_items)
    popularity = rng.lognormal(0.0, 1.0, size=n_items)
    members = [np.flatnonzero(item_topic == t) for t in range(n_topics)]
    cumulative = [np.cumsum(popularity[m]) / popularity[m].sum() for m in members]
    position = np.empty(n_items, dtype=np.int64)  # an item's place in its topic's order
    for m in members:
        position[m] = np.arange(len(m))
    movies = []
    for i in range(n_items):
        words, genres = topics[item_topic[i]]
        chosen = list(rng.choice(words, size=rng.integers(2, 5), replace=False))
        if rng.random() < 0.2:  # a word from another topic: text is a noisy signal
            chosen[-1] = rng.choice(topics[rng.integers(n_topics)][0])
        if len(chosen) > 2:
            chosen.insert(len(chosen) // 2 + 1, str(rng.choice(CONNECTORS)))
        title = " ".join(w if " " in w else w.capitalize() for w in chosen)
        if rng.random() < 0.5:
            title = "The " + title
        item_genres = [genres[0]] + ([genres[1]] if rng.random() < 0.5 else [])
        if rng.random() < 0.2:
            item_genres.append(str(rng.choice(all_genres)))
        year = 1950 + int(rng.integers(74))
        movies.append((i + 1, f"{title} ({year})", "|".join(dict.fromkeys(item_genres))))

    def popular_in(topic: int) -> int:
        return int(members[topic][np.searchsorted(cumulative[topic], rng.random())])

    ratings = []
    start, end = 1420070400, 1704067200  # 2015-01-01, 2024-01-01 (UTC)
    for user in range(n_users):
        interests = rng.choice(n_topics, size=rng.integers(1, 4), replace=False)
        weights = rng.dirichlet(np.ones(len(interests)))
        count = int(np.clip(rng.lognormal(np.log(35), 0.7), 8, 400))
        seen: set[int] = set()
        item = popular_in(int(rng.choice(interests, p=weights)))
        when = int(rng.integers(start, end - 400 * 86400))
        for _ in range(20 * count):  # tries: a user's topics may run out of new items
            if len(seen) == count:
                break
            draw = rng.random()
            if draw < 0.5:  # near the previous item in its topic's order
                topic = item_topic[item]
                step = int(rng.integers(1, 4)) * (1 if rng.random() < 0.8 else -1)
                near = (position[item] + step) % len(members[topic])
                candidate = int(members[topic][near])
            elif draw < 0.9:  # a popular item of one of the user's interests
                candidate = popular_in(int(rng.choice(interests, p=weights)))
            else:  # anything popular
                candidate = popular_in(int(rng.integers(n_topics)))
            if candidate in seen:
                continue
            seen.add(candidate)
            item = candidate
            liked = item_topic[item] in interests
            rating = rng.normal(4.1, 0.7) if liked else rng.normal(3.1, 0.9)
            rating = float(np.clip(np.round(rating * 2) / 2, 0.5, 5.0))
            when += 1 + int(rng.exponential(6 * 3600))  # strictly increasing
            ratings.append((user + 1, item + 1, rating, when))

    path.mkdir(parents=True, exist_ok=True)
    with open(path / "movies.csv.tmp", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["movieId", "title", "genres"])
        writer.writerows(movies)
    with open(path / "ratings.csv.tmp", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["userId", "movieId", "rating", "timestamp"])
        writer.writerows((u, i, f"{r:.1f}", t) for u, i, r, t in ratings)
    # Renamed last, ratings first: a folder with movies.csv is complete.
    (path / "ratings.csv.tmp").replace(path / "ratings.csv")
    (path / "movies.csv.tmp").replace(path / "movies.csv")


def synthetic_10k(path: Path | None = None) -> Dataset:
    """The synthetic timing dataset (``generate_synthetic``), generated on first use into
    ``.recsite/data-synthetic-10k`` (other sizes: ``data-synthetic-USERSxITEMS``)."""
    n_users, n_items = synthetic_size()
    if path is None:
        suffix = "10k" if (n_users, n_items) == (10_000, 10_000) else f"{n_users}x{n_items}"
        path = SYNTHETIC_DATA / f"data-synthetic-{suffix}"
    path = Path(path)
    if not (path / "movies.csv").exists():
        print(f"generating {n_users} users x {n_items} items into {path}", flush=True)
        generate_synthetic(path, n_users, n_items)
    return Dataset(
        name="synthetic-10k",
        path=path,
        items_args=(str(path), "--preset", "movielens", "--no-embed"),
        behaviours_args=(str(path), "--preset", "movielens"),
        notes=(
            f"SYNTHETIC timing data, not a quality claim: {n_users} users x {n_items} items "
            "from 50 latent topics (generate_synthetic, seed 19); events: every rating "
            "(positive from 3.5)"
        ),
    )


# --- Amazon Beauty (2014, 5-core): a second real dataset, product titles ---------------------

AMAZON_BEAUTY_DATA = ROOT / ".recsite" / "data-amazon-beauty"


def amazon_beauty(path: Path | None = None) -> Dataset:
    """Amazon Beauty 5-core reviews with product titles, as ``benchmarks/
    prepare_amazon_beauty.py`` writes them (default ``.recsite/data-amazon-beauty``):
    ``items.csv`` and ``behaviours.csv`` in the importers' own columns, no preset."""
    path = Path(path) if path else AMAZON_BEAUTY_DATA
    return Dataset(
        name="amazon-beauty",
        path=path,
        items_args=(str(path / "items.csv"), "--no-embed"),
        behaviours_args=(str(path / "behaviours.csv"),),
        notes=(
            "Amazon Beauty 2014 5-core (McAuley lab, UCSD; via SeqRecBenchmark-Datasets): "
            "items: the product title only; events: every review as a `review` engagement "
            "(always positive; no star ratings in the source), dated to the day"
        ),
    )


def load_amazon_beauty(path: Path, min_rating: float = POSITIVE_RATING) -> Interactions:
    """behaviours.csv in file order, as ``import_behaviours`` stores it; every event is a
    ``review``, so every event is positive (``min_rating`` has nothing to act on)."""
    item_ids = _item_ids(path / "items.csv", "external_id")
    item_index = {item: i for i, item in enumerate(item_ids)}
    users: list[str] = []
    items: list[int] = []
    times: list[float] = []
    with open(path / "behaviours.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            users.append(row["user"])
            items.append(item_index[row["item"]])
            times.append(float(row["occurred_at"]))
    return _interactions(users, items, times, np.ones(len(items), dtype=bool), item_ids)


# The synthetic folder has the MovieLens layout (no tags.csv), so the same loader reads it.
LOADERS = {
    "movielens": load_movielens,
    "synthetic-10k": load_movielens,
    "amazon-beauty": load_amazon_beauty,
}
DATASETS = {"movielens": movielens, "synthetic-10k": synthetic_10k, "amazon-beauty": amazon_beauty}


def get(name: str, path: Path | None = None) -> Dataset:
    """The dataset called ``name`` (``DATASETS``), optionally from another folder."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")
    dataset = DATASETS[name](path)
    if not dataset.path.exists():
        raise FileNotFoundError(f"{dataset.path}: not found (see benchmarks/DATASETS.md)")
    return dataset
