from django.urls import path

from catalog.retrieval import api

urlpatterns = [
    path("text/", api.TextRetrievalApi.as_view(), name="retrieval-text"),
    path("categories/", api.CategoryRetrievalApi.as_view(), name="retrieval-categories"),
    path("audio/", api.AudioRetrievalApi.as_view(), name="retrieval-audio"),
    path(
        "recordings/<int:recording_id>/alternatives/",
        api.AlternativesApi.as_view(),
        name="retrieval-alternatives",
    ),
]
