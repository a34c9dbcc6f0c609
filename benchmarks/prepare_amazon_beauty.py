"""Prepare Amazon Beauty (2014, 5-core) for the quality benchmark (``--dataset amazon-beauty``).

Source (nothing here downloads; fetch the file by hand, see benchmarks/DATASETS.md):
    GitHub repository Tiny-Snow/SeqRecBenchmark-Datasets, commit
    3bc413edfdf5c8bf408efe63db7b63f0f8d37503, file ``data/amazon2014-beauty/proc.zip``
    (1,160,906 bytes, sha256 in ``SOURCE_SHA256``). It holds ``user2item.pkl`` (one row per
    user: the user's items and review times, oldest first), ``item2title.pkl`` (each item's
    title) and ``summary.json``, made by that repository's ``process_data/amazon_dataset.py``
    (MIT licence) from the Amazon review data of J. McAuley's lab at UCSD, 2014 version,
    category "Beauty": the 5-core reviews file and the product metadata's titles.

Original dataset and terms: Amazon product data (2014), https://cseweb.ucsd.edu/~jmcauley/
    datasets/amazon/links.html. It carries no licence file; the lab distributes it for
    research, asking users to cite R. He and J. McAuley, "Ups and downs: Modeling the visual
    evolution of fashion trends with one-class collaborative filtering", WWW 2016, and
    J. McAuley, C. Targett, Q. Shi and A. van den Hengel, "Image-based recommendations on
    styles and substitutes", SIGIR 2015. The review texts and ratings stay with Amazon's
    users and Amazon; this benchmark keeps only ids, dates and product titles, and never
    commits them (the output goes to ``.recsite/``, ignored by git).

Preprocessing upstream (SeqRecBenchmark): reviews (reviewerID, asin, unixReviewTime) of the
    5-core file; items without a title dropped; exact duplicates (same user, item and time)
    dropped; 5-core again (every user and item has at least 5 reviews); each user's items
    sorted by time (the review *date*: unixReviewTime is midnight UTC of the day, so events
    of one day tie, in an arbitrary order); users and items renumbered from 100. The star
    ratings and review texts are not in the file: every review is an engagement.
    Result: 22,332 users, 12,086 items, 198,215 reviews (2002-06 to 2014-07).

Preprocessing here:
    - ``items.csv``: ``external_id`` (the upstream number), ``title`` (HTML entities such
      as ``&amp;`` decoded, white space collapsed). The file has no category, tags or
      description, so the title is all the text the encoder reads; the 23 titles longer
      than the 500 characters ``Item.title`` holds keep their first words (up to 500
      characters) as the title and the rest as the ``description``.
    - ``behaviours.csv``: one ``review`` event per review (``review`` is an engagement in
      ``recommender.behaviour.ENGAGED``, so every event may be a target), ``occurred_at``
      the review date (Unix seconds), ``event_id`` ``az-USER-ITEM``. A user's second review
      of the same item (upstream keeps them when the dates differ) is dropped: the
      pipeline excludes seen items from a user's lists, so a repeat could never be found.
      Rows are in the upstream order (user by user, oldest first), the tie-breaker between
      reviews of one day.
    - ``PROVENANCE.md``: the source, its checksum and the counts.

Run:
    .venv/bin/python benchmarks/prepare_amazon_beauty.py PATH/TO/proc.zip
        [--out .recsite/data-amazon-beauty]
PATH may also be the folder the zip unpacks to. The pickles are read by a restricted
unpickler: the only callables it hands them are numpy's array constructors, ``slice`` and
inert stand-ins for the few pandas names a DataFrame pickle uses, so they cannot run
arbitrary code, and pandas is not needed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import io
import json
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np

try:  # numpy 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / ".recsite" / "data-amazon-beauty"
SOURCE = (
    "https://github.com/Tiny-Snow/SeqRecBenchmark-Datasets, commit "
    "3bc413edfdf5c8bf408efe63db7b63f0f8d37503, data/amazon2014-beauty/proc.zip"
)
SOURCE_SHA256 = "04dcb540be5e1fac0acabee8e4720ffca859fd50261e901769f2102b0acd0f91"  # proc.zip
EXPECTED = {"user_size": 22332, "item_size": 12086, "interactions": 198215}


# --- A restricted reader of pandas DataFrame pickles -----------------------------------------


class _Stub:
    """Stands in for a pandas class: keeps what the pickle hands it."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state


class _DataFrame(_Stub):
    pass


class _BlockManager(_Stub):
    pass


class _RangeIndex(_Stub):
    pass


class _Index(_Stub):
    pass


def _unpickle_block(values, placement, ndim):
    return ("block", values, placement)


def _new_index(cls, data):
    return ("index", cls, data)


_ALLOWED = {
    ("pandas.core.frame", "DataFrame"): _DataFrame,
    ("pandas.core.internals.managers", "BlockManager"): _BlockManager,
    ("pandas._libs.internals", "_unpickle_block"): _unpickle_block,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
    ("pandas.core.indexes.range", "RangeIndex"): _RangeIndex,
    ("pandas.core.indexes.base", "Index"): _Index,
    ("builtins", "slice"): slice,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
}


