"""Unmediated song selection: hierarchy browsing, full-text/trigram search, autocomplete."""

import pytest
from django.db import connection
from rest_framework.test import APIClient

from catalog import browse
from catalog.models import Artist, Recording, Release
from catalog.services.consent import consent_grant
from config.exceptions import InvalidInput, NotFound

pytestmark = pytest.mark.django_db

BROWSE = "/api/catalogue/browse/{}/"
SEARCH = "/api/catalogue/search/"
AUTOCOMPLETE = "/api/catalogue/search/autocomplete/"


@pytest.fixture
def catalogue(make_recording):
    """Five recordings: two classical on one release, two electronic without a release (one
    without subgenre), and one with no genre, year, country or instruments."""
    composer = Artist.objects.create(name="Composer A")
    wars = Release.objects.create(title="Wars of the Realm", artist=composer, year=1997)
    classical = {"artist": "Composer A", "genre": "Classical", "subgenre": "Romantic"}
    electronic = {"artist": "Synth Person", "genre": "Electronic", "country": "US"}
    recordings = {
        "hymn": make_recording(
            "Battle Hymn", **classical, release=wars, year=1997, country="GB",
            instruments=["strings", "brass"], moods=["epic"], duration_seconds=201.5,
        ),
        "dawn": make_recording(
            "Battlefield Dawn", **classical, release=wars, year=1999, country="GB",
            instruments=["strings"], moods=["calm"],
        ),
        "drive": make_recording(
            "Night Drive", **electronic, subgenre="Synthwave", year=2012,
            instruments=["synth", "drums"], moods=["dark"],
        ),
        "pulse": make_recording("Quiet Pulse", **electronic, year=2015, instruments=["synth"]),
        "mystery": make_recording("Mystery Track", artist="Anonymous"),
    }  # fmt: skip
    return {
        **recordings,
        "composer": composer,
        "synth": Artist.objects.get(name="Synth Person"),
        "anonymous": Artist.objects.get(name="Anonymous"),
        "wars": wars,
    }


@pytest.fixture
def api(make_user):
    client = APIClient()
    client.force_authenticate(make_user())
    return client


def level(api, kind, *path, **params):
    response = api.get(BROWSE.format(kind), {"path": list(path), **params})
    assert response.status_code == 200, response.json()
    return response.json()


def nodes(body):
    return [(node["label"], node["key"], node["count"]) for node in body["nodes"]]


def titles(body):
    return [recording["title"] for recording in body["recordings"]]


def assert_error(response, status, code="invalid_input"):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and "details" in error
    return error


# --- hierarchies -------------------------------------------------------------------------------


def test_genre_hierarchy_levels_and_counts(api, catalogue):
    composer, synth, wars = catalogue["composer"].pk, catalogue["synth"].pk, catalogue["wars"].pk
    root = level(api, "genre")
    assert root["levels"] == ["genre", "subgenre", "artist", "release", "recording"]
    assert root["level"] == "genre" and root["count"] == 5 and root["path"] == []
    assert nodes(root) == [("Classical", "Classical", 2), ("Electronic", "Electronic", 2),
                           ("Unknown", "", 1)]  # fmt: skip

    assert nodes(level(api, "genre", "Classical")) == [("Romantic", "Romantic", 2)]
    assert nodes(level(api, "genre", "Electronic")) == [
        ("Synthwave", "Synthwave", 1), ("Unknown", "", 1)
    ]  # fmt: skip
    assert nodes(level(api, "genre", "Electronic", "")) == [("Synth Person", str(synth), 1)]
    assert nodes(level(api, "genre", "Classical", "Romantic", composer)) == [
        ("Wars of the Realm", str(wars), 2)
    ]
    assert nodes(level(api, "genre", "Electronic", "Synthwave", synth)) == [("No release", "", 1)]

    leaves = level(api, "genre", "Classical", "Romantic", composer, wars)
    assert leaves["level"] == "recording" and leaves["nodes"] == [] and leaves["total"] == 2
    assert titles(leaves) == ["Battle Hymn", "Battlefield Dawn"]
    assert leaves["recordings"][0] == {
        "id": catalogue["hymn"].pk,
        "title": "Battle Hymn",
        "artist": {"id": composer, "name": "Composer A"},
        "duration_seconds": 201.5,
    }
    assert [(c["level"], c["label"]) for c in leaves["path"]] == [
        ("genre", "Classical"), ("subgenre", "Romantic"), ("artist", "Composer A"),
        ("release", "Wars of the Realm"),
    ]  # fmt: skip


