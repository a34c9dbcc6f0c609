"""API error responses: DRF's handler, plus a clean 503 with ``Retry-After`` while the
database, the cache (Redis) or the broker is unreachable."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

_UNAVAILABLE = (
    (OperationalError | InterfaceError, "the database"),
    (RedisError, "the cache"),
    (BrokerError, "the task broker"),
)


def handle_exception(exc, context):
    response = exception_handler(exc, context)
    if response is not None:
        return response
    for kinds, what in _UNAVAILABLE:
        if isinstance(exc, kinds):
            logger.warning("%s unavailable: %s", what, exc.__class__.__name__)
            return Response(
                {"detail": f"{what} is unavailable; retry shortly"},
                status=503,
                headers={"Retry-After": "5"},
            )
    return None
