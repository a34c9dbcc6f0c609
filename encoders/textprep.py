"""Text preparation shared by the encoders: normalisation, truncation, segmentation, keywords.

Chinese runs are segmented with jieba; everything else is split into lowercased word
tokens. jieba loads its dictionary on first use (about a second), not at import.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import jieba

# jieba logs "Building prefix dict ..." at DEBUG/INFO on every process start; workers and
# management commands should not print that.
jieba.setLogLevel(logging.WARNING)

# CJK Unified Ideographs, Extension A and Compatibility Ideographs: the runs jieba segments.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RUN = re.compile(f"([{_HAN}]+)")
_HAN_ONLY = re.compile(f"^[{_HAN}]+$")
# Letters and digits of any script; apostrophes and punctuation split tokens.
_WORD = re.compile(r"[^\W_]+")
_WHITESPACE = re.compile(r"\s+")

STOP_WORDS: frozenset[str] = frozenset(
    # English function words, plus the "s"/"t" left over when "women's" or "don't" splits.
    "a an and are as at be but by for from has have i if in into is it its of on or our s so t "
    "than that the their them then there these they this to was we were what when which who "
    "will with you your".split()
    # Chinese particles and pronouns that jieba returns as separate words.
    + "的 了 和 与 及 或 是 在 也 都 就 而 且 之 其 这 那 个".split()
    + "我 你 他 她 它 们 吗 呢 吧 啊 着 把 被 让".split()
)

_loaded_user_dicts: set[str] = set()
_user_dict_lock = threading.Lock()


def normalize(text: str) -> str:
    """NFKC-fold (full-width to half-width), drop control characters, collapse whitespace."""
    text = unicodedata.normalize("NFKC", text)
    # Whitespace controls (\t, \n, \r) become spaces; other controls and format characters
    # (zero-width spaces, BOMs, soft hyphens) are invisible noise and are dropped. A
    # printable text has neither (nor any space but " "), so it skips the per-character pass.
    if not text.isprintable():
        text = "".join(
            " " if ch.isspace() else ch
            for ch in text
            if ch.isspace() or not unicodedata.category(ch).startswith("C")
        )
    return _WHITESPACE.sub(" ", text).strip()


def truncate(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, backing off to a space mid-word."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    # Only Latin-style words are worth keeping whole; Chinese has no spaces to back off to.
    if text[max_chars].isalnum() and cut[-1].isalnum():
        space = cut.rfind(" ")
        if space > max_chars // 2:
            cut = cut[:space]
    return cut.rstrip()


def is_han(token: str) -> bool:
    """Whether ``token`` consists only of Chinese characters."""
    return bool(_HAN_ONLY.match(token))


def segment(text: str) -> list[str]:
    """Split text into words: jieba for Chinese runs, lowercased word tokens otherwise.

    Punctuation and stop-words are dropped, so ``segment("女性长款羽绒服")`` is
    ``["女性", "长款", "羽绒服"]`` and ``segment("Women's Down Jacket!")`` is
    ``["women", "down", "jacket"]``.
    """
    tokens: list[str] = []
    # re.split with a capturing group alternates: non-Chinese, Chinese, non-Chinese, ...
    for i, piece in enumerate(_HAN_RUN.split(normalize(text))):
        words = jieba.lcut(piece) if i % 2 else _WORD.findall(piece.lower())
        tokens.extend(w for w in words if w not in STOP_WORDS)
    return tokens


def text_digest(text: str) -> str:
    """A fixed-size key for ``text`` (BLAKE2b, 128 bits, hex): a cache keyed by it holds
    32 characters per entry however long the text, and never the text itself."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class LRUCache:
    """A thread-safe map of at most ``maxsize`` entries that forgets the least recently
    used first. Keys should be small (see :func:`text_digest`)."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            try:
                self._entries.move_to_end(key)
            except KeyError:
                return default
            return self._entries[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# Serving explains the same items again and again: remember recent texts' keywords, by a
# hash of the text (an entry does not pin the text, which may be long).
_keywords_cache = LRUCache(8192)


def keywords(text: str, top_k: int = 8) -> list[str]:
    """The ``top_k`` most characteristic words of ``text`` (TF-IDF, works for mixed zh/en)."""
    key = (text_digest(text), top_k)
    found = _keywords_cache.get(key)
    if found is None:
        found = extract_keywords(text, top_k)
        _keywords_cache.put(key, found)
    return list(found)


def extract_keywords(text: str, top_k: int = 8) -> tuple[str, ...]:
    """:func:`keywords` without its cache (for callers that cache the result themselves)."""
    # Imported here: jieba.analyse reads its IDF table at import time (about a second).
    import jieba.analyse

    prepared = normalize(text).lower()
    # Ask for a few spare tags: ours is a larger stop list than jieba's built-in English one.
    tags = jieba.analyse.extract_tags(prepared, topK=top_k + 4)
    return tuple([w for w in tags if w not in STOP_WORDS][:top_k])


def load_user_dict(path: str | Path) -> None:
    """Add a jieba user dictionary (one ``word [freq] [tag]`` per line); loads each path once.

    Raises ``FileNotFoundError`` when the file does not exist.
    """
    resolved = str(Path(path).expanduser().resolve())
    with _user_dict_lock:
        if resolved in _loaded_user_dicts:
            return
        if not Path(resolved).is_file():
            raise FileNotFoundError(resolved)
        jieba.load_userdict(resolved)
        _loaded_user_dicts.add(resolved)
        _keywords_cache.clear()  # new words segment texts differently


def dictionary_version() -> str:
    """Names the user dictionaries loaded in this process (``""`` for none): texts segment
    differently with them, so a cache shared between processes keys entries by it."""
    with _user_dict_lock:
        loaded = sorted(_loaded_user_dicts)
    return text_digest("\n".join(loaded))[:12] if loaded else ""
