"""The consent-tagged catalogue: recordings, who holds their rights, and what each holder allows.

Consent is append-only: every change is a new `ConsentVersion` (a database trigger rejects
UPDATE and DELETE on that table); `CurrentConsent` only points at the latest version per
recording and holder so that retrieval can filter by consent inside one SQL query.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from pgvector.django import HalfVectorField, HnswIndex

ISRC_PATTERN = r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$"
IPI_PATTERN = r"^[0-9]{9,11}$"
TOTAL_BASIS_POINTS = 10_000

isrc_validator = RegexValidator(
    ISRC_PATTERN,
    "ISRC must be 12 characters: country (2 letters), registrant (3 letters/digits), "
    "year (2 digits), designation (5 digits), e.g. GBAYE0601498, without dashes.",
    code="invalid_isrc",
)
ipi_validator = RegexValidator(
    IPI_PATTERN, "IPI name number must be 9 to 11 digits.", "invalid_ipi"
)
# ISWC (ISO 15707) stored without separators: T-034.524.680-1 -> T0345246801
ISWC_PATTERN = r"^T[0-9]{10}$"


def iswc_check_digit(nine_digits: str) -> int:
    """ISO 15707: 1 + sum of each digit times its position (1-9), then (10 - sum mod 10) mod 10."""
    total = 1 + sum(position * int(digit) for position, digit in enumerate(nine_digits, 1))
    return (10 - total % 10) % 10


def iswc_normalised(value: str) -> str:
    """'T-034.524.680-1' or 't0345246801' -> 'T0345246801'; raises ValidationError when the
    format or the check digit is wrong."""
    from django.core.exceptions import ValidationError

    compact = "".join(ch for ch in str(value).strip().upper() if ch not in "-. ")
    if not re.fullmatch(ISWC_PATTERN, compact):
        raise ValidationError(
            f"ISWC must be 'T' and 10 digits (e.g. T-034.524.680-1), got {value!r}",
            code="invalid_iswc",
        )
    if iswc_check_digit(compact[1:10]) != int(compact[10]):
        raise ValidationError(
            f"ISWC {value!r} has a wrong check digit (expected {iswc_check_digit(compact[1:10])})",
            code="invalid_iswc",
        )
    return compact


def iswc_validator(value: str) -> None:
    iswc_normalised(value)


class Use(models.TextChoices):
    """What a recording may be used for (seed 004, Table 1)."""

    TRAINING = "training", "Model training"
    SONG_INFERENCE = "song_inference", "Song-level inference"
    PARAMETER_INFERENCE = "parameter_inference", "Parameter-level inference"
    AUDIO_INFERENCE = "audio_inference", "Audio-level inference"


class Distribution(models.TextChoices):
    """How outputs conditioned on a recording may be distributed (seed 004, Table 2)."""

    PRIVATE = "private", "Private use"
    NON_COMMERCIAL = "non_commercial", "Non-commercial distribution"
    COMMERCIAL = "commercial", "Commercial distribution"


class Level(models.TextChoices):
    """How a reference conditions a generation (seed 004 section 4.1.1), least intrusive first."""

    SONG = "song", "Song-level"
    PARAMETER = "parameter", "Parameter-level"
    AUDIO = "audio", "Audio-level"
    TEMPORAL = "temporal", "Temporal (segment) level"


# Effective consent as bits, one per use and distribution in this order, stored on the
# embedding rows (`consent_mask`) so a vector search filters inside the index scan. Appending a
# name is safe; inserting or reordering one needs a migration that recomputes every mask.
CONSENT_BIT_NAMES: tuple[str, ...] = (*Use.values, *Distribution.values)


def consent_bits(names) -> int:
    """The mask with the bits of `names` (uses and distributions) set."""
    mask = 0
    for name in names:
        mask |= 1 << CONSENT_BIT_NAMES.index(name)
    return mask


def consent_masks_with(required: int) -> list[int]:
    """Every mask value carrying the `required` bits, for `consent_mask IN (...)`: unlike a
    bit-test expression (guessed at 0.5% selectivity, so the planner skipped the vector
    index), the planner estimates it from the column's statistics, and a partial index with
    the same predicate serves it."""
    return [m for m in range(1 << len(CONSENT_BIT_NAMES)) if m & required == required]


# The consent use each level needs: a temporal reference transforms the audio itself.
LEVEL_USES = {
    Level.SONG: Use.SONG_INFERENCE,
    Level.PARAMETER: Use.PARAMETER_INFERENCE,
    Level.AUDIO: Use.AUDIO_INFERENCE,
    Level.TEMPORAL: Use.AUDIO_INFERENCE,
}

# Mediated selection asks for a level's use at one distribution: each such pair gets a partial
# HNSW index over the windows it permits, so a consent-filtered search walks a graph of
# permitted windows only (a filter inside one shared graph had to visit ~10 windows per
# permitted one at 10% permitted: p95 78 ms at 100k windows, docs/retrieval.md).
SEARCH_INDEX_USES = {Use.SONG_INFERENCE: "song", Use.PARAMETER_INFERENCE: "param",
                     Use.AUDIO_INFERENCE: "audio"}  # fmt: skip
SEARCH_INDEX_DISTRIBUTIONS = {Distribution.PRIVATE: "priv", Distribution.NON_COMMERCIAL: "noncom",
                              Distribution.COMMERCIAL: "com"}  # fmt: skip


def consent_search_indexes() -> list[HnswIndex]:
    return [
        HnswIndex(
            name=f"window_hnsw_{use_code}_{distribution_code}",
            fields=["embedding"],
            m=32,
            ef_construction=128,
            opclasses=["halfvec_cosine_ops"],
            condition=Q(consent_mask__in=consent_masks_with(consent_bits([use, distribution]))),
        )
        for use, use_code in SEARCH_INDEX_USES.items()
        for distribution, distribution_code in SEARCH_INDEX_DISTRIBUTIONS.items()
    ]


class Artist(models.Model):
    name = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [  # trigram index: search, autocomplete and icontains (UPPER(...) LIKE)
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="artist_name_trgm")
        ]

    def __str__(self) -> str:
        return self.name


class Release(models.Model):
    """An album or other release that groups recordings."""

    title = models.CharField(max_length=255)
    artist = models.ForeignKey(Artist, on_delete=models.PROTECT, related_name="releases")
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]
        constraints = [
            models.UniqueConstraint(fields=["title", "artist"], name="release_unique_per_artist")
        ]
        indexes = [
            GinIndex(OpClass(Upper("title"), name="gin_trgm_ops"), name="release_title_trgm")
        ]

    def __str__(self) -> str:
        return self.title


def recording_upload_path(instance: Recording, filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1].lower()
    digest = instance.content_sha256
    return f"recordings/{digest[:2]}/{digest}.{suffix}"


class Recording(models.Model):
    title = models.CharField(max_length=255)
    artist = models.ForeignKey(Artist, on_delete=models.PROTECT, related_name="recordings")
    release = models.ForeignKey(
        Release, on_delete=models.PROTECT, null=True, blank=True, related_name="recordings"
    )
    isrc = models.CharField(
        "ISRC", max_length=12, unique=True, null=True, blank=True, validators=[isrc_validator]
    )
    duration_seconds = models.FloatField()
    audio_file = models.FileField(upload_to=recording_upload_path, max_length=255)
    audio_format = models.CharField(max_length=16)
    sample_rate = models.PositiveIntegerField()
    channels = models.PositiveSmallIntegerField()
    content_sha256 = models.CharField(max_length=64, unique=True)

    genre = models.CharField(max_length=100, blank=True)
    subgenre = models.CharField(max_length=100, blank=True)
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    instruments = models.JSONField(default=list, blank=True)
    moods = models.JSONField(default=list, blank=True)
    tempo_bpm = models.FloatField(null=True, blank=True)
    musical_key = models.CharField(max_length=3, blank=True)
    mode = models.CharField(max_length=5, blank=True)
    descriptors = models.JSONField(
        default=dict, blank=True, help_text="Audio descriptors measured at import."
    )

    source = models.CharField(max_length=255, blank=True, help_text="Where it was imported from.")
    source_filename = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["artist__name", "title"]
        indexes = [
            models.Index(fields=["genre", "subgenre"]),
            models.Index(fields=["year"]),
            GinIndex(OpClass(Upper("title"), name="gin_trgm_ops"), name="recording_title_trgm"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(isrc__isnull=True) | Q(isrc__regex=ISRC_PATTERN),
                name="recording_isrc_format",
            ),
            models.CheckConstraint(
                condition=Q(duration_seconds__gt=0), name="recording_duration_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.artist} - {self.title}"


class RightsHolder(models.Model):
    class Kind(models.TextChoices):
        PERSON = "person", "Person"
        ORGANISATION = "organisation", "Organisation"

    name = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    ipi = models.CharField("IPI name number", max_length=11, blank=True, validators=[ipi_validator])
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="RightsHolderMembership", related_name="rights_holders"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ipi="") | Q(ipi__regex=IPI_PATTERN), name="holder_ipi_format"
            )
        ]

    def __str__(self) -> str:
        return self.name


class RightsHolderMembership(models.Model):
    """A user who may act for a rights holder (change its consent, read its reports)."""

    holder = models.ForeignKey(RightsHolder, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["holder", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} acts for {self.holder}"


class RightsShare(models.Model):
    """A holder's share of a recording in basis points. A recording's shares sum to 10,000:
    a deferred constraint trigger checks it at commit (migration 0002)."""

    recording = models.ForeignKey(Recording, on_delete=models.PROTECT, related_name="shares")
    holder = models.ForeignKey(RightsHolder, on_delete=models.PROTECT, related_name="shares")
    basis_points = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(TOTAL_BASIS_POINTS)]
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["recording", "holder"], name="share_unique"),
            models.CheckConstraint(
                condition=Q(basis_points__gte=1) & Q(basis_points__lte=TOTAL_BASIS_POINTS),
                name="share_basis_points_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.holder}: {self.basis_points} bp of recording {self.recording_id}"


class Work(models.Model):
    """A musical work (a composition): what writers and publishers hold, as a recording's
    master holders hold the recording. Its shares sum to 10,000 (deferred trigger, migration
    0008); the recordings that embody it are linked by `RecordingWork`."""

    title = models.CharField(max_length=255)
    iswc = models.CharField(
        "ISWC", max_length=11, unique=True, null=True, blank=True, validators=[iswc_validator]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]
        constraints = [
            models.CheckConstraint(
                condition=Q(iswc__isnull=True) | Q(iswc__regex=ISWC_PATTERN),
                name="work_iswc_format",
            )
        ]

    def __str__(self) -> str:
        return self.title


class WorkShare(models.Model):
    """A writer's or publisher's share of a work in basis points (the work's sum is 10,000)."""

    class Role(models.TextChoices):
        COMPOSER = "composer", "Composer"
        LYRICIST = "lyricist", "Lyricist"
        COMPOSER_LYRICIST = "composer_lyricist", "Composer and lyricist"
        PUBLISHER = "publisher", "Publisher"

    work = models.ForeignKey(Work, on_delete=models.PROTECT, related_name="shares")
    holder = models.ForeignKey(RightsHolder, on_delete=models.PROTECT, related_name="work_shares")
    role = models.CharField(max_length=20, choices=Role.choices)
    basis_points = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(TOTAL_BASIS_POINTS)]
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["work", "holder"], name="work_share_unique"),
            models.CheckConstraint(
                condition=Q(basis_points__gte=1) & Q(basis_points__lte=TOTAL_BASIS_POINTS),
                name="work_share_basis_points_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.holder} ({self.role}): {self.basis_points} bp of work {self.work_id}"


class RecordingWork(models.Model):
    """A recording embodies a work; a medley embodies several, and its publishing side is
    divided over them by these basis points (sum 10,000 per recording, deferred trigger)."""

    recording = models.ForeignKey(Recording, on_delete=models.PROTECT, related_name="work_links")
    work = models.ForeignKey(Work, on_delete=models.PROTECT, related_name="recording_links")
    basis_points = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(TOTAL_BASIS_POINTS)]
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["recording", "work"], name="recording_work_unique"),
            models.CheckConstraint(
                condition=Q(basis_points__gte=1) & Q(basis_points__lte=TOTAL_BASIS_POINTS),
                name="recording_work_basis_points_range",
            ),
        ]

    def __str__(self) -> str:
        return f"recording {self.recording_id} embodies work {self.work_id} ({self.basis_points})"


