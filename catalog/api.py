"""REST API of the catalogue and of holders' consent. Thin: parse input, call a selector or
service, serialize output. Errors follow `config.exceptions` (one JSON shape)."""

from __future__ import annotations

import django_filters
from django.db.models import Q
from django.http import FileResponse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import consent_signals, rights_signals, selectors
from catalog.models import (
    TOTAL_BASIS_POINTS,
    Artist,
    ConsentReservation,
    ConsentVersion,
    Distribution,
    Recording,
    Release,
    RightsHolder,
    Use,
    Work,
    WorkShare,
)
from catalog.services.consent import consent_grant, consent_revoke
from catalog.services.works import WorkShareSpec, iswc_checked, recording_works_set, work_create
from config.api import IdField, TextField, validated_input
from config.exceptions import Forbidden, InvalidInput
from config.permissions import StaffOnly

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


class EmbodiedWorkOutput(serializers.Serializer):
    """A work a recording embodies, with its part of the recording's publishing side."""

    id = serializers.IntegerField(source="work_id")
    title = serializers.CharField(source="work.title")
    iswc = serializers.CharField(source="work.iswc", allow_null=True)
    basis_points = serializers.IntegerField()


class WorkShareOutput(serializers.Serializer):
    holder = serializers.IntegerField(source="holder_id")
    name = serializers.CharField(source="holder.name")
    ipi = serializers.CharField(source="holder.ipi")
    role = serializers.ChoiceField(choices=WorkShare.Role.choices)
    basis_points = serializers.IntegerField()


class WorkRecordingOutput(serializers.Serializer):
    """A recording embodying a work, with the work's part of its publishing side."""

    id = serializers.IntegerField(source="recording_id")
    title = serializers.CharField(source="recording.title")
    artist = serializers.CharField(source="recording.artist.name")
    isrc = serializers.CharField(source="recording.isrc", allow_null=True)
    basis_points = serializers.IntegerField()


class WorkOutput(serializers.ModelSerializer):
    """A work with its writers' and publishers' shares and the recordings embodying it."""

    # serialize works from `selectors.works_all`, which prefetches both

    shares = WorkShareOutput(many=True)
    recordings = WorkRecordingOutput(many=True, source="recording_links")

    class Meta:
        model = Work
        fields = ["id", "title", "iswc", "shares", "recordings"]


class EffectiveConsentOutput(serializers.Serializer):
    uses = serializers.DictField(child=serializers.BooleanField())
    distributions = serializers.DictField(child=serializers.BooleanField())


class TrainingMiningEntryOutput(serializers.Serializer):
    """One CAWG training-and-data-mining entry (`catalog.consent_signals` maps consent)."""

    use = serializers.ChoiceField(choices=list(consent_signals.USE_VALUES))
    constraint_info = serializers.CharField(required=False)


class TrainingMiningOutput(serializers.Serializer):
    """The data of a ``cawg.training-mining`` assertion."""

    entries = serializers.DictField(child=TrainingMiningEntryOutput())


class ReservationOutput(serializers.ModelSerializer):
    """A reservation of mining rights the recording came with (training stays not granted
    unless its holders confirm overriding it)."""

    source_label = serializers.CharField(source="get_source_display")

    class Meta:
        model = ConsentReservation
        fields = ["source", "source_label", "value", "policy", "created_at"]


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
        works = serializers.SerializerMethodField()
        training_mining = serializers.SerializerMethodField()
        reservations = ReservationOutput(many=True)

        class Meta(RecordingOutput.Meta):
            fields = [
                *RecordingOutput.Meta.fields, "effective_consent", "works", "training_mining",
                "reservations",
            ]  # fmt: skip

        def get_effective_consent(self, recording: Recording) -> EffectiveConsentOutput:
            consent = selectors.recording_effective_consent(recording=recording)
            return {"uses": consent.uses, "distributions": consent.distributions}

        def get_training_mining(self, recording: Recording) -> TrainingMiningOutput:
            consent = selectors.recording_effective_consent(recording=recording)
            entries = consent_signals.recording_entries(consent.uses, consent.distributions)
            return consent_signals.training_mining_assertion(entries)

        @extend_schema_field(EmbodiedWorkOutput(many=True))
        def get_works(self, recording: Recording) -> list[dict]:
            links = selectors.recordings_works(recording_ids=[recording.pk])[recording.pk]
            return EmbodiedWorkOutput(links, many=True).data

    @extend_schema(responses=Output)
    def get(self, request: Request, recording_id: int) -> Response:
        recording = selectors.recording_get(recording_id=recording_id)
        return Response(self.Output(recording).data)


