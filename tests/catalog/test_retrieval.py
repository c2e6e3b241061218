"""Mediated selection over real pgvector: consent filtering inside the query, aggregation of
window hits, audio queries, permitted alternatives, and the API's errors."""

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from catalog.models import RecordingEmbedding, RecordingWindowEmbedding
from catalog.retrieval import selectors
from catalog.services.consent import consent_grant, consent_revoke
from catalog.services.embedding import catalogue_embed
from tests.catalog.retrieval_fixtures import write_excerpt

pytestmark = pytest.mark.django_db
PROMPTS = ("calm classical music", "fast electronic music with drums", "music", "a sad tune")


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def ids(result) -> list[int]:
    return [hit.recording.pk for hit in result.hits]


def test_embedding_writes_windows_and_a_track_vector_once(embedded_catalogue):
    version = embedded_catalogue["encoder"]
    first = embedded_catalogue["recordings"][0]
    starts = list(
        RecordingWindowEmbedding.objects.filter(recording=first, encoder=version)
        .order_by("start_seconds")
        .values_list("start_seconds", flat=True)
    )
    assert starts == [0.0, 10.0]  # 12 s: one full window and a 2-s padded tail
    assert RecordingEmbedding.objects.get(recording=first, encoder=version).window_count == 2
    again = catalogue_embed(encoder_version=version)
    assert again == {"embedded": 0, "failed": 0, "already": 6}


def test_text_retrieval_returns_k_distinct_recordings_by_best_window(embedded_catalogue):
    result = selectors.retrieve_by_text(
        prompt="calm classical music", level="song", distribution="commercial", k=4
    )
    assert len(ids(result)) == 4 == len(set(ids(result)))
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True)
    assert all(-1 <= s <= 1 for s in scores)
    assert str(result.encoder).startswith("default-clap@")


def test_a_revoked_recording_never_appears_for_that_use_and_returns_when_granted_again(
    embedded_catalogue,
):
    target = embedded_catalogue["recordings"][2]
    holder, member = embedded_catalogue["holder"], embedded_catalogue["member"]
    consent_revoke(actor=member, holder=holder, recording=target, uses=["song_inference"])
    for prompt in PROMPTS:
        song = selectors.retrieve_by_text(prompt=prompt, level="song", distribution="private", k=6)
        assert target.pk not in ids(song) and len(ids(song)) == 5
        # other uses the holder still allows are unaffected
        audio = selectors.retrieve_by_text(
            prompt=prompt, level="audio", distribution="private", k=6
        )
        assert target.pk in ids(audio)
    consent_grant(actor=member, holder=holder, recording=target, uses=["song_inference"])
    again = selectors.retrieve_by_text(prompt="music", level="song", distribution="private", k=6)
    assert target.pk in ids(again)  # takes effect on the next query


def test_distribution_and_unanimity_filter_inside_the_query(
    embedded_catalogue, make_holder, make_user, staff
):
    from catalog.services.rights import rights_shares_set

    recordings = embedded_catalogue["recordings"]
    holder, member = embedded_catalogue["holder"], embedded_catalogue["member"]
    consent_revoke(
        actor=member, holder=holder, recording=recordings[0], distributions=["commercial"]
    )
    # a co-holder who has not consented makes the recording unusable for everything
    co_member = make_user("co-member")
    co_holder = make_holder("Co-holder", member=co_member)
    rights_shares_set(
        actor=staff, recording=recordings[1], shares={holder: 5_000, co_holder: 5_000}
    )
    commercial = selectors.retrieve_by_text(
        prompt="music", level="song", distribution="commercial", k=6
    )
    assert recordings[0].pk not in ids(commercial) and recordings[1].pk not in ids(commercial)
    private = selectors.retrieve_by_text(prompt="music", level="song", distribution="private", k=6)
    assert recordings[0].pk in ids(private) and recordings[1].pk not in ids(private)


def test_audio_query_finds_the_recording_it_was_cut_from(embedded_catalogue, settings, tmp_path):
    target = embedded_catalogue["recordings"][3]
    upload = Path(settings.MEDIA_ROOT) / target.audio_file.name  # the same audio
    vectors = selectors.uploaded_audio_vectors(path=upload, max_seconds=600)
    result = selectors.retrieve_by_audio_vectors(
        vectors=vectors, level="song", distribution="private", k=3
    )
    assert ids(result)[0] == target.pk and result.hits[0].score > 0.99

    like = selectors.retrieve_like_recording(
        recording_id=target.pk, level="song", distribution="private", k=5
    )
    assert target.pk not in ids(like) and len(ids(like)) == 5


def test_permitted_alternatives_are_permitted_and_exclude_the_recording(embedded_catalogue):
    recordings = embedded_catalogue["recordings"]
    holder, member = embedded_catalogue["holder"], embedded_catalogue["member"]
    consent_revoke(actor=member, holder=holder, recording=recordings[0], uses=["audio_inference"])
    consent_revoke(actor=member, holder=holder, recording=recordings[4], uses=["audio_inference"])
    result = selectors.permitted_alternatives(
        recording_id=recordings[0].pk, level="audio", distribution="private", k=5
    )
    assert result.permitted is False
    alternatives = ids(result.alternatives)
    assert len(alternatives) == 4
    assert recordings[0].pk not in alternatives and recordings[4].pk not in alternatives


