"""Training-content summary of a learned module (selector, reads only): what a generator
(`generation.models.ModelVersion`, through `generation.selectors`) or an audio-text encoder
(`EncoderVersion`) learned from, on which consent basis, which reservations of mining rights
it honoured, which training consents were revoked since, and what was removed from it.

Built from the module's training manifest (recording ids, audio hashes, the consent version
ids in force when it was trained) joined with today's catalogue: counts and hours, where the
recordings came from (`Recording.source`), the consent versions and holders it rests on,
reservations (recordings that came with one and were therefore left out, and any that holders
confirmed overriding), training consents revoked after it was trained and recordings whose
training consent is gone today. Unlearning is reported from the manifest: a ``unlearning``
section (what was removed, by whom, verified how) and the ``parent`` lineage of a fine-tuned
module are included as recorded.

The result is plain JSON data (`SCHEMA`); the staff pages render it as HTML and offer both
for download.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

from django.db.models import Q
from django.utils import timezone

from catalog.models import (
    ConsentReservation,
    ConsentReservationOverride,
    ConsentVersion,
    EncoderVersion,
    Recording,
    Use,
)
from catalog.selectors import recordings_permitting
from config.exceptions import NotFound

SCHEMA = "org.attribution-platform.training-content-summary/1"
CONSENT_RULE = (
    "A recording is trained on only when every holder of a master share in it and every "
    "writer and publisher of a work it embodies has granted 'training' in their latest consent "
    "version (opt-out by default); a recording that came with a reservation of text-and-data-"
    "mining rights needs each granting holder to confirm overriding it."
)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def training_content_summary(
    *, kind: str, module: dict[str, Any], manifest: dict[str, Any], trained_at: dt.datetime
) -> dict[str, Any]:
    """The summary of a module of `kind` ('generator' / 'encoder') trained at `trained_at` on
    `manifest`; `module` describes it (name, version, checkpoint, ...)."""
    entries = [e for e in manifest.get("recordings") or [] if isinstance(e, dict) and "id" in e]
    ids = [int(e["id"]) for e in entries]
    catalogue = Recording.objects.select_related("artist").in_bulk(ids)
    seconds = {
        int(e["id"]): float(
            e.get("duration_seconds")
            or getattr(catalogue.get(int(e["id"])), "duration_seconds", 0.0)
            or 0.0
        )
        for e in entries
    }
    still_trainable = set(
        recordings_permitting(
            use=Use.TRAINING, queryset=Recording.objects.filter(pk__in=ids)
        ).values_list("pk", flat=True)
    )
    reserved = defaultdict(list)
    for reservation in ConsentReservation.objects.filter(recording_id__in=ids):
        reserved[reservation.recording_id].append(reservation)

    recordings = []
    sources: dict[str, dict[str, float]] = defaultdict(lambda: {"recordings": 0, "seconds": 0.0})
    genres: Counter[str] = Counter()
    for entry in entries:
        rid = int(entry["id"])
        recording = catalogue.get(rid)
        source = (recording.source if recording else "") or "unknown"
        sources[source]["recordings"] += 1
        sources[source]["seconds"] += seconds[rid]
        genres[(recording.genre if recording else "") or "unknown"] += 1
        recordings.append(
            {
                "id": rid,
                "title": entry.get("title") or (recording.title if recording else ""),
                "artist": entry.get("artist") or (recording.artist.name if recording else ""),
                "source": source,
                "seconds": round(seconds[rid], 3),
                "content_sha256": entry.get("content_sha256", ""),
                "in_catalogue": recording is not None,
                "audio_unchanged": recording is not None
                and recording.content_sha256 == entry.get("content_sha256"),
                "consent_version_ids": list(entry.get("consent_version_ids") or []),
                "reserved": rid in reserved,
                "training_consent_today": rid in still_trainable,
            }
        )

    total_seconds = sum(seconds.values())
    return {
        "schema": SCHEMA,
        "generated_at": timezone.now().isoformat(),
        "module": {"kind": kind, **module, "trained_at": _iso(trained_at)},
        "trained_outside_platform": not entries,
        "totals": {
            "recordings": len(entries),
            "seconds": round(total_seconds, 1),
            "hours": round(total_seconds / 3600, 2),
            "artists": len({r["artist"] for r in recordings}),
            "missing_from_catalogue": [r["id"] for r in recordings if not r["in_catalogue"]],
            "audio_changed_since": [
                r["id"] for r in recordings if r["in_catalogue"] and not r["audio_unchanged"]
            ],
        },
        "sources": [
            {
                "source": name,
                "recordings": int(v["recordings"]),
                "hours": round(v["seconds"] / 3600, 2),
            }
            for name, v in sorted(
                sources.items(), key=lambda item: (-item[1]["recordings"], item[0])
            )
        ],
        "genres": [{"genre": g, "recordings": n} for g, n in genres.most_common()],
        "consent_basis": _consent_basis(recordings),
        "reservations": _reservations(ids, reserved, trained_at),
        "revocations": _revocations(ids, still_trainable, catalogue, trained_at),
        "unlearning": manifest.get("unlearning"),
        "lineage": {
            "fingerprint": manifest.get("fingerprint"),
            "parent": manifest.get("parent"),
            "run": {
                k: v
                for k, v in (manifest.get("run") or {}).items()
                if isinstance(v, str | int | float | bool) or v is None
            },
        },
        "recordings": recordings,
    }


def _consent_basis(recordings: list[dict[str, Any]]) -> dict[str, Any]:
    version_ids = sorted({v for r in recordings for v in r["consent_version_ids"]})
    versions = list(
        ConsentVersion.objects.filter(pk__in=version_ids).select_related("holder").order_by("pk")
    )
    return {
        "rule": CONSENT_RULE,
        "consent_versions": len(versions),
        "consent_version_ids": [v.pk for v in versions],
        "holders": len({v.holder_id for v in versions}),
        "holder_names": sorted({v.holder.name for v in versions}),
        "earliest": _iso(min((v.created_at for v in versions), default=None)),
        "latest": _iso(max((v.created_at for v in versions), default=None)),
        "versions_not_granting_training": [v.pk for v in versions if not v.training],
        "recordings_without_consent_versions": [
            r["id"] for r in recordings if not r["consent_version_ids"]
        ],
    }


def _reservation_row(reservation: ConsentReservation) -> dict[str, Any]:
    return {
        "recording_id": reservation.recording_id,
        "title": reservation.recording.title,
        "artist": reservation.recording.artist.name,
        "source": reservation.source,
        "source_label": reservation.get_source_display(),
        "value": reservation.value,
        "policy": reservation.policy,
    }


def _reservations(
    ids: list[int], reserved: dict[int, list[ConsentReservation]], trained_at: dt.datetime
) -> dict[str, Any]:
    """Recordings that were in the catalogue with a reservation when the module was trained
    and were left out (honoured), and trained-on ones whose holders confirmed overriding it."""
    honoured = (
        ConsentReservation.objects.filter(recording__created_at__lte=trained_at)
        .exclude(recording_id__in=ids)
        .select_related("recording__artist")
        .order_by("recording_id", "source")
    )
    overrides = defaultdict(list)
    for override in ConsentReservationOverride.objects.filter(
        recording_id__in=list(reserved)
    ).select_related("holder", "confirmed_by"):
        overrides[override.recording_id].append(
            {
                "holder": override.holder.name,
                "confirmed_by": override.confirmed_by.get_username(),
                "consent_version_id": override.version_id,
                "at": _iso(override.created_at),
            }
        )
    honoured_rows = [_reservation_row(r) for r in honoured]
    overridden_rows = [
        {**_reservation_row(r), "overrides": overrides.get(rid, [])}
        for rid, rows in sorted(reserved.items())
        for r in rows
    ]
    return {
        "honoured_recordings": len({r["recording_id"] for r in honoured_rows}),
        "honoured": honoured_rows,
        "overridden_with_confirmation": overridden_rows,
    }


def _revocations(
    ids: list[int],
    still_trainable: set[int],
    catalogue: dict[int, Recording],
    trained_at: dt.datetime,
) -> dict[str, Any]:
    """Training consents revoked after training (for a trained-on recording or a work it
    embodies), and the trained-on recordings whose effective training consent is gone today."""
    revoked = (
        ConsentVersion.objects.filter(created_at__gt=trained_at, revoked__contains=[Use.TRAINING])
        .filter(Q(recording_id__in=ids) | Q(work__recording_links__recording_id__in=ids))
        .select_related("holder", "work", "changed_by")
        .prefetch_related("work__recording_links")
        .distinct()
        .order_by("created_at", "pk")
    )
    events = []
    for version in revoked:
        if version.recording_id is not None:
            affected = [version.recording_id]
        else:
            affected = sorted(
                link.recording_id
                for link in version.work.recording_links.all()
                if link.recording_id in set(ids)
            )
        events.append(
            {
                "consent_version_id": version.pk,
                "at": _iso(version.created_at),
                "holder": version.holder.name,
                "subject": f"work '{version.work.title}'" if version.work_id else "recording",
                "recording_ids": affected,
                "note": version.note,
            }
        )
    return {
        "events": events,
        "withdrawn_recording_ids": sorted(
            rid for rid in ids if rid in catalogue and rid not in still_trainable
        ),
    }


def encoder_training_summary(*, encoder_version: EncoderVersion) -> dict[str, Any]:
    """The summary of an audio-text encoder version (empty for one trained elsewhere)."""
    manifest = encoder_version.training_manifest or {}
    text_model = (manifest.get("model_config") or {}).get("text_model") or (
        encoder_version.config or {}
    ).get("text_model")
    return training_content_summary(
        kind="encoder",
        module={
            "id": encoder_version.pk,
            "name": encoder_version.name,
            "version": encoder_version.version,
            "label": str(encoder_version),
            "checkpoint_sha256": encoder_version.checkpoint_sha256,
            "active": encoder_version.is_active,
            "pretrained_text_model": text_model,
        },
        manifest=manifest,
        trained_at=encoder_version.created_at,
    )


def encoder_versions_all() -> list[EncoderVersion]:
    return list(EncoderVersion.objects.order_by("-created_at", "-pk"))


def encoder_version_get(*, encoder_version_id: int) -> EncoderVersion:
    version = EncoderVersion.objects.filter(pk=encoder_version_id).first()
    if version is None:
        raise NotFound(f"encoder version {encoder_version_id} does not exist")
    return version
