"""Dispute pages (HTML; the REST API is in urls.py): a holder's disputes in the portal, a
generation's in the studio, one dispute with its chain, and the staff list."""

from django.urls import path

from disputes import views

urlpatterns = [
    path("portal/holders/<int:holder_id>/disputes/", views.holder_disputes, name="portal-disputes"),
    path(
        "studio/generations/<uuid:uid>/disputes/",
        views.generation_disputes,
        name="studio-generation-disputes",
    ),
    path("disputes/<int:dispute_id>/", views.dispute_page, name="dispute"),
    path("disputes/<int:dispute_id>/evidence", views.dispute_evidence, name="dispute-evidence"),
    path("attribution/disputes/", views.staff_disputes, name="staff-disputes"),
]
