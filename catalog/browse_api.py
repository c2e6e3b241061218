"""REST API of unmediated song selection (seed 004, section 4.1.2): hierarchy browsing, text
search and autocomplete. Thin: parse the query string, call a `catalog.browse` selector,
serialize. Errors follow `config.exceptions` (one JSON shape)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import browse
from catalog.api import ArtistOutput
from catalog.models import Recording, Use
from config.api import OffsetField, query_input

USE_HELP = "Only recordings whose effective consent permits this use (default: all)."


# --- output serializers (distinct names: they are OpenAPI components) --------------------------


class ReleaseRefOutput(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()


class BrowseCrumbOutput(serializers.Serializer):
    level = serializers.CharField()
    key = serializers.CharField()
    label = serializers.CharField()


class BrowseNodeOutput(serializers.Serializer):
    label = serializers.CharField()
    key = serializers.CharField(help_text="Append to `path` to go one level deeper.")
    count = serializers.IntegerField(help_text="Recordings below this node.")


class BrowseRecordingOutput(serializers.ModelSerializer):
    artist = ArtistOutput()

    class Meta:
        model = Recording
        fields = ["id", "title", "artist", "duration_seconds"]


class SearchHitOutput(serializers.ModelSerializer):
    artist = ArtistOutput()
    release = ReleaseRefOutput(allow_null=True)
    score = serializers.FloatField(help_text="Relevance; higher is better.")

    class Meta:
        model = Recording
        fields = [
            "id", "title", "artist", "release", "genre", "subgenre", "year",
            "duration_seconds", "score",
        ]  # fmt: skip


class SuggestionOutput(serializers.Serializer):
    text = serializers.CharField()
    kind = serializers.ChoiceField(browse.SUGGESTION_KINDS)
    id = serializers.IntegerField(
        allow_null=True, help_text="Recording, artist or release id; null for genres."
    )
    detail = serializers.CharField(
        allow_null=True, help_text="The artist of a recording or release."
    )


# --- views -------------------------------------------------------------------------------------


class BrowseApi(APIView):
    """One level of a catalogue hierarchy.

    Hierarchies (`kind`): `genre` (genre > subgenre > artist > release > recording), `decade`
    (decade > year > recording), `country` (country > artist > recording), `instrument`
    (instrument tag > artist > recording). Pass the keys chosen so far as repeated `path`
    parameters, one per level: `?path=Electronic&path=Synthwave&path=12`. Each node's `key` is
    what to append; the Unknown / No release node has the empty key (`?path=`). Once every
    level has a key the response lists `recordings` instead of `nodes`.
    """

    class Input(serializers.Serializer):
        path = serializers.ListField(
            child=serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=255),
            required=False,
            default=list,
            help_text="Keys chosen so far, one per level, as repeated parameters.",
        )
        limit = serializers.IntegerField(min_value=1, max_value=browse.MAX_LIMIT, default=100)
        offset = OffsetField()
        use = serializers.ChoiceField(Use.choices, required=False, help_text=USE_HELP)

    @extend_schema_serializer(component_name="BrowsePage")
    class Output(serializers.Serializer):
        kind = serializers.CharField()
        levels = serializers.ListField(child=serializers.CharField())
        path = BrowseCrumbOutput(many=True)
        level = serializers.CharField(help_text="Level of `nodes`, or `recording`.")
        count = serializers.IntegerField(help_text="Recordings under the path.")
        total = serializers.IntegerField(help_text="Nodes (or recordings) at this level.")
        limit = serializers.IntegerField()
        offset = serializers.IntegerField()
        nodes = BrowseNodeOutput(many=True)
        recordings = BrowseRecordingOutput(many=True)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(browse.HIERARCHIES)
            ),
            Input,
        ],
        responses=Output,
    )
    def get(self, request: Request, kind: str) -> Response:
        page = browse.hierarchy_children(kind=kind, **query_input(self.Input, request))
        return Response(self.Output(page).data)


class SearchApi(APIView):
    """Full-text and trigram search over titles, artists, releases, genres, subgenres, moods and
    instruments; typos and word prefixes still match. Best first."""

    class Input(serializers.Serializer):
        q = serializers.CharField(
            max_length=browse.MAX_QUERY_LENGTH, help_text="Words to find; typos are tolerated."
        )
        limit = serializers.IntegerField(min_value=1, max_value=browse.MAX_LIMIT, default=20)
        use = serializers.ChoiceField(Use.choices, required=False, help_text=USE_HELP)

    @extend_schema_serializer(component_name="SearchResults")
    class Output(serializers.Serializer):
        query = serializers.CharField()
        results = SearchHitOutput(many=True)

    @extend_schema(parameters=[Input], responses=Output)
    def get(self, request: Request) -> Response:
        data = query_input(self.Input, request)
        hits = browse.recordings_search(query=data["q"], limit=data["limit"], use=data.get("use"))
        return Response(self.Output({"query": data["q"], "results": hits}).data)


class AutocompleteApi(APIView):
    """Suggestions for a search box: recording titles, artist names, release titles, genres and
    subgenres that start with `q`, have a word that does, or are close to it. Best first."""

    class Input(serializers.Serializer):
        q = serializers.CharField(max_length=browse.MAX_QUERY_LENGTH, help_text="What was typed.")
        limit = serializers.IntegerField(min_value=1, max_value=browse.MAX_LIMIT, default=10)
        use = serializers.ChoiceField(Use.choices, required=False, help_text=USE_HELP)

    @extend_schema_serializer(component_name="Suggestions")
    class Output(serializers.Serializer):
        query = serializers.CharField()
        suggestions = SuggestionOutput(many=True)

    @extend_schema(parameters=[Input], responses=Output)
    def get(self, request: Request) -> Response:
        data = query_input(self.Input, request)
        suggestions = browse.search_autocomplete(
            prefix=data["q"], limit=data["limit"], use=data.get("use")
        )
        return Response(self.Output({"query": data["q"], "suggestions": suggestions}).data)
