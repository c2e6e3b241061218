"""REST API of mediated selection: text, category and audio queries, permitted alternatives.
Thin: validate input, call a selector, serialize. Errors follow `config.exceptions`."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.api import RecordingOutput
from catalog.models import LEVEL_USES, Distribution, Level
from catalog.retrieval import prompts, selectors
from catalog.retrieval.prompts import CategoryPrompt
from config.api import query_input, validated_input
from config.exceptions import InvalidInput

LEVELS = [(level.value, level.label) for level in LEVEL_USES]


class QueryScopeInput(serializers.Serializer):
    """What the music maker wants to do with the recordings: the consent filter."""

    level = serializers.ChoiceField(choices=LEVELS, default="song")
    distribution = serializers.ChoiceField(choices=Distribution.choices, default="private")
    k = serializers.IntegerField(min_value=1, max_value=selectors.MAX_K, default=10)


class HitOutput(serializers.Serializer):
    recording = RecordingOutput()
    score = serializers.FloatField(help_text="cosine similarity of the best matching window")
    best_window_start = serializers.FloatField(allow_null=True)


class RetrievalOutput(serializers.Serializer):
    encoder = serializers.CharField(source="encoder.__str__")
    query_text = serializers.CharField()
    results = HitOutput(many=True, source="hits")


class TextRetrievalApi(APIView):
    class Input(QueryScopeInput):
        prompt = serializers.CharField(max_length=selectors.MAX_PROMPT_CHARS, trim_whitespace=True)

    @extend_schema(
        request=Input,
        responses=RetrievalOutput,
        summary="Recordings for a free-text prompt, permitted for the level and distribution",
    )
    def post(self, request: Request) -> Response:
        data = validated_input(self.Input, request.data)
        result = selectors.retrieve_by_text(
            prompt=data["prompt"],
            level=data["level"],
            distribution=data["distribution"],
            k=data["k"],
        )
        return Response(RetrievalOutput(result).data)


class CategoryRetrievalApi(APIView):
    class Input(QueryScopeInput):
        genre = serializers.CharField(required=False, allow_blank=True, max_length=100)
        subgenre = serializers.CharField(required=False, allow_blank=True, max_length=100)
        moods = serializers.ListField(
            child=serializers.ChoiceField(choices=prompts.MOODS), required=False, max_length=5
        )
        instruments = serializers.ListField(
            child=serializers.ChoiceField(choices=prompts.INSTRUMENTS), required=False, max_length=5
        )
        situation = serializers.ChoiceField(
            choices=prompts.SITUATIONS, required=False, allow_blank=True
        )
        function = serializers.ChoiceField(
            choices=prompts.FUNCTIONS, required=False, allow_blank=True
        )

    class VocabularyOutput(serializers.Serializer):
        genres = serializers.ListField(child=serializers.CharField())
        moods = serializers.ListField(child=serializers.CharField())
        instruments = serializers.ListField(child=serializers.CharField())
        situations = serializers.ListField(child=serializers.CharField())
        functions = serializers.ListField(child=serializers.CharField())
        levels = serializers.ListField(child=serializers.CharField())
        distributions = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses=VocabularyOutput, summary="Values the category pickers offer")
    def get(self, request: Request) -> Response:
        return Response(selectors.category_vocabulary())

    @extend_schema(
        request=Input,
        responses=RetrievalOutput,
        summary="Recordings for structured categories (genre, mood, instrument, situation, "
        "function), turned into a text query",
    )
    def post(self, request: Request) -> Response:
        data = validated_input(self.Input, request.data)
        categories = CategoryPrompt(
            genre=data.get("genre", ""),
            subgenre=data.get("subgenre", ""),
            moods=tuple(data.get("moods", ())),
            instruments=tuple(data.get("instruments", ())),
            situation=data.get("situation", ""),
            function=data.get("function", ""),
        )
        result = selectors.retrieve_by_categories(
            categories=categories,
            level=data["level"],
            distribution=data["distribution"],
            k=data["k"],
        )
        return Response(RetrievalOutput(result).data)


class AudioRetrievalApi(APIView):
    """Query by example: an uploaded file (multipart `file`) or a catalogue `recording_id`."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]

    class Input(QueryScopeInput):
        file = serializers.FileField(required=False)
        recording_id = serializers.IntegerField(required=False, min_value=1)

        def validate(self, attrs):
            if bool(attrs.get("file")) == bool(attrs.get("recording_id")):
                raise serializers.ValidationError("send exactly one of `file` or `recording_id`")
            return attrs

    @extend_schema(
        request={"multipart/form-data": Input, "application/json": Input},
        responses=RetrievalOutput,
        summary="Recordings that sound like an uploaded file or a catalogue recording",
    )
    def post(self, request: Request) -> Response:
        data = validated_input(self.Input, request.data)
        scope = {"level": data["level"], "distribution": data["distribution"], "k": data["k"]}
        if data.get("recording_id"):
            result = selectors.retrieve_like_recording(recording_id=data["recording_id"], **scope)
            return Response(RetrievalOutput(result).data)
        upload = data["file"]
        if upload.size > settings.RETRIEVAL_MAX_UPLOAD_BYTES:
            raise InvalidInput(
                f"the upload is {upload.size} bytes; at most "
                f"{settings.RETRIEVAL_MAX_UPLOAD_BYTES} bytes are accepted"
            )
        suffix = Path(upload.name or "upload").suffix.lower()[:8] or ".bin"
        with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
            for chunk in upload.chunks():
                handle.write(chunk)
            handle.flush()
            vectors = selectors.uploaded_audio_vectors(
                path=Path(handle.name), max_seconds=settings.RETRIEVAL_MAX_UPLOAD_SECONDS
            )
        result = selectors.retrieve_by_audio_vectors(
            vectors=vectors, description=f"upload {upload.name}", **scope
        )
        return Response(RetrievalOutput(result).data)


class AlternativesApi(APIView):
    class Output(serializers.Serializer):
        recording = RecordingOutput()
        permitted = serializers.BooleanField(
            help_text="whether this recording itself may be used at the level and distribution"
        )
        alternatives = RetrievalOutput()

    @extend_schema(
        parameters=[
            OpenApiParameter("level", str, enum=Level.values, default="song"),
            OpenApiParameter("distribution", str, enum=Distribution.values, default="private"),
            OpenApiParameter("k", int, default=5),
        ],
        responses=Output,
        summary="Nearest recordings that may be used where this one may not",
    )
    def get(self, request: Request, recording_id: int) -> Response:
        data = query_input(QueryScopeInput, request, k=5)
        result = selectors.permitted_alternatives(
            recording_id=recording_id,
            level=data["level"],
            distribution=data["distribution"],
            k=data["k"],
        )
        return Response(self.Output(result).data)
