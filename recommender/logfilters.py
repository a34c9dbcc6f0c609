"""Logging filters that keep personal data out of the logs.

Django's ``django.request`` logger writes ``"<reason>: <request.path>"`` for every 4xx and
5xx response, and API paths carry end users' external ids (``users/<id>/…``), which a site
may choose to be e-mail addresses. ``RoutePathFilter`` rewrites such records to name the
URL pattern that matched instead (``request.resolver_match.route``), so the log still says
which endpoint failed but not for whom. Query strings (search texts in ``q``) never appear.

Installed on the console handler in ``recsite/settings.py`` (``LOGGING["filters"]``).
"""

from __future__ import annotations

import logging

UNMATCHED = "<unmatched>"


def _escaped(text: str) -> str:
    # django.utils.log.log_response escapes its arguments this way before logging them.
    return text.encode("unicode_escape").decode("ascii")


class RoutePathFilter(logging.Filter):
    """Replace a request's path (and query string) in a log record by its route pattern.

    Applies to any record that carries the request (Django passes it as ``extra``);
    others pass unchanged. Never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if request is None:
            return True
        try:
            paths = {request.get_full_path(), request.path, request.path_info}
        except Exception:  # a half-built request (e.g. a bad Host): leave the record alone
            return True
        paths = {form for path in paths if len(path) > 1 for form in (path, _escaped(path))}
        if not paths:
            return True
        match = getattr(request, "resolver_match", None)
        route = (getattr(match, "route", None) or UNMATCHED) if match is not None else UNMATCHED
        if isinstance(record.args, tuple):
            record.args = tuple(
                route if isinstance(arg, str) and arg in paths else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            # Longest first: the full path (with its query string) before the bare path.
            for path in sorted(paths, key=len, reverse=True):
                record.msg = record.msg.replace(path, route)
        return True
