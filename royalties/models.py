"""Royalties: versioned prices and fee splits, a double-entry ledger, monthly statements.

Money is integer minor units with an ISO 4217 currency. Ledger transactions, their entries and
closed statements are append-only; the database refuses UPDATE and DELETE on them and checks at
commit that every transaction's entries sum to zero in one currency (migration 0002).
Corrections are reversal transactions.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from catalog.models import Distribution, Level, Recording, RightsHolder, Work


class PriceList(models.Model):
    """One version of the price tiers of a currency, in force from `effective_from` until the
    next version. A generation is charged at the version in force when it was verified."""

    currency = models.CharField(max_length=3)
    effective_from = models.DateTimeField()
    note = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["currency", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["currency", "effective_from"], name="price_list_one_per_instant"
            )
        ]

    def __str__(self) -> str:
        return f"prices {self.currency} from {self.effective_from:%Y-%m-%d %H:%M}"


class PriceTier(models.Model):
    price_list = models.ForeignKey(PriceList, on_delete=models.PROTECT, related_name="tiers")
    level = models.CharField(max_length=16, choices=Level.choices)
    distribution = models.CharField(max_length=16, choices=Distribution.choices)
    amount_minor = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["price_list", "level", "distribution"], name="price_tier_unique"
            ),
            models.CheckConstraint(
                condition=Q(amount_minor__gte=0), name="price_tier_amount_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.level}/{self.distribution}: {self.amount_minor}"


class PriceFloor(models.Model):
    """A holder's least price for a generation that uses its recording at a level and
    distribution: for one recording, or (recording empty) the holder's default for all of
    them. Append-only: the latest row per holder, recording, level, distribution and currency
    is in force from its `created_at`; an amount of 0 lifts the floor."""

    holder = models.ForeignKey(RightsHolder, on_delete=models.PROTECT, related_name="price_floors")
    recording = models.ForeignKey(
        Recording, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    level = models.CharField(max_length=16, choices=Level.choices)
    distribution = models.CharField(max_length=16, choices=Distribution.choices)
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["holder", "recording", "level", "distribution", "-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_minor__gte=0), name="price_floor_amount_gte_0"
            ),
        ]

    def __str__(self) -> str:
        scope = f"recording {self.recording_id}" if self.recording_id else "all recordings"
        return (
            f"floor of {self.holder} for {scope}, {self.level}/{self.distribution}: "
            f"{self.amount_minor} {self.currency}"
        )


# Seed 004 section 7: the creators of the data behind every learned module a generation used
# are paid. The generator learned the music; the encoder placed the references and the prompt
# in its space; the pretrained text tower was trained outside the platform.
DEFAULT_AUXILIARY_MODULES = {"generator": 6_000, "conditioning_encoder": 3_000, "text_tower": 1_000}


def default_auxiliary_modules() -> dict[str, int]:
    return dict(DEFAULT_AUXILIARY_MODULES)


class SplitPolicy(models.Model):
    """How each fee is divided, in basis points (sum 10,000), from `effective_from` on; and
    how what a recording earns is divided between its master holders and the writers and
    publishers of the works it embodies (`publishing_bp`; the master side gets the rest).
    Policies published before the publishing side existed keep 0 (masters took it all)."""

    effective_from = models.DateTimeField(unique=True)
    direct_bp = models.PositiveIntegerField()
    tda_pool_bp = models.PositiveIntegerField()
    auxiliary_bp = models.PositiveIntegerField()
    platform_bp = models.PositiveIntegerField()
    publishing_bp = models.PositiveIntegerField(default=5_000)
    # how the auxiliary part is divided over the modules a generation used, by kind (basis
    # points summing to 10,000, renormalised over the kinds present); policies from before
    # modules were recorded keep {"generator": 10000}, the flat pool over its training set
    auxiliary_modules = models.JSONField(default=default_auxiliary_modules)
    note = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-effective_from"]
        verbose_name_plural = "split policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    direct_bp__gte=0, tda_pool_bp__gte=0, auxiliary_bp__gte=0, platform_bp__gte=0
                ),
                name="split_policy_parts_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(
                    direct_bp=10_000
                    - models.F("tda_pool_bp")
                    - models.F("auxiliary_bp")
                    - models.F("platform_bp")
                ),
                name="split_policy_sums_to_10000",
            ),
            models.CheckConstraint(
                condition=Q(publishing_bp__gte=0, publishing_bp__lte=10_000),
                name="split_policy_publishing_range",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"split from {self.effective_from:%Y-%m-%d}: direct {self.direct_bp}, "
            f"TDA {self.tda_pool_bp}, auxiliary {self.auxiliary_bp}, platform {self.platform_bp}; "
            f"publishing side {self.publishing_bp}"
        )


class Account(models.Model):
    class Kind(models.TextChoices):
        RECEIVABLE = "receivable", "Customer receivable"
        PLATFORM_REVENUE = "platform_revenue", "Platform revenue"
        HOLDER_PAYABLE = "holder_payable", "Payable to a rights holder"
        PENDING_TDA_POOL = "pending_tda_pool", "TDA pool awaiting attribution"
        UNALLOCATED = (
            "unallocated",
            ("Unallocated (no rights shares, no registered work or no training set)"),
        )
        PAYOUTS_HELD = "payouts_held", "Payouts held for review (audit flag or dispute)"
        EXTERNAL_CREATORS = (
            "external_creators",
            ("Creators of the data behind modules trained outside the platform (disclosed)"),
        )

    kind = models.CharField(max_length=24, choices=Kind.choices)
    holder = models.ForeignKey(
        RightsHolder, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts"
    )
    currency = models.CharField(max_length=3)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "holder", "currency"],
                name="account_unique",
                nulls_distinct=False,
            ),
            models.CheckConstraint(
                condition=Q(kind="holder_payable", holder__isnull=False)
                | (~Q(kind="holder_payable") & Q(holder__isnull=True)),
                name="account_holder_iff_payable",
            ),
        ]

    def __str__(self) -> str:
        owner = f" {self.holder}" if self.holder_id else ""
        return f"{self.get_kind_display()}{owner} ({self.currency})"


class LedgerTransaction(models.Model):
    """A balanced posting. `key` makes posting idempotent (one per generation and stage)."""

    class Kind(models.TextChoices):
        GENERATION_FEE = "generation_fee", "Generation fee"
        TDA_SETTLEMENT = "tda_settlement", "TDA pool settlement"
        REVERSAL = "reversal", "Reversal"
        PAYOUT_HOLD = "payout_hold", "Payouts held for review"
        # a dispute upheld: who a fee's part or a TDA settlement paid, corrected (the
        # original stays; the correction moves the money from the old payees to the new)
        FEE_CORRECTION = "fee_correction", "Correction of who a fee paid"
        TDA_CORRECTION = "tda_correction", "Correction of who a TDA settlement paid"

    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    generation_ref = models.CharField(max_length=64, blank=True, db_index=True)
    currency = models.CharField(max_length=3)
    booked_at = models.DateTimeField()
    memo = models.CharField(max_length=500, blank=True)
    price_list = models.ForeignKey(PriceList, null=True, blank=True, on_delete=models.PROTECT)
    split_policy = models.ForeignKey(SplitPolicy, null=True, blank=True, on_delete=models.PROTECT)
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    # A fee's model training set (recording ids): a TDA settlement may pay only these.
    training_recording_ids = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["booked_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.key}"


class Component(models.TextChoices):
    """Why money moved, for reports: ITA (direct), TDA, auxiliary pool, and the other sides."""

    FEE = "fee", "Fee charged"
    ITA = "ita", "Direct reference payout (inference-time attribution)"
    TDA = "tda", "Training-time attribution payout"
    TDA_POOL = "tda_pool", "TDA pool"
    AUXILIARY = "auxiliary", "Auxiliary-module payout"
    PLATFORM = "platform", "Platform"
    UNALLOCATED = "unallocated", "Unallocated"


class Side(models.TextChoices):
    """Which rights in a song money pays: the recording (master) or the composition."""

    MASTER = "master", "Master (recording)"
    PUBLISHING = "publishing", "Publishing (composition)"


class LedgerEntry(models.Model):
    """One side of a transaction: positive debits, negative credits (payables are credited).
    Holder, recording, work, side, generation and booking time are copied in for the payout
    reports."""

    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="entries"
    )
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    component = models.CharField(max_length=16, choices=Component.choices)
    holder = models.ForeignKey(
        RightsHolder, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    recording = models.ForeignKey(
        Recording, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    side = models.CharField(max_length=16, choices=Side.choices, blank=True)
    module = models.CharField(
        max_length=100, blank=True, help_text="the module an auxiliary payout is for"
    )
    work = models.ForeignKey(
        Work, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    generation_ref = models.CharField(max_length=64, blank=True)
    level = models.CharField(max_length=16, choices=Level.choices, blank=True)
    distribution = models.CharField(max_length=16, choices=Distribution.choices, blank=True)
    booked_at = models.DateTimeField()

    class Meta:
        ordering = ["pk"]
        verbose_name_plural = "ledger entries"
        indexes = [
            # covering: payout reports aggregate a holder's month from the index alone
            models.Index(
                fields=["holder", "currency", "booked_at"],
                name="entry_holder_period",
                include=["recording", "component", "amount_minor", "generation_ref",
                         "level", "distribution"],
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.amount_minor:+d} {self.currency} {self.account}"


class Statement(models.Model):
    """A holder's closed month: the totals frozen when the period was closed."""

    holder = models.ForeignKey(RightsHolder, on_delete=models.PROTECT, related_name="statements")
    period = models.DateField(help_text="first day of the month")
    currency = models.CharField(max_length=3)
    ita_minor = models.BigIntegerField()
    tda_minor = models.BigIntegerField()
    auxiliary_minor = models.BigIntegerField()
    total_minor = models.BigIntegerField()
    # the same total by side; None on statements closed before the publishing side existed
    master_minor = models.BigIntegerField(null=True, blank=True)
    publishing_minor = models.BigIntegerField(null=True, blank=True)
    auxiliary_by_module = models.JSONField(default=dict, blank=True)
    entry_count = models.PositiveIntegerField()
    entries_sha256 = models.CharField(max_length=64)
    closed_at = models.DateTimeField(auto_now_add=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)

    class Meta:
        ordering = ["-period", "holder"]
        constraints = [
            models.UniqueConstraint(
                fields=["holder", "period", "currency"], name="statement_one_per_period"
            ),
            models.CheckConstraint(
                condition=Q(
                    total_minor=models.F("ita_minor")
                    + models.F("tda_minor")
                    + models.F("auxiliary_minor")
                ),
                name="statement_total_is_sum",
            ),
            models.CheckConstraint(
                condition=Q(master_minor__isnull=True, publishing_minor__isnull=True)
                | Q(total_minor=models.F("master_minor") + models.F("publishing_minor")),
                name="statement_sides_sum_to_total",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.holder} {self.period:%Y-%m} {self.total_minor} {self.currency}"
