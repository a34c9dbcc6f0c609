"""What a served list shows of each result, as plain data and as the JSON the API sends.

The API's list responses are built from these (``api.serializers.recommendation_list_data``),
and so are the kept lists' answers (``list_cache``): a kept list holds its items already
rendered, so that a repeat is answered without building and encoding them again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from recommender.conf import conf


def public_attributes(attributes: Mapping | None) -> dict | None:
    """The item attributes a recommendation list may show: those named in
    ``RECOMMENDER_PUBLIC_ATTRIBUTES`` (``"*"``: all). Lists reach browsers; an imported
    cost price or supplier column must not. ``GET items`` still returns everything."""
    if attributes is None:
        return None
    if not isinstance(attributes, Mapping):
        return {}  # a row stored past the write checks: show nothing rather than fail
    allowed = conf.PUBLIC_ATTRIBUTES
    if allowed == "*" or "*" in allowed:
        return {str(key): value for key, value in attributes.items()}
    return {str(key): value for key, value in attributes.items() if key in allowed}


def public_attributes_shape() -> str:
    """Which attributes lists show now, as a kept rendering is checked against."""
    return repr(conf.PUBLIC_ATTRIBUTES)


def item_data(result, lang: str) -> dict:
    """One result as a list response shows it."""
    return {
        "id": str(result.item.external_id),
        "title": str(result.item.text_in(lang)[0]),
        "category": str(result.item.category),
        "attributes": public_attributes(result.item.attributes),
        "score": float(result.score),
        "sources": [str(source) for source in result.sources],
        "reason": (
            {
                "type": str(result.reason.type),
                "text": str(result.reason.text),
                "keywords": [str(word) for word in result.reason.keywords],
                "evidence": result.reason.evidence.as_dict(),
            }
            if result.reason is not None
            else None
        ),
        "blurb": None if result.blurb is None else str(result.blurb),
        "promotion": result.promotion,
    }


def to_json(data) -> bytes:
    """``data`` encoded as the API's renderer (DRF's ``JSONRenderer`` with its default
    settings) encodes it: compact, UTF-8 rather than escapes, no NaN, and U+2028/U+2029
    escaped. Written here because serving does not import the API layer; the tests hold
    the two encodings byte for byte equal. Raises TypeError or ValueError for what JSON
    cannot hold."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()