def test_retrieval_api_answers_text_category_audio_and_alternatives(
    embedded_catalogue, make_user, settings
):
    client = client_for(make_user())
    recordings = embedded_catalogue["recordings"]
    text = client.post(
        "/api/retrieval/text/",
        {"prompt": "calm classical music", "level": "song", "distribution": "private", "k": 3},
        format="json",
    )
    assert text.status_code == 200, text.json()
    body = text.json()
    assert len(body["results"]) == 3 and body["results"][0]["recording"]["title"]
    assert body["encoder"].startswith("default-clap@")

    vocabulary = client.get("/api/retrieval/categories/").json()
    assert "Electronic" in vocabulary["genres"] and "workout" in vocabulary["functions"]
    categories = client.post(
        "/api/retrieval/categories/",
        {"genre": "Electronic", "moods": ["calm"], "function": "sleep", "k": 2},
        format="json",
    ).json()
    assert "electronic" in categories["query_text"] and len(categories["results"]) == 2

    path = Path(settings.MEDIA_ROOT) / recordings[1].audio_file.name
    with open(path, "rb") as handle:
        audio = client.post("/api/retrieval/audio/", {"file": handle, "k": 2}, format="multipart")
    assert audio.status_code == 200, audio.json()
    assert audio.json()["results"][0]["recording"]["id"] == recordings[1].pk

    by_id = client.post(
        "/api/retrieval/audio/", {"recording_id": recordings[1].pk, "k": 2}, format="json"
    )
    assert by_id.status_code == 200 and len(by_id.json()["results"]) == 2

    alternatives = client.get(
        f"/api/retrieval/recordings/{recordings[1].pk}/alternatives/", {"level": "parameter"}
    ).json()
    assert alternatives["permitted"] is True and len(alternatives["alternatives"]["results"]) == 5


@pytest.mark.parametrize(
    ("url", "payload", "status", "fragment"),
    [
        ("/api/retrieval/text/", {"prompt": "   "}, 400, "prompt"),
        ("/api/retrieval/text/", {"prompt": "x" * 501}, 400, "prompt"),
        ("/api/retrieval/text/", {"prompt": "calm", "k": 0}, 400, "k"),
        ("/api/retrieval/text/", {"prompt": "calm", "k": 51}, 400, "k"),
        ("/api/retrieval/text/", {"prompt": "calm", "level": "vibe"}, 400, "level"),
        ("/api/retrieval/text/", {"prompt": "calm", "distribution": "pirate"}, 400, "distribution"),
        ("/api/retrieval/categories/", {"moods": ["grumpy"]}, 400, "moods"),
        ("/api/retrieval/categories/", {}, 400, "at least one category"),
        ("/api/retrieval/audio/", {"recording_id": 999999}, 404, "does not exist"),
        ("/api/retrieval/audio/", {}, 400, "exactly one"),
    ],
)
def test_bad_queries_get_clear_errors(
    embedded_catalogue, make_user, url, payload, status, fragment
):
    response = client_for(make_user()).post(url, payload, format="json")
    assert response.status_code == status
    error = response.json()["error"]
    assert fragment in (error["message"] + str(error["details"]))


def test_undecodable_and_oversized_uploads_are_refused(
    embedded_catalogue, make_user, tmp_path, settings
):
    client = client_for(make_user())
    garbage = tmp_path / "song.ogg"
    garbage.write_bytes(b"OggS" + b"\x00" * 5000)
    with open(garbage, "rb") as handle:
        response = client.post("/api/retrieval/audio/", {"file": handle}, format="multipart")
    assert response.status_code == 400
    assert "not decodable audio" in response.json()["error"]["message"]

    settings.RETRIEVAL_MAX_UPLOAD_BYTES = 1000
    real = write_excerpt(
        Path("/usr/share/pushover/themes/electro.ogg"), tmp_path / "x.wav", seconds=3
    )
    with open(real, "rb") as handle:
        response = client.post("/api/retrieval/audio/", {"file": handle}, format="multipart")
    assert (
        response.status_code == 400 and "at most 1000 bytes" in response.json()["error"]["message"]
    )


def test_retrieval_without_an_encoder_says_what_to_run(make_user):
    response = client_for(make_user()).post(
        "/api/retrieval/text/", {"prompt": "calm"}, format="json"
    )
    assert response.status_code == 409
    assert "train_encoder" in response.json()["error"]["message"]


def test_retrieval_endpoints_are_in_the_schema(make_user):
    schema = client_for(make_user()).get("/api/schema/", {"format": "json"}).json()
    for path in ("/api/retrieval/text/", "/api/retrieval/categories/", "/api/retrieval/audio/",
                 "/api/retrieval/recordings/{recording_id}/alternatives/"):  # fmt: skip
        assert path in schema["paths"]
