from django.urls import path

from generation import api

urlpatterns = [
    path("", api.GenerationListCreateApi.as_view(), name="generations"),
    path("verify/", api.VerifyApi.as_view(), name="verify"),
    path("models/", api.ModelVersionListApi.as_view(), name="model-versions"),
    path("<uuid:uid>/", api.GenerationDetailApi.as_view(), name="generation"),
    path("<uuid:uid>/audio/", api.GenerationAudioApi.as_view(), name="generation-audio"),
    path(
        "<uuid:uid>/provenance/",
        api.GenerationProvenanceApi.as_view(),
        name="generation-provenance",
    ),
]
