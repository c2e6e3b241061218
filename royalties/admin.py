"""Read-only views of prices, splits and the ledger: every change goes through the services
(which validate it) or the API, never through a form that could edit history."""

from django.contrib import admin

from catalog.admin import ReadOnlyAdmin
from royalties.models import (
    Account,
    LedgerEntry,
    LedgerTransaction,
    PriceFloor,
    PriceList,
    PriceTier,
    SplitPolicy,
    Statement,
)


class PriceTierInline(admin.TabularInline):
    model = PriceTier
    extra = 0
    can_delete = False
    readonly_fields = ["level", "distribution", "amount_minor"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PriceList)
class PriceListAdmin(ReadOnlyAdmin):
    list_display = ["currency", "effective_from", "note", "created_by"]
    inlines = [PriceTierInline]


@admin.register(SplitPolicy)
class SplitPolicyAdmin(ReadOnlyAdmin):
    list_display = [
        "effective_from", "direct_bp", "tda_pool_bp", "auxiliary_bp", "platform_bp",
        "publishing_bp", "auxiliary_modules",
    ]  # fmt: skip


@admin.register(PriceFloor)
class PriceFloorAdmin(ReadOnlyAdmin):
    """Floors are set by holders' members (portal, API); the history is append-only."""

    list_display = ["holder", "recording", "level", "distribution", "amount_minor", "currency",
                    "created_at", "created_by"]  # fmt: skip
    list_filter = ["currency", "level", "distribution"]


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["kind", "holder", "currency"]
    list_filter = ["kind", "currency"]


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    extra = 0
    can_delete = False
    fields = ["account", "amount_minor", "component", "holder", "recording"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ["key", "kind", "generation_ref", "currency", "booked_at"]
    list_filter = ["kind", "currency"]
    search_fields = ["key", "generation_ref"]
    inlines = [LedgerEntryInline]


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdmin):
    list_display = ["holder", "period", "currency", "total_minor", "closed_at"]
    list_filter = ["period", "currency"]
