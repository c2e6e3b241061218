"""Unmediated song selection (seed 004, section 4.1.2): browse the catalogue as a hierarchy,
search it by text, and autocomplete a search box. Reads only.

Hierarchies (`HIERARCHIES`) are lists of levels that end in recordings. A path holds one key per
level chosen so far; `hierarchy_children` returns the nodes one level below it (label, key, the
number of recordings below), or the recordings themselves once every level has a key. Blank
genres, subgenres and countries, recordings without a release or year, and recordings without
instrument tags are grouped under "Unknown" (or "No release") nodes whose key is the empty
string, so they stay navigable. Keys are strings; ids and years are their decimal digits.

`recordings_search` combines PostgreSQL full-text search (every query word as a prefix; weights
A title, B artist, C release, genre, subgenre, moods and instruments) with pg_trgm word
similarity of the whole query to title, artist, release and genre, so typos still match.
`search_autocomplete` suggests recording titles, artist names, release titles, genres and
subgenres whose text or one of whose words starts with the prefix, or that are trigram-similar
to it. Title and name matching can use the GIN trigram indexes of migration 0004.

Every function takes `use`: when given, only recordings whose effective consent permits that use
(`catalog.selectors.recordings_permitting`) are browsed, found and suggested.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from django.contrib.postgres.search import (
    SearchQuery,
    SearchRank,
    SearchVector,
    TrigramWordSimilarity,
)
from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast, Greatest, Length, Lower, Upper

from catalog.models import Artist, Recording, Release, Use
from catalog.selectors import recordings_permitting
from config.exceptions import InvalidInput, NotFound

MAX_QUERY_LENGTH = 200
MAX_LIMIT = 100
UNKNOWN = "Unknown"
NO_RELEASE = "No release"
RECORDING_LEVEL = "recording"

SEARCH_CONFIG = "simple"  # no stemming or stop words: titles and names come in any language
SEARCH_WEIGHTS = [0.1, 0.2, 0.4, 1.0]  # D, C, B, A (PostgreSQL's order)
# Word similarity at which the `%>` operator (`trigram_word_similar`) counts as a match. pg_trgm's
# default, 0.6, misses a swapped pair of letters ("battel" ~ "Battle": 0.57); 0.5 would let a
# word match another that shares only its first half ("synthwave" ~ "Synth": 0.5).
TRIGRAM_THRESHOLD = 0.55


# --- input checks ------------------------------------------------------------------------------


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be an integer from 1 to {MAX_LIMIT}", details={"limit": limit}
        )


def _check_offset(offset: int) -> None:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInput("offset must be an integer of at least 0", details={"offset": offset})


def _clean_text(text: str, *, name: str) -> str:
    """The text with runs of whitespace collapsed; InvalidInput when empty or too long."""
    if not isinstance(text, str):
        raise InvalidInput(f"{name} must be a string", details={name: repr(text)})
    cleaned = " ".join(text.split())
    if not cleaned:
        raise InvalidInput(f"{name} must not be empty", details={name: text})
    if len(cleaned) > MAX_QUERY_LENGTH:
        raise InvalidInput(
            f"{name} must be at most {MAX_QUERY_LENGTH} characters", details={name: len(cleaned)}
        )
    return cleaned


def _recordings(use: Use | str | None) -> QuerySet[Recording]:
    recordings = Recording.objects.all()
    return recordings if use is None else recordings_permitting(use=use, queryset=recordings)


@contextmanager
def _trigram_threshold() -> Iterator[None]:
    """Inside: `trigram_word_similar` matches at TRIGRAM_THRESHOLD (a transaction-local
    setting, restored on leaving so that an enclosing transaction keeps its own)."""
    setting = "pg_trgm.word_similarity_threshold"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s, true)", [setting])
        previous = cursor.fetchone()[0] or "0.6"  # unset until pg_trgm is loaded: its default
        cursor.execute("SELECT set_config(%s, %s, true)", [setting, str(TRIGRAM_THRESHOLD)])
        yield  # an error rolls the savepoint back, and the setting with it
        cursor.execute("SELECT set_config(%s, %s, true)", [setting, previous])


# --- hierarchies -------------------------------------------------------------------------------

Key = str | int | None  # None: the Unknown / No release node (key "" in paths and output)


def _as_int(level: str, raw: str | int, *, nullable: bool) -> int | None:
    if nullable and raw == "":
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        blank = f", or '' for {UNKNOWN}" if nullable else ""
        raise InvalidInput(
            f"a {level} key is an integer{blank}; got '{raw}'", details={level: raw}
        ) from None


class _Level(Protocol):
    name: str
    label_field: str | None  # where the breadcrumb label of a key comes from (None: the key)

    def parse(self, raw: str | int) -> Key: ...
    def narrow(self, recordings: QuerySet[Recording], key: Key) -> QuerySet[Recording]: ...
    def label(self, key: Key, value: Any) -> str: ...
    def groups(self, recordings: QuerySet[Recording]) -> QuerySet | list[dict]:
        """Rows {"key", "value", "count"} in display order."""
        ...


@dataclass(frozen=True)
class _TextLevel:
    """Recordings grouped by a text field; the blank value is the Unknown node."""

    name: str
    field: str
    label_field: str | None = None

    def parse(self, raw: str | int) -> Key:
        return str(raw)

    def narrow(self, recordings: QuerySet[Recording], key: Key) -> QuerySet[Recording]:
        return recordings.filter(**{self.field: key})

    def label(self, key: Key, value: Any) -> str:
        return str(key) if key else UNKNOWN

    def groups(self, recordings: QuerySet[Recording]) -> QuerySet:
        unknown_last = Case(When(key="", then=Value(1)), default=Value(0))
        return (
            recordings.values(key=F(self.field))
            .annotate(count=Count("pk"))
            .order_by(unknown_last, Lower("key"), "key")
        )


@dataclass(frozen=True)
class _ArtistLevel:
    name: str = "artist"
    label_field: str | None = "artist__name"

    def parse(self, raw: str | int) -> Key:
        return _as_int(self.name, raw, nullable=False)

    def narrow(self, recordings: QuerySet[Recording], key: Key) -> QuerySet[Recording]:
        return recordings.filter(artist_id=key)

    def label(self, key: Key, value: Any) -> str:
        return value

    def groups(self, recordings: QuerySet[Recording]) -> QuerySet:
        return (
            recordings.values(key=F("artist_id"), value=F("artist__name"))
            .annotate(count=Count("pk"))
            .order_by(Lower("value"), "key")
        )


@dataclass(frozen=True)
class _ReleaseLevel:
    name: str = "release"
    label_field: str | None = "release__title"

    def parse(self, raw: str | int) -> Key:
        return _as_int(self.name, raw, nullable=True)

    def narrow(self, recordings: QuerySet[Recording], key: Key) -> QuerySet[Recording]:
        if key is None:
            return recordings.filter(release__isnull=True)
        return recordings.filter(release_id=key)

    def label(self, key: Key, value: Any) -> str:
        return NO_RELEASE if key is None else value

    def groups(self, recordings: QuerySet[Recording]) -> QuerySet:
        return (
            recordings.values(key=F("release_id"), value=F("release__title"))
            .annotate(count=Count("pk"))
            .order_by(Lower("value").asc(nulls_last=True), "key")
        )


@dataclass(frozen=True)
class _DecadeLevel:
    name: str = "decade"
    label_field: str | None = None

    def parse(self, raw: str | int) -> Key:
        decade = _as_int(self.name, raw, nullable=True)
        if decade is not None and decade % 10:
            raise InvalidInput(
                f"a decade key is a year ending in 0 (e.g. 1990); got '{raw}'",
                details={"decade": raw},
            )
        return decade

    def narrow(self, recordings: QuerySet[Recording], key: Key) -> QuerySet[Recording]:
        if key is None:
            return recordings.filter(year__isnull=True)
        return recordings.filter(year__gte=key, year__lt=key + 10)

    def label(self, key: Key, value: Any) -> str:
        return UNKNOWN if key is None else f"{key}s"

    def groups(self, recordings: QuerySet[Recording]) -> QuerySet:
        decade = ExpressionWrapper(F("year") / 10 * 10, output_field=IntegerField())
        return (
            recordings.values(key=decade)
            .annotate(count=Count("pk"))
            .order_by(F("key").asc(nulls_last=True))
        )


@dataclass(frozen=True)
class _YearLevel:
    name: str = "year"
    label_field: str | None = None

    def parse(self, raw: str | int) -> Key:
        return _as_int(self.name, raw, nullable=True)

    def narrow(self, recordings: QuerySet[Recording], key: Key) -> QuerySet[Recording]:
        if key is None:
            return recordings.filter(year__isnull=True)
        return recordings.filter(year=key)

    def label(self, key: Key, value: Any) -> str:
        return UNKNOWN if key is None else str(key)

    def groups(self, recordings: QuerySet[Recording]) -> QuerySet:
        return (
            recordings.values(key=F("year"))
            .annotate(count=Count("pk"))
            .order_by(F("key").asc(nulls_last=True))
        )


def _json_type(recordings: QuerySet[Recording]) -> QuerySet[Recording]:
    return recordings.alias(
        instruments_type=Func(F("instruments"), function="jsonb_typeof", output_field=CharField())
    )


@dataclass(frozen=True)
class _InstrumentLevel:
    """Recordings grouped by each tag of their `instruments` list (a recording is counted under
    every tag it has); recordings without tags form the Unknown node."""

    name: str = "instrument"
    label_field: str | None = None

    def parse(self, raw: str | int) -> Key:
        return str(raw)

    def narrow(self, recordings: QuerySet[Recording], key: Key) -> QuerySet[Recording]:
        if key == "":
            return _json_type(recordings).filter(Q(instruments=[]) | ~Q(instruments_type="array"))
        return recordings.filter(instruments__contains=[key])

    def label(self, key: Key, value: Any) -> str:
        return str(key) if key else UNKNOWN

    def groups(self, recordings: QuerySet[Recording]) -> list[dict]:
        # A set-returning function in SELECT ... GROUP BY: one row per (recording, tag).
        tag = Func(F("instruments"), function="jsonb_array_elements_text", output_field=CharField())
        rows = [
            row
            for row in _json_type(recordings)
            .filter(instruments_type="array")
            .annotate(key=tag)
            .values("key")
            .annotate(count=Count("pk", distinct=True))
            .order_by()
            if row["key"]
        ]
        rows.sort(key=lambda row: (row["key"].lower(), row["key"]))  # a small vocabulary
        untagged = self.narrow(recordings, "").count()
        if untagged:
            rows.append({"key": "", "count": untagged})
        return rows


HIERARCHIES: dict[str, tuple[_Level, ...]] = {
    "genre": (
        _TextLevel("genre", "genre"),
        _TextLevel("subgenre", "subgenre"),
        _ArtistLevel(),
        _ReleaseLevel(),
    ),
    "decade": (_DecadeLevel(), _YearLevel()),
    "country": (_TextLevel("country", "country"), _ArtistLevel()),
    "instrument": (_InstrumentLevel(), _ArtistLevel()),
}


@dataclass(frozen=True)
class Crumb:
    """One step of the path: the level, its key and what it is called."""

    level: str
    key: str
    label: str


@dataclass(frozen=True)
class Node:
    label: str
    key: str  # append to the path to go one level deeper
    count: int  # recordings below this node


@dataclass(frozen=True)
class BrowsePage:
    kind: str
    levels: list[str]
    path: list[Crumb]
    level: str  # the level of `nodes`, or "recording" for `recordings`
    count: int  # recordings under the path
    total: int  # nodes (or recordings) at this level, of which one page is returned
    limit: int
    offset: int
    nodes: list[Node]
    recordings: list[Recording]


def hierarchy_levels(*, kind: str) -> list[str]:
    return [level.name for level in _hierarchy(kind)] + [RECORDING_LEVEL]


def _hierarchy(kind: str) -> tuple[_Level, ...]:
    try:
        return HIERARCHIES[kind]
    except (KeyError, TypeError):
        raise InvalidInput(
            f"unknown hierarchy '{kind}'; expected one of: {', '.join(HIERARCHIES)}",
            details={"kind": kind},
        ) from None


def _key_text(key: Key) -> str:
    return "" if key is None else str(key)


def hierarchy_children(
    *,
    kind: str,
    path: Sequence[str | int] = (),
    limit: int = MAX_LIMIT,
    offset: int = 0,
    use: Use | str | None = None,
) -> BrowsePage:
    """The level below `path` in hierarchy `kind` (one page of it): nodes with their recording
    counts, or the recordings themselves when `path` has a key for every level.

    InvalidInput for an unknown kind, a path longer than the hierarchy or a malformed key;
    NotFound when a key of the path has no recordings under the keys before it.
    """
    levels = _hierarchy(kind)
    _check_limit(limit)
    _check_offset(offset)
    if isinstance(path, str | bytes) or not isinstance(path, Sequence):
        raise InvalidInput(
            "path must be a list of keys, one per level", details={"path": repr(path)}
        )
    if len(path) > len(levels):
        raise InvalidInput(
            f"the {kind} hierarchy has {len(levels)} levels above recordings "
            f"({', '.join(level.name for level in levels)}); the path has {len(path)} keys",
            details={"path": list(path)},
        )

    recordings = _recordings(use)
    crumbs: list[Crumb] = []
    for level, raw in zip(levels, path, strict=False):
        key = level.parse(raw)
        recordings = level.narrow(recordings, key)
        found = list(recordings.order_by().values_list(level.label_field or "pk", flat=True)[:1])
        if not found:
            trail = " > ".join(
                [*(f"{c.level} '{c.label}'" for c in crumbs), f"{level.name} '{raw}'"]
            )
            raise NotFound(
                f"no recordings under {trail} in the {kind} hierarchy",
                details={"kind": kind, "path": [str(p) for p in path], "level": level.name},
            )
        crumbs.append(Crumb(level.name, _key_text(key), level.label(key, found[0])))

    depth = len(path)
    page = slice(offset, offset + limit)
    nodes: list[Node] = []
    leaves: list[Recording] = []
    if depth < len(levels):
        level = levels[depth]
        groups = level.groups(recordings)
        total = len(groups) if isinstance(groups, list) else groups.count()
        nodes = [
            Node(level.label(row["key"], row.get("value")), _key_text(row["key"]), row["count"])
            for row in groups[page]
        ]
    else:
        leaves_qs = recordings.select_related("artist").order_by(
            Lower("title"), Lower("artist__name"), "pk"
        )
        total = leaves_qs.count()
        leaves = list(leaves_qs[page])

    return BrowsePage(
        kind=kind,
        levels=hierarchy_levels(kind=kind),
        path=crumbs,
        level=levels[depth].name if depth < len(levels) else RECORDING_LEVEL,
        count=recordings.count(),
        total=total,
        limit=limit,
        offset=offset,
        nodes=nodes,
        recordings=leaves,
    )


# --- search ------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _search_document() -> SearchVector:
    return (
        SearchVector("title", weight="A", config=SEARCH_CONFIG)
        + SearchVector("artist__name", weight="B", config=SEARCH_CONFIG)
        + SearchVector(
            "release__title",
            "genre",
            "subgenre",
            Cast("moods", TextField()),  # '["calm", "dark"]': the parser keeps the words
            Cast("instruments", TextField()),
            weight="C",
            config=SEARCH_CONFIG,
        )
    )


def recordings_search(
    *, query: str, limit: int = 20, use: Use | str | None = None
) -> list[Recording]:
    """Recordings matching `query`, best first, each with a `score` attribute (higher is better):
    full-text rank (every query word matched as a word prefix) plus trigram word similarity of
    the whole query to the title (1.0), artist (0.8), release (0.6) or genre (0.5)."""
    text = _clean_text(query, name="query")
    _check_limit(limit)

    recordings = _recordings(use).alias(
        title_upper=Upper("title"),
        artist_upper=Upper("artist__name"),
        release_upper=Upper("release__title"),
        genre_upper=Upper("genre"),
    )
    match = (
        Q(title_upper__trigram_word_similar=text)
        | Q(artist_upper__trigram_word_similar=text)
        | Q(release_upper__trigram_word_similar=text)
        | Q(genre_upper__trigram_word_similar=text)
    )
    similarity = Greatest(
        TrigramWordSimilarity(text, "title"),
        TrigramWordSimilarity(text, "artist__name") * Value(0.8),
        TrigramWordSimilarity(text, "release__title") * Value(0.6),
        TrigramWordSimilarity(text, "genre") * Value(0.5),
    )
    rank = Value(0.0, output_field=FloatField())
    words = _words(text)
    if words:  # only \w characters: safe to join into raw tsquery syntax
        tsquery = SearchQuery(
            " & ".join(f"{word}:*" for word in words), search_type="raw", config=SEARCH_CONFIG
        )
        recordings = recordings.alias(document=_search_document())
        match |= Q(document=tsquery)
        rank = SearchRank(F("document"), tsquery, weights=SEARCH_WEIGHTS)

    hits = (
        recordings.filter(match)
        .annotate(score=rank + similarity)
        .select_related("artist", "release")
        .order_by("-score", Lower("title"), "pk")
    )
    with _trigram_threshold():
        return list(hits[:limit])


# --- autocomplete ------------------------------------------------------------------------------

SUGGESTION_KINDS = ("recording", "artist", "release", "genre", "subgenre")


@dataclass(frozen=True)
class Suggestion:
    text: str
    kind: str  # one of SUGGESTION_KINDS
    id: int | None  # recording, artist or release id; None for genres and subgenres
    detail: str | None  # the artist of a recording or release
    score: float


def _matching(queryset: QuerySet, field: str, prefix: str) -> tuple[QuerySet, Any]:
    """`queryset` narrowed to rows whose `field` starts with `prefix`, has a word that does, or
    is trigram-similar to it; and the score expression: 3 exact, 2 starts with, 1 word starts
    with, plus the word similarity."""
    word_start = r"(^|\m)" + re.escape(prefix)  # Python's escapes are literal in PostgreSQL AREs
    narrowed = queryset.alias(match_text=Upper(field)).filter(
        Q(match_text__iregex=word_start) | Q(match_text__trigram_word_similar=prefix)
    )
    score = Case(
        When(**{f"{field}__iexact": prefix}, then=Value(3.0)),
        When(**{f"{field}__istartswith": prefix}, then=Value(2.0)),
        When(match_text__iregex=word_start, then=Value(1.0)),
        default=Value(0.0),
        output_field=FloatField(),
    ) + TrigramWordSimilarity(prefix, field)
    return narrowed, score


def _suggest_objects(
    queryset: QuerySet, field: str, prefix: str, limit: int, kind: str
) -> list[Suggestion]:
    """Suggestions from model rows (recordings, artists, releases): id, and the artist's name
    as detail where the row has an artist."""
    narrowed, score = _matching(queryset, field, prefix)
    rows = narrowed.annotate(score=score).order_by("-score", Length(field), Lower(field), "pk")
    return [
        Suggestion(
            text=getattr(row, field),
            kind=kind,
            id=row.pk,
            detail=row.artist.name if hasattr(row, "artist") else None,
            score=row.score,
        )
        for row in rows[:limit]
    ]


def _suggest_values(
    recordings: QuerySet[Recording], field: str, prefix: str, limit: int
) -> list[Suggestion]:
    narrowed, score = _matching(recordings.exclude(**{field: ""}), field, prefix)
    rows = (
        narrowed.values(field)
        .annotate(score=Max(score))
        .order_by("-score", Length(field), Lower(field))
    )
    return [Suggestion(row[field], field, None, None, row["score"]) for row in rows[:limit]]


def search_autocomplete(
    *, prefix: str, limit: int = 10, use: Use | str | None = None
) -> list[Suggestion]:
    """Up to `limit` suggestions for a search box, best first (ties: shorter text first):
    recording titles, artist names, release titles, genres and subgenres."""
    text = _clean_text(prefix, name="prefix")
    _check_limit(limit)
    recordings = _recordings(use)
    artists = Artist.objects.filter(Exists(recordings.filter(artist=OuterRef("pk"))))
    releases = Release.objects.filter(Exists(recordings.filter(release=OuterRef("pk"))))

    with _trigram_threshold():
        suggestions = [
            *_suggest_objects(
                recordings.select_related("artist"), "title", text, limit, "recording"
            ),
            *_suggest_objects(artists, "name", text, limit, "artist"),
            *_suggest_objects(releases.select_related("artist"), "title", text, limit, "release"),
            *_suggest_values(recordings, "genre", text, limit),
            *_suggest_values(recordings, "subgenre", text, limit),
        ]
    order = {kind: i for i, kind in enumerate(SUGGESTION_KINDS)}
    suggestions.sort(key=lambda s: (-s.score, order[s.kind], len(s.text), s.text.lower()))
    return suggestions[:limit]
