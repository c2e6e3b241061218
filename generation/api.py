"""REST API of generation: verify references, submit, follow progress, download with
provenance. Thin: validate input, call a service or selector, serialize."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils import html
from rest_framework.views import APIView

from catalog.models import Distribution, Level
from config.api import BIGINT_MAX, IdField, TextField, validated_input
from config.exceptions import Conflict, InvalidInput
from generation import selectors
from generation.models import GenerationRequest, ModelVersion
from generation.providers import similarity_audit_summary
from generation.services.requests import (
    MAX_PROMPT_CHARS,
    GenerationAsk,
    generation_request_submit,
    references_preview,
)
from generation.verification import ReferenceSpec


class ReferenceInput(serializers.Serializer):
    recording = IdField()
    level = serializers.ChoiceField(choices=Level.choices, default=Level.SONG)
    role = TextField(max_length=32, default="style")
    weight = serializers.FloatField(default=1.0)
    segment_start = serializers.FloatField(required=False, allow_null=True, default=None)
    segment_end = serializers.FloatField(required=False, allow_null=True, default=None)


class ReferencesField(serializers.ListField):
    """A list of references; multipart forms send it as one JSON string."""

    child = ReferenceInput()

    def get_value(self, dictionary):
        if html.is_html_input(dictionary) and self.field_name in dictionary:
            return dictionary.get(self.field_name)  # one JSON string, not a list of fields
        return super().get_value(dictionary)

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                raise serializers.ValidationError("references must be a JSON list") from None
        return super().to_internal_value(data)


def reference_specs(references: list[dict]) -> list[ReferenceSpec]:
    """The references of a request as verification and the worker take them."""
    return [
        ReferenceSpec(
            recording_id=r["recording"],
            level=r["level"],
            role=r["role"],
            weight=r["weight"],
            segment_start=r["segment_start"],
            segment_end=r["segment_end"],
        )
        for r in references
    ]


class VerdictOutput(serializers.Serializer):
    position = serializers.IntegerField()
    recording = serializers.IntegerField(source="recording_id")
    level = serializers.CharField()
    permitted = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())
    consent_version_ids = serializers.ListField(child=serializers.IntegerField())
    alternatives = serializers.ListField(child=serializers.DictField())


class VerifyApi(APIView):
    class Input(serializers.Serializer):
        references = ReferencesField(min_length=1)
        distribution = serializers.ChoiceField(choices=Distribution.choices)

    class Output(serializers.Serializer):
        permitted = serializers.BooleanField()
        distribution = serializers.CharField()
        references = VerdictOutput(many=True, source="verdicts")

    @extend_schema(
        request=Input,
        responses=Output,
        summary="Check references against consent; refused ones come with alternatives",
    )
    def post(self, request: Request) -> Response:
        data = validated_input(self.Input, request.data)
        verification = references_preview(
            user=request.user,
            references=reference_specs(data["references"]),
            distribution=data["distribution"],
        )
        return Response(self.Output(verification).data)


class SimilarityAuditOutput(serializers.Serializer):
    """Seed 003 audit of an output: its most similar recordings by best 3-s clip pair."""

    class AuditMatchOutput(serializers.Serializer):
        rank = serializers.IntegerField()
        recording = serializers.IntegerField(source="recording_id")
        title = serializers.CharField()
        artist = serializers.CharField()
        similarity = serializers.FloatField()
        output_start_seconds = serializers.FloatField()
        recording_start_seconds = serializers.FloatField()
        is_reference = serializers.BooleanField()
        in_training_set = serializers.BooleanField()
        flagged = serializers.BooleanField()

    status = serializers.CharField()
    stage = serializers.CharField()
    failure_reason = serializers.CharField()
    flagged = serializers.BooleanField(
        help_text="a recording that was not a reference is at least as similar as the threshold"
    )
    payouts_held = serializers.BooleanField()
    threshold_name = serializers.CharField()
    threshold_value = serializers.FloatField(allow_null=True)
    thresholds = serializers.DictField(child=serializers.FloatField())
    encoder = serializers.CharField()
    clip_seconds = serializers.FloatField(allow_null=True)
    hop_seconds = serializers.FloatField(allow_null=True)
    output_clip_count = serializers.IntegerField()
    matches = AuditMatchOutput(many=True)
    reference_scores = serializers.DictField(child=serializers.DictField())
    melody = serializers.DictField(
        help_text="the second score: a key-invariant melody signal's encoder, threshold, top "
        "matches (flagged ones flag the output too) and each reference's melody similarity "
        "with its roles; empty when off, {'error': ...} when it could not run"
    )
    finished_at = serializers.DateTimeField(allow_null=True)


class GenerationOutput(serializers.ModelSerializer):
    class ReferenceOutput(serializers.Serializer):
        recording = serializers.IntegerField(source="recording_id")
        title = serializers.CharField(source="recording.title")
        artist = serializers.CharField(source="recording.artist.name")
        level = serializers.CharField()
        role = serializers.CharField()
        weight = serializers.FloatField()
        segment_start = serializers.FloatField(allow_null=True)
        segment_end = serializers.FloatField(allow_null=True)
        consent_version_ids = serializers.ListField(child=serializers.IntegerField())

    id = serializers.UUIDField(source="uid")
    references = ReferenceOutput(many=True)
    model_version = serializers.CharField(source="model_version.__str__")
    progress = serializers.SerializerMethodField()
    audio_url = serializers.SerializerMethodField()
    provenance_url = serializers.SerializerMethodField()
    training_attribution_url = serializers.SerializerMethodField(
        help_text="training-time attribution of the output (once it succeeded)"
    )
    similarity_audit = serializers.SerializerMethodField(
        help_text="seed 003 similarity audit of the output (null until it has one)"
    )

    class Meta:
        model = GenerationRequest
        fields = [
            "id", "key", "status", "progress", "failure_reason", "distribution", "seconds",
            "prompt", "seed", "strength", "segment_start", "segment_end", "upload_sha256",
            "model_version", "references", "verified_at", "started_at", "finished_at",
            "attempts", "verification_record_hash", "generation_record_hash", "output_sha256",
            "sample_sha256", "audio_url", "provenance_url", "training_attribution_url",
            "similarity_audit", "created_at",
        ]  # fmt: skip

    def get_progress(self, generation: GenerationRequest) -> dict:
        total = generation.progress_total
        return {
            "step": generation.progress_step,
            "total": total,
            "fraction": round(generation.progress_step / total, 3) if total else 0.0,
        }

    def _url(self, generation: GenerationRequest, path: str) -> str | None:
        if generation.status != GenerationRequest.Status.SUCCEEDED:
            return None
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_audio_url(self, generation: GenerationRequest) -> str | None:
        return self._url(generation, f"/api/generations/{generation.uid}/audio/")

    def get_provenance_url(self, generation: GenerationRequest) -> str | None:
        return self._url(generation, f"/api/generations/{generation.uid}/provenance/")

    def get_training_attribution_url(self, generation: GenerationRequest) -> str | None:
        return self._url(generation, f"/api/attribution/training/{generation.uid}/")

    @extend_schema_field(SimilarityAuditOutput(allow_null=True))
    def get_similarity_audit(self, generation: GenerationRequest) -> dict | None:
        audit = similarity_audit_summary(generation_ref=generation.ref)
        return SimilarityAuditOutput(audit).data if audit else None


class IdempotencyKeyInput(serializers.Serializer):
    key = TextField(allow_blank=True, max_length=100)


class GenerationListCreateApi(generics.ListAPIView):
    """List your generations (staff: all); submit a new one."""

    parser_classes = [JSONParser, MultiPartParser, FormParser]
    serializer_class = GenerationOutput

    class Input(serializers.Serializer):
        references = ReferencesField(min_length=1)
        distribution = serializers.ChoiceField(choices=Distribution.choices)
        seconds = serializers.FloatField(required=False, allow_null=True, default=None)
        prompt = TextField(
            required=False, allow_blank=True, default="", max_length=MAX_PROMPT_CHARS
        )
        seed = serializers.IntegerField(
            required=False, allow_null=True, default=None, min_value=0, max_value=BIGINT_MAX
        )
        strength = serializers.FloatField(required=False, allow_null=True, default=None)
        segment_start = serializers.FloatField(required=False, allow_null=True, default=None)
        segment_end = serializers.FloatField(required=False, allow_null=True, default=None)
        key = TextField(required=False, allow_blank=True, default="", max_length=100)
        upload = serializers.FileField(required=False, allow_null=True, default=None)

    def get_queryset(self):
        return selectors.generations_visible_to(user=self.request.user)

    @extend_schema(
        request={"application/json": Input, "multipart/form-data": Input},
        responses={201: GenerationOutput, 200: GenerationOutput},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", str, OpenApiParameter.HEADER, description="same as `key`"
            )
        ],
        summary="Submit a generation: verified now, generated by a worker, charged on success",
    )
    def post(self, request: Request) -> Response:
        data = validated_input(self.Input, request.data)
        if not data["key"] and "Idempotency-Key" in request.headers:
            header = {"key": request.headers["Idempotency-Key"]}
            data["key"] = validated_input(IdempotencyKeyInput, header)["key"]
        upload = data["upload"]
        if upload is not None and upload.size > settings.GENERATION_MAX_UPLOAD_BYTES:
            raise InvalidInput(
                f"the upload is larger than {settings.GENERATION_MAX_UPLOAD_BYTES} bytes"
            )
        ask = GenerationAsk(
            references=reference_specs(data["references"]),
            distribution=data["distribution"],
            seconds=data["seconds"],
            prompt=data["prompt"],
            seed=data["seed"],
            strength=data["strength"],
            segment_start=data["segment_start"],
            segment_end=data["segment_end"],
            key=data["key"],
        )
        generation, created = generation_request_submit(user=request.user, ask=ask, upload=upload)
        generation = selectors.generation_get_for(user=request.user, uid=generation.uid)
        return Response(
            GenerationOutput(generation, context={"request": request}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class GenerationDetailApi(APIView):
    @extend_schema(responses=GenerationOutput, summary="Status, progress and attribution links")
    def get(self, request: Request, uid) -> Response:
        generation = selectors.generation_get_for(user=request.user, uid=uid)
        return Response(GenerationOutput(generation, context={"request": request}).data)


def _finished_output(request: Request, uid) -> GenerationRequest:
    generation = selectors.generation_get_for(user=request.user, uid=uid)
    if generation.status != GenerationRequest.Status.SUCCEEDED or not generation.output:
        raise Conflict(f"generation {uid} has no output ({generation.status})")
    return generation


class GenerationAudioApi(APIView):
    @extend_schema(responses={(200, "audio/wav"): OpenApiTypes.BINARY})
    def get(self, request: Request, uid) -> FileResponse:
        generation = _finished_output(request, uid)
        return FileResponse(
            generation.output.open("rb"),
            as_attachment=True,
            filename=f"generation-{generation.uid}.wav",
            content_type="audio/wav",
        )


class GenerationProvenanceApi(APIView):
    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        summary="The output's signed C2PA manifest and embedded provenance, as read back",
    )
    def get(self, request: Request, uid) -> Response:
        from generation import provenance
        from generation.services.outputs import signing_credentials

        generation = _finished_output(request, uid)
        report = provenance.read_provenance(
            Path(generation.output.path), signing_credentials().trust_anchors_pem
        )
        return Response(
            {
                "generation": generation.ref,
                "output_sha256": generation.output_sha256,
                "embedded": report.embedded,
                "c2pa": {
                    "manifest": report.manifest,
                    "trusted": report.trusted,
                    "intact": report.intact,
                    "validation_errors": report.validation_errors,
                },
            }
        )


class ModelVersionListApi(generics.ListAPIView):
    class Output(serializers.ModelSerializer):
        encoder = serializers.CharField(source="encoder.__str__")
        training_recordings = serializers.SerializerMethodField()
        revoked_recordings = serializers.SerializerMethodField()
        servable = serializers.SerializerMethodField()

        class Meta:
            model = ModelVersion
            fields = [
                "id", "name", "version", "encoder", "is_active", "checkpoint_sha256",
                "training_recordings", "revoked_recordings", "servable", "quality", "created_at",
            ]  # fmt: skip

        def get_training_recordings(self, version: ModelVersion) -> int:
            return len(version.training_recording_ids)

        def get_revoked_recordings(self, version: ModelVersion) -> list[int]:
            return selectors.model_version_standing(model_version=version).revoked_recording_ids

        def get_servable(self, version: ModelVersion) -> bool:
            return not selectors.model_version_standing(model_version=version).withdrawn

    serializer_class = Output
    queryset = ModelVersion.objects.select_related("encoder").all()
