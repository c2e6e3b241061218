"""REST API of disputes (under /api/attribution/disputes/).

Open a dispute (JSON, or multipart with an evidence file), list and read the ones you may see
(yours, your generations', your rights holders'; staff: all) with their event chain, add a note,
fetch the evidence; staff resolve (upheld with a correction, or rejected) and verify the chain.
A dispute you may not read answers 404, as an unknown one does.
"""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import IdField, TextField, query_input, validated_input
from config.exceptions import Conflict
from config.permissions import StaffOnly
from disputes import selectors, services
from disputes.models import Dispute, DisputeEvent


class DisputeEventOutput(serializers.ModelSerializer):
    created_at = serializers.DateTimeField(
        format="%Y-%m-%dT%H:%M:%S.%fZ", help_text="UTC, exactly as hashed into record_hash"
    )

    class Meta:
        model = DisputeEvent
        fields = [
            "sequence", "dispute", "kind", "actor", "payload", "payload_sha256", "previous_hash",
            "record_hash", "created_at",
        ]  # fmt: skip


class DisputeOutput(serializers.ModelSerializer):
    generation = serializers.CharField(source="generation_ref")
    parties = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    has_evidence_file = serializers.SerializerMethodField()
    held_minor = serializers.SerializerMethodField(
        help_text="what is held now on the disputed item (minor units; by it or another reason)"
    )

    class Meta:
        model = Dispute
        fields = [
            "id", "subject", "status", "generation", "recording", "holder", "opened_by",
            "parties", "reason", "evidence_name", "evidence_sha256", "evidence_link",
            "has_evidence_file", "deadline", "held_minor", "resolution_note", "correction",
            "resolved_by", "resolved_at", "created_at",
        ]  # fmt: skip

    def get_has_evidence_file(self, dispute: Dispute) -> bool:
        return bool(dispute.evidence_file)

    def get_held_minor(self, dispute: Dispute) -> int:
        return selectors.dispute_held_minor(dispute) if dispute.is_open else 0


class DisputeDetailOutput(DisputeOutput):
    events = serializers.SerializerMethodField(help_text="its steps, in chain order")

    class Meta(DisputeOutput.Meta):
        fields = [*DisputeOutput.Meta.fields, "events"]

    @extend_schema_field(DisputeEventOutput(many=True))
    def get_events(self, dispute: Dispute) -> list[dict]:
        return DisputeEventOutput(selectors.dispute_events(dispute), many=True).data


class DisputeListCreateApi(generics.ListAPIView):
    """Disputes you may read, newest first; open one (a holder for its recordings, the maker
    for its generation): the amounts in question are held at once."""

    class Query(serializers.Serializer):
        status = serializers.ChoiceField(choices=Dispute.Status.choices, required=False)
        generation = TextField(max_length=64, required=False)
        holder = IdField(required=False, help_text="disputes concerning this rights holder")

    class Input(serializers.Serializer):
        subject = serializers.ChoiceField(choices=Dispute.Subject.choices)
        generation = TextField(
            max_length=64, required=False, default="", help_text="public id of the generation"
        )
        recording = IdField(
            required=False, default=None, help_text="ownership: the recording; TDA: yours"
        )
        holder = IdField(
            required=False, default=None, help_text="the rights holder you act for (not needed "
            "when you dispute your own generation)",
        )  # fmt: skip
        reason = serializers.CharField(max_length=4000)
        evidence_link = serializers.URLField(
            max_length=500, required=False, default="", allow_blank=True
        )
        evidence = serializers.FileField(required=False, default=None, allow_null=True)

    parser_classes = [JSONParser, MultiPartParser, FormParser]
    serializer_class = DisputeOutput
    filter_backends: list = []

    @extend_schema(parameters=[Query])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = query_input(self.Query, self.request)
        disputes = selectors.disputes_visible_to(user=self.request.user)
        if "status" in query:
            disputes = disputes.filter(status=query["status"])
        if "generation" in query:
            disputes = disputes.filter(generation_ref=query["generation"])
        if "holder" in query:
            ids = Dispute.objects.filter(parties=query["holder"]).values("pk")
            disputes = disputes.filter(pk__in=ids)
        return disputes

    @extend_schema(
        request={"application/json": Input, "multipart/form-data": Input},
        responses={201: DisputeDetailOutput},
        summary="Open a dispute; the amounts in question are held at once",
    )
    def post(self, request: Request) -> Response:
        data = validated_input(self.Input, request.data)
        dispute = services.dispute_open(
            user=request.user,
            subject=data["subject"],
            reason=data["reason"],
            generation_ref=data["generation"],
            recording_id=data["recording"],
            holder_id=data["holder"],
            evidence_file=data["evidence"],
            evidence_link=data["evidence_link"],
        )
        return Response(DisputeDetailOutput(dispute).data, status=status.HTTP_201_CREATED)


