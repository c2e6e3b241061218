"""Pages of the rights-holder consent portal (HTML; the REST API is in urls.py)."""

from django.urls import path

from catalog import views

urlpatterns = [
    path("", views.portal_home, name="portal"),
    path("holders/<int:holder_id>/", views.holder_recordings, name="portal-holder"),
    path(
        "holders/<int:holder_id>/consents/bulk/",
        views.consent_bulk_change,
        name="portal-consent-bulk",
    ),
    path(
        "holders/<int:holder_id>/recordings/<int:recording_id>/consent/",
        views.recording_consent_change,
        name="portal-consent-change",
    ),
    path(
        "holders/<int:holder_id>/recordings/<int:recording_id>/history/",
        views.recording_consent_history,
        name="portal-consent-history",
    ),
    path("holders/<int:holder_id>/works/", views.holder_works, name="portal-works"),
    path(
        "holders/<int:holder_id>/works/<int:work_id>/consent/",
        views.work_consent_change,
        name="portal-work-consent-change",
    ),
    path(
        "holders/<int:holder_id>/works/<int:work_id>/history/",
        views.work_consent_history,
        name="portal-work-consent-history",
    ),
]
