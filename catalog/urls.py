from django.urls import path

from catalog import api, browse_api

urlpatterns = [
    path("recordings/", api.RecordingListApi.as_view(), name="recording-list"),
    path(
        "recordings/<int:recording_id>/", api.RecordingDetailApi.as_view(), name="recording-detail"
    ),
    path(
        "recordings/<int:recording_id>/audio/",
        api.RecordingAudioApi.as_view(),
        name="recording-audio",
    ),
    path("artists/", api.ArtistListApi.as_view(), name="artist-list"),
    path("releases/", api.ReleaseListApi.as_view(), name="release-list"),
    path("holders/", api.HolderListApi.as_view(), name="holder-list"),
    path(
        "holders/<int:holder_id>/consents/",
        api.HolderConsentListApi.as_view(),
        name="holder-consent-list",
    ),
    path(
        "holders/<int:holder_id>/consents/<int:recording_id>/",
        api.HolderConsentDetailApi.as_view(),
        name="holder-consent-detail",
    ),
    path(
        "holders/<int:holder_id>/consents/<int:recording_id>/grant/",
        api.HolderConsentGrantApi.as_view(),
        name="holder-consent-grant",
    ),
    path(
        "holders/<int:holder_id>/consents/<int:recording_id>/revoke/",
        api.HolderConsentRevokeApi.as_view(),
        name="holder-consent-revoke",
    ),
    path("browse/<str:kind>/", browse_api.BrowseApi.as_view(), name="catalogue-browse"),
    path("search/", browse_api.SearchApi.as_view(), name="catalogue-search"),
    path(
        "search/autocomplete/",
        browse_api.AutocompleteApi.as_view(),
        name="catalogue-autocomplete",
    ),
]
