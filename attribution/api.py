"""REST API of the attribution log (read only).

Staff read every record and run the chain check; anyone else reads only the records of
requests they made (`payload["requested_by"]` equals their user id). A record someone else
requested answers 404, so ids of other users' records are not confirmed.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from attribution import selectors
from attribution_log import selectors as log_selectors
from attribution_log.models import AttributionRecord
from catalog.selectors import recordings_labels
from config.api import TextField, query_input
from config.permissions import StaffOnly


class AttributionRecordOutput(serializers.ModelSerializer):
    created_at = serializers.DateTimeField(
        format="%Y-%m-%dT%H:%M:%S.%fZ", help_text="UTC, exactly as hashed into record_hash"
    )

    class Meta:
        model = AttributionRecord
        fields = [
            "sequence", "kind", "generation_ref", "payload", "payload_sha256",
            "previous_hash", "record_hash", "created_at",
        ]  # fmt: skip


class RecordListApi(generics.ListAPIView):
    """Records in chain order; `generation` narrows to one generation request."""

    class Query(serializers.Serializer):
        generation = TextField(
            max_length=64, required=False, help_text="public id of a generation request"
        )

    serializer_class = AttributionRecordOutput
    filter_backends: list = []

    @extend_schema(parameters=[Query])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = query_input(self.Query, self.request)
        records = log_selectors.attribution_records_visible_to(user=self.request.user)
        if "generation" in query:
            records = records.filter(generation_ref=query["generation"])
        return records


class RecordDetailApi(APIView):
    @extend_schema(responses=AttributionRecordOutput)
    def get(self, request: Request, sequence: int) -> Response:
        record = log_selectors.attribution_record_readable_by(user=request.user, sequence=sequence)
        return Response(AttributionRecordOutput(record).data)


class ChainReportOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField(help_text="records found intact, in chain order")
    first_broken_sequence = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    head_sequence = serializers.IntegerField(allow_null=True, help_text="last intact record")
    head_hash = serializers.CharField()


class ChainVerifyApi(APIView):
    """Staff: recompute the whole hash chain (about 3 s per 100,000 records)."""

    permission_classes = [IsAuthenticated, StaffOnly]
    staff_reason = "only staff can verify the attribution log"

    @extend_schema(responses=ChainReportOutput)
    def get(self, request: Request) -> Response:
        return Response(ChainReportOutput(log_selectors.attribution_chain_verify()).data)


class TrainingContributorOutput(serializers.Serializer):
    recording = serializers.IntegerField()
    title = serializers.CharField()
    artist = serializers.CharField()
    score = serializers.FloatField(
        help_text="loss increase after unlearning (seed 000 Eq. 2), aggregated over the "
        "recording's windows as the payout rule says (mean or max)"
    )
    standard_error = serializers.FloatField(
        allow_null=True, help_text="of the score, from its draw replicates"
    )
    windows = serializers.IntegerField(allow_null=True, help_text="windows that cover it")
    cleared = serializers.BooleanField(help_text="the score clears the payout rule's noise bar")
    share_softmax = serializers.FloatField(help_text="for display; never paid by")
    share_topk = serializers.FloatField(help_text="share of the TDA pool paid to it")


class TrainingAttributionOutput(serializers.Serializer):
    generation = serializers.CharField(source="generation_ref")
    status = serializers.CharField()
    stage = serializers.CharField()
    progress = serializers.SerializerMethodField()
    failure_reason = serializers.CharField()
    model_version_id = serializers.IntegerField()
    config = serializers.JSONField()
    payout_share_kind = serializers.CharField(
        help_text="topk: split over the recordings that cleared their noise; unattributed: "
        "none did, the pool stays pending; flat: none did, split equally"
    )
    rule = serializers.JSONField(help_text="the payout settings the job was created with")
    regime = serializers.SerializerMethodField(
        help_text="own-loss rise of the query and exact vs first-order agreement"
    )
    settlement_ref = serializers.CharField(help_text="ledger transaction key of the pool split")
    result_sha256 = serializers.CharField()
    contributors = serializers.SerializerMethodField(
        help_text="every training recording, highest score first (empty until done)"
    )
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_regime(self, job) -> dict:
        return (job.evidence or {}).get("regime", {})

    def get_progress(self, job) -> dict:
        return {
            "done": job.progress_done,
            "total": job.progress_total,
            "chunks_done": job.chunks_done,
            "chunks_total": job.chunks_total,
        }

    @extend_schema_field(TrainingContributorOutput(many=True))
    def get_contributors(self, job) -> list[dict]:
        if job.scores is None:
            return []
        ids = [int(r) for r in job.scores]
        labels = recordings_labels(recording_ids=ids)
        evidence = job.evidence or {}
        errors, windows = evidence.get("standard_errors", {}), evidence.get("windows", {})
        cleared = set(evidence.get("cleared", []))
        rows = [
            {
                "recording": rid,
                "title": labels.get(rid, ("(removed)", ""))[0],
                "artist": labels.get(rid, ("", ""))[1],
                "score": job.scores[str(rid)],
                "standard_error": errors.get(str(rid)),
                "windows": windows.get(str(rid)),
                "cleared": rid in cleared,
                "share_softmax": job.shares["softmax"][str(rid)],
                "share_topk": job.shares["topk"][str(rid)],
            }
            for rid in ids
        ]
        return sorted(rows, key=lambda row: -row["score"])


class TrainingAttributionApi(APIView):
    """A generation's training-time attribution: status with progress, then a score and
    normalised shares per training recording. For who asked for the generation, and staff."""

    @extend_schema(responses=TrainingAttributionOutput)
    def get(self, request: Request, generation: str) -> Response:
        job = selectors.training_attribution_readable_by(
            user=request.user, generation_ref=str(generation)
        )
        return Response(TrainingAttributionOutput(job).data)
