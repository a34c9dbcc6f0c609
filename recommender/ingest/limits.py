"""What stored input may be: external ids, the size of JSON blobs, item attribute values.

Every write path (the API, ``items/bulk``, the admin, the importers) checks through these
functions, so a value that would break serving later is refused when it is written, with
a reason naming the field. Examples of what they keep out: an id with a ``/`` that no URL
can address, a ``price`` of ``"1e5000"`` that costs seconds (or a 500) each time a blurb
prints it, a megabyte of event ``context`` stored forever.

Each check raises :class:`InvalidValue` (a ``ValueError``) whose ``str()`` is one readable
line; callers turn it into a field error (API, admin) or an ``ImportFailed`` (importers).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

from recommender import attributes
from recommender.conf import conf
from recommender.models import LANGUAGE_CODE

__all__ = [
    "InvalidValue",
    "MAX_DEPTH",
    "MAX_ID_LENGTH",
    "MAX_NUMBER",
    "MAX_PRICE",
    "MAX_TRANSLATIONS",
    "check_attributes",
    "check_external_id",
    "check_json",
    "check_json_size",
    "check_translations",
    "json_size",
    "max_attributes_bytes",
    "max_context_bytes",
]

MAX_ID_LENGTH = 200
# Deepest nesting of a stored JSON object (the API's JSONObjectField has the same limit).
MAX_DEPTH = 8
# Any number stored in attributes: far beyond any real quantity, far below where
# formatting or arithmetic on it gets slow (or loses its integer precision in float64).
MAX_NUMBER = 1e15
# ``price`` is shown in every blurb and filtered on by ``price_min``/``price_max``.
MAX_PRICE = 1e12
# A numeric string longer than this is not a price anyone means.
_MAX_NUMERIC_CHARS = 40
# Languages an item's ``translations`` may hold, and the longest texts in each (the API's
# limits on ``title`` and ``description``).
MAX_TRANSLATIONS = 50
MAX_TITLE = 500
MAX_DESCRIPTION = 20000
_LANGUAGE_CODE = re.compile(LANGUAGE_CODE)


class InvalidValue(ValueError):
    """A value that may not be stored; ``path`` names it (``attributes.price``)."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


def max_attributes_bytes() -> int:
    """The largest item or user ``attributes`` object, as compact UTF-8 JSON."""
    return int(conf.MAX_ATTRIBUTES_BYTES)


def max_context_bytes() -> int:
    """The largest behaviour ``context`` object, as compact UTF-8 JSON."""
    return int(conf.MAX_CONTEXT_BYTES)


