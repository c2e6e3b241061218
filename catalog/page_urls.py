"""Pages of the rights-holder consent portal (HTML; the REST API is in urls.py)."""

from django.urls import path

from catalog import views

urlpatterns = [
    path("", views.portal_home, name="portal"),
]
