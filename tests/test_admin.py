"""Staff can open the admin for every model; consent history is read-only there."""

import pytest
from django.contrib import admin

from catalog.models import ConsentVersion

pytestmark = pytest.mark.django_db


def test_every_catalog_model_has_a_working_admin_page(client, staff, co_held):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    catalog_models = [m for m in admin.site._registry if m._meta.app_label == "catalog"]
    assert len(catalog_models) == 8
    for model in catalog_models:
        url = f"/admin/catalog/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url


def test_consent_versions_cannot_be_edited_in_admin(client, staff):
    staff.is_superuser = True
    staff.save()
    model_admin = admin.site._registry[ConsentVersion]
    request = type("Request", (), {"user": staff})()
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert not model_admin.has_add_permission(request)


def test_royalty_admin_pages_open_and_are_read_only(client, staff):
    from royalties.models import LedgerTransaction, Statement

    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    models = [m for m in admin.site._registry if m._meta.app_label == "royalties"]
    assert len(models) == 5
    for model in models:
        url = f"/admin/royalties/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url
    request = type("Request", (), {"user": staff})()
    for model in (LedgerTransaction, Statement):
        model_admin = admin.site._registry[model]
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)
