"""Shared fixtures. The test session runs against its own embedded PostgreSQL with pgvector
(config.settings.test); Django's test database is created in it once per session."""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from catalog.models import Artist, Recording, RightsHolder
from catalog.services.rights import (
    rights_holder_add_member,
    rights_holder_create,
    rights_shares_set,
)

# Real recordings from Debian packages (installed by .ci/run and by `make demo`).
REAL_OGG = Path("/usr/share/pushover/themes/electro.ogg")
REAL_MP3 = Path("/usr/share/games/asc/music/machine_wars.mp3")

_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a shared 2-core machine two
    OpenMP threads can wait on each other (generation/model/README.md). Modules of tiny-model
    tests use it with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def require_real_audio(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.fail(
            f"real test audio missing: {missing}; install Debian packages "
            "pushover-data and asc-music (.ci/run does)"
        )


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ENCODER_CHECKPOINT_DIR = tmp_path / "encoders"


@pytest.fixture
def make_user(django_user_model):
    def make(username: str | None = None, *, staff: bool = False):
        return django_user_model.objects.create_user(
            username=username or f"user{next(_numbers)}",
            password="pw-for-tests",
            is_staff=staff,
        )

    return make


@pytest.fixture
def staff(make_user):
    return make_user("rights-team", staff=True)


@pytest.fixture
def make_recording():
    def make(title: str | None = None, *, artist: str = "Test Artist", **fields) -> Recording:
        number = next(_numbers)
        return Recording.objects.create(
            title=title or f"Recording {number}",
            artist=Artist.objects.get_or_create(name=artist)[0],
            duration_seconds=fields.pop("duration_seconds", 120.0),
            audio_file=f"recordings/test/{number}.ogg",
            audio_format="ogg",
            sample_rate=44100,
            channels=2,
            content_sha256=secrets.token_hex(32),
            **fields,
        )

    return make


@pytest.fixture
def make_holder(make_user):
    def make(name: str | None = None, *, member=None) -> RightsHolder:
        holder = rights_holder_create(
            name=name or f"Holder {next(_numbers)}", kind=RightsHolder.Kind.PERSON
        )
        rights_holder_add_member(holder=holder, user=member or make_user())
        return holder

    return make


@pytest.fixture
def co_held(make_recording, make_holder, staff, make_user):
    """A recording shared 70/30 between holders A and B, each with one member."""
    member_a, member_b = make_user("member-a"), make_user("member-b")
    holder_a = make_holder("Holder A", member=member_a)
    holder_b = make_holder("Holder B", member=member_b)
    recording = make_recording("Shared Song")
    rights_shares_set(actor=staff, recording=recording, shares={holder_a: 7000, holder_b: 3000})
    return {
        "recording": recording,
        "holder_a": holder_a,
        "holder_b": holder_b,
        "member_a": member_a,
        "member_b": member_b,
    }


def excerpt_of(source: Path, target: Path, *, seconds: float = 8.0, offset: float = 30.0) -> Path:
    """Write part of a real recording to `target` (format from its suffix)."""
    info = sf.info(str(source))
    start = int(offset * info.samplerate)
    data, rate = sf.read(str(source), start=start, frames=int(seconds * info.samplerate))
    sf.write(str(target), data.astype(np.float32), rate)
    return target
