"""Consent signals out and in: CAWG training-and-data-mining entries per recording (API),
``/.well-known/tdmrep.json`` from consent, and reservations read at import (IPTC/PLUS Data
Mining in a file's XMP, TDMRep in the metadata file) that keep training not granted unless a
holder confirms overriding them (service, API, portal). Real audio with embedded XMP."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from django.test import Client
from mutagen.flac import FLAC
from mutagen.id3 import ID3, PRIV
from mutagen.oggvorbis import OggVorbis
from rest_framework.test import APIClient

from catalog import consent_signals
from catalog.audio.xmp import XmpError, parse_xmp, read_embedded_rights
from catalog.import_metadata import MetadataError, load_metadata
from catalog.models import (
    ConsentReservation,
    ConsentReservationOverride,
    ConsentVersion,
    Distribution,
    Recording,
    Use,
)
from catalog.selectors import consent_current, recording_permits
from catalog.services.consent import consent_grant, consent_revoke
from catalog.services.importing import catalogue_import_folder
from catalog.services.reservations import ReservationNotConfirmed
from catalog.services.rights import rights_shares_set
from tests.conftest import REAL_MP3, REAL_OGG, excerpt_of, require_real_audio

PROHIBITED = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-GENAIMLTRAINING"
EVERY_USE = ["training", "song_inference", "parameter_inference", "audio_inference"]
EVERY_DISTRIBUTION = ["private", "non_commercial", "commercial"]


def xmp(data_mining: str = PROHIBITED, *, extra: str = "") -> str:
    """An XMP packet as Adobe tools write it (xpacket wrapper, attribute form)."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" '
        f'xmlns:tdm="http://www.w3.org/ns/tdmrep#" plus:DataMining="{data_mining}"{extra}/>'
        '</rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>'
    )


def with_id3_xmp(path: Path, packet: str) -> Path:
    tags = ID3()
    tags.add(PRIV(owner="XMP", data=packet.encode("utf-8")))
    tags.save(path)
    return path


def with_vorbis_xmp(path: Path, packet: str) -> Path:
    tagged = OggVorbis(path) if path.suffix == ".ogg" else FLAC(path)
    tagged["XMP"] = packet
    tagged.save()
    return path


def with_wav_xmp(path: Path, packet: str) -> Path:
    """Append a `_PMX` chunk (where Adobe tools put XMP in WAV)."""
    data = bytearray(path.read_bytes())
    payload = packet.encode("utf-8")
    data += b"_PMX" + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))
    return path


# --- mapping (plain) -----------------------------------------------------------------------------


def test_the_plain_module_names_the_models_uses_and_distributions():
    assert (consent_signals.TRAINING, *consent_signals.INFERENCE_USES) == tuple(Use.values)
    assert tuple(Distribution.values) == consent_signals.DISTRIBUTIONS


def test_consent_maps_to_cawg_entries():
    everything = consent_signals.recording_entries(
        dict.fromkeys(EVERY_USE, True), dict.fromkeys(EVERY_DISTRIBUTION, True)
    )
    assert {e["use"] for e in everything.values()} == {"allowed"}
    assert set(everything) >= {"cawg.ai_training", "cawg.ai_generative_training",
                                "cawg.ai_inference", "cawg.data_mining"}  # fmt: skip

    nothing = consent_signals.recording_entries({}, {})
    assert {e["use"] for e in nothing.values()} == {"notAllowed"}

    some = consent_signals.recording_entries(
        {"song_inference": True, "parameter_inference": True},
        {"private": True, "non_commercial": True},
    )
    assert some["cawg.ai_training"] == some["cawg.data_mining"] == {"use": "notAllowed"}
    assert some["cawg.ai_inference"] == {
        "use": "constrained",
        "constraint_info": "only as a song-level or parameter-level reference; outputs only "
        "for private use or non-commercial distribution",
    }
    assert some["org.attribution-platform.song_inference"]["use"] == "constrained"
    assert some["org.attribution-platform.audio_inference"] == {"use": "notAllowed"}
    assert some["org.attribution-platform.distribution"] == {
        "use": "constrained",
        "constraint_info": "outputs only for private use or non-commercial distribution",
    }
    # a use without any distribution is of no use to a maker
    stuck = consent_signals.recording_entries(dict.fromkeys(EVERY_USE, True), {})
    assert stuck["cawg.ai_inference"] == {"use": "notAllowed"}
    assert stuck["cawg.ai_training"] == {"use": "allowed"}


