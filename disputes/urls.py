"""The disputes API, mounted at /api/attribution/disputes/ (config/urls.py)."""

from django.urls import path

from disputes import api

urlpatterns = [
    path("", api.DisputeListCreateApi.as_view(), name="disputes"),
    path("verify/", api.DisputeChainVerifyApi.as_view(), name="verify"),
    path("<int:dispute_id>/", api.DisputeDetailApi.as_view(), name="dispute"),
    path("<int:dispute_id>/notes/", api.DisputeNoteApi.as_view(), name="note"),
    path("<int:dispute_id>/resolve/", api.DisputeResolveApi.as_view(), name="resolve"),
    path("<int:dispute_id>/evidence/", api.DisputeEvidenceApi.as_view(), name="evidence"),
]
