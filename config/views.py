from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader

from config.exceptions import error_body
from config.request_ids import current_request_id


def home(request: HttpRequest) -> HttpResponse:
    """Landing page: what runs here and where to go."""
    return render(request, "home.html")


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500 (DEBUG off): API clients get the one JSON error shape, people a plain page;
    both carry the request id that Django's error log line names. Nothing here touches the
    database, whose transaction may be the thing that failed."""
    request_id = getattr(request, "request_id", None) or current_request_id()
    message = "The server failed to answer this request; quote the request id when reporting it."
    if request.path.startswith("/api/"):
        body = error_body("server_error", message, {"request_id": request_id})
        return JsonResponse(body, status=500)
    page = loader.get_template("500.html").render({"message": message, "request_id": request_id})
    return HttpResponse(page, status=500)
