"""Fixtures shared by the catalogue's tests (musical works: tests/catalog/test_works*.py)."""

import pytest

from catalog.services.rights import rights_holder_add_member, rights_holder_create
from catalog.services.works import WorkShareSpec, work_create
from tests.catalog.retrieval_fixtures import embedded_catalogue, tiny_checkpoint  # noqa: F401


@pytest.fixture
def writer_and_publisher(make_user):
    writer_member, publisher_member = make_user("writer-member"), make_user("publisher-member")
    writer = rights_holder_create(name="Ada Writer", kind="person", ipi="00014107338")
    publisher = rights_holder_create(name="Demo Publishing", kind="organisation", ipi="00052210040")
    rights_holder_add_member(holder=writer, user=writer_member)
    rights_holder_add_member(holder=publisher, user=publisher_member)
    return {"writer": writer, "publisher": publisher,
            "writer_member": writer_member, "publisher_member": publisher_member}  # fmt: skip


@pytest.fixture
def work(staff, writer_and_publisher):
    return work_create(
        actor=staff,
        title="Shared Theme",
        iswc="T-034.524.680-1",
        shares=[
            WorkShareSpec(writer_and_publisher["writer"], "composer", 5_000),
            WorkShareSpec(writer_and_publisher["publisher"], "publisher", 5_000),
        ],
    )