def test_unknown_nodes_stay_navigable(api, catalogue):
    anonymous = catalogue["anonymous"].pk
    assert nodes(level(api, "genre", "")) == [("Unknown", "", 1)]
    body = level(api, "genre", "", "", anonymous, "")
    assert titles(body) == ["Mystery Track"]
    assert [c["label"] for c in body["path"]] == ["Unknown", "Unknown", "Anonymous", "No release"]
    assert titles(level(api, "decade", "", "")) == ["Mystery Track"]
    assert titles(level(api, "country", "", anonymous)) == ["Mystery Track"]
    assert titles(level(api, "instrument", "", anonymous)) == ["Mystery Track"]


def test_decade_hierarchy(api, catalogue):
    root = level(api, "decade")
    assert root["levels"] == ["decade", "year", "recording"]
    assert nodes(root) == [("1990s", "1990", 2), ("2010s", "2010", 2), ("Unknown", "", 1)]
    assert nodes(level(api, "decade", 1990)) == [("1997", "1997", 1), ("1999", "1999", 1)]
    assert nodes(level(api, "decade", "")) == [("Unknown", "", 1)]
    assert titles(level(api, "decade", 2010, 2015)) == ["Quiet Pulse"]


def test_country_hierarchy(api, catalogue):
    synth = catalogue["synth"].pk
    root = level(api, "country")
    assert nodes(root) == [("GB", "GB", 2), ("US", "US", 2), ("Unknown", "", 1)]
    assert nodes(level(api, "country", "US")) == [("Synth Person", str(synth), 2)]
    assert titles(level(api, "country", "US", synth)) == ["Night Drive", "Quiet Pulse"]


def test_instrument_hierarchy_counts_a_recording_under_each_of_its_tags(api, catalogue):
    composer = catalogue["composer"].pk
    root = level(api, "instrument")
    assert nodes(root) == [("brass", "brass", 1), ("drums", "drums", 1), ("strings", "strings", 2),
                           ("synth", "synth", 2), ("Unknown", "", 1)]  # fmt: skip
    assert root["total"] == 5
    assert nodes(level(api, "instrument", "strings")) == [("Composer A", str(composer), 2)]
    assert titles(level(api, "instrument", "brass", composer)) == ["Battle Hymn"]


def test_levels_are_paged(api, catalogue):
    page = level(api, "genre", limit=1, offset=1)
    assert page["total"] == 3 and nodes(page) == [("Electronic", "Electronic", 2)]
    assert level(api, "instrument", limit=2, offset=4)["nodes"] == [
        {"label": "Unknown", "key": "", "count": 1}
    ]
    assert titles(level(api, "country", "GB", catalogue["composer"].pk, limit=1, offset=1)) == [
        "Battlefield Dawn"
    ]


def test_consent_filter_keeps_only_permitted_recordings(api, catalogue, co_held):
    assert level(api, "genre", use="song_inference")["count"] == 0
    for who in "ab":
        consent_grant(
            actor=co_held[f"member_{who}"],
            holder=co_held[f"holder_{who}"],
            recording=co_held["recording"],
            uses=["song_inference"],
        )
    body = level(api, "genre", "", "", use="song_inference")
    assert nodes(body) == [("Test Artist", str(co_held["recording"].artist_id), 1)]
    hits = api.get(SEARCH, {"q": "shared", "use": "song_inference"}).json()["results"]
    assert [hit["title"] for hit in hits] == ["Shared Song"]
    assert api.get(SEARCH, {"q": "battle", "use": "song_inference"}).json()["results"] == []
    assert api.get(SEARCH, {"q": "battle", "use": "training"}).json()["results"] == []
    assert suggest(api, "sha", use="song_inference") == [("recording", "Shared Song")]
    assert suggest(api, "test art", use="song_inference") == [("artist", "Test Artist")]
    assert suggest(api, "comp", use="song_inference") == []