# A consent row is about a recording (its master holders) or a work (its writers and
# publishers), never both: one table keeps one id sequence, so the consent versions a
# generation relied on are one list whichever side they came from.
ONE_SUBJECT = Q(recording__isnull=False, work__isnull=True) | Q(
    recording__isnull=True, work__isnull=False
)


class ConsentVersion(models.Model):
    """One immutable state of a holder's consent for one recording or one work.

    Field names equal the `Use` and `Distribution` values, so selectors can filter by them.
    """

    recording = models.ForeignKey(
        Recording, on_delete=models.PROTECT, null=True, blank=True, related_name="consent_versions"
    )
    work = models.ForeignKey(
        Work, on_delete=models.PROTECT, null=True, blank=True, related_name="consent_versions"
    )
    holder = models.ForeignKey(
        RightsHolder, on_delete=models.PROTECT, related_name="consent_versions"
    )
    number = models.PositiveIntegerField()

    training = models.BooleanField(default=False)
    song_inference = models.BooleanField(default=False)
    parameter_inference = models.BooleanField(default=False)
    audio_inference = models.BooleanField(default=False)
    private = models.BooleanField(default=False)
    non_commercial = models.BooleanField(default=False)
    commercial = models.BooleanField(default=False)

    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    granted = models.JSONField(default=list, help_text="Uses/distributions switched on.")
    revoked = models.JSONField(default=list, help_text="Uses/distributions switched off.")
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["recording_id", "holder_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["recording", "holder", "number"], name="consent_version_unique"
            ),
            models.UniqueConstraint(
                fields=["work", "holder", "number"], name="work_consent_version_unique"
            ),
            models.CheckConstraint(condition=ONE_SUBJECT, name="consent_version_one_subject"),
        ]

    def __str__(self) -> str:
        subject = f"recording {self.recording_id}" if self.recording_id else f"work {self.work_id}"
        return f"consent v{self.number} of {self.holder} for {subject}"

    def permits(self, name: str) -> bool:
        return bool(getattr(self, name))


