"""What a new server process loads before it answers, so that the first shoppers after a
deploy or a worker restart do not wait for it.

Measured on the demo shop (2 cores): the multilingual USE model's first encode takes
about 1 s and jieba's dictionary another 1 s; under load, with both cores busy, the first
free-text lists after a start waited 5-10 s (``benchmarks/load.py``'s p99 of intent
lists). ``recsite/wsgi.py`` calls ``warm_up()`` when a server process loads the site
(every gunicorn worker, before it accepts a request) unless ``RECOMMENDER_WARM_UP`` is
off. A step that fails is logged and skipped: warming up never stops a server starting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# A short text in both languages the encoders and the segmenter see at start.
WARM_TEXT = "预热 warm up"


def _encoders() -> None:
    """The encoder of every space serving reads (the active one, those scenarios name)."""
    from recommender import spaces
    from recommender.spaces.embedding import encoder_for

    for space in spaces.profile_spaces():
        encoder_for(space).encode([WARM_TEXT])


def _segmentation() -> None:
    """jieba's dictionary and keyword extractor (free-text intents, explanations)."""
    from encoders import textprep
    from recommender.serving import segmentation

    textprep.keywords(WARM_TEXT, top_k=5)
    segmentation.item_keywords(WARM_TEXT, 12)


def _models() -> None:
    """The trained behaviour models and the learned ranker, when there are any."""
    from recommender.serving import behaviour_models, ranking

    behaviour_models.active()
    ranking.current_scorer()


STEPS: dict[str, Callable[[], None]] = {
    "encoders": _encoders,
    "segmentation": _segmentation,
    "models": _models,
}


def warm_up() -> dict[str, float | None]:
    """Run every step; step → seconds taken (None: it failed, and was logged)."""
    took: dict[str, float | None] = {}
    for name, step in STEPS.items():
        started = time.monotonic()
        try:
            step()
        except Exception:  # a missing model, the database not up yet: serve anyway
            logger.warning("warm-up step %r failed; it loads on first use", name, exc_info=True)
            took[name] = None
            continue
        took[name] = round(time.monotonic() - started, 3)
    logger.info("warmed up: %s", ", ".join(f"{k} {v} s" for k, v in took.items()))
    return took
