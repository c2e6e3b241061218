"""Read-only view of the attribution log: records are only ever appended by the service."""

from django.contrib import admin

from attribution_log.models import AttributionRecord
from catalog.admin import ReadOnlyAdmin


@admin.register(AttributionRecord)
class AttributionRecordAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "kind", "generation_ref", "created_at", "record_hash"]
    list_filter = ["kind"]
    search_fields = ["=generation_ref", "=record_hash"]
    readonly_fields = [
        "sequence", "kind", "generation_ref", "payload", "payload_sha256", "previous_hash",
        "record_hash", "created_at",
    ]  # fmt: skip
