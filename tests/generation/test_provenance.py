"""Provenance of generated audio: WAV metadata, development credentials, C2PA sign and verify.

No database: `generation.provenance` is a plain module.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from catalog.consent_signals import recording_entries
from generation.provenance import (
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    GENERATION_ASSERTION,
    REFERENCE_METADATA_KEY,
    TRAINED_ALGORITHMIC_MEDIA,
    TRAINING_MINING,
    UPLOAD_METADATA_KEY,
    Provenance,
    ProvenanceError,
    ReferenceIngredient,
    SigningCredentials,
    UploadIngredient,
    credentials_from_files,
    development_credentials,
    read_provenance,
    sign_wav,
    write_wav,
)

RATE = 16_000
ALL = {"training": True, "song_inference": True, "parameter_inference": True,
       "audio_inference": True}  # fmt: skip
EVERYWHERE = {"private": True, "non_commercial": True, "commercial": True}
# The first reference permits everything; the second no training and only private outputs.
OPEN = recording_entries(ALL, EVERYWHERE)
GUARDED = recording_entries(
    {**ALL, "training": False, "audio_inference": False},
    {"private": True, "non_commercial": False, "commercial": False},
)


@pytest.fixture(scope="module")
def credentials(tmp_path_factory) -> SigningCredentials:
    return development_credentials(tmp_path_factory.mktemp("signing"))


@pytest.fixture
def provenance() -> Provenance:
    return Provenance(
        generation_id="gen-42",
        title="Night Drive (generated)",
        created_at="2026-11-25T10:30:00+00:00",
        model_version="dit-demo-3",
        encoder_version="clap-music-1",
        distribution="commercial",
        prompt="warm synthwave with a melancholic lead",
        attribution_record_hash="sha256:" + "ab" * 32,
        references=[
            ReferenceIngredient(
                recording_id=7,
                title="Electro Theme",
                artist="Pushover Band",
                isrc="GBAYE0601498",
                rights_holders=["Holder A", "Holder B"],
                level="song",
                role="mood",
                weight=0.7,
                consent_version_ids=[3, 300],
                media_type="audio/ogg",
                training_mining=OPEN,
            ),
            ReferenceIngredient(
                recording_id=9,
                title="Machine Wars",
                artist="ASC",
                isrc="",
                rights_holders=["Holder C"],
                level="parameter",
                role="timbre",
                weight=0.3,
                consent_version_ids=[11],
                media_type="audio/mpeg",
                training_mining=GUARDED,
            ),
        ],
    )


@pytest.fixture
def audio() -> np.ndarray:
    t = np.arange(RATE) / RATE
    left = 0.5 * np.sin(2 * np.pi * 220 * t)
    return np.stack([left, -left], axis=1).astype(np.float32)  # (frames, 2)


@pytest.fixture
def signed(tmp_path, audio, provenance, credentials) -> Path:
    plain = tmp_path / "plain.wav"
    write_wav(plain, audio, RATE, provenance)
    dest = tmp_path / "signed.wav"
    sign_wav(plain, dest, provenance, credentials)
    return dest


def chunks(path: Path) -> dict[bytes, tuple[int, int]]:
    """Independent RIFF walk: chunk id -> (payload offset, size)."""
    data = path.read_bytes()
    found, position = {}, 12
    while position + 8 <= len(data):
        chunk_id, size = struct.unpack("<4sI", data[position : position + 8])
        found[chunk_id] = (position + 8, size)
        position += 8 + size + size % 2
    return found


# --- WAV metadata ------------------------------------------------------------------------------


def test_write_wav_keeps_samples_and_carries_readable_provenance(tmp_path, audio, provenance):
    path = tmp_path / "out.wav"
    write_wav(path, audio, RATE, provenance)

    samples, rate = sf.read(path, dtype="int16")
    assert rate == RATE
    assert samples.shape == audio.shape
    np.testing.assert_array_equal(samples, np.round(audio * 32767).astype(np.int16))
    assert sf.info(path).subtype == "PCM_16"

    with sf.SoundFile(path) as f:  # libsndfile reads LIST/INFO on its own
        assert f.title == provenance.title
        assert f.software.startswith("attribution-royalty-platform")
        assert f.date == "2026-11-25"
        comment = f.comment
    assert "\n" not in comment
    for name in ("Electro Theme", "Machine Wars", "Holder A", "Holder B", "Holder C"):
        assert name in comment

    offset, size = chunks(path)[b"aprv"]
    raw = json.loads(path.read_bytes()[offset : offset + size])
    assert raw == provenance.to_dict()
    report = read_provenance(path)
    assert report.embedded == provenance.to_dict()
    assert Provenance.from_dict(report.embedded) == provenance
    assert report.info["ICMT"] == comment


def test_write_wav_mono_int16_and_rejects_bad_shapes(tmp_path, provenance):
    mono = (np.arange(1000, dtype=np.int16) - 500) * 30
    write_wav(tmp_path / "mono.wav", mono, 8000, provenance)
    samples, rate = sf.read(tmp_path / "mono.wav", dtype="int16")
    np.testing.assert_array_equal(samples, mono)
    assert rate == 8000
    with pytest.raises(ProvenanceError):
        write_wav(tmp_path / "x.wav", np.zeros((100, 3)), RATE, provenance)
    with pytest.raises(ProvenanceError):
        write_wav(tmp_path / "x.wav", np.full(10, np.nan), RATE, provenance)


# --- credentials -------------------------------------------------------------------------------


def test_development_credentials_are_created_once_and_reused(tmp_path):
    directory = tmp_path / "keys"
    first = development_credentials(directory)
    second = development_credentials(directory)
    assert first == second

    key_file = directory / "dev-signer.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    leaf, root = x509.load_pem_x509_certificates(first.certificate_chain_pem)
    assert first.trust_anchors_pem == root.public_bytes(serialization.Encoding.PEM)
    assert leaf.issuer == root.subject
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_credentials_from_files(tmp_path, credentials):
    chain, key, anchors = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "root.pem"
    chain.write_bytes(credentials.certificate_chain_pem)
    key.write_bytes(credentials.private_key_pem)
    anchors.write_bytes(credentials.trust_anchors_pem)
    assert credentials_from_files(chain, key, anchors) == credentials

    other = ec.generate_private_key(ec.SECP256R1())
    key.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ProvenanceError, match="does not match"):
        credentials_from_files(chain, key)
    with pytest.raises(ProvenanceError, match="cannot read"):
        credentials_from_files(tmp_path / "missing.pem", key)
    key.write_bytes(b"not a key")
    with pytest.raises(ProvenanceError):
        credentials_from_files(chain, key)


# --- signing and verification ------------------------------------------------------------------


def test_signed_manifest_describes_the_generation(tmp_path, audio, provenance, credentials):
    plain = tmp_path / "plain.wav"
    write_wav(plain, audio, RATE, provenance)
    written = sign_wav(plain, tmp_path / "signed.wav", provenance, credentials)

    report = read_provenance(tmp_path / "signed.wav")
    manifest = report.manifest
    assert manifest is not None
    assert manifest == written
    assert manifest["title"] == provenance.title
    assert manifest["claim_generator_info"][0]["name"] == "attribution-royalty-platform"

    assertions = {a["label"]: a["data"] for a in manifest["assertions"]}
    (created,) = assertions["c2pa.actions.v2"]["actions"]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert len(created["parameters"]["ingredients"]) == 2  # the action links the references

    custom = assertions[GENERATION_ASSERTION]
    assert custom["generation_id"] == "gen-42"
    assert custom["attribution_record_hash"] == provenance.attribution_record_hash
    assert custom == provenance.to_dict()  # numeric lists included (see crjson note)

    ingredients = manifest["ingredients"]
    assert [i["title"] for i in ingredients] == ["Electro Theme", "Machine Wars"]
    assert {i["relationship"] for i in ingredients} == {"inputTo"}
    assert [i["format"] for i in ingredients] == ["audio/ogg", "audio/mpeg"]
    first = ingredients[0]["metadata"][REFERENCE_METADATA_KEY]
    assert first["recording_id"] == 7
    assert first["isrc"] == "GBAYE0601498"
    assert first["rights_holders"] == ["Holder A", "Holder B"]
    assert (first["level"], first["role"], first["weight"]) == ("song", "mood", 0.7)
    assert first["consent_version_ids"] == [3, 300]

    # The readable metadata and the audio survive signing.
    assert report.embedded == provenance.to_dict()
    np.testing.assert_array_equal(
        sf.read(tmp_path / "signed.wav", dtype="int16")[0], sf.read(plain, dtype="int16")[0]
    )


def test_trust_needs_the_root_as_anchor(signed, credentials):
    untrusted = read_provenance(signed)
    assert not untrusted.trusted
    assert untrusted.intact
    assert untrusted.validation_errors == ["signingCredential.untrusted"]

    trusted = read_provenance(signed, credentials.trust_anchors_pem)
    assert trusted.trusted
    assert trusted.intact
    assert trusted.validation_errors == []

    stranger = development_credentials(signed.parent / "other-root")
    assert not read_provenance(signed, stranger.trust_anchors_pem).trusted


@pytest.mark.parametrize("chunk", [b"data", b"aprv"])
def test_tampering_breaks_integrity(signed, credentials, chunk):
    offset, size = chunks(signed)[chunk]
    data = bytearray(signed.read_bytes())
    if chunk == b"data":
        data[offset + size // 2 : offset + size // 2 + 4] = b"\x7f\x7f\x80\x80"
    else:  # change the record but keep it valid JSON: "gen-42" -> "gen-43"
        at = data.index(b"gen-42", offset, offset + size)
        data[at + 5 : at + 6] = b"3"
    signed.write_bytes(bytes(data))

    report = read_provenance(signed, credentials.trust_anchors_pem)
    assert report.manifest is not None
    assert not report.intact
    assert "assertion.dataHash.mismatch" in report.validation_errors


def test_file_without_manifest(tmp_path, audio, provenance):
    plain = tmp_path / "plain.wav"
    write_wav(plain, audio, RATE, provenance)
    report = read_provenance(plain)
    assert report.manifest is None
    assert report.embedded == provenance.to_dict()
    assert (report.trusted, report.intact, report.validation_errors) == (False, False, [])

    sf.write(tmp_path / "bare.wav", audio, RATE)  # no provenance at all
    bare = read_provenance(tmp_path / "bare.wav")
    assert bare.manifest is None
    assert bare.embedded is None


def test_garbage_and_other_formats_are_refused(tmp_path, audio, provenance, credentials):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio " * 50)
    ogg = tmp_path / "clip.ogg"
    sf.write(ogg, audio, RATE)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    for path in (garbage, ogg, empty, tmp_path / "missing.wav"):
        with pytest.raises(ProvenanceError):
            read_provenance(path)
        with pytest.raises(ProvenanceError):
            sign_wav(path, tmp_path / "out.wav", provenance, credentials)
    assert not (tmp_path / "out.wav").exists()


def test_signing_errors_are_provenance_errors(tmp_path, audio, provenance, credentials):
    plain = tmp_path / "plain.wav"
    write_wav(plain, audio, RATE, provenance)
    # A chain whose leaf does not match the key: c2pa refuses, callers see ProvenanceError.
    other = development_credentials(tmp_path / "other")
    mismatched = SigningCredentials(other.certificate_chain_pem, credentials.private_key_pem, None)
    with pytest.raises(ProvenanceError):
        sign_wav(plain, tmp_path / "out.wav", provenance, mismatched)
    assert not (tmp_path / "out.wav").exists()

    # A file written for another generation is never signed for this one.
    other_generation = Provenance.from_dict({**provenance.to_dict(), "generation_id": "gen-7"})
    with pytest.raises(ProvenanceError, match="another generation"):
        sign_wav(plain, tmp_path / "out.wav", other_generation, credentials)


def test_to_dict_is_plain_json(provenance):
    reference = provenance.references[0]
    loose = Provenance.from_dict(
        {
            **provenance.to_dict(),
            "references": [
                {
                    **provenance.to_dict()["references"][0],
                    "consent_version_ids": (3, 300),
                    "weight": np.float32(0.5),
                }
            ],
        }
    )
    data = loose.to_dict()
    assert data["references"][0]["consent_version_ids"] == [3, 300]
    assert type(data["references"][0]["weight"]) is float
    assert data == json.loads(json.dumps(data))
    assert reference.recording_id == data["references"][0]["recording_id"]
    bad = Provenance.from_dict({**provenance.to_dict(), "references": []})
    object.__setattr__(bad, "prompt", float("nan"))
    with pytest.raises(ProvenanceError):
        bad.to_dict()


# --- consent signals and ingredient relationships ---------------------------------------------


def c2pa_store(path: Path) -> dict:
    """The manifest store as c2pa-python itself reads it back (independent of read_provenance),
    with assertion data from crjson (lossless for numeric arrays)."""
    import c2pa

    with path.open("rb") as stream, c2pa.Reader("audio/wav", stream) as reader:
        store = json.loads(reader.json())
        crjson = json.loads(reader.crjson())
    active = store["manifests"][store["active_manifest"]]
    (lossless,) = [m for m in crjson["manifests"] if m["label"] == store["active_manifest"]]
    return {"manifest": active, "assertions": lossless["assertions"]}


def test_manifest_carries_cawg_entries_per_ingredient_and_for_the_output(signed):
    read = c2pa_store(signed)
    manifest, assertions = read["manifest"], read["assertions"]
    electro, machine = manifest["ingredients"]
    assert electro["metadata"][TRAINING_MINING] == {"entries": OPEN}
    assert machine["metadata"][TRAINING_MINING] == {"entries": GUARDED}
    assert electro["metadata"][TRAINING_MINING]["entries"]["cawg.ai_training"] == {"use": "allowed"}
    guarded = machine["metadata"][TRAINING_MINING]["entries"]
    assert guarded["cawg.ai_generative_training"] == {"use": "notAllowed"}
    assert guarded["cawg.ai_inference"]["use"] == "constrained"
    assert "private use" in guarded["cawg.ai_inference"]["constraint_info"]
    assert guarded["org.attribution-platform.audio_inference"] == {"use": "notAllowed"}
    assert guarded["org.attribution-platform.distribution"]["use"] == "constrained"

    own = {a["label"]: a["data"] for a in manifest["assertions"]}[TRAINING_MINING]["entries"]
    assert own == assertions[TRAINING_MINING]["entries"]
    # most restrictive of the references (Machine Wars allows no training)...
    for label in ("cawg.ai_training", "cawg.ai_generative_training", "cawg.data_mining"):
        assert own[label] == {"use": "notAllowed"}
    # ...and never more than constrained (the platform's policy)
    assert own["cawg.ai_inference"]["use"] == "constrained"
    assert "attribute and pay" in own["cawg.ai_inference"]["constraint_info"]
    assert own["org.attribution-platform.distribution"] == {"use": "allowed"}  # commercial


def test_references_are_input_to_and_no_upload_means_created_by_a_trained_model(signed):
    manifest = c2pa_store(signed)["manifest"]
    assert {i["relationship"] for i in manifest["ingredients"]} == {"inputTo"}
    actions = {a["label"]: a["data"] for a in manifest["assertions"]}["c2pa.actions.v2"]
    assert [a["action"] for a in actions["actions"]] == ["c2pa.created"]
    assert actions["actions"][0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA


@pytest.mark.parametrize(
    "upload",
    [
        UploadIngredient("My track", "audio/wav", "cd" * 32, "audio", strength=0.5),
        UploadIngredient("My track", "audio/mpeg", "ef" * 32, "temporal", segment=[0.5, 1.25]),
    ],
    ids=["audio", "temporal"],
)
def test_a_transformed_upload_is_the_parent_and_the_output_a_composite(
    tmp_path, audio, provenance, credentials, upload
):
    transformed = Provenance.from_dict(
        {**provenance.to_dict(), "upload": upload.__dict__, "distribution": "private"}
    )
    assert transformed.upload == upload
    plain = tmp_path / "plain.wav"
    write_wav(plain, audio, RATE, transformed)
    sign_wav(plain, tmp_path / "signed.wav", transformed, credentials)

    read = c2pa_store(tmp_path / "signed.wav")
    manifest = read["manifest"]
    parent, *references = manifest["ingredients"]
    assert parent["relationship"] == "parentOf" and parent["title"] == "My track"
    assert parent["format"] == upload.media_type
    assert [r["relationship"] for r in references] == ["inputTo", "inputTo"]
    shown = read["assertions"][parent["label"]]["metadata"][UPLOAD_METADATA_KEY]
    assert shown == {"sha256": upload.sha256, "level": upload.level,
                     "segment": upload.segment, "strength": upload.strength}  # fmt: skip

    opened, edited = {a["label"]: a["data"] for a in manifest["assertions"]}["c2pa.actions.v2"][
        "actions"
    ]
    assert opened["action"] == "c2pa.opened"
    assert [i["url"] for i in opened["parameters"]["ingredients"]] == [
        f"self#jumbf=c2pa.assertions/{parent['label']}"
    ]
    assert edited["action"] == "c2pa.edited"
    assert edited["digitalSourceType"] == COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    assert len(edited["parameters"]["ingredients"]) == 2  # the references
    own = read["assertions"][TRAINING_MINING]["entries"]
    assert own["org.attribution-platform.distribution"] == {
        "use": "constrained",
        "constraint_info": "verified for private use only",
    }

    report = read_provenance(tmp_path / "signed.wav", credentials.trust_anchors_pem)
    assert report.trusted and report.intact
    assert report.manifest["ingredients"][0]["metadata"][UPLOAD_METADATA_KEY]["segment"] == (
        upload.segment
    )  # restored from crjson (json() renders numeric arrays as base64)
    assert Provenance.from_dict(report.embedded) == transformed


def test_a_reference_without_consent_entries_counts_as_not_allowed(tmp_path, audio, provenance):
    unknown = Provenance.from_dict(
        {
            **provenance.to_dict(),
            "references": [{**provenance.to_dict()["references"][0], "training_mining": {}}],
        }
    )
    own = unknown.training_mining()
    assert own["cawg.ai_inference"] == {"use": "notAllowed"}
    assert own["cawg.ai_training"] == {"use": "notAllowed"}
    bad = Provenance.from_dict({**provenance.to_dict(), "distribution": "broadcast"})
    with pytest.raises(ProvenanceError, match="distribution"):
        bad.training_mining()