def test_plus_data_mining_values():
    assert consent_signals.data_mining_reserves_training(PROHIBITED)
    assert consent_signals.data_mining_reserves_training("DMI-PROHIBITED")
    assert not consent_signals.data_mining_reserves_training(
        "http://ns.useplus.org/ldf/vocab/DMI-ALLOWED"
    )
    assert not consent_signals.data_mining_reserves_training("DMI-UNSPECIFIED")
    with pytest.raises(ValueError, match="unknown plus:DataMining value"):
        consent_signals.data_mining_reserves_training("http://example.org/no-robots")


# --- XMP in real files ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp3", ".ogg", ".flac", ".wav"])
def test_data_mining_is_read_from_xmp_embedded_in_real_audio(tmp_path, suffix):
    require_real_audio(REAL_MP3, REAL_OGG)
    source = REAL_MP3 if suffix == ".mp3" else REAL_OGG
    path = excerpt_of(source, tmp_path / f"clip{suffix}", seconds=3)
    assert read_embedded_rights(path).empty  # nothing embedded yet
    packet = xmp(extra=' tdm:reservation="1" tdm:policy="https://label.example/tdm"')
    embed = {".mp3": with_id3_xmp, ".wav": with_wav_xmp}.get(suffix, with_vorbis_xmp)
    embed(path, packet)
    rights = read_embedded_rights(path)
    assert rights.data_mining == (PROHIBITED,)
    assert (rights.tdm_reservation, rights.tdm_policy) == (1, "https://label.example/tdm")


