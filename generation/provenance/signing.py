"""Signing: the C2PA manifest definition of a provenance record (actions, assertions,
ingredients) and `sign_wav`, which embeds it signed into a WAV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from catalog import consent_signals
from generation.provenance.credentials import SigningCredentials, _signing_algorithm
from generation.provenance.files import _atomic_output
from generation.provenance.reading import _read_wav, _settings, read_provenance
from generation.provenance.record import (
    CLAIM_GENERATOR,
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    GENERATION_ASSERTION,
    REFERENCE_METADATA_KEY,
    TRAINED_ALGORITHMIC_MEDIA,
    TRAINING_MINING,
    UPLOAD_METADATA_KEY,
    WAV_MEDIA_TYPE,
    Provenance,
    ProvenanceError,
    ReferenceIngredient,
)


def sign_wav(
    source: Path, dest: Path, provenance: Provenance, credentials: SigningCredentials
) -> dict:
    """Embed a signed C2PA manifest for `provenance` into a copy of `source` at `dest`.

    `dest` may equal `source` (written atomically). If `source` already carries an embedded
    provenance chunk it must equal `provenance`, so a file is never signed for another
    generation. Returns the active manifest as read back from `dest` (same shape as
    `ProvenanceReport.manifest`). Any failure raises ProvenanceError.
    """
    import c2pa

    source, dest = Path(source), Path(dest)
    embedded = _read_wav(source).embedded
    if embedded is not None and embedded != provenance.to_dict():
        raise ProvenanceError(
            f"{source} carries provenance for another generation "
            f"({embedded.get('generation_id')!r}, not {provenance.generation_id!r})"
        )
    from cryptography.hazmat.primitives import serialization

    try:
        algorithm = _signing_algorithm(
            serialization.load_pem_private_key(credentials.private_key_pem, password=None)
        )
    except (ValueError, TypeError) as exc:
        raise ProvenanceError(f"private key is not an unencrypted PEM key: {exc}") from exc

    try:
        context = c2pa.Context.from_dict(_settings(credentials.trust_anchors_pem))
        signer = c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(
                algorithm,
                credentials.certificate_chain_pem,
                credentials.private_key_pem,
                None,  # no timestamp authority: signing stays offline
            )
        )
        with (
            signer,
            c2pa.Builder(_manifest_definition(provenance), context=context) as builder,
            source.open("rb") as src,
            _atomic_output(dest) as out,
        ):
            builder.sign(signer, WAV_MEDIA_TYPE, src, out)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"C2PA signing failed: {exc}") from exc
    except OSError as exc:
        raise ProvenanceError(f"cannot sign {source} into {dest}: {exc}") from exc
    manifest = read_provenance(dest, credentials.trust_anchors_pem).manifest
    if manifest is None:
        raise ProvenanceError(f"no C2PA manifest found in {dest} after signing")
    return manifest


def _manifest_definition(provenance: Provenance) -> dict:
    references = []
    for index, ref in enumerate(provenance.references):
        metadata: dict[str, Any] = {
            REFERENCE_METADATA_KEY: {
                "recording_id": ref.recording_id,
                "artist": ref.artist,
                "isrc": ref.isrc,
                "rights_holders": list(ref.rights_holders),
                "level": ref.level,
                "role": ref.role,
                "weight": ref.weight,
                "consent_version_ids": list(ref.consent_version_ids),
                "content_sha256": ref.content_sha256,
            }
        }
        if ref.training_mining:
            metadata[TRAINING_MINING] = consent_signals.training_mining_assertion(
                ref.training_mining
            )
        references.append(
            {
                "title": ref.title,
                "format": ref.media_type,
                "relationship": "inputTo",
                "instance_id": _ingredient_id(provenance, index, ref),
                "metadata": metadata,
            }
        )
    agent = {"name": f"{CLAIM_GENERATOR} model", "version": provenance.model_version}
    # The Builder turns ingredient ids into hashed links from an action to its ingredients.
    linked = {"parameters": {"ingredientIds": [i["instance_id"] for i in references]}}
    upload = provenance.upload
    if upload is None:
        parents = []
        actions = [
            {
                "action": "c2pa.created",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": agent,
                **(linked if references else {}),
            }
        ]
    else:
        parent_id = f"urn:attribution-platform:generation:{provenance.generation_id}:upload"
        parents = [
            {
                "title": upload.title,
                "format": upload.media_type,
                "relationship": "parentOf",
                "instance_id": parent_id,
                "metadata": {
                    UPLOAD_METADATA_KEY: {
                        "sha256": upload.sha256,
                        "level": upload.level,
                        "segment": list(upload.segment) if upload.segment else None,
                        "strength": upload.strength,
                    }
                },
            }
        ]
        actions = [
            {"action": "c2pa.opened", "parameters": {"ingredientIds": [parent_id]}},
            {
                "action": "c2pa.edited",
                "digitalSourceType": COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": agent,
                **(linked if references else {}),
            },
        ]
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": _platform_version()}],
        "title": provenance.title,
        "format": WAV_MEDIA_TYPE,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": actions}},
            {"label": GENERATION_ASSERTION, "data": provenance.to_dict()},
            {
                "label": TRAINING_MINING,
                "data": consent_signals.training_mining_assertion(provenance.training_mining()),
            },
        ],
        "ingredients": parents + references,
    }


def _ingredient_id(provenance: Provenance, index: int, ref: ReferenceIngredient) -> str:
    # Unique per reference: one recording may be referenced twice (e.g. melody and timbre).
    return (
        f"urn:attribution-platform:generation:{provenance.generation_id}"
        f":reference:{index}:recording:{ref.recording_id}"
    )


def _platform_version() -> str:
    from importlib import metadata

    try:
        return metadata.version(CLAIM_GENERATOR)
    except metadata.PackageNotFoundError:
        return "unknown"
