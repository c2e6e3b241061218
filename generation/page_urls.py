"""Pages of the song-selection studio (HTML; the REST API is in urls.py)."""

from django.urls import path

from generation import views

urlpatterns = [
    path("", views.studio, name="studio"),
    path("generations/", views.generation_list, name="studio-generations"),
    path("generations/<uuid:uid>/", views.generation_receipt, name="studio-generation"),
    path("quality/", views.generator_quality, name="generator-quality"),
    path(
        "quality/<int:model_version_id>/<str:name>",
        views.generator_quality_file,
        name="generator-quality-file",
    ),
    # staff: what each learned module was trained on (generator and encoder versions)
    path("training/", views.training_summaries, name="training-summaries"),
    path(
        "training/<str:kind>/<int:version_id>/summary.<str:fmt>",
        views.training_summary_document,
        name="training-summary",
    ),
]