def test_xmp_in_element_form_and_broken_xmp():
    element_form = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        'xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"><plus:DataMining '
        'rdf:resource="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED"/></rdf:Description>'
        "</rdf:RDF></x:xmpmeta>"
    )
    assert parse_xmp(element_form.encode()).data_mining == (
        "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED",
    )
    with pytest.raises(XmpError, match="not well-formed"):
        parse_xmp(b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF></x:xmpmeta>')
    with pytest.raises(XmpError, match="DTD or entity"):
        parse_xmp(b'<!DOCTYPE x [<!ENTITY a "b">]><x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    with pytest.raises(XmpError, match="tdm:reservation must be 0 or 1"):
        parse_xmp(xmp(extra=' tdm:reservation="yes"').encode())


# --- import --------------------------------------------------------------------------------------


@pytest.fixture
def incoming(tmp_path):
    """Real excerpts: an MP3 whose XMP prohibits generative AI training, a FLAC without any
    signal, and an Ogg whose metadata entry reserves TDM rights."""
    require_real_audio(REAL_MP3, REAL_OGG)
    root = tmp_path / "incoming"
    root.mkdir()
    with_id3_xmp(excerpt_of(REAL_MP3, root / "reserved.mp3", seconds=4, offset=40), xmp())
    excerpt_of(REAL_OGG, root / "open.flac", seconds=4, offset=20)
    excerpt_of(REAL_OGG, root / "listed.ogg", seconds=4, offset=60)
    metadata = tmp_path / "meta.json"
    policy = "https://label.example/tdm-policy.json"
    entry = {"tdm_reservation": 1, "tdm_policy": policy}
    metadata.write_text(json.dumps({"files": {"listed.ogg": entry}}))
    return root, metadata


def imported(folder: Path, metadata: Path | None = None) -> dict[str, object]:
    outcomes = catalogue_import_folder(
        folder=folder, metadata=load_metadata(metadata), analysis_seconds=4
    )
    return {o.path.name: o for o in outcomes}


@pytest.mark.django_db
def test_import_records_reservations_and_a_reserved_recording_is_not_trainable(
    incoming, staff, make_holder, make_user
):
    folder, metadata = incoming
    outcomes = imported(folder, metadata)
    assert {n: o.status for n, o in outcomes.items()} == dict.fromkeys(
        ["reserved.mp3", "open.flac", "listed.ogg"], "imported"
    )
    reserved = Recording.objects.get(pk=outcomes["reserved.mp3"].recording_id)
    listed = Recording.objects.get(pk=outcomes["listed.ogg"].recording_id)
    open_ = Recording.objects.get(pk=outcomes["open.flac"].recording_id)
    (from_xmp,) = reserved.reservations.all()
    assert (from_xmp.source, from_xmp.value) == ("xmp_data_mining", PROHIBITED)
    (from_metadata,) = listed.reservations.all()
    assert from_metadata.source == "metadata_tdmrep"
    assert from_metadata.policy == "https://label.example/tdm-policy.json"
    assert not open_.reservations.exists()

    member = make_user("label-member")
    holder = make_holder("Reserving Label", member=member)
    for recording in (reserved, listed, open_):
        rights_shares_set(actor=staff, recording=recording, shares={holder: 10_000})

    # the holder's training grant is refused without confirmation, and nothing changes
    with pytest.raises(ReservationNotConfirmed, match="confirm") as refused:
        consent_grant(actor=member, holder=holder, recording=reserved, uses=EVERY_USE,
                      distributions=EVERY_DISTRIBUTION)  # fmt: skip
    assert refused.value.http_status == 409
    assert refused.value.details["reservations"][0]["value"] == PROHIBITED
    assert consent_current(holder=holder, recording=reserved) is None
    assert not ConsentVersion.objects.filter(recording=reserved).exists()
    assert not recording_permits(recording=reserved, use="training")

    # other uses need no confirmation; training stays not granted
    consent_grant(actor=member, holder=holder, recording=reserved,
                  uses=["song_inference"], distributions=["private"])  # fmt: skip
    assert recording_permits(recording=reserved, use="song_inference")
    assert not recording_permits(recording=reserved, use="training")
    consent_grant(actor=member, holder=holder, recording=open_, uses=["training"])
    assert recording_permits(recording=open_, use="training")  # no reservation, no question

    # confirmed: granted, and the override is on record with its version
    version = consent_grant(actor=member, holder=holder, recording=reserved, uses=["training"],
                            confirm_reservation=True)  # fmt: skip
    assert recording_permits(recording=reserved, use="training")
    override = ConsentReservationOverride.objects.get(recording=reserved)
    assert (override.version, override.holder, override.confirmed_by) == (version, holder, member)
    # granting again changes nothing and records nothing more
    consent_grant(actor=member, holder=holder, recording=reserved, uses=["training"],
                  confirm_reservation=True)  # fmt: skip
    assert ConsentReservationOverride.objects.filter(recording=reserved).count() == 1

    # importing the same folder again adds nothing (idempotent by content hash)
    again = imported(folder, metadata)
    assert {o.status for o in again.values()} == {"duplicate"}
    assert ConsentReservation.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("packet", "message"),
    [
        ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF></x:xmpmeta>', "not well-formed"),
        (xmp("http://ns.useplus.org/ldf/vocab/DMI-MAYBE"), "unknown plus:DataMining value"),
    ],
    ids=["malformed", "unknown-value"],
)
def test_a_file_whose_xmp_cannot_be_used_is_not_imported(tmp_path, settings, packet, message):
    require_real_audio(REAL_MP3, REAL_OGG)
    folder = tmp_path / "incoming"
    folder.mkdir()
    with_id3_xmp(excerpt_of(REAL_MP3, folder / "bad.mp3", seconds=4, offset=40), packet)
    excerpt_of(REAL_OGG, folder / "fine.wav", seconds=4, offset=20)
    outcomes = imported(folder)
    assert outcomes["bad.mp3"].status == "failed"
    assert "bad.mp3: its XMP metadata cannot be used" in outcomes["bad.mp3"].message
    assert message in outcomes["bad.mp3"].message
    assert outcomes["fine.wav"].status == "imported"
    # nothing of the bad file: no recording, no stored audio, no reservation
    assert Recording.objects.count() == 1
    assert len([p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]) == 1
    assert not ConsentReservation.objects.exists()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"tdm_reservation": 2}, "tdm_reservation must be 0 or 1"),
        ({"tdm_reservation": "yes"}, "tdm_reservation must be 0 or 1"),
        ({"tdm_policy": "ftp://example.org/policy"}, "tdm_policy must be an http(s) URL"),
    ],
)
def test_bad_tdm_fields_in_the_metadata_file(tmp_path, entry, message):
    metadata = tmp_path / "meta.json"
    metadata.write_text(json.dumps({"files": {"a.ogg": entry}}))
    with pytest.raises(MetadataError, match=re.escape(message)):
        load_metadata(metadata)
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"defaults": {"tdm_reservation": True}}))
    assert load_metadata(ok).defaults == {"tdm_reservation": 1}


