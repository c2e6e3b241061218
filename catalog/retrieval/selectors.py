"""Mediated selection: text, category and audio queries to recordings, consent-filtered in SQL.

Window hits aggregate to recordings by their best (maximum) similarity. Only recordings whose
effective consent permits the requested level and distribution can appear: the consent filter
is part of the vector query itself (a test of each row's consent mask, evaluated inside the
index scan), not applied to results after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catalog.models import (
    LEVEL_USES,
    Distribution,
    EncoderVersion,
    Recording,
    RecordingEmbedding,
    Use,
)
from catalog.retrieval.prompts import CategoryError, CategoryPrompt
from catalog.retrieval.runtime import active_encoder_version, loaded_encoder
from catalog.retrieval.vector_search import recording_neighbours, window_neighbours
from catalog.selectors import ConsentRequirement, consent_requirement
from config.exceptions import Conflict, InvalidInput, NotFound

MAX_PROMPT_CHARS = 500
MAX_K = 50


def use_for_level(level: str) -> Use:
    try:
        return LEVEL_USES[level]
    except KeyError:
        raise InvalidInput(
            f"unknown level '{level}'; expected one of: {', '.join(LEVEL_USES)}",
            details={"level": level},
        ) from None


@dataclass(frozen=True)
class RetrievalHit:
    recording: Recording
    score: float  # cosine similarity of the best matching window (or track vector)
    best_window_start: float | None


@dataclass(frozen=True)
class RetrievalResult:
    encoder: EncoderVersion
    query_text: str
    hits: list[RetrievalHit]


def _check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be between 1 and {MAX_K}", details={"k": k})
    return k


def _requirement(level: str, distribution: str) -> ConsentRequirement:
    return consent_requirement(use=use_for_level(level), distribution=distribution)


def _recordings_by_best_window(
    *,
    queries: np.ndarray,
    encoder_version: EncoderVersion,
    k: int,
    consent: ConsentRequirement,
    exclude: set[int] = frozenset(),
) -> list[tuple[int, float, float]]:
    """Top-k (recording_id, similarity, window start) over one or more query vectors.

    Asks for more windows until k distinct recordings are found or the permitted set is
    exhausted (a recording has many windows, so k windows are rarely k recordings).
    """
    limit = max(4 * k, 32)
    while True:
        best: dict[int, tuple[float, float]] = {}
        exhausted = True
        for query in queries:
            hits = window_neighbours(
                query=query,
                encoder_id=encoder_version.pk,
                limit=limit,
                consent=consent,
                exclude=exclude,
            )
            exhausted = exhausted and len(hits) < limit
            for hit in hits:
                if hit.recording_id not in best or hit.similarity > best[hit.recording_id][0]:
                    best[hit.recording_id] = (hit.similarity, hit.start_seconds)
        if len(best) >= k or exhausted or limit >= 4096:
            break
        limit *= 4
    ranked = sorted(best.items(), key=lambda item: -item[1][0])[:k]
    return [(rid, score, start) for rid, (score, start) in ranked]


def _hits(rows: list[tuple[int, float, float | None]]) -> list[RetrievalHit]:
    recordings = Recording.objects.select_related("artist", "release").in_bulk(
        [rid for rid, _, _ in rows]
    )
    return [RetrievalHit(recordings[rid], round(score, 4), start) for rid, score, start in rows]


def retrieve_by_text(*, prompt: str, level: str, distribution: str, k: int = 10) -> RetrievalResult:
    prompt = (prompt or "").strip()
    if not prompt:
        raise InvalidInput("the prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidInput(f"the prompt is longer than {MAX_PROMPT_CHARS} characters")
    _check_k(k)
    consent = _requirement(level, distribution)
    version = active_encoder_version()
    query = loaded_encoder(version).embed_texts([prompt])
    rows = _recordings_by_best_window(queries=query, encoder_version=version, k=k, consent=consent)
    return RetrievalResult(version, prompt, _hits(rows))


def retrieve_by_categories(
    *, categories: CategoryPrompt, level: str, distribution: str, k: int = 10
) -> RetrievalResult:
    try:
        prompt = categories.as_text()
    except CategoryError as exc:
        raise InvalidInput(str(exc)) from exc
    return retrieve_by_text(prompt=prompt, level=level, distribution=distribution, k=k)


def retrieve_by_audio_vectors(
    *,
    vectors: np.ndarray,
    level: str,
    distribution: str,
    k: int = 10,
    exclude_recording_id: int | None = None,
    description: str = "uploaded audio",
) -> RetrievalResult:
    """Recordings nearest to any window of a query (an upload or a catalogue recording)."""
    _check_k(k)
    consent = _requirement(level, distribution)
    version = active_encoder_version()
    exclude = {exclude_recording_id} if exclude_recording_id else set()
    rows = _recordings_by_best_window(
        queries=vectors, encoder_version=version, k=k, consent=consent, exclude=exclude
    )
    return RetrievalResult(version, description, _hits(rows))


def recording_window_vectors(
    *, recording: Recording, encoder_version: EncoderVersion
) -> np.ndarray:
    from catalog.models import RecordingWindowEmbedding

    vectors = list(
        RecordingWindowEmbedding.objects.filter(recording=recording, encoder=encoder_version)
        .order_by("start_seconds")
        .values_list("embedding", flat=True)
    )
    if not vectors:
        raise Conflict(
            f"recording {recording.pk} has not been embedded by {encoder_version} yet; "
            "run `python manage.py embed_catalogue`",
            details={"recording": recording.pk},
        )
    return np.asarray(vectors, dtype=np.float32)


def retrieve_like_recording(
    *, recording_id: int, level: str, distribution: str, k: int = 10
) -> RetrievalResult:
    recording = Recording.objects.filter(pk=recording_id).first()
    if recording is None:
        raise NotFound(f"recording {recording_id} does not exist")
    version = active_encoder_version()
    vectors = recording_window_vectors(recording=recording, encoder_version=version)
    return retrieve_by_audio_vectors(
        vectors=vectors,
        level=level,
        distribution=distribution,
        k=k,
        exclude_recording_id=recording.pk,
        description=f"recording {recording.pk}: {recording}",
    )


@dataclass(frozen=True)
class AlternativesResult:
    recording: Recording
    permitted: bool  # whether the recording itself may be used as asked
    alternatives: RetrievalResult


def permitted_alternatives(
    *, recording_id: int, level: str, distribution: str, k: int = 5
) -> AlternativesResult:
    """For a recording that cannot be used at `level`/`distribution`, the nearest that can
    (track-level similarity), so a music maker can swap in a permitted reference."""
    _check_k(k)
    recording = Recording.objects.select_related("artist").filter(pk=recording_id).first()
    if recording is None:
        raise NotFound(f"recording {recording_id} does not exist")
    consent = _requirement(level, distribution)
    version = active_encoder_version()
    track = RecordingEmbedding.objects.filter(recording=recording, encoder=version).first()
    if track is None:
        raise Conflict(
            f"recording {recording.pk} has not been embedded by {version} yet",
            details={"recording": recording.pk},
        )
    rows = recording_neighbours(
        query=np.asarray(track.embedding, dtype=np.float32),
        encoder_id=version.pk,
        limit=k,
        consent=consent,
        exclude={recording.pk},
    )
    return AlternativesResult(
        recording=recording,
        permitted=consent.recordings().filter(pk=recording.pk).exists(),
        alternatives=RetrievalResult(
            version,
            f"alternatives to recording {recording.pk}",
            _hits([(r, s, None) for r, s in rows]),
        ),
    )


def category_vocabulary() -> dict[str, list[str]]:
    """Values the category pickers offer: the catalogue's genres plus fixed vocabularies."""
    from catalog.retrieval import prompts

    genres = (
        Recording.objects.exclude(genre="")
        .order_by("genre")
        .values_list("genre", flat=True)
        .distinct()
    )
    return {
        "genres": list(genres),
        "moods": list(prompts.MOODS),
        "instruments": list(prompts.INSTRUMENTS),
        "situations": list(prompts.SITUATIONS),
        "functions": list(prompts.FUNCTIONS),
        "levels": list(LEVEL_USES),
        "distributions": list(Distribution.values),
    }


def uploaded_audio_vectors(*, path, max_seconds: float) -> np.ndarray:
    """Window vectors of an uploaded file, after the same full-decode check as imports."""
    from catalog.audio.decoding import AudioDecodeError, load_mono, probe_and_verify
    from catalog.services.embedding import audio_embed_windows

    try:
        probe = probe_and_verify(path)
    except AudioDecodeError as exc:
        raise InvalidInput(f"the uploaded file is not decodable audio: {exc}") from exc
    if probe.duration_seconds > max_seconds:
        raise InvalidInput(
            f"the uploaded audio is {probe.duration_seconds:.3f} s long; at most "
            f"{max_seconds:g} s is accepted"
        )
    encoder = loaded_encoder(active_encoder_version())
    audio = load_mono(path, sample_rate=encoder.sample_rate)
    _, vectors = audio_embed_windows(audio=audio, encoder=encoder)
    return vectors
