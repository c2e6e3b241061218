"""Provenance of generated audio: readable WAV metadata and a signed C2PA manifest.

Every generated track carries its inference-time attribution twice:

* **Readable metadata** (`write_wav`): a RIFF ``LIST/INFO`` chunk that ordinary tools show
  (``INAM`` title, ``ISFT`` software, ``ICMT`` a one-line summary naming the references and
  their rights holders, ``ICRD`` date) and a custom ``aprv`` chunk holding the full
  provenance as JSON (`Provenance.to_dict`).
* **A signed C2PA manifest** (`sign_wav`, c2pa-python 0.38 / c2pa-rs 0.91): claim generator
  ``attribution-royalty-platform``; a ``c2pa.actions`` assertion; a custom assertion
  ``org.attribution-platform.generation`` holding the provenance dict; the output's own
  ``cawg.training-mining`` assertion; one ingredient per reference and, when the maker's own
  track was transformed (audio or temporal level), one for that upload. The data hash covers
  every byte outside the C2PA chunk, so editing the audio or the ``aprv``/``INFO`` chunks
  afterwards shows up as ``assertion.dataHash.mismatch``.

Ingredients and actions (C2PA 2.x). A reference recording conditions the output without
becoming part of it: relationship ``inputTo``. An uploaded track that the output transforms
(SDEdit at the audio level, a regenerated segment at the temporal level) is what the output
was made from: relationship ``parentOf``. Without an upload the actions are one ``c2pa.created``
with digital source type ``trainedAlgorithmicMedia`` linking the references; with one they are
``c2pa.opened`` linking the parent (C2PA 2.x: a parent is opened, not created) and
``c2pa.edited`` with digital source type ``compositeWithTrainedAlgorithmicMedia`` linking the
references (the output composites the maker's audio with the model's).

Ingredients are described by metadata only. The c2pa Builder accepts ingredients inside the
manifest definition (``"ingredients": [...]``) without an asset stream, so the reference
recordings' audio is neither needed nor copied, and no stand-in files are made. Each reference
ingredient has the recording title, its media type and, under the metadata key
``org.attribution-platform.reference``, the recording id, artist, ISRC, rights holders, level,
role, weight and consent version ids; the upload's has ``org.attribution-platform.upload``
(its SHA-256, level, segment, strength).

Consent signals (CAWG training and data mining, `catalog.consent_signals`): an ingredient's own
``cawg.training-mining`` assertion would live in the ingredient's own manifest, which only its
rights holders could sign and which catalogue recordings do not have, and c2pa-python 0.38
takes no assertions for a metadata-only ingredient. So each reference ingredient carries its
recording's entries (its effective consent when the output was made) as ingredient metadata
under the key ``cawg.training-mining`` (``{"entries": {...}}``, the assertion's own data
shape), signed by the platform as part of the ingredient assertion. The output's own
``cawg.training-mining`` assertion is `catalog.consent_signals.output_entries`: the references'
most restrictive entries, capped at ``constrained`` by the platform's policy, and the
distribution the generation was verified for.

Trust: c2pa-rs validates the signing chain against its trust settings. `read_provenance`
passes the caller's roots as ``trust.trust_anchors`` (which replaces the SDK's own anchor list,
so "trusted" means "chains to a root this platform configured"); without them the reader
reports ``signingCredential.untrusted``.

Known SDK quirk handled here: ``Reader.json()`` in c2pa-rs 0.91.3 renders arrays of numbers in
assertion data as base64 byte strings (``[1, 300]`` -> ``"ASw="``), although the signed CBOR
is right. `read_provenance` therefore takes the data of this platform's own assertions and
ingredient metadata from ``Reader.crjson()``, which decodes them losslessly.

Plain module without Django imports: paths and credentials are passed in by the caller.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from catalog import consent_signals

logger = logging.getLogger(__name__)

CLAIM_GENERATOR = "attribution-royalty-platform"
GENERATION_ASSERTION = "org.attribution-platform.generation"
REFERENCE_METADATA_KEY = "org.attribution-platform.reference"
UPLOAD_METADATA_KEY = "org.attribution-platform.upload"
TRAINING_MINING = consent_signals.TRAINING_MINING_LABEL
OWN_NAMESPACE = "org.attribution-platform."
PROVENANCE_SCHEMA = "org.attribution-platform.provenance/1"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
)
PROVENANCE_CHUNK_ID = b"aprv"
WAV_MEDIA_TYPE = "audio/wav"

# Failure codes that describe the signing credential (trust, expiry, revocation), not whether
# the signed content is intact.
_CREDENTIAL_CODE_PREFIXES = ("signingCredential.", "timeStamp.")
_TRUSTED_CODE = "signingCredential.trusted"

_DEV_CHAIN = "dev-chain.pem"
_DEV_KEY = "dev-signer.key"
_DEV_ROOT = "dev-root.pem"
_DEV_ORGANISATION = "Attribution Royalty Platform (development)"


class ProvenanceError(Exception):
    """Provenance could not be written, signed or read (bad input, credentials or file)."""


# --- credentials -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningCredentials:
    certificate_chain_pem: bytes  # leaf first, then intermediates / root
    private_key_pem: bytes  # PKCS#8 PEM of the leaf key
    trust_anchors_pem: bytes | None  # root(s) a reader should trust; None = none configured


def credentials_from_files(
    chain: Path, key: Path, trust_anchors: Path | None = None
) -> SigningCredentials:
    """Load production signing credentials (PEM files).

    Raises ProvenanceError when a file cannot be read or parsed, the key is encrypted or of an
    unsupported type, or the key does not belong to the first (leaf) certificate of the chain.
    """
    chain_pem = _read_bytes(chain, "certificate chain")
    key_pem = _read_bytes(key, "private key")
    anchors_pem = _read_bytes(trust_anchors, "trust anchors") if trust_anchors else None
    return _checked_credentials(chain_pem, key_pem, anchors_pem)


def development_credentials(directory: Path) -> SigningCredentials:
    """Development signing credentials under `directory`, created on first use and reused.

    Makes an ES256 (P-256) root CA and a leaf certificate issued by it: the leaf has
    digitalSignature key usage, the emailProtection extended key usage that c2pa accepts for
    claim signing, and ``CA:FALSE``. Files: ``dev-chain.pem`` (leaf + root), ``dev-signer.key``
    (mode 0600) and ``dev-root.pem`` (the trust anchor). The root's private key is never
    written, so nothing else can be issued from it. The set is made again if a file is missing
    or unusable, or the leaf expires within a day. A lock file serialises concurrent workers.
    """
    directory = Path(directory)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(directory / ".dev-credentials.lock"):
            paths = [directory / _DEV_CHAIN, directory / _DEV_KEY, directory / _DEV_ROOT]
            if all(p.is_file() for p in paths):
                try:
                    credentials = credentials_from_files(*paths)
                except ProvenanceError as exc:
                    logger.warning(
                        "development credentials in %s unusable (%s); renewing", directory, exc
                    )
                else:
                    if not _leaf_expires_soon(credentials.certificate_chain_pem):
                        return credentials
                    logger.warning("development certificate in %s expires; renewing", directory)
            chain_pem, key_pem, root_pem = _make_development_chain()
            _write_atomic(directory / _DEV_ROOT, root_pem, mode=0o644)
            _write_atomic(directory / _DEV_CHAIN, chain_pem, mode=0o644)
            _write_atomic(directory / _DEV_KEY, key_pem, mode=0o600)
    except OSError as exc:
        raise ProvenanceError(
            f"cannot create development credentials in {directory}: {exc}"
        ) from exc
    return _checked_credentials(chain_pem, key_pem, root_pem)


def _make_development_chain() -> tuple[bytes, bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, _DEV_ORGANISATION),
            ]
        )

    def key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        )

    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(minutes=5)  # tolerate small clock differences between machines
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(name("Attribution Platform Development Root CA"))
        .issuer_name(name("Attribution Platform Development Root CA"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=10 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("Attribution Platform Development Signer"))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=2 * 365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    root_pem = root.public_bytes(serialization.Encoding.PEM)
    chain_pem = leaf.public_bytes(serialization.Encoding.PEM) + root_pem
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return chain_pem, key_pem, root_pem


def _checked_credentials(
    chain_pem: bytes, key_pem: bytes, anchors_pem: bytes | None
) -> SigningCredentials:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certificates = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise ProvenanceError(f"certificate chain is not valid PEM: {exc}") from exc
    try:
        private_key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ProvenanceError(f"private key is not an unencrypted PEM key: {exc}") from exc
    _signing_algorithm(private_key)  # rejects unsupported key types early
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificates[0].public_key().public_bytes(*public) != private_key.public_key().public_bytes(
        *public
    ):
        raise ProvenanceError(
            "private key does not match the signing certificate (first certificate of the chain)"
        )
    if anchors_pem is not None:
        try:
            x509.load_pem_x509_certificates(anchors_pem)
        except ValueError as exc:
            raise ProvenanceError(f"trust anchors are not valid PEM certificates: {exc}") from exc
    # c2pa wants PKCS#8; normalise SEC1 ("EC PRIVATE KEY") and PKCS#1 keys.
    pkcs8 = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningCredentials(chain_pem, pkcs8, anchors_pem)


def _signing_algorithm(private_key: Any) -> Any:
    import c2pa
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        by_curve = {
            "secp256r1": c2pa.C2paSigningAlg.ES256,
            "secp384r1": c2pa.C2paSigningAlg.ES384,
            "secp521r1": c2pa.C2paSigningAlg.ES512,
        }
        if private_key.curve.name in by_curve:
            return by_curve[private_key.curve.name]
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        return c2pa.C2paSigningAlg.ED25519
    elif isinstance(private_key, rsa.RSAPrivateKey):
        return c2pa.C2paSigningAlg.PS256
    raise ProvenanceError(f"unsupported signing key type: {type(private_key).__name__}")


def _leaf_expires_soon(chain_pem: bytes) -> bool:
    from cryptography import x509

    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    return leaf.not_valid_after_utc <= dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


# --- provenance record -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceIngredient:
    """One reference the output was conditioned on (an entry of the ITA record)."""

    recording_id: int
    title: str
    artist: str
    isrc: str  # "" when the recording has none
    rights_holders: list[str]
    level: str  # song / parameter / audio ...
    role: str  # mood, genre, melody ...
    weight: float
    consent_version_ids: list[int]
    media_type: str = "application/octet-stream"  # MIME type of the catalogue audio
    content_sha256: str = ""  # hash of the catalogue audio, when known
    # the recording's CAWG entries when the output was made (`consent_signals.recording_entries`)
    training_mining: dict = field(default_factory=dict)

    def summary(self) -> str:
        holders = ", ".join(self.rights_holders) or "no rights holder on record"
        return (
            f"'{self.title}' by {self.artist} (rights: {holders}; "
            f"{self.level}/{self.role} x{self.weight:g})"
        )


@dataclass(frozen=True)
class UploadIngredient:
    """The maker's own track that the output transforms (audio or temporal level)."""

    title: str
    media_type: str
    sha256: str
    level: str  # audio / temporal
    segment: list[float] | None = None  # the regenerated part (temporal level), seconds
    strength: float | None = None  # SDEdit noise level (audio level)