# --- API, tdmrep.json, portal --------------------------------------------------------------------


@pytest.fixture
def reserved_co_held(co_held):
    ConsentReservation.objects.create(
        recording=co_held["recording"], source="xmp_data_mining", value=PROHIBITED
    )
    return co_held


@pytest.mark.django_db
def test_training_mining_endpoint_is_public_and_follows_consent(co_held, client):
    recording, a, b = co_held["recording"], co_held["holder_a"], co_held["holder_b"]
    url = f"/api/catalogue/recordings/{recording.pk}/training-mining/"
    first = client.get(url)
    assert first.status_code == 200  # anonymous: it is the tdm-policy crawlers follow
    data = first.json()
    assert data["label"] == "cawg.training-mining" and data["tdm_reservation"] == 1
    assert data["data"]["entries"]["cawg.ai_training"] == {"use": "notAllowed"}

    for holder, member in ((a, co_held["member_a"]), (b, co_held["member_b"])):
        consent_grant(actor=member, holder=holder, recording=recording, uses=EVERY_USE,
                      distributions=["private"])  # fmt: skip
    data = client.get(url).json()
    assert data["tdm_reservation"] == 0
    entries = data["data"]["entries"]
    assert entries["cawg.ai_generative_training"] == {"use": "allowed"}
    assert entries["cawg.ai_inference"]["use"] == "constrained"
    assert entries["org.attribution-platform.distribution"]["constraint_info"] == (
        "outputs only for private use"
    )
    assert client.get("/api/catalogue/recordings/999999/training-mining/").status_code == 404

    api = APIClient()
    api.force_authenticate(co_held["member_a"])
    detail = api.get(f"/api/catalogue/recordings/{recording.pk}/").json()
    assert detail["training_mining"] == data["data"] and detail["reservations"] == []