class RecordingTrainingMiningApi(APIView):
    """What may be done with the recording, for machines: its effective consent as a CAWG
    ``cawg.training-mining`` assertion, and the reservations it came with. Public: it is the
    `tdm-policy` of the recording's audio URL in ``/.well-known/tdmrep.json``."""

    permission_classes = [AllowAny]

    class Output(serializers.Serializer):
        recording = serializers.IntegerField()
        label = serializers.CharField()
        data = TrainingMiningOutput()
        tdm_reservation = serializers.IntegerField(help_text="1: TDM rights reserved (TDMRep)")
        reservations = ReservationOutput(many=True)
        effective_consent = EffectiveConsentOutput()

    @extend_schema(responses=Output)
    def get(self, request: Request, recording_id: int) -> Response:
        recording = selectors.recording_get(recording_id=recording_id)
        consent = selectors.recording_effective_consent(recording=recording)
        entries = consent_signals.recording_entries(consent.uses, consent.distributions)
        reservations = rights_signals.recordings_reservations(recording_ids=[recording.pk])
        return Response(
            self.Output(
                {
                    "recording": recording.pk,
                    "label": consent_signals.TRAINING_MINING_LABEL,
                    "data": consent_signals.training_mining_assertion(entries),
                    "tdm_reservation": 0 if consent.uses[Use.TRAINING] else 1,
                    "reservations": reservations[recording.pk],
                    "effective_consent": {
                        "uses": consent.uses,
                        "distributions": consent.distributions,
                    },
                }
            ).data
        )


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
        reservations = ReservationOutput(many=True)

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
            "reservations": recording.reservations.all(),
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


class RecordingConsentGrantInput(ConsentChangeInput):
    confirm_reservation = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Granting training on a recording that came with a reservation of mining "
        "rights (see the recording's `reservations`) needs true: you override it knowingly. "
        "Without it such a grant is refused (409 reservation_not_confirmed) and nothing "
        "changes.",
    )


class HolderConsentGrantApi(APIView):
    service = staticmethod(consent_grant)
    input_class: type[serializers.Serializer] = RecordingConsentGrantInput

    @extend_schema(request=RecordingConsentGrantInput, responses=HolderConsentDetailApi.Output)
    def post(self, request: Request, holder_id: int, recording_id: int) -> Response:
        holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
        recording = selectors.holder_recording_get(holder=holder, recording_id=recording_id)
        data = validated_input(self.input_class, request.data)
        self.service(actor=request.user, holder=holder, recording=recording, **data)
        return Response(consent_detail(holder, recording))


class HolderConsentRevokeApi(HolderConsentGrantApi):
    service = staticmethod(consent_revoke)
    input_class = ConsentChangeInput

    @extend_schema(request=ConsentChangeInput, responses=HolderConsentDetailApi.Output)
    def post(self, request: Request, holder_id: int, recording_id: int) -> Response:
        return super().post(request, holder_id, recording_id)


# --- musical works ------------------------------------------------------------------------------


class StaffForWrites(BasePermission):
    """Reads for everyone signed in; writes for staff (`StaffOnly`'s error and reason)."""

    def has_permission(self, request, view) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return StaffOnly().has_permission(request, view)


class WorkFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="title", lookup_expr="icontains",
                                  label="Title contains")  # fmt: skip
    iswc = django_filters.CharFilter(method="by_iswc", label="ISWC (with or without separators)")

    class Meta:
        model = Work
        fields: list[str] = []

    def by_iswc(self, queryset, name, value):
        return queryset.filter(iswc=iswc_checked(value))


class WorkShareInput(serializers.Serializer):
    holder = IdField()
    role = serializers.ChoiceField(choices=WorkShare.Role.choices)
    basis_points = serializers.IntegerField(min_value=1, max_value=TOTAL_BASIS_POINTS)


class WorkLinkInput(serializers.Serializer):
    work = IdField()
    basis_points = serializers.IntegerField(min_value=1, max_value=TOTAL_BASIS_POINTS)


class WorkLinksInput(serializers.ListSerializer):
    """The whole body is a list of links (empty: the recording embodies no work)."""

    child = WorkLinkInput()


class WorkListApi(generics.ListAPIView):
    """Works with their shares and recordings (GET: everyone signed in, like recordings and
    their holders' shares; POST: the rights team registers a work)."""

    class Input(serializers.Serializer):
        title = TextField()
        iswc = TextField(
            max_length=20, required=False, allow_blank=True, allow_null=True, default=None,
            help_text="ISO 15707, e.g. T-034.524.680-1 (stored as T0345246801)",
        )  # fmt: skip
        shares = WorkShareInput(
            many=True, allow_empty=False, max_length=100,
            help_text="writers' and publishers' shares, summing to 10,000 basis points",
        )  # fmt: skip

    serializer_class = WorkOutput
    filterset_class = WorkFilter
    permission_classes = [IsAuthenticated, StaffForWrites]
    staff_reason = "only the platform's rights team (staff) may register works"

    def get_queryset(self):
        return selectors.works_all()

    @extend_schema(request=Input, responses={201: WorkOutput})
    def post(self, request: Request) -> Response:
        data = validated_input(self.Input, request.data)
        shares = data["shares"]
        holders = selectors.holders_by_ids(holder_ids=[s["holder"] for s in shares])
        unknown = sorted({s["holder"] for s in shares} - set(holders))
        if unknown:
            raise InvalidInput(
                f"unknown rights holder(s): {', '.join(map(str, unknown))}",
                details={"holder": unknown},
            )
        work = work_create(
            actor=request.user,
            title=data["title"],
            iswc=data["iswc"],
            shares=[
                WorkShareSpec(holders[s["holder"]], s["role"], s["basis_points"]) for s in shares
            ],
        )
        return Response(
            WorkOutput(selectors.work_get(work_id=work.pk)).data, status=status.HTTP_201_CREATED
        )


