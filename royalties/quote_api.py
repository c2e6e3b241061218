"""REST API of prices before a generation: the quote a music maker sees next to Generate, and
the price floors holders set on their recordings.

The quote is computed by the same plan the fee posting uses (`royalties.services.fee_plan`),
at the prices, floors and split in force now; a generation verified later is charged at what
is in force then.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.models import Distribution, Level
from catalog.selectors import holder_readable_by, recording_get
from config.api import IdField, TextField, validated_input
from generation.api import ReferencesField, reference_specs
from generation.selectors import generation_modules, servable_model_version
from generation.services.requests import ReferencesRefused
from generation.verification import references_verify
from royalties import selectors, services
from royalties.allocation import PaidModule
from royalties.services.fees import direct_shares_quoted


class GenerationQuoteApi(APIView):
    class Input(serializers.Serializer):
        references = ReferencesField(min_length=1)
        distribution = serializers.ChoiceField(choices=Distribution.choices)
        prompt = TextField(max_length=500, required=False, allow_blank=True, default="")
        currency = TextField(max_length=3, required=False)

    class Output(serializers.Serializer):
        class FloorOutput(serializers.Serializer):
            recording = serializers.IntegerField(source="recording_id")
            holder = serializers.IntegerField(source="holder_id")
            amount_minor = serializers.IntegerField()

        class HolderOutput(serializers.Serializer):
            holder = serializers.IntegerField(source="holder_id")
            name = serializers.CharField(source="holder_name")
            recording = serializers.IntegerField(source="recording_id")
            side = serializers.CharField()
            work = serializers.IntegerField(source="work_id", allow_null=True)
            amount_minor = serializers.IntegerField()
            amount = serializers.CharField(help_text="major units, exact")

        currency = serializers.CharField()
        amount_minor = serializers.IntegerField(help_text="what the generation will be charged")
        amount = serializers.CharField(help_text="the same in major units, exact")
        level = serializers.CharField(help_text="the most intrusive level, which is priced")
        distribution = serializers.CharField()
        tier_minor = serializers.IntegerField(help_text="the price tier in force")
        tier = serializers.CharField(help_text="the same in major units, exact")
        floor = FloorOutput(allow_null=True, help_text="the holder floor that set the price")
        parts = serializers.DictField(child=serializers.IntegerField())
        auxiliary_by_module = serializers.DictField(
            child=serializers.IntegerField(), help_text="the auxiliary part per module used"
        )
        holders = HolderOutput(many=True, help_text="direct payouts, per holder and side")
        price_list = serializers.IntegerField()
        split_policy = serializers.IntegerField()

    @extend_schema(
        request=Input,
        responses=Output,
        summary="What a generation with these references would cost, and who would be paid",
    )
    def post(self, request: Request) -> Response:
        data = validated_input(self.Input, request.data)
        specs = reference_specs(data["references"])
        verification = references_verify(
            references=specs, distribution=data["distribution"], with_alternatives=False
        )
        if not verification.permitted:
            refused = [v for v in verification.verdicts if not v.permitted]
            raise ReferencesRefused(
                "these references may not be used as asked; nothing can be quoted",
                details={str(v.recording_id): v.reasons for v in refused},
            )
        model_version = servable_model_version()
        modules = generation_modules(model_version=model_version, prompt=data["prompt"])
        plan = services.fee_plan(
            at=timezone.now(),
            distribution=data["distribution"],
            references=[
                services.ChargedReference(s.recording_id, s.level, s.weight) for s in specs
            ],
            training_recording_ids=model_version.training_recording_ids,
            currency=data.get("currency"),
            modules=[
                PaidModule(m.label, m.kind, tuple(m.training_recording_ids), m.external)
                for m in modules
            ],
        )
        allocation = plan.allocation

        def money(minor: int) -> str:
            return selectors.format_minor(minor, plan.currency)

        body = {
            "currency": plan.currency,
            "amount_minor": plan.amount,
            "amount": money(plan.amount),
            "level": plan.level,
            "distribution": plan.distribution,
            "tier_minor": plan.tier_minor,
            "tier": money(plan.tier_minor),
            "floor": plan.floor,
            "parts": {
                "direct": sum(allocation.direct.values()),
                "tda_pool": allocation.tda_pool,
                "auxiliary": sum(part.amount for part in allocation.modules),
                "platform": allocation.platform,
                "unallocated": allocation.unallocated,
            },
            "auxiliary_by_module": {part.module.label: part.amount for part in allocation.modules},
            "holders": [
                {**vars(share), "amount": money(share.amount_minor)}
                for share in direct_shares_quoted(plan)
            ],
            "price_list": plan.price_list.pk,
            "split_policy": plan.policy.pk,
        }
        return Response(self.Output(body).data)


class PriceFloorApi(APIView):
    """A holder's floors in force (members and staff read), and setting one (members)."""

    class Output(serializers.Serializer):
        id = serializers.IntegerField()
        recording = serializers.IntegerField(source="recording_id", allow_null=True)
        level = serializers.CharField()
        distribution = serializers.CharField()
        currency = serializers.CharField()
        amount_minor = serializers.IntegerField()
        created_at = serializers.DateTimeField()

    class Input(serializers.Serializer):
        recording = IdField(required=False, allow_null=True, help_text="empty: your default")
        level = serializers.ChoiceField(choices=Level.choices)
        distribution = serializers.ChoiceField(choices=Distribution.choices)
        amount_minor = serializers.IntegerField(help_text="minor units (cents); 0 lifts it")
        currency = TextField(max_length=3, required=False)

    @extend_schema(responses=Output(many=True))
    def get(self, request: Request, holder_id: int) -> Response:
        holder = holder_readable_by(user=request.user, holder_id=holder_id)
        floors = selectors.holder_price_floors(holder=holder)
        return Response(self.Output(floors, many=True).data)

    @extend_schema(request=Input, responses={201: Output})
    def post(self, request: Request, holder_id: int) -> Response:
        holder = holder_readable_by(user=request.user, holder_id=holder_id)
        data = validated_input(self.Input, request.data)
        recording = None
        if data.get("recording") is not None:
            recording = recording_get(recording_id=data["recording"])
        floor = services.price_floor_set(
            actor=request.user,
            holder=holder,
            recording=recording,
            level=data["level"],
            distribution=data["distribution"],
            amount_minor=data["amount_minor"],
            currency=data.get("currency"),
        )
        return Response(self.Output(floor).data, status=status.HTTP_201_CREATED)