class CurrentConsent(models.Model):
    """Pointer to the latest `ConsentVersion` per (recording or work, holder); written only
    by services."""

    recording = models.ForeignKey(
        Recording, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    work = models.ForeignKey(
        Work, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    holder = models.ForeignKey(RightsHolder, on_delete=models.PROTECT, related_name="+")
    version = models.OneToOneField(ConsentVersion, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["recording", "holder"], name="current_consent_unique"),
            models.UniqueConstraint(fields=["work", "holder"], name="current_work_consent_unique"),
            models.CheckConstraint(condition=ONE_SUBJECT, name="current_consent_one_subject"),
        ]

    def __str__(self) -> str:
        subject = f"recording {self.recording_id}" if self.recording_id else f"work {self.work_id}"
        return f"current consent of {self.holder} for {subject}"


class ConsentReservation(models.Model):
    """A reservation of text-and-data-mining rights that came with a recording: an IPTC/PLUS
    Data Mining prohibition or a TDMRep reservation in its file's XMP, or a TDMRep reservation
    in the import's metadata file. Recorded when the recording is imported, before anyone can
    consent for it; while it exists the consent services grant training for the recording only
    to a holder who confirms overriding it (`ConsentReservationOverride`)."""

    class Source(models.TextChoices):
        XMP_DATA_MINING = "xmp_data_mining", "IPTC Data Mining (plus:DataMining) in the file's XMP"
        XMP_TDMREP = "xmp_tdmrep", "TDMRep reservation (tdm:reservation) in the file's XMP"
        METADATA_TDMREP = "metadata_tdmrep", "TDMRep reservation in the import's metadata file"

    recording = models.ForeignKey(Recording, on_delete=models.PROTECT, related_name="reservations")
    source = models.CharField(max_length=32, choices=Source.choices)
    value = models.CharField(max_length=255, help_text="As written: the PLUS value URI, or 1.")
    policy = models.CharField(max_length=500, blank=True, help_text="tdm-policy URL, if given.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recording_id", "source"]
        constraints = [
            models.UniqueConstraint(fields=["recording", "source"], name="reservation_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} on recording {self.recording_id}: {self.value}"


class ConsentReservationOverride(models.Model):
    """A holder's explicit confirmation that its training grant overrides the recording's
    reservations: one per consent version that granted training on a reserved recording."""

    recording = models.ForeignKey(Recording, on_delete=models.PROTECT, related_name="+")
    holder = models.ForeignKey(RightsHolder, on_delete=models.PROTECT, related_name="+")
    version = models.OneToOneField(
        ConsentVersion, on_delete=models.PROTECT, related_name="reservation_override"
    )
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recording_id", "created_at"]

    def __str__(self) -> str:
        return f"{self.holder} overrode the reservation on recording {self.recording_id}"


# --- Audio-text embeddings (retrieval, conditioning, similarity audit) -----------------------

EMBEDDING_DIM = 512  # every encoder projects into a 512-d joint space (LAION-CLAP's size)


class EncoderVersion(models.Model):
    """One trained audio-text encoder. Every embedding row points at the version it came from,
    so switching encoders never mixes vectors from two embedding spaces."""

    name = models.CharField(max_length=64)
    version = models.CharField(max_length=64)
    config = models.JSONField(default=dict, help_text="Encoder config the model is rebuilt from.")
    checkpoint_path = models.CharField(max_length=500)
    checkpoint_sha256 = models.CharField(max_length=64)
    training_manifest = models.JSONField(
        default=dict, blank=True, help_text="What it was trained on (empty for pretrained)."
    )
    quality = models.JSONField(default=dict, blank=True, help_text="Held-out recall figures.")
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="encoder_version_unique"),
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_encoder"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class RecordingWindowEmbedding(models.Model):
    """Embedding of one window of a recording (10 s for retrieval and conditioning)."""

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="+")
    encoder = models.ForeignKey(EncoderVersion, on_delete=models.PROTECT, related_name="+")
    window_seconds = models.FloatField()
    start_seconds = models.FloatField()
    embedding = HalfVectorField(dimensions=EMBEDDING_DIM)
    # the recording's effective consent (`consent_bits`), kept in step by the consent and
    # rights services in the same transaction (`catalog.services.consent_masks`)
    consent_mask = models.PositiveSmallIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["recording", "encoder", "window_seconds", "start_seconds"],
                name="window_embedding_unique",
            )
        ]
        indexes = [
            # m=32/ef_construction=128: at 1M windows m=16/64 could not reach recall@10 0.95
            # within pgvector's ef_search range (bench_retrieval); twice the build time.
            HnswIndex(
                name="window_embedding_hnsw",
                fields=["embedding"],
                m=32,
                ef_construction=128,
                opclasses=["halfvec_cosine_ops"],
            ),
            models.Index(fields=["encoder", "recording"], name="window_embedding_enc_rec"),
            *consent_search_indexes(),
        ]

    def __str__(self) -> str:
        return f"recording {self.recording_id} @ {self.start_seconds:g} s ({self.encoder_id})"


class RecordingEmbedding(models.Model):
    """Track-level vector of a recording: the normalised mean of its window embeddings."""

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="+")
    encoder = models.ForeignKey(EncoderVersion, on_delete=models.PROTECT, related_name="+")
    window_count = models.PositiveIntegerField()
    embedding = HalfVectorField(dimensions=EMBEDDING_DIM)
    # the recording's effective consent (`consent_bits`), kept in step by the consent and
    # rights services in the same transaction (`catalog.services.consent_masks`)
    consent_mask = models.PositiveSmallIntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["recording", "encoder"], name="recording_embedding_unique"
            )
        ]
        indexes = [
            HnswIndex(
                name="recording_embedding_hnsw",
                fields=["embedding"],
                m=32,
                ef_construction=128,
                opclasses=["halfvec_cosine_ops"],
            )
        ]

    def __str__(self) -> str:
        return f"track vector of recording {self.recording_id} ({self.encoder_id})"
