from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from catalog.models import (
    Artist,
    ConsentReservation,
    ConsentReservationOverride,
    ConsentVersion,
    CurrentConsent,
    EncoderVersion,
    Recording,
    RecordingWork,
    Release,
    RightsHolder,
    RightsHolderMembership,
    RightsShare,
    Work,
    WorkShare,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Consent history is append-only: changes go through the consent services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RightsShareInline(admin.TabularInline):
    """Read-only here: shares are set through `rights_shares_set`, which validates the sum."""

    model = RightsShare
    extra = 0
    can_delete = False
    readonly_fields = ["holder", "basis_points"]

    def has_add_permission(self, request, obj=None):
        return False


class WorkShareInline(admin.TabularInline):
    """Read-only here: a work's shares are set through `work_shares_set` (the sum, roles and
    publishers' IPI are checked, and the recordings' consent masks follow)."""

    model = WorkShare
    extra = 0
    can_delete = False
    readonly_fields = ["holder", "role", "basis_points"]

    def has_add_permission(self, request, obj=None):
        return False


class RecordingWorkInline(admin.TabularInline):
    """Read-only here: links are set through `recording_works_set` (sum and consent masks)."""

    model = RecordingWork
    extra = 0
    can_delete = False
    readonly_fields = ["recording", "work", "basis_points"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Artist)
class ArtistAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ["title", "artist", "year"]
    search_fields = ["title", "artist__name"]


@admin.register(Recording)
class RecordingAdmin(admin.ModelAdmin):
    list_display = ["title", "artist", "genre", "subgenre", "year", "duration_seconds", "isrc"]
    list_filter = ["genre", "mode"]
    search_fields = ["title", "artist__name", "isrc"]
    readonly_fields = ["content_sha256", "descriptors", "created_at"]
    inlines = [RightsShareInline, RecordingWorkInline]
    actions = ["check_integrity"]

    @admin.action(description="Check stored audio against its content hash (Celery)")
    def check_integrity(self, request, queryset):
        from catalog.tasks import recording_check_integrity

        for recording_id in queryset.values_list("pk", flat=True):
            recording_check_integrity.delay(recording_id)
        self.message_user(request, f"Queued integrity checks for {queryset.count()} recording(s).")


class MembershipInline(admin.TabularInline):
    model = RightsHolderMembership
    extra = 0


@admin.register(RightsHolder)
class RightsHolderAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "ipi"]
    search_fields = ["name", "ipi"]
    inlines = [MembershipInline]


@admin.register(RightsShare)
class RightsShareAdmin(ReadOnlyAdmin):
    list_display = ["recording", "holder", "basis_points"]
    search_fields = ["recording__title", "holder__name"]


@admin.register(Work)
class WorkAdmin(admin.ModelAdmin):
    """Works are registered through `work_create` (the API or the importer), which checks the
    ISWC and the shares; here staff may correct a title."""

    list_display = ["title", "iswc", "created_at"]
    search_fields = ["title", "iswc", "shares__holder__name"]
    readonly_fields = ["iswc", "created_at"]
    inlines = [WorkShareInline, RecordingWorkInline]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WorkShare)
class WorkShareAdmin(ReadOnlyAdmin):
    list_display = ["work", "holder", "role", "basis_points"]
    list_filter = ["role"]
    search_fields = ["work__title", "holder__name"]


@admin.register(RecordingWork)
class RecordingWorkAdmin(ReadOnlyAdmin):
    list_display = ["recording", "work", "basis_points"]
    search_fields = ["recording__title", "work__title"]


@admin.register(ConsentVersion)
class ConsentVersionAdmin(ReadOnlyAdmin):
    list_display = [
        "recording",
        "work",
        "holder",
        "number",
        "granted",
        "revoked",
        "changed_by",
        "created_at",
    ]
    list_filter = ["training", "song_inference", "commercial"]
    search_fields = ["recording__title", "work__title", "holder__name"]


@admin.register(CurrentConsent)
class CurrentConsentAdmin(ReadOnlyAdmin):
    list_display = ["recording", "work", "holder", "version"]


@admin.register(RightsHolderMembership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["holder", "user", "created_at"]


@admin.register(ConsentReservation)
class ConsentReservationAdmin(ReadOnlyAdmin):
    """Recorded at import from the file's XMP or the metadata file; append-only."""

    list_display = ["recording", "source", "value", "policy", "created_at"]
    list_filter = ["source"]
    search_fields = ["recording__title", "value"]


@admin.register(ConsentReservationOverride)
class ConsentReservationOverrideAdmin(ReadOnlyAdmin):
    """A holder's confirmed override, with the consent version that granted training."""

    list_display = ["recording", "holder", "version", "confirmed_by", "created_at"]
    search_fields = ["recording__title", "holder__name"]


@admin.register(EncoderVersion)
class EncoderVersionAdmin(ReadOnlyAdmin):
    """Registered by the encoder services; each linked to its training-content summary."""

    list_display = ["__str__", "is_active", "created_at", "training_summary"]
    list_filter = ["is_active", "name"]
    exclude = ["training_manifest", "quality", "config"]
    readonly_fields = ["training_summary"]

    @admin.display(description="Training content")
    def training_summary(self, obj: EncoderVersion) -> str:
        return format_html(
            '<a href="{}">training-content summary</a> (<a href="{}">JSON</a>)',
            reverse("training-summary", args=["encoder", obj.pk, "html"]),
            reverse("training-summary", args=["encoder", obj.pk, "json"]),
        )
