"""Every request carries an id: a proxy's `X-Request-ID` when it looks like one, else a new
one. It goes back in the response header, into every log line written while the request runs,
and into the body of a server error, so that a user's report leads to the log."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

from django.http import HttpRequest, HttpResponse

ACCEPTED = re.compile(r"[A-Za-z0-9._-]{8,64}")
_current = contextvars.ContextVar("request_id", default="-")


def current_request_id() -> str:
    """The id of the request being answered ('-' outside one)."""
    return _current.get()


class RequestIdMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        request.request_id = given if ACCEPTED.fullmatch(given) else uuid.uuid4().hex
        token = _current.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response["X-Request-ID"] = request.request_id
        return response


class RequestIdLogFilter(logging.Filter):
    """Adds `request_id` to every record, for the log format (Django's own request log lines,
    written after the middleware has returned, carry the request itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        record.request_id = getattr(request, "request_id", None) or current_request_id()
        return True
