"""REST API of royalties: payout reports (JSON and CSV), statements, prices and splits.

A holder's members read only that holder's reports; staff read all and are the only ones who
publish prices, change the split, close statements or reverse postings.
"""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.models import Distribution, Level
from catalog.selectors import holder_readable_by
from config.api import IdField, TextField, query_input, validated_input
from config.exceptions import InvalidInput, NotFound
from config.permissions import StaffOnly
from royalties import selectors, services
from royalties.models import LedgerTransaction, PriceList, SplitPolicy, Statement


class CurrencyQuery(serializers.Serializer):
    currency = TextField(max_length=3, required=False, help_text="ISO 4217; default the platform's")


class HolderPeriodQuery(CurrencyQuery):
    period = serializers.RegexField(
        r"^[0-9]{4}-[0-9]{2}$",
        help_text="month, YYYY-MM",
        error_messages={
            "required": "period is required: a month as YYYY-MM",
            "invalid": "period must be a month as YYYY-MM",
        },
    )


class _HolderPeriod:
    """Resolves holder (with read authorisation), period and currency from the request; the
    view's `Query` may add filters, which land in `self.query`."""

    Query = HolderPeriodQuery

    def holder_period(self, request: Request, holder_id: int):
        holder = holder_readable_by(user=request.user, holder_id=holder_id)
        self.query = query_input(self.Query, request)
        period = selectors.parse_period(self.query["period"])
        currency = services.currency_checked(self.query.get("currency"))
        return holder, period, currency


class StatementOutput(serializers.ModelSerializer):
    period = serializers.DateField(format="%Y-%m")

    class Meta:
        model = Statement
        fields = [
            "id", "holder", "period", "currency", "ita_minor", "tda_minor", "auxiliary_minor",
            "total_minor", "master_minor", "publishing_minor", "auxiliary_by_module",
            "entry_count", "entries_sha256", "closed_at",
        ]  # fmt: skip


class PayoutSummaryApi(_HolderPeriod, APIView):
    class Output(serializers.Serializer):
        holder = serializers.IntegerField()
        period = serializers.CharField()
        currency = serializers.CharField()
        status = serializers.ChoiceField(["open", "closed"])
        ita_minor = serializers.IntegerField()
        tda_minor = serializers.IntegerField()
        auxiliary_minor = serializers.IntegerField()
        total_minor = serializers.IntegerField()
        master_minor = serializers.IntegerField(help_text="of the total: as a master holder")
        publishing_minor = serializers.IntegerField(
            help_text="of the total: as a writer or publisher of works"
        )
        auxiliary_by_module = serializers.DictField(
            child=serializers.IntegerField(),
            help_text="the auxiliary amount per module whose training data it pays",
        )
        total = serializers.CharField(help_text="total in major units, exact")
        generations = serializers.IntegerField()
        statement = StatementOutput(allow_null=True)

    @extend_schema(parameters=[HolderPeriodQuery], responses=Output)
    def get(self, request: Request, holder_id: int) -> Response:
        holder, period, currency = self.holder_period(request, holder_id)
        statement = selectors.holder_statement(holder=holder, period=period, currency=currency)
        totals = selectors.holder_period_totals(holder=holder, period=period, currency=currency)
        return Response(
            self.Output(
                {
                    "holder": holder.pk,
                    "period": f"{period:%Y-%m}",
                    "currency": currency,
                    "status": "closed" if statement else "open",
                    "ita_minor": totals.ita,
                    "tda_minor": totals.tda,
                    "auxiliary_minor": totals.auxiliary,
                    "total_minor": totals.total,
                    "master_minor": totals.master,
                    "publishing_minor": totals.publishing,
                    "auxiliary_by_module": totals.auxiliary_by_module,
                    "total": selectors.format_minor(totals.total, currency),
                    "generations": totals.generations,
                    "statement": statement,
                }
            ).data
        )


