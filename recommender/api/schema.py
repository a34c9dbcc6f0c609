"""The OpenAPI schema: the error responses every operation can give, and a view that
builds the schema once per process (it depends on the code, not on the request)."""

from __future__ import annotations

import threading

from drf_spectacular.views import SpectacularAPIView
from rest_framework.response import Response

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


class CachedSchemaView(SpectacularAPIView):
    """``SpectacularAPIView`` that generates the schema once per process and language:
    generating it walks every view and serializer (tens of milliseconds)."""

    _schemas: dict = {}
    _lock = threading.Lock()

    def _get_schema_response(self, request):
        version = self.api_version or request.version or self._get_version_parameter(request)
        from django.utils import translation

        key = (version, translation.get_language())
        with self._lock:
            if key not in self._schemas:
                generator = self.generator_class(
                    urlconf=self.urlconf, api_version=version, patterns=self.patterns
                )
                self._schemas[key] = generator.get_schema(request=request, public=True)
        filename = self._get_filename(request, version)
        return Response(
            data=self._schemas[key],
            headers={"Content-Disposition": f'inline; filename="{filename}"'},
        )
