"""How people's HTML pages show a domain error: the page's status and the service's message,
the same words the REST API gives, instead of a server error."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from config.exceptions import DomainError


class DomainErrorPageMiddleware:
    """Turns a `DomainError` raised under a page view into an error page (the API has its own
    handler, so requests under /api/ are left alone)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, DomainError) or request.path.startswith("/api/"):
            return None
        response = TemplateResponse(request, "error.html", {"error": exc}, status=exc.http_status)
        return response.render()