class PayoutByRecordingApi(_HolderPeriod, generics.ListAPIView):
    """Per recording: ITA, TDA and auxiliary amounts owed, and how many generations
    referenced it."""

    class Output(serializers.Serializer):
        recording_id = serializers.IntegerField()
        title = serializers.CharField()
        isrc = serializers.CharField(allow_null=True)
        artist = serializers.CharField()
        ita_minor = serializers.IntegerField(source="ita")
        tda_minor = serializers.IntegerField(source="tda")
        auxiliary_minor = serializers.IntegerField(source="auxiliary")
        total_minor = serializers.IntegerField(source="total")
        master_minor = serializers.IntegerField(source="master")
        publishing_minor = serializers.IntegerField(source="publishing")
        generations = serializers.IntegerField(
            help_text="generations that referenced the recording, net of reversals"
        )

    class Query(HolderPeriodQuery):
        recording = IdField(required=False, help_text="one recording")

    serializer_class = Output
    filter_backends: list = []

    @extend_schema(parameters=[Query])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        return None if page is None else selectors.with_recording_details(page)

    def get_queryset(self):
        holder, period, currency = self.holder_period(self.request, self.kwargs["holder_id"])
        rows = selectors.holder_payouts_by_recording(
            holder=holder, period=period, currency=currency
        )
        if "recording" in self.query:
            rows = rows.filter(recording_id=self.query["recording"])
        return rows


class PayoutByGenerationApi(_HolderPeriod, generics.ListAPIView):
    class Output(serializers.Serializer):
        generation_ref = serializers.CharField()
        level = serializers.CharField()
        distribution = serializers.CharField()
        ita_minor = serializers.IntegerField(source="ita")
        tda_minor = serializers.IntegerField(source="tda")
        auxiliary_minor = serializers.IntegerField(source="auxiliary")
        total_minor = serializers.IntegerField(source="total")
        master_minor = serializers.IntegerField(source="master")
        publishing_minor = serializers.IntegerField(source="publishing")
        recordings = serializers.IntegerField()

    class Query(HolderPeriodQuery):
        level = serializers.ChoiceField(Level.choices, required=False)
        distribution = serializers.ChoiceField(Distribution.choices, required=False)

    serializer_class = Output
    filter_backends: list = []

    @extend_schema(parameters=[Query])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        holder, period, currency = self.holder_period(self.request, self.kwargs["holder_id"])
        rows = selectors.holder_payouts_by_generation(
            holder=holder, period=period, currency=currency
        )
        wanted = ("level", "distribution")
        return rows.filter(**{name: self.query[name] for name in wanted if name in self.query})


class PayoutCsvApi(_HolderPeriod, APIView):
    """DDEX-DSR-like CSV: one line per recording, use type and distribution."""

    @extend_schema(
        parameters=[HolderPeriodQuery],
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request, holder_id: int) -> HttpResponse:
        holder, period, currency = self.holder_period(request, holder_id)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(selectors.CSV_COLUMNS)
        writer.writerows(
            selectors.holder_payout_csv_rows(holder=holder, period=period, currency=currency)
        )
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        filename = f"payouts-holder{holder.pk}-{period:%Y-%m}-{currency}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class StatementCloseApi(APIView):
    @extend_schema(
        request=None,
        parameters=[CurrencyQuery],
        responses={201: StatementOutput},
    )
    def post(self, request: Request, holder_id: int, period: str) -> Response:
        holder = holder_readable_by(user=request.user, holder_id=holder_id)
        query = query_input(CurrencyQuery, request)
        statement = services.statement_close(
            actor=request.user,
            holder=holder,
            period=selectors.parse_period(period),
            currency=query.get("currency"),
        )
        return Response(StatementOutput(statement).data, status=status.HTTP_201_CREATED)