@pytest.mark.parametrize(
    ("kind", "path", "status", "fragment"),
    [
        ("mood", [], 400, "unknown hierarchy 'mood'"),
        ("decade", ["1990", "1997", "1"], 400, "has 2 levels above recordings"),
        ("genre", ["Classical", "Romantic", "Composer A"], 400, "artist key is an integer"),
        ("decade", ["1995"], 400, "year ending in 0"),
        ("genre", ["Jazz"], 404, "no recordings under genre 'Jazz'"),
        ("genre", ["Classical", "Synthwave"], 404, "genre 'Classical' > subgenre 'Synthwave'"),
        ("country", ["GB", "999999"], 404, "artist '999999'"),
    ],
)
def test_bad_kinds_and_paths(api, catalogue, kind, path, status, fragment):
    response = api.get(BROWSE.format(kind), {"path": path})
    error = assert_error(response, status, "invalid_input" if status == 400 else "not_found")
    assert fragment in error["message"]


def test_bad_browse_paging_is_a_400(api, catalogue):
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "many"}):
        assert_error(api.get(BROWSE.format("genre"), params), 400)


# --- search ------------------------------------------------------------------------------------


def search(api, q, **params):
    response = api.get(SEARCH, {"q": q, **params})
    assert response.status_code == 200, response.json()
    return [hit["title"] for hit in response.json()["results"]]


def test_search_by_title_artist_genre_and_tags(api, catalogue):
    assert search(api, "battle hymn")[0] == "Battle Hymn"
    assert search(api, "Night Drive") == ["Night Drive"]
    assert set(search(api, "synth person")) == {"Night Drive", "Quiet Pulse"}
    assert set(search(api, "electronic")) == {"Night Drive", "Quiet Pulse"}
    assert search(api, "synthwave") == ["Night Drive"]
    assert search(api, "brass") == ["Battle Hymn"]  # instruments
    assert search(api, "calm") == ["Battlefield Dawn"]  # moods
    assert set(search(api, "wars realm")) == {"Battle Hymn", "Battlefield Dawn"}  # release
    assert search(api, "nothing like this") == []


def test_search_tolerates_typos_and_prefixes(api, catalogue):
    assert set(search(api, "battel")[:2]) == {"Battle Hymn", "Battlefield Dawn"}
    assert search(api, "battel hymn")[0] == "Battle Hymn"
    assert search(api, "mystry track") == ["Mystery Track"]
    assert search(api, "quie")[0] == "Quiet Pulse"  # prefix
    assert set(search(api, "composr")) == {"Battle Hymn", "Battlefield Dawn"}  # artist typo


def test_search_ranks_title_matches_first_and_respects_limit(api, catalogue, make_recording):
    make_recording("Interlude", artist="Night Drive Collective")
    response = api.get(SEARCH, {"q": "night drive", "limit": 2}).json()
    assert response["query"] == "night drive"
    results = response["results"]
    assert [r["title"] for r in results] == ["Night Drive", "Interlude"]
    assert results[0]["score"] > results[1]["score"] > 0
    assert results[0]["artist"]["name"] == "Synth Person" and results[0]["release"] is None
    assert search(api, "battle", limit=1) == ["Battle Hymn"]
    first = api.get(SEARCH, {"q": "battle hymn"}).json()["results"][0]
    assert first["release"] == {"id": catalogue["wars"].pk, "title": "Wars of the Realm"}


def test_search_selector_returns_scored_recordings(catalogue):
    hits = browse.recordings_search(query="  Battle   hymn ", limit=5)
    assert hits[0] == catalogue["hymn"] and hits[0].score >= hits[-1].score
    assert browse.recordings_search(query="%_'\\:*&|!()", limit=5) == []  # no syntax errors


# --- autocomplete ------------------------------------------------------------------------------


def suggest(api, q, **params):
    response = api.get(AUTOCOMPLETE, {"q": q, **params})
    assert response.status_code == 200, response.json()
    return [(s["kind"], s["text"]) for s in response.json()["suggestions"]]


def test_autocomplete_by_prefix_across_kinds(api, catalogue):
    assert suggest(api, "bat")[:2] == [("recording", "Battle Hymn"),
                                          ("recording", "Battlefield Dawn")]  # fmt: skip
    assert suggest(api, "comp") == [("artist", "Composer A")]
    assert suggest(api, "wars") == [("release", "Wars of the Realm")]
    assert suggest(api, "class") == [("genre", "Classical")]
    assert suggest(api, "synthw")[0] == ("subgenre", "Synthwave")  # then "Synth Person"
    assert ("recording", "Battlefield Dawn") in suggest(api, "daw")  # a later word
    assert suggest(api, "zzz") == []