@pytest.mark.django_db
def test_tdmrep_json_is_generated_from_consent_and_cache_friendly(co_held, make_recording, client):
    recording, other = co_held["recording"], make_recording("Never Opted In")
    for holder, member in ((co_held["holder_a"], co_held["member_a"]),
                           (co_held["holder_b"], co_held["member_b"])):  # fmt: skip
        consent_grant(actor=member, holder=holder, recording=recording, uses=["training"])
    response = client.get("/.well-known/tdmrep.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "public" in response["Cache-Control"] and "max-age=300" in response["Cache-Control"]
    rules = json.loads(response.content)
    by_location = {r["location"]: r for r in rules}
    granted = by_location[f"/api/catalogue/recordings/{recording.pk}/audio/"]
    assert granted["tdm-reservation"] == 0
    assert granted["tdm-policy"] == (
        f"http://testserver/api/catalogue/recordings/{recording.pk}/training-mining/"
    )
    assert by_location[f"/api/catalogue/recordings/{other.pk}/audio/"]["tdm-reservation"] == 1
    assert rules[-1] == {"location": "/api/catalogue/recordings/*/audio/", "tdm-reservation": 1}

    unchanged = client.get("/.well-known/tdmrep.json", HTTP_IF_NONE_MATCH=response["ETag"])
    assert unchanged.status_code == 304 and not unchanged.content
    consent_revoke(actor=co_held["member_b"], holder=co_held["holder_b"], recording=recording,
                   uses=["training"])  # fmt: skip
    changed = client.get("/.well-known/tdmrep.json", HTTP_IF_NONE_MATCH=response["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != response["ETag"]
    assert {r["tdm-reservation"] for r in json.loads(changed.content)} == {1}
    assert client.post("/.well-known/tdmrep.json").status_code == 405


@pytest.mark.django_db
def test_api_grant_of_training_on_a_reserved_recording_needs_confirmation(reserved_co_held):
    recording, a = reserved_co_held["recording"], reserved_co_held["holder_a"]
    api = APIClient()
    api.force_authenticate(reserved_co_held["member_a"])
    url = f"/api/catalogue/holders/{a.pk}/consents/{recording.pk}/"
    shown = api.get(url).json()
    assert shown["reservations"][0]["value"] == PROHIBITED

    refused = api.post(f"{url}grant/", {"uses": ["training", "song_inference"]}, format="json")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "reservation_not_confirmed"
    assert "confirm_reservation" in error["message"]
    assert consent_current(holder=a, recording=recording) is None  # not even song inference

    confirmed = api.post(f"{url}grant/", {"uses": ["training"], "confirm_reservation": True},
                         format="json")  # fmt: skip
    assert confirmed.status_code == 200
    assert confirmed.json()["current"]["training"] is True
    assert ConsentReservationOverride.objects.filter(holder=a).count() == 1
    # revoking needs no confirmation (and takes no such field)
    revoked = api.post(f"{url}revoke/", {"uses": ["training"]}, format="json")
    assert revoked.status_code == 200 and revoked.json()["current"]["training"] is False


@pytest.mark.django_db
def test_portal_shows_the_reservation_and_confirms_before_overriding_it(reserved_co_held):
    recording, a = reserved_co_held["recording"], reserved_co_held["holder_a"]
    client = Client()
    client.force_login(reserved_co_held["member_a"])
    page = client.get(f"/portal/holders/{a.pk}/").content.decode()
    assert "Mining rights reserved" in page and PROHIBITED in page

    url = f"/portal/holders/{a.pk}/recordings/{recording.pk}/consent/"
    form = {"consent": ["training", "song_inference", "private"]}
    confirm = client.post(url, form)
    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert "Confirm overriding a reservation" in html and PROHIBITED in html
    assert consent_current(holder=a, recording=recording) is None  # nothing changed yet

    done = client.post(url, {**form, "confirmed": "yes"})
    assert done.status_code == 302
    version = consent_current(holder=a, recording=recording)
    assert version.training and version.song_inference
    assert version.reservation_override.confirmed_by == reserved_co_held["member_a"]

    # the bulk form cannot override it silently either
    b = reserved_co_held["holder_b"]
    other = Client()
    other.force_login(reserved_co_held["member_b"])
    form = {"action": "grant", "names": ["training"], "recordings": [recording.pk]}
    bulk = other.post(f"/portal/holders/{b.pk}/consents/bulk/", form)
    assert bulk.status_code == 200 and "Confirm overriding a reservation" in bulk.content.decode()
    assert consent_current(holder=b, recording=recording) is None