def check_external_id(value: Any, path: str = "") -> str:
    """``value`` if it can be an item, user or event id; raises :class:`InvalidValue`.

    An id is 1-200 characters without ``/`` (ids are URL path segments), control
    characters, or leading/trailing whitespace (which no client would type back).
    """
    if not isinstance(value, str):
        raise InvalidValue(path, "must be text")
    if not value:
        raise InvalidValue(path, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidValue(path, f"must be at most {MAX_ID_LENGTH} characters")
    if value != value.strip():
        raise InvalidValue(path, "must not start or end with whitespace")
    if "/" in value:
        raise InvalidValue(path, "must not contain '/' (ids are part of URLs)")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise InvalidValue(path, "must not contain control characters")
    return value


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (what the size caps measure)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    return len(text.encode("utf-8", "surrogatepass"))


def check_json_size(value: Any, limit: int, path: str = "") -> Any:
    """``value`` if its compact JSON is at most ``limit`` bytes; raises :class:`InvalidValue`."""
    size = json_size(value)
    if size > limit:
        raise InvalidValue(path, f"is {size} bytes as JSON; at most {limit} are allowed")
    return value


def check_json(value: Any, *, limit: int, path: str) -> dict:
    """``value`` if it is a JSON object that PostgreSQL and serving can live with.

    An object, at most ``limit`` bytes and :data:`MAX_DEPTH` levels deep, with no NUL
    characters (jsonb refuses them) and every number finite and at most
    :data:`MAX_NUMBER` in size. Raises :class:`InvalidValue` naming the offending path.
    """
    if not isinstance(value, dict):
        raise InvalidValue(path, "must be a JSON object")
    # Walked without recursion: the admin and the importers parse JSON themselves.
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack:
        current, where, level = stack.pop()
        if level > MAX_DEPTH:
            raise InvalidValue(path, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(current, dict):
            for key, child in current.items():
                if not isinstance(key, str) or "\x00" in key:
                    raise InvalidValue(where, "keys must be text without NUL characters")
                stack.append((child, f"{where}.{key}" if where else key, level + 1))
        elif isinstance(current, list):
            stack.extend((child, f"{where}[{i}]", level + 1) for i, child in enumerate(current))
        elif isinstance(current, str):
            if "\x00" in current:
                raise InvalidValue(where, "must not contain NUL characters")
        elif isinstance(current, bool) or current is None:
            continue
        elif isinstance(current, int | float):
            # int before float: comparing a 4,000-digit int with a float is exact and fast.
            if isinstance(current, float) and not math.isfinite(current):
                raise InvalidValue(where, "must be a finite number")
            if abs(current) > MAX_NUMBER:
                raise InvalidValue(where, "must be a number between -1e15 and 1e15")
        else:
            raise InvalidValue(where, f"cannot be stored as JSON ({type(current).__name__})")
    return check_json_size(value, limit, path)


def check_attributes(attrs: Any, *, limit: int | None = None, path: str = "attributes") -> dict:
    """``attrs`` if they can be an item's ``attributes``; raises :class:`InvalidValue`.

    Everything :func:`check_json` asks (at most ``RECOMMENDER_MAX_ATTRIBUTES_BYTES``),
    ``price``, when present, a number (or a numeric string) with 0 <= price < 1e12, and
    every declared attribute of its type (``recommender.attributes``; numeric strings of
    number attributes become numbers in place).
    """
    check_json(attrs, limit=max_attributes_bytes() if limit is None else limit, path=path)
    if "price" in attrs and attrs["price"] is not None:
        _check_price(attrs["price"], f"{path}.price")
    for name, reason in sorted(attributes.problems(attrs).items()):
        raise InvalidValue(f"{path}.{name}", reason)
    return attrs


def _check_price(value: Any, path: str) -> None:
    reason = "must be a number between 0 and 1e12"
    if isinstance(value, bool):
        raise InvalidValue(path, reason)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_NUMERIC_CHARS:
            raise InvalidValue(path, reason)
        try:
            # Decimal compares "1e999999999" with 1e12 at once; int()/float() would not.
            number: Decimal | int | float = Decimal(text)
        except InvalidOperation:
            raise InvalidValue(path, reason) from None
        if not number.is_finite():
            raise InvalidValue(path, reason)
    elif isinstance(value, int | float):
        number = value
    else:
        raise InvalidValue(path, reason)
    if not (0 <= number < MAX_PRICE):
        raise InvalidValue(path, reason)


def check_translations(value: Any, path: str = "translations") -> dict:
    """``value`` if it can be an item's ``translations``; raises :class:`InvalidValue`.

    An object of language codes (``en``, ``ja``, ``zh-Hant``, ``en-GB``; at most
    :data:`MAX_TRANSLATIONS`) to objects with an optional ``title`` (1-500 characters,
    not only whitespace) and an optional ``description`` (at most 20,000), both text
    without NUL characters, and nothing else.
    """
    if not isinstance(value, dict):
        raise InvalidValue(path, "must be a JSON object of language codes")
    if len(value) > MAX_TRANSLATIONS:
        raise InvalidValue(path, f"at most {MAX_TRANSLATIONS} languages are allowed")
    for code, texts in value.items():
        if not isinstance(code, str) or not _LANGUAGE_CODE.fullmatch(code):
            raise InvalidValue(
                f"{path}.{code}",
                "not a language code (like 'en', 'ja', 'zh-Hant' or 'en-GB')",
            )
        where = f"{path}.{code}"
        if not isinstance(texts, dict):
            raise InvalidValue(where, 'must be an object like {"title": "…", "description": "…"}')
        for key in texts:
            if key not in ("title", "description"):
                raise InvalidValue(f"{where}.{key}", "unknown key: use title and description")
        if "title" in texts:
            title = texts["title"]
            _check_text(title, f"{where}.title", MAX_TITLE)
            if not title.strip():
                raise InvalidValue(f"{where}.title", "must not be empty")
        if "description" in texts:
            _check_text(texts["description"], f"{where}.description", MAX_DESCRIPTION)
    return value


def _check_text(value: Any, path: str, limit: int) -> None:
    if not isinstance(value, str):
        raise InvalidValue(path, "must be text")
    if len(value) > limit:
        raise InvalidValue(path, f"must be at most {limit} characters")
    if "\x00" in value:
        raise InvalidValue(path, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(path, "must be valid Unicode (no lone surrogates)") from None
