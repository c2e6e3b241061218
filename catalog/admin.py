from django.contrib import admin

from catalog.models import (
    Artist,
    ConsentVersion,
    CurrentConsent,
    Recording,
    Release,
    RightsHolder,
    RightsHolderMembership,
    RightsShare,
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
    inlines = [RightsShareInline]
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


@admin.register(ConsentVersion)
class ConsentVersionAdmin(ReadOnlyAdmin):
    list_display = [
        "recording",
        "holder",
        "number",
        "granted",
        "revoked",
        "changed_by",
        "created_at",
    ]
    list_filter = ["training", "song_inference", "commercial"]
    search_fields = ["recording__title", "holder__name"]


@admin.register(CurrentConsent)
class CurrentConsentAdmin(ReadOnlyAdmin):
    list_display = ["recording", "holder", "version"]


@admin.register(RightsHolderMembership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["holder", "user", "created_at"]
