"""A web worker loads the active encoder when it starts (platform/gunicorn.conf.py), so the
first retrieval does not; without an encoder the worker still starts."""

from __future__ import annotations

import pytest

from catalog.retrieval import runtime
from tests.catalog.retrieval_fixtures import embedded_catalogue, tiny_checkpoint  # noqa: F401

pytestmark = pytest.mark.django_db


def test_warm_up_loads_the_active_encoder_once(embedded_catalogue):  # noqa: F811
    runtime._load.cache_clear()
    runtime.encoder_warm_up()
    assert runtime._load.cache_info().currsize == 1
    version = runtime.active_encoder_version()
    runtime.loaded_encoder(version)  # what the first request does: a cache hit
    assert runtime._load.cache_info().hits >= 1


def test_warm_up_without_an_encoder_starts_anyway(caplog):
    runtime._load.cache_clear()
    seconds = runtime.encoder_warm_up()
    assert seconds >= 0 and runtime._load.cache_info().currsize == 0
    assert "no active encoder" in caplog.text
