"""OpenAPI schema post-processing: the error responses every operation can give."""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "description": "`detail` for request-level errors, or field name → list of messages",
    "additionalProperties": True,
}

ERRORS = {
    "400": "invalid input: the body names each field and the reason",
    "401": "missing or invalid API key",
    "403": "the API key's scope does not allow this",
    "404": "no such user or item",
    "413": "request body too large",
    "415": "unsupported media type",
    "429": "rate limit exceeded for this key",
    "503": "the database is unavailable; retry after the Retry-After seconds",
}


def add_error_responses(result, generator, request, public):
    """drf-spectacular hook: document 4xx responses on every API operation."""
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, description in ERRORS.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": ERROR_SCHEMA}},
                    },
                )
    return result
