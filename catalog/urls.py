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
    path(
        "recordings/<int:recording_id>/training-mining/",
        api.RecordingTrainingMiningApi.as_view(),
        name="recording-training-mining",
    ),
    path(
        "recordings/<int:recording_id>/works/",
        api.RecordingWorksApi.as_view(),
        name="recording-works",
    ),
    path("works/", api.WorkListApi.as_view(), name="work-list"),
    path("works/<int:work_id>/", api.WorkDetailApi.as_view(), name="work-detail"),
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
    path(
        "holders/<int:holder_id>/works/",
        api.HolderWorkListApi.as_view(),
        name="holder-work-list",
    ),
    path(
        "holders/<int:holder_id>/works/<int:work_id>/consent/",
        api.HolderWorkConsentApi.as_view(),
        name="holder-work-consent",
    ),
    path(
        "holders/<int:holder_id>/works/<int:work_id>/consent/grant/",
        api.HolderWorkConsentGrantApi.as_view(),
        name="holder-work-consent-grant",
    ),
    path(
        "holders/<int:holder_id>/works/<int:work_id>/consent/revoke/",
        api.HolderWorkConsentRevokeApi.as_view(),
        name="holder-work-consent-revoke",
    ),
    path("browse/<str:kind>/", browse_api.BrowseApi.as_view(), name="catalogue-browse"),
    path("search/", browse_api.SearchApi.as_view(), name="catalogue-search"),
    path(
        "search/autocomplete/",
        browse_api.AutocompleteApi.as_view(),
        name="catalogue-autocomplete",
    ),
]