class WorkDetailApi(APIView):
    @extend_schema(responses=WorkOutput)
    def get(self, request: Request, work_id: int) -> Response:
        return Response(WorkOutput(selectors.work_get(work_id=work_id)).data)


class RecordingWorksApi(APIView):
    """Staff: replace the works a recording embodies (a medley: several, summing to 10,000;
    an empty list unlinks it)."""

    permission_classes = [IsAuthenticated, StaffOnly]
    staff_reason = "only the platform's rights team (staff) may link recordings to works"

    @extend_schema(request=WorkLinkInput(many=True), responses=EmbodiedWorkOutput(many=True))
    def put(self, request: Request, recording_id: int) -> Response:
        recording = selectors.recording_get(recording_id=recording_id)
        links = validated_input(WorkLinksInput, request.data)
        ids = [link["work"] for link in links]
        if len(set(ids)) != len(ids):
            raise InvalidInput("a work appears twice among the links", details={"work": ids})
        works = selectors.works_by_ids(work_ids=ids)
        unknown = sorted(set(ids) - set(works))
        if unknown:
            raise InvalidInput(
                f"unknown work(s): {', '.join(map(str, unknown))}", details={"work": unknown}
            )
        recording_works_set(
            actor=request.user,
            recording=recording,
            works={works[link["work"]]: link["basis_points"] for link in links},
        )
        embodied = selectors.recordings_works(recording_ids=[recording.pk])[recording.pk]
        return Response(EmbodiedWorkOutput(embodied, many=True).data)


class HolderWorkListApi(generics.ListAPIView):
    """The holder's works with its current consent for each (members and staff)."""

    class Output(serializers.Serializer):
        work = WorkOutput(source="*")
        consent = serializers.SerializerMethodField()

        @extend_schema_field(ConsentVersionOutput(allow_null=True))
        def get_consent(self, work: Work) -> dict | None:
            version = self.context["current"].get(work.pk)
            return ConsentVersionOutput(version).data if version else None

    serializer_class = Output

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the types
            return Work.objects.none()
        self.holder = selectors.holder_readable_by(
            user=self.request.user, holder_id=self.kwargs["holder_id"]
        )
        return selectors.holder_works(holder=self.holder)

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        holder = getattr(self, "holder", None)
        context["current"] = (
            selectors.holder_current_work_consents(holder=holder) if holder is not None else {}
        )
        return context


class HolderWorkConsentApi(APIView):
    """The holder's consent for one of its works: current, history, and what all of the
    work's writers and publishers agree on (recordings embodying it also need their masters)."""

    class Output(serializers.Serializer):
        work = WorkOutput()
        current = ConsentVersionOutput(allow_null=True)
        history = ConsentVersionOutput(many=True)
        effective = EffectiveConsentOutput()

    @extend_schema(responses=Output)
    def get(self, request: Request, holder_id: int, work_id: int) -> Response:
        holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
        work = selectors.holder_work_get(holder=holder, work_id=work_id)
        return Response(work_consent_detail(holder, work))


def work_consent_detail(holder: RightsHolder, work: Work) -> dict:
    effective = selectors.work_effective_consent(work=work)
    return HolderWorkConsentApi.Output(
        {
            "work": work,
            "current": selectors.consent_current(holder=holder, work=work),
            "history": selectors.consent_history(holder=holder, work=work),
            "effective": {"uses": effective.uses, "distributions": effective.distributions},
        }
    ).data


class HolderWorkConsentGrantApi(APIView):
    service = staticmethod(consent_grant)

    @extend_schema(request=ConsentChangeInput, responses=HolderWorkConsentApi.Output)
    def post(self, request: Request, holder_id: int, work_id: int) -> Response:
        holder = selectors.holder_readable_by(user=request.user, holder_id=holder_id)
        work = selectors.holder_work_get(holder=holder, work_id=work_id)
        data = validated_input(ConsentChangeInput, request.data)
        self.service(actor=request.user, holder=holder, work=work, **data)
        return Response(work_consent_detail(holder, work))


class HolderWorkConsentRevokeApi(HolderWorkConsentGrantApi):
    service = staticmethod(consent_revoke)