class DisputeDetailApi(APIView):
    @extend_schema(responses=DisputeDetailOutput)
    def get(self, request: Request, dispute_id: int) -> Response:
        dispute = selectors.dispute_readable_by(user=request.user, dispute_id=dispute_id)
        return Response(DisputeDetailOutput(dispute).data)


class DisputeNoteApi(APIView):
    """A party (or staff) adds a note, with an optional link, to an open dispute."""

    class Input(serializers.Serializer):
        note = serializers.CharField(max_length=4000)
        evidence_link = serializers.URLField(
            max_length=500, required=False, default="", allow_blank=True
        )

    @extend_schema(request=Input, responses={201: DisputeEventOutput})
    def post(self, request: Request, dispute_id: int) -> Response:
        data = validated_input(self.Input, request.data)
        event = services.dispute_note_add(
            user=request.user,
            dispute_id=dispute_id,
            note=data["note"],
            evidence_link=data["evidence_link"],
        )
        return Response(DisputeEventOutput(event).data, status=status.HTTP_201_CREATED)


class DisputeResolveApi(APIView):
    """Staff: uphold (with the correction its subject needs) or reject an open dispute."""

    class Input(serializers.Serializer):
        outcome = serializers.ChoiceField(choices=["upheld", "rejected"])
        note = serializers.CharField(max_length=4000)
        shares = serializers.DictField(
            child=serializers.FloatField(min_value=0), required=False, default=None,
            help_text="TDA shares: corrected share per training recording id",
        )  # fmt: skip
        weights = serializers.DictField(
            child=serializers.FloatField(min_value=0), required=False, default=None,
            help_text="direct attribution: corrected weight per recording id",
        )  # fmt: skip
        master_shares = serializers.DictField(
            child=serializers.IntegerField(min_value=1, max_value=10_000), required=False,
            default=None, help_text="ownership: basis points per rights holder id (sum 10000)",
        )  # fmt: skip

    permission_classes = [IsAuthenticated, StaffOnly]
    staff_reason = "only staff can resolve disputes"

    @extend_schema(request=Input, responses=DisputeDetailOutput)
    def post(self, request: Request, dispute_id: int) -> Response:
        data = validated_input(self.Input, request.data)
        dispute = services.dispute_resolve(actor=request.user, dispute_id=dispute_id, **data)
        return Response(DisputeDetailOutput(dispute).data)


class DisputeEvidenceApi(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, dispute_id: int) -> FileResponse:
        dispute = selectors.dispute_readable_by(user=request.user, dispute_id=dispute_id)
        if not dispute.evidence_file:
            raise Conflict(f"dispute {dispute.pk} has no evidence file")
        return FileResponse(
            dispute.evidence_file.open("rb"),
            as_attachment=True,  # never rendered in the browser
            filename=dispute.evidence_name or "evidence",
            content_type="application/octet-stream",
        )


class DisputeChainReportOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField(help_text="events found intact, in chain order")
    first_broken_sequence = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    head_sequence = serializers.IntegerField(allow_null=True, help_text="last intact event")
    head_hash = serializers.CharField()


class DisputeChainVerifyApi(APIView):
    """Staff: recompute the whole chain of dispute events."""

    permission_classes = [IsAuthenticated, StaffOnly]
    staff_reason = "only staff can verify the dispute chain"

    @extend_schema(responses=DisputeChainReportOutput)
    def get(self, request: Request) -> Response:
        return Response(DisputeChainReportOutput(selectors.dispute_chain_verify()).data)
