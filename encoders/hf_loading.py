"""Loading Hugging Face checkpoints from disk: offline and without progress bars."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def local_checkpoint_loading() -> Iterator[None]:
    """Context for ``from_pretrained``-style loading of a model directory on disk.

    Sets ``HF_HUB_OFFLINE=1`` unless the operator set it (a stray hub call then fails at
    once instead of waiting on network timeouts), and hides transformers' "Loading
    weights" progress bar, which would otherwise land in worker logs on every start.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    bar_was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bar_was_enabled:
            hf_logging.enable_progress_bar()
