"""Read-only views of disputes: they change only through the dispute services."""

from django.contrib import admin

from catalog.admin import ReadOnlyAdmin
from disputes.models import Dispute, DisputeEvent


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = ["pk", "subject", "status", "generation_ref", "recording", "holder", "deadline"]
    list_filter = ["status", "subject"]
    search_fields = ["=generation_ref", "=item"]


@admin.register(DisputeEvent)
class DisputeEventAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "dispute", "kind", "actor", "created_at", "record_hash"]
    list_filter = ["kind"]
