"""Request body parsing: JSON only, with a nesting limit (deep JSON is a cheap DoS)."""

from __future__ import annotations

import math

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 16


def depth(value, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a JSON value, stopping early once past ``limit``."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(current, dict):
            stack.extend((child, level + 1) for child in current.values())
        elif isinstance(current, list):
            stack.extend((child, level + 1) for child in current)
    return deepest


def problems(value) -> str | None:
    """Why a JSON value cannot be stored in PostgreSQL's jsonb, or None.

    jsonb refuses NUL characters anywhere, and 1e999 parses to an infinity in Python.
    """
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for key, child in current.items():
                if "\x00" in key:
                    return "keys must not contain NUL characters"
                stack.append(child)
        elif isinstance(current, list):
            stack.extend(current)
        elif isinstance(current, str):
            if "\x00" in current:
                return "strings must not contain NUL characters"
        elif isinstance(current, float) and not math.isfinite(current):
            return "numbers must be finite"
    return None


class SafeJSONParser(JSONParser):
    """DRF's strict JSON parser (no NaN/Infinity) plus a depth limit."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
        if depth(data) > MAX_DEPTH:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels")
        if _has_infinity(data):
            raise ParseError("numbers must be finite (1e999 is not)")
        return data


def _has_infinity(value) -> bool:
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
        elif isinstance(current, float) and not math.isfinite(current):
            return True
    return False