class _SafeUnpickler(pickle.Unpickler):
    """Refuses every global but numpy's array reconstructors and the stand-ins above."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _multiarray._reconstruct
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return _numeric._frombuffer
        raise pickle.UnpicklingError(f"refused {module}.{name}: not a plain DataFrame pickle")


def read_frame(data: bytes) -> dict[str, list]:
    """The columns of a pickled pandas DataFrame (pandas 2.x, numpy blocks), by name."""
    frame = _SafeUnpickler(io.BytesIO(data)).load()
    if not isinstance(frame, _DataFrame) or not isinstance(frame.state, dict):
        raise ValueError("not a pickled DataFrame")
    manager = frame.state["_mgr"]
    if not isinstance(manager, _BlockManager) or len(manager.args) < 2:
        raise ValueError("not a pickled DataFrame (no block manager)")
    blocks, axes = manager.args[0], manager.args[1]
    _, _, columns = axes[0]
    names = [str(name) for name in columns["data"]]
    out: dict[str, list] = {}
    for block in blocks:
        _, values, placement = block
        rows = np.asarray(values)
        positions = range(len(names))[placement] if isinstance(placement, slice) else placement
        for row, position in zip(rows, positions, strict=True):
            out[names[int(position)]] = list(row)
    return out


# --- The conversion ---------------------------------------------------------------------------


def read_source(source: Path) -> tuple[dict[str, list], dict[str, list], dict, str]:
    """user2item and item2title as columns, summary.json, and the source's sha256."""
    if source.is_dir():
        files = {name: (source / name).read_bytes() for name in
                 ("user2item.pkl", "item2title.pkl", "summary.json")}  # fmt: skip
        digest = hashlib.sha256(files["user2item.pkl"] + files["item2title.pkl"]).hexdigest()
        digest = f"{digest} (of user2item.pkl + item2title.pkl)"
    else:
        raw = source.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest != SOURCE_SHA256:
            print(f"note: {source} is not the zip this script was written for", file=sys.stderr)
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            by_name = {Path(n).name: n for n in archive.namelist()}
            files = {name: archive.read(by_name[name]) for name in
                     ("user2item.pkl", "item2title.pkl", "summary.json")}  # fmt: skip
    return (
        read_frame(files["user2item.pkl"]),
        read_frame(files["item2title.pkl"]),
        json.loads(files["summary.json"]),
        digest,
    )


TITLE_LIMIT = 500  # Item.title's max_length


def clean_title(title: str) -> str:
    return " ".join(html.unescape(str(title)).split())


def split_title(text: str, limit: int = TITLE_LIMIT) -> tuple[str, str]:
    """(title, description): a text longer than ``limit`` (23 of 12,086 titles, product
    blurbs pasted into the title) keeps its words up to ``limit`` as the title and the rest
    as the description, so the encoder still reads all of it."""
    if len(text) <= limit:
        return text, ""
    cut = text.rfind(" ", 0, limit + 1)
    cut = cut if cut > 0 else limit
    return text[:cut].rstrip(), text[cut:].strip()


def prepare(source: Path, out: Path) -> dict:
    """Write items.csv, behaviours.csv and PROVENANCE.md into ``out``; the counts."""
    user2item, item2title, summary, digest = read_source(source)
    titles = {
        int(i): clean_title(t)
        for i, t in zip(item2title["ItemID"], item2title["Title"], strict=True)
    }
    events = []  # (user, item, time), upstream order
    repeats = 0
    for user, items, times in zip(
        user2item["UserID"], user2item["ItemID"], user2item["Timestamp"], strict=True
    ):
        seen: set[int] = set()
        for item, when in zip(items, times, strict=True):
            if int(item) in seen:
                repeats += 1
                continue
            seen.add(int(item))
            events.append((int(user), int(item), int(when)))
    used = sorted({item for _, item, _ in events})
    missing = [item for item in used if not titles.get(item)]
    if missing:
        raise ValueError(f"{len(missing)} items without a title, e.g. {missing[:5]}")

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "items.csv.tmp", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["external_id", "title", "description"])
        writer.writerows((item, *split_title(titles[item])) for item in used)
    with open(out / "behaviours.csv.tmp", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["event_id", "user", "item", "kind", "occurred_at"])
        writer.writerows((f"az-{u}-{i}", u, i, "review", t) for u, i, t in events)
    counts = {
        "users": len({u for u, _, _ in events}),
        "items": len(used),
        "events": len(events),
        "repeats_dropped": repeats,
        "first": min(t for _, _, t in events),
        "last": max(t for _, _, t in events),
    }
    upstream = {key: summary.get(key) for key in EXPECTED}
    (out / "PROVENANCE.md").write_text(
        "# Amazon Beauty (2014, 5-core), prepared for the quality benchmark\n\n"
        f"- Source: {SOURCE}\n"
        f"- sha256: {digest}\n"
        f"- Upstream summary.json: {json.dumps(upstream)}\n"
        f"- Written by benchmarks/prepare_amazon_beauty.py: {json.dumps(counts)}\n"
        "- Terms: Amazon product data (2014), J. McAuley's lab, UCSD, for research; cite "
        "He & McAuley (WWW 2016) and McAuley et al. (SIGIR 2015). Not for redistribution "
        "in this repository.\n",
        encoding="utf-8",
    )
    # Renamed last, behaviours first: a folder with items.csv is complete.
    (out / "behaviours.csv.tmp").replace(out / "behaviours.csv")
    (out / "items.csv.tmp").replace(out / "items.csv")
    if upstream != EXPECTED:
        print(f"note: upstream counts {upstream} differ from {EXPECTED}", file=sys.stderr)
    return counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="proc.zip, or the folder it unpacks to")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    counts = prepare(args.source, args.out)
    print(f"wrote {args.out}: {json.dumps(counts)}")


if __name__ == "__main__":
    main()
