"""Model versions in the admin: read-only (they are registered by the training and install
services), each linked to its training-content summary."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from generation.models import ModelVersion


def summary_links(kind: str, pk: int) -> str:
    return format_html(
        '<a href="{}">training-content summary</a> (<a href="{}">JSON</a>)',
        reverse("training-summary", args=[kind, pk, "html"]),
        reverse("training-summary", args=[kind, pk, "json"]),
    )


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "encoder", "is_active", "created_at", "training_summary"]
    list_filter = ["is_active"]
    search_fields = ["name", "version"]
    exclude = ["training_manifest", "training_recording_ids", "quality", "config"]
    readonly_fields = ["training_summary"]

    @admin.display(description="Training content")
    def training_summary(self, obj: ModelVersion) -> str:
        return summary_links("generator", obj.pk)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