def test_autocomplete_suggestion_shape_ranking_and_limit(api, catalogue):
    body = api.get(AUTOCOMPLETE, {"q": "synth"}).json()
    assert body["query"] == "synth"
    by_kind = {s["kind"]: s for s in body["suggestions"]}
    assert by_kind["artist"] == {
        "text": "Synth Person", "kind": "artist", "id": catalogue["synth"].pk, "detail": None
    }  # fmt: skip
    assert by_kind["subgenre"]["id"] is None
    hymn = api.get(AUTOCOMPLETE, {"q": "battle hymn"}).json()["suggestions"][0]
    assert hymn == {
        "text": "Battle Hymn", "kind": "recording", "id": catalogue["hymn"].pk,
        "detail": "Composer A",
    }  # fmt: skip
    assert len(suggest(api, "a", limit=2)) == 2
    assert ("recording", "Battle Hymn") in suggest(api, "battel")  # typo


# --- errors, authentication, schema ----------------------------------------------------------


@pytest.mark.parametrize("url", [SEARCH, AUTOCOMPLETE])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "x" * 201},
        {"q": "battle", "limit": 0},
        {"q": "battle", "limit": 101},
        {"q": "battle", "limit": "ten"},
        {"q": "battle", "use": "karaoke"},
    ],
)
def test_bad_search_input_is_a_400_with_the_error_shape(api, url, params):
    assert_error(api.get(url, params), 400)


def test_selectors_validate_their_input(catalogue):
    for call in (
        lambda: browse.recordings_search(query=" \t ", limit=5),
        lambda: browse.recordings_search(query="x" * 201, limit=5),
        lambda: browse.recordings_search(query="battle", limit=0),
        lambda: browse.search_autocomplete(prefix="", limit=5),
        lambda: browse.search_autocomplete(prefix="bat", limit=101),
        lambda: browse.hierarchy_children(kind="mood"),
        lambda: browse.hierarchy_children(kind="genre", path="Classical"),
        lambda: browse.hierarchy_children(kind="genre", offset=-1),
    ):
        with pytest.raises(InvalidInput):
            call()
    with pytest.raises(NotFound):
        browse.hierarchy_children(kind="genre", path=["Classical", "Romantic", 999999])
    page = browse.hierarchy_children(kind="decade", path=[1990])
    assert [(n.label, n.count) for n in page.nodes] == [("1997", 1), ("1999", 1)]


@pytest.mark.parametrize(
    "url", [BROWSE.format("genre"), f"{SEARCH}?q=battle", f"{AUTOCOMPLETE}?q=bat"]
)
def test_anonymous_requests_are_refused(url):
    response = APIClient().get(url)
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] == "not_authenticated"


def test_schema_documents_the_new_endpoints(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    browse_op = paths["/api/catalogue/browse/{kind}/"]["get"]
    parameters = {p["name"]: p for p in browse_op["parameters"]}
    assert set(parameters["kind"]["schema"]["enum"]) == {"genre", "decade", "country", "instrument"}
    assert parameters["path"]["schema"]["type"] == "array"
    assert {"limit", "offset", "use"} <= set(parameters)
    search_parameters = {p["name"] for p in paths["/api/catalogue/search/"]["get"]["parameters"]}
    assert {"q", "limit", "use"} <= search_parameters
    assert "/api/catalogue/search/autocomplete/" in paths


def test_trigram_indexes_serve_title_and_name_matching(catalogue):
    """Migration 0004: pg_trgm and GIN trigram indexes on UPPER(title/name), usable by the
    autocomplete's word-prefix and similarity filters and by Django's `icontains` (plain scans
    are disabled: on a table this small the planner would rightly prefer them)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        assert cursor.fetchone()
        for table, index in [
            ("catalog_recording", "recording_title_trgm"),
            ("catalog_artist", "artist_name_trgm"),
            ("catalog_release", "release_title_trgm"),
        ]:
            assert index in connection.introspection.get_constraints(cursor, table)
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        for queryset, index in [
            (browse._matching(Artist.objects.all(), "name", "comp")[0], "artist_name_trgm"),
            (browse._matching(Release.objects.all(), "title", "war")[0], "release_title_trgm"),
            (Recording.objects.filter(title__icontains="hymn"), "recording_title_trgm"),
        ]:
            sql, params = queryset.query.sql_with_params()
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert f"Bitmap Index Scan on {index}" in plan, plan
