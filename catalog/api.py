"""REST API of the catalogue and of holders' consent. Thin: parse input, call a selector or
service, serialize output. Errors follow `config.exceptions` (one JSON shape)."""

from __future__ import annotations

import django_filters
from django.db.models import Q
from django.http import FileResponse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import selectors
from catalog.models import (
    Artist,
    ConsentVersion,
    Distribution,
    Recording,
    Release,
    RightsHolder,
    Use,
)
from catalog.services.consent import consent_grant, consent_revoke
from config.api import validated_input
from config.exceptions import Forbidden

# --- output serializers shared by several endpoints ------------------------------------------


class ArtistOutput(serializers.ModelSerializer):
    class Meta:
        model = Artist
        fields = ["id", "name"]


class ReleaseOutput(serializers.ModelSerializer):
    artist = ArtistOutput()

    class Meta:
        model = Release
        fields = ["id", "title", "year", "artist"]


class RecordingOutput(serializers.ModelSerializer):
    artist = ArtistOutput()
    release = serializers.SerializerMethodField()
    audio_url = serializers.SerializerMethodField()

    class Meta:
        model = Recording
        fields = [
            "id", "title", "artist", "release", "isrc", "duration_seconds", "genre",
            "subgenre", "year", "country", "instruments", "moods", "tempo_bpm",
            "musical_key", "mode", "audio_format", "content_sha256", "audio_url",
        ]  # fmt: skip

    def get_release(self, recording: Recording) -> dict | None:
        if recording.release is None:
            return None
        return {"id": recording.release_id, "title": recording.release.title}

    def get_audio_url(self, recording: Recording) -> str:
        return f"/api/catalogue/recordings/{recording.pk}/audio/"


class EffectiveConsentOutput(serializers.Serializer):
    uses = serializers.DictField(child=serializers.BooleanField())
    distributions = serializers.DictField(child=serializers.BooleanField())


class ConsentVersionOutput(serializers.ModelSerializer):
    changed_by = serializers.CharField(source="changed_by.get_username")

    class Meta:
        model = ConsentVersion
        fields = [
            "number", "training", "song_inference", "parameter_inference", "audio_inference",
            "private", "non_commercial", "commercial", "granted", "revoked", "note",
            "changed_by", "created_at",
        ]  # fmt: skip


# --- catalogue (read-only) ---------------------------------------------------------------------


class RecordingFilter(django_filters.FilterSet):
    genre = django_filters.CharFilter(lookup_expr="iexact")
    subgenre = django_filters.CharFilter(lookup_expr="iexact")
    artist = django_filters.NumberFilter(field_name="artist_id")
    release = django_filters.NumberFilter(field_name="release_id")
    year = django_filters.NumberFilter()
    q = django_filters.CharFilter(method="search", label="Title or artist contains")

    class Meta:
        model = Recording
        fields = ["genre", "subgenre", "artist", "release", "year"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(title__icontains=value) | Q(artist__name__icontains=value))


class RecordingListApi(generics.ListAPIView):
    serializer_class = RecordingOutput
    filterset_class = RecordingFilter
    queryset = Recording.objects.select_related("artist", "release").order_by(
        "artist__name", "title"
    )


class RecordingDetailApi(APIView):
    class Output(RecordingOutput):
        effective_consent = serializers.SerializerMethodField()

        class Meta(RecordingOutput.Meta):
            fields = [*RecordingOutput.Meta.fields, "effective_consent"]

        def get_effective_consent(self, recording: Recording) -> EffectiveConsentOutput:
            consent = selectors.recording_effective_consent(recording=recording)
            return {"uses": consent.uses, "distributions": consent.distributions}

    @extend_schema(responses=Output)
    def get(self, request: Request, recording_id: int) -> Response:
        recording = selectors.recording_get(recording_id=recording_id)
        return Response(self.Output(recording).data)