@dataclass(frozen=True)
class Provenance:
    generation_id: str
    title: str
    created_at: str  # ISO-8601
    model_version: str
    encoder_version: str
    distribution: str  # private / non-commercial / commercial
    prompt: str
    attribution_record_hash: str  # hash of the ITA log record this output is anchored at
    references: list[ReferenceIngredient] = field(default_factory=list)
    upload: UploadIngredient | None = None

    @property
    def transforms_upload(self) -> bool:
        return self.upload is not None

    def training_mining(self) -> dict[str, dict[str, str]]:
        """The output's own CAWG entries (module docstring)."""
        try:
            return consent_signals.output_entries(
                [r.training_mining for r in self.references], self.distribution
            )
        except ValueError as exc:
            raise ProvenanceError(f"cannot state the output's training and mining: {exc}") from exc

    def to_dict(self) -> dict:
        """Plain JSON data (tuples become lists, numpy scalars Python numbers)."""
        data = asdict(self)
        data["schema"] = PROVENANCE_SCHEMA
        try:
            return json.loads(json.dumps(data, default=_json_scalar, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ProvenanceError(f"provenance is not plain JSON data: {exc}") from exc

    @classmethod
    def from_dict(cls, data: dict) -> Provenance:
        try:
            fields = {k: v for k, v in data.items() if k != "schema"}
            fields["references"] = [ReferenceIngredient(**r) for r in data.get("references", [])]
            upload = data.get("upload")
            fields["upload"] = UploadIngredient(**upload) if upload else None
            return cls(**fields)
        except (TypeError, AttributeError) as exc:
            raise ProvenanceError(f"not a provenance record: {exc}") from exc

    def summary(self) -> str:
        """One line for humans (the WAV ``ICMT`` comment)."""
        references = "; ".join(r.summary() for r in self.references) or "none"
        line = (
            f"AI-generated by {CLAIM_GENERATOR} (model {self.model_version}), "
            f"generation {self.generation_id}. References: {references}. "
            f"Attribution record {self.attribution_record_hash}."
        )
        return " ".join(line.split())  # one line, whatever the titles contain


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --- WAV writing -------------------------------------------------------------------------------


def write_wav(path: Path, audio: np.ndarray, sample_rate: int, provenance: Provenance) -> None:
    """Write 16-bit PCM WAV with provenance as readable metadata.

    `audio` is ``(frames,)`` or ``(frames, channels)`` with 1 or 2 channels: floats in
    [-1, 1] (clipped) or int16. Chunks: ``fmt``, ``LIST/INFO`` (INAM, ISFT, ICMT, ICRD),
    ``aprv`` (provenance JSON, UTF-8), ``data``. Written atomically (temp file + rename).
    """
    samples = _pcm16(audio)
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise ProvenanceError(f"sample rate must be a positive integer, got {sample_rate!r}")
    channels = samples.shape[1]
    block_align = 2 * channels
    fmt = struct.pack(
        "<HHIIHH", 1, channels, int(sample_rate), int(sample_rate) * block_align, block_align, 16
    )
    info = {
        b"INAM": provenance.title,
        b"ISFT": (
            f"{CLAIM_GENERATOR}; model {provenance.model_version}; "
            f"encoder {provenance.encoder_version}"
        ),
        b"ICMT": provenance.summary(),
        b"ICRD": _date_of(provenance.created_at),
    }
    info_body = b"INFO" + b"".join(
        _chunk(key, " ".join(value.split()).encode("utf-8") + b"\0") for key, value in info.items()
    )
    embedded = json.dumps(provenance.to_dict(), ensure_ascii=False, sort_keys=True).encode()
    body = (
        b"WAVE"
        + _chunk(b"fmt ", fmt)
        + _chunk(b"LIST", info_body)
        + _chunk(PROVENANCE_CHUNK_ID, embedded)
        + _chunk(b"data", samples.astype("<i2").tobytes())
    )
    if len(body) > 0xFFFFFFFF:
        raise ProvenanceError("audio too long for a RIFF/WAV file (4 GiB)")
    try:
        _write_atomic(Path(path), b"RIFF" + struct.pack("<I", len(body)) + body, mode=0o644)
    except OSError as exc:
        raise ProvenanceError(f"cannot write {path}: {exc}") from exc


def _pcm16(audio: np.ndarray) -> np.ndarray:
    samples = np.asarray(audio)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2 or samples.shape[1] not in (1, 2):
        raise ProvenanceError(
            f"audio must be (frames,) or (frames, channels) with 1 or 2 channels, "
            f"got shape {np.shape(audio)}"
        )
    if samples.dtype == np.int16:
        return samples
    if not np.issubdtype(samples.dtype, np.floating):
        raise ProvenanceError(f"audio must be float or int16, got {samples.dtype}")
    if not np.all(np.isfinite(samples)):
        raise ProvenanceError("audio contains NaN or infinite samples")
    return np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def _chunk(chunk_id: bytes, payload: bytes) -> bytes:
    return (
        chunk_id + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")
    )


def _date_of(created_at: str) -> str:
    try:
        return dt.datetime.fromisoformat(created_at).date().isoformat()
    except ValueError:
        return created_at


# --- signing -----------------------------------------------------------------------------------


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


def _settings(trust_anchors_pem: bytes | None) -> dict:
    settings: dict[str, Any] = {
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
        "builder": {"thumbnail": {"enabled": False}},
    }
    if trust_anchors_pem:
        settings["trust"] = {"trust_anchors": trust_anchors_pem.decode("ascii")}
    return settings


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvenanceReport:
    embedded: dict | None  # from the custom RIFF chunk
    manifest: dict | None  # active C2PA manifest (parsed JSON)
    validation_errors: list[str]  # failure codes from the c2pa validation status
    trusted: bool  # signer chains to a configured trust anchor
    intact: bool  # a manifest is present and reports no integrity failure
    info: dict[str, str] = field(default_factory=dict)  # LIST/INFO fields, e.g. {"ICMT": ...}
    validation_state: str | None = None  # c2pa's summary: Invalid / Valid / Trusted


def read_provenance(path: Path, trust_anchors_pem: bytes | None = None) -> ProvenanceReport:
    """Read the embedded provenance and validate the C2PA manifest of a WAV file.

    `trust_anchors_pem`: root certificate(s) to trust; None leaves c2pa's defaults, which do
    not include this platform's roots. A WAV without a manifest gives ``manifest=None``,
    ``trusted=False`` and ``intact=False`` (nothing vouches for it). Raises ProvenanceError
    for a missing file, a file that is not RIFF/WAVE, or a manifest c2pa cannot parse.
    """
    import c2pa

    path = Path(path)
    riff = _read_wav(path)
    try:
        with path.open("rb") as stream:
            reader = c2pa.Reader.try_create(
                WAV_MEDIA_TYPE, stream, context=c2pa.Context.from_dict(_settings(trust_anchors_pem))
            )
            if reader is None:
                return ProvenanceReport(riff.embedded, None, [], False, False, riff.info)
            with reader:
                store = json.loads(reader.json())
                lossless = _lossless_assertions(reader, store.get("active_manifest"))
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"cannot read C2PA data in {path}: {exc}") from exc
    except OSError as exc:
        raise ProvenanceError(f"cannot read {path}: {exc}") from exc

    manifest = store.get("manifests", {}).get(store.get("active_manifest"))
    if manifest is not None:
        _restore_own_data(manifest, lossless)
    successes, failures = _status_codes(store)
    integrity_failures = [c for c in failures if not c.startswith(_CREDENTIAL_CODE_PREFIXES)]
    return ProvenanceReport(
        embedded=riff.embedded,
        manifest=manifest,
        validation_errors=failures,
        trusted=manifest is not None
        and _TRUSTED_CODE in successes
        and "signingCredential.untrusted" not in failures,
        intact=manifest is not None and not integrity_failures,
        info=riff.info,
        validation_state=store.get("validation_state"),
    )


def _status_codes(store: dict) -> tuple[set[str], list[str]]:
    results = store.get("validation_results")
    if not results:  # older stores: a flat list of problems
        return set(), [s["code"] for s in store.get("validation_status") or [] if "code" in s]
    active = results.get("activeManifest") or {}
    successes = {s.get("code") for s in active.get("success") or []}
    failures = [s["code"] for s in active.get("failure") or [] if "code" in s]
    for delta in results.get("ingredientDeltas") or []:
        failures += [
            s["code"]
            for s in (delta.get("validationDeltas") or {}).get("failure") or []
            if "code" in s
        ]
    return successes, failures


def _lossless_assertions(reader: Any, label: str | None) -> dict[str, Any]:
    """Assertions of the active manifest as decoded by ``crjson()`` (see module docstring)."""
    try:
        crjson = json.loads(reader.crjson())
    except Exception:  # best effort: an SDK without crjson leaves json() as it is
        logger.debug("crjson unavailable", exc_info=True)
        return {}
    for manifest in crjson.get("manifests") or []:
        if manifest.get("label") == label:
            return manifest.get("assertions") or {}
    return {}


def _restore_own_data(manifest: dict, lossless: dict[str, Any]) -> None:
    for assertion in manifest.get("assertions") or []:
        label = assertion.get("label", "")
        if label.startswith(OWN_NAMESPACE) and isinstance(lossless.get(label), dict):
            assertion["data"] = lossless[label]
    for ingredient in manifest.get("ingredients") or []:
        source = (lossless.get(ingredient.get("label", "")) or {}).get("metadata") or {}
        shown = ingredient.get("metadata") or {}
        for key in shown:
            if (key.startswith(OWN_NAMESPACE) or key == TRAINING_MINING) and key in source:
                shown[key] = source[key]


@dataclass(frozen=True)
class _RiffContents:
    embedded: dict | None
    info: dict[str, str]


def _read_wav(path: Path) -> _RiffContents:
    """The INFO fields and the embedded provenance of a RIFF/WAVE file."""
    try:
        with Path(path).open("rb") as f:
            header = f.read(12)
            if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                raise ProvenanceError(f"{path} is not a RIFF/WAVE file")
            embedded: dict | None = None
            info: dict[str, str] = {}
            for chunk_id, size in _chunks(f):
                if chunk_id == PROVENANCE_CHUNK_ID:
                    embedded = _decode_embedded(f.read(size), path)
                elif chunk_id == b"LIST" and size >= 4:
                    body = f.read(size)
                    if body[:4] == b"INFO":
                        info = _decode_info(body[4:])
    except OSError as exc:
        raise ProvenanceError(f"cannot read {path}: {exc}") from exc
    return _RiffContents(embedded, info)


def _chunks(f: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """Yield (id, size) of each top-level chunk with `f` at its payload; skips what is unread."""
    position = 12
    end = f.seek(0, os.SEEK_END)
    while position + 8 <= end:
        f.seek(position)
        chunk_id, size = struct.unpack("<4sI", f.read(8))
        if position + 8 + size > end:
            return  # truncated chunk: nothing more can be trusted to be a chunk
        yield chunk_id, size
        position += 8 + size + (size % 2)


def _decode_embedded(payload: bytes, path: Path) -> dict | None:
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        logger.warning("%s: embedded provenance chunk is not valid JSON", path)
        return None
    return data if isinstance(data, dict) else None


def _decode_info(body: bytes) -> dict[str, str]:
    info: dict[str, str] = {}
    position = 0
    while position + 8 <= len(body):
        key, size = struct.unpack("<4sI", body[position : position + 8])
        value = body[position + 8 : position + 8 + size]
        info[key.decode("ascii", "replace")] = value.rstrip(b"\0").decode("utf-8", "replace")
        position += 8 + size + (size % 2)
    return info


# --- files -------------------------------------------------------------------------------------


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ProvenanceError(f"cannot read {what} {path}: {exc}") from exc


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def _atomic_output(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A temp file beside `path` that replaces it only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w+b") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    with _atomic_output(path, mode) as out:
        out.write(data)
