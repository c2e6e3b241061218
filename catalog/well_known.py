"""``/.well-known/tdmrep.json`` (W3C TDM Reservation Protocol): for every recording's audio
URL, whether its text-and-data-mining rights are reserved, generated from consent on each
request (`catalog.rights_signals.tdmrep_rules`).

Cache-friendly: the body is deterministic for a catalogue state, served with a strong ETag and
``Cache-Control: public, max-age=300``, and a matching ``If-None-Match`` answers 304 without a
body. Public, like ``robots.txt``: crawlers read it without signing in.
"""

from __future__ import annotations

import hashlib
import json

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils.cache import get_conditional_response, patch_cache_control
from django.views.decorators.http import require_safe

from catalog.rights_signals import tdmrep_rules

MAX_AGE_SECONDS = 300


@require_safe
def tdmrep_json(request: HttpRequest) -> HttpResponse:
    """The TDMRep rules: reserved (1) unless training is effectively granted (0), each with
    the recording's training-mining endpoint as ``tdm-policy``; unknown audio URLs reserved."""
    rules = tdmrep_rules(policy_url=request.build_absolute_uri)
    body = json.dumps(rules, separators=(",", ":"), sort_keys=True).encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    response = get_conditional_response(request, etag=etag)
    if response is None:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    patch_cache_control(response, public=True, max_age=MAX_AGE_SECONDS)
    return response


urlpatterns = [path("tdmrep.json", tdmrep_json, name="tdmrep")]
