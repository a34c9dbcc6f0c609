"""Request metrics: a middleware that times every request and counts it in Prometheus
(``recsite_http_request_duration_seconds`` and ``recsite_http_requests_total``, labelled
by URL name, method, status and scenario: ``recommender.monitoring``)."""

from __future__ import annotations

import logging
import time

from recommender import monitoring

logger = logging.getLogger(__name__)


class RequestMetricsMiddleware:
    """First in MIDDLEWARE, so that the time covers every other middleware too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        try:
            monitoring.observe_request(request, response, time.perf_counter() - started)
        except Exception:  # metrics must never cost a caller their answer
            logger.warning("request metrics: observing failed", exc_info=True)
        return response