class PriceListApi(generics.ListAPIView):
    """Price list versions (GET: everyone signed in; POST: staff)."""

    class TierOutput(serializers.Serializer):
        level = serializers.CharField()
        distribution = serializers.CharField()
        amount_minor = serializers.IntegerField()

    class Output(serializers.ModelSerializer):
        tiers = serializers.SerializerMethodField()

        class Meta:
            model = PriceList
            fields = ["id", "currency", "effective_from", "note", "tiers"]

        def get_tiers(self, price_list: PriceList) -> list[dict]:
            return PriceListApi.TierOutput(price_list.tiers.all(), many=True).data

    class Input(serializers.Serializer):
        currency = serializers.CharField(required=False, allow_blank=True)
        effective_from = serializers.DateTimeField(required=False)
        note = serializers.CharField(required=False, allow_blank=True, max_length=255)
        tiers = serializers.ListField(child=serializers.DictField(), allow_empty=False)

    serializer_class = Output
    filter_backends: list = []
    queryset = PriceList.objects.prefetch_related("tiers")

    @extend_schema(request=Input, responses={201: Output})
    def post(self, request: Request) -> Response:
        data = validated_input(self.Input, request.data)
        tiers = {}
        for tier in data["tiers"]:
            tier_key = (str(tier.get("level")), str(tier.get("distribution")))
            if tier_key in tiers:
                raise InvalidInput(f"tier {'/'.join(tier_key)} is given twice")
            tiers[tier_key] = tier.get("amount_minor")
        price_list = services.price_list_publish(
            actor=request.user,
            tiers=tiers,
            currency=data.get("currency"),
            effective_from=data.get("effective_from"),
            note=data.get("note", ""),
        )
        return Response(self.Output(price_list).data, status=status.HTTP_201_CREATED)


class SplitPolicyApi(generics.ListAPIView):
    class Output(serializers.ModelSerializer):
        class Meta:
            model = SplitPolicy
            fields = [
                "id", "effective_from", "direct_bp", "tda_pool_bp", "auxiliary_bp",
                "platform_bp", "publishing_bp", "auxiliary_modules", "note",
            ]  # fmt: skip

    class Input(serializers.Serializer):
        effective_from = serializers.DateTimeField(required=False)
        direct_bp = serializers.IntegerField()
        tda_pool_bp = serializers.IntegerField()
        auxiliary_bp = serializers.IntegerField()
        platform_bp = serializers.IntegerField()
        publishing_bp = serializers.IntegerField(
            required=False, help_text="the writers' and publishers' side of what each "
            "recording earns, in basis points (default 5000: 50/50 with the masters)",
        )  # fmt: skip
        auxiliary_modules = serializers.DictField(
            child=serializers.IntegerField(), required=False,
            help_text="basis points of the auxiliary part per module kind (sum 10000)",
        )  # fmt: skip
        note = serializers.CharField(required=False, allow_blank=True, max_length=255)

    serializer_class = Output
    filter_backends: list = []
    queryset = SplitPolicy.objects.all()

    @extend_schema(request=Input, responses={201: Output})
    def post(self, request: Request) -> Response:
        data = validated_input(self.Input, request.data)
        policy = services.split_policy_publish(actor=request.user, **data)
        return Response(self.Output(policy).data, status=status.HTTP_201_CREATED)


class TransactionReverseApi(APIView):
    class Input(serializers.Serializer):
        reason = serializers.CharField(max_length=500)

    class Output(serializers.Serializer):
        id = serializers.IntegerField()
        key = serializers.CharField()
        reverses = serializers.IntegerField(source="reverses_id")
        booked_at = serializers.DateTimeField()

    permission_classes = [IsAuthenticated, StaffOnly]
    staff_reason = "only staff can reverse ledger postings"

    @extend_schema(request=Input, responses={201: Output})
    def post(self, request: Request, transaction_id: int) -> Response:
        data = validated_input(self.Input, request.data)
        original = LedgerTransaction.objects.filter(pk=transaction_id).first()
        if original is None:
            raise NotFound(f"ledger transaction {transaction_id} not found")
        reversal = services.transaction_reverse(
            actor=request.user, ledger_transaction=original, reason=data["reason"]
        )
        return Response(self.Output(reversal).data, status=status.HTTP_201_CREATED)


class LedgerCheckApi(APIView):
    """Staff: the conservation check over every transaction."""

    class Output(serializers.Serializer):
        ok = serializers.BooleanField()
        transactions = serializers.IntegerField()
        entries = serializers.IntegerField()
        unbalanced_transactions = serializers.ListField(child=serializers.IntegerField())
        negative_holder_totals = serializers.ListField(child=serializers.ListField())
        pending_tda_pool = serializers.DictField(child=serializers.IntegerField())

    permission_classes = [IsAuthenticated, StaffOnly]
    staff_reason = "only staff can run the ledger check"

    @extend_schema(responses=Output)
    def get(self, request: Request) -> Response:
        report = selectors.ledger_conservation_check()
        return Response(self.Output(report).data)
