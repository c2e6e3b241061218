"""Which encoder serves retrieval, loaded once per process."""

from __future__ import annotations

import logging
import time
from functools import lru_cache

from catalog.encoders import AudioTextEncoder, EncoderError, load_encoder
from catalog.models import EncoderVersion
from config.exceptions import Conflict

log = logging.getLogger(__name__)


class NoActiveEncoder(Conflict):
    code = "no_active_encoder"


def active_encoder_version() -> EncoderVersion:
    version = EncoderVersion.objects.filter(is_active=True).first()
    if version is None:
        raise NoActiveEncoder(
            "no active encoder: run `python manage.py train_encoder` (or register one)"
        )
    return version


@lru_cache(maxsize=4)
def _load(name: str, checkpoint_path: str, checkpoint_sha256: str) -> AudioTextEncoder:
    return load_encoder(name, checkpoint_path)


def loaded_encoder(encoder_version: EncoderVersion) -> AudioTextEncoder:
    try:
        return _load(
            encoder_version.name, encoder_version.checkpoint_path, encoder_version.checkpoint_sha256
        )
    except EncoderError as exc:
        raise NoActiveEncoder(f"encoder {encoder_version} cannot be loaded: {exc}") from exc


def encoder_warm_up() -> float:
    """Load the active encoder and embed one prompt, so that a web worker's first retrieval
    does not pay for it (called when the worker starts). Returns the seconds it took; a
    platform without an encoder starts anyway and says why on the first request."""
    started = time.monotonic()
    try:
        loaded_encoder(active_encoder_version()).embed_texts(["warm up"])
    except Conflict as exc:
        log.warning("encoder not warmed up: %s", exc.message)
    return time.monotonic() - started