class RecordingAudioApi(APIView):
    """The recording's audio file, for previews in the selection UI (see
    `selectors.recording_audio_readable_by` for who may fetch it)."""

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, recording_id: int) -> FileResponse:
        recording = selectors.recording_get(recording_id=recording_id)
        if not selectors.recording_audio_readable_by(user=request.user, recording=recording):
            raise Forbidden("this recording's holders have not opted it in for inference")
        return FileResponse(recording.audio_file.open("rb"), filename=recording.audio_file.name)


class ArtistListApi(generics.ListAPIView):
    serializer_class = ArtistOutput
    queryset = Artist.objects.order_by("name")
    filterset_fields = {"name": ["exact", "icontains"]}


class ReleaseListApi(generics.ListAPIView):
    serializer_class = ReleaseOutput
    queryset = Release.objects.select_related("artist").order_by("title")
    filterset_fields = ["artist", "year"]


# --- rights holders and their consent ---------------------------------------------------------


class HolderListApi(generics.ListAPIView):
    """Rights holders the user acts for (staff: all)."""

    class Output(serializers.ModelSerializer):
        class Meta:
            model = RightsHolder
            fields = ["id", "name", "kind", "ipi"]

    serializer_class = Output

    def get_queryset(self):
        return selectors.user_holders(user=self.request.user)


class HolderConsentListApi(generics.ListAPIView):
    """The holder's recordings with its current consent for each (members and staff)."""

    class Output(serializers.Serializer):
        recording = RecordingOutput(source="*")
        consent = serializers.SerializerMethodField()

        @extend_schema_field(ConsentVersionOutput(allow_null=True))
        def get_consent(self, recording: Recording) -> dict | None:
            version = self.context["current"].get(recording.pk)
            return ConsentVersionOutput(version).data if version else None

    serializer_class = Output

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the types
            return Recording.objects.none()
        holder = selectors.holder_readable_by(
            user=self.request.user, holder_id=self.kwargs["holder_id"]
        )
        self.holder = holder
        return selectors.holder_recordings(holder=holder)

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        holder = getattr(self, "holder", None)
        context["current"] = (
            selectors.holder_current_consents(holder=holder) if holder is not None else {}
        )
        return context


class HolderConsentDetailApi(APIView):
    class Output(serializers.Serializer):
        recording = RecordingOutput()
        current = ConsentVersionOutput(allow_null=True)
        history = ConsentVersionOutput(many=True)
        effective = EffectiveConsentOutput()

    @extend_schema(responses=Output)
    def get(self, request: Request, holder_id: int, recording_id: int) -> Response:
        holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
        recording = selectors.holder_recording_get(holder=holder, recording_id=recording_id)
        return Response(consent_detail(holder, recording))


def consent_detail(holder: RightsHolder, recording: Recording) -> dict:
    effective = selectors.recording_effective_consent(recording=recording)
    return HolderConsentDetailApi.Output(
        {
            "recording": recording,
            "current": selectors.consent_current(holder=holder, recording=recording),
            "history": selectors.consent_history(holder=holder, recording=recording),
            "effective": {"uses": effective.uses, "distributions": effective.distributions},
        }
    ).data


class ConsentChangeInput(serializers.Serializer):
    uses = serializers.ListField(
        child=serializers.ChoiceField(Use.choices), required=False, default=list
    )
    distributions = serializers.ListField(
        child=serializers.ChoiceField(Distribution.choices), required=False, default=list
    )
    note = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class HolderConsentGrantApi(APIView):
    service = staticmethod(consent_grant)

    @extend_schema(request=ConsentChangeInput, responses=HolderConsentDetailApi.Output)
    def post(self, request: Request, holder_id: int, recording_id: int) -> Response:
        holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
        recording = selectors.holder_recording_get(holder=holder, recording_id=recording_id)
        data = validated_input(ConsentChangeInput, request.data)
        self.service(actor=request.user, holder=holder, recording=recording, **data)
        return Response(consent_detail(holder, recording))


class HolderConsentRevokeApi(HolderConsentGrantApi):
    service = staticmethod(consent_revoke)
