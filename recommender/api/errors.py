"""API error responses: DRF's handler, plus a clean 503 while the database is unreachable."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


def handle_exception(exc, context):
    response = exception_handler(exc, context)
    if response is None and isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        response = Response(
            {"detail": "the database is unavailable; retry shortly"},
            status=503,
            headers={"Retry-After": "5"},
        )
    return response
