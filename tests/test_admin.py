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
    assert len(catalog_models) == 14  # with works, encoder versions and reservations
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
    from royalties.models import LedgerTransaction, PriceFloor, Statement

    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    models = [m for m in admin.site._registry if m._meta.app_label == "royalties"]
    assert len(models) == 6  # with holder-set price floors
    for model in models:
        url = f"/admin/royalties/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url
    request = type("Request", (), {"user": staff})()
    for model in (LedgerTransaction, Statement, PriceFloor):
        model_admin = admin.site._registry[model]
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)


def test_works_are_shown_in_admin_but_shares_and_links_only_change_through_services(
    client, staff, co_held
):
    from catalog.models import RecordingWork, Work, WorkShare
    from catalog.services.works import WorkShareSpec, recording_works_set, work_create

    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    work = work_create(
        actor=staff, title="Admin Theme",
        shares=[WorkShareSpec(co_held["holder_a"], "composer", 10_000)],
    )  # fmt: skip
    recording_works_set(actor=staff, recording=co_held["recording"], works={work: 10_000})
    page = client.get(f"/admin/catalog/work/{work.pk}/change/").content.decode()
    assert "Admin Theme" in page and "Holder A" in page and "Shared Song" in page
    recording_page = client.get(f"/admin/catalog/recording/{co_held['recording'].pk}/change/")
    assert "Admin Theme" in recording_page.content.decode()
    request = type("Request", (), {"user": staff})()
    assert not admin.site._registry[Work].has_add_permission(request)
    for model in (WorkShare, RecordingWork):
        model_admin = admin.site._registry[model]
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_add_permission(request)
    for inline in admin.site._registry[Work].inlines:
        assert not inline(Work, admin.site).has_add_permission(request)
