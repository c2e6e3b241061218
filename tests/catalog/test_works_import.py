"""Musical works in the curated metadata (a JSON `works` section or a works CSV): checked
before any audio is imported (a bad file imports nothing), registered through the works
services afterwards, and idempotent like the rest of the import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.import_metadata import MetadataError, MetadataIndex, load_metadata, load_works_csv
from catalog.models import ConsentVersion, Recording, RecordingWork, RightsHolder, Work
from catalog.services.importing import ImportOutcome
from catalog.services.rights import rights_holder_create
from catalog.services.works_import import works_import_apply, works_import_check
from tests.conftest import REAL_OGG, excerpt_of, require_real_audio

pytestmark = pytest.mark.django_db

ADA = {"holder": "Ada Writer", "ipi": "00014107338", "role": "composer", "basis_points": 5000}
PUBLISHING = {"holder": "Demo Publishing", "ipi": "00052210040", "role": "publisher",
              "basis_points": 5000}  # fmt: skip


def works_json() -> list[dict]:
    """'Opening' (50/50 writer and publisher) on two files; 'Interlude' shares the second
    file with it (a medley: 6,000 + 4,000)."""
    return [
        {"title": "Opening", "iswc": "T-034.524.680-1", "shares": [ADA, PUBLISHING],
         "recordings": {"sub/opening.wav": 10_000, "medley.wav": 6_000}},
        {"title": "Interlude",
         "shares": [{"holder": "Ada Writer", "role": "composer_lyricist", "basis_points": 10_000}],
         "recordings": {"medley.wav": 4_000}},
    ]  # fmt: skip


@pytest.fixture
def folder(tmp_path) -> Path:
    """Two short real recordings."""
    require_real_audio(REAL_OGG)
    root = tmp_path / "incoming"
    (root / "sub").mkdir(parents=True)
    excerpt_of(REAL_OGG, root / "sub" / "opening.wav", seconds=4, offset=20)
    excerpt_of(REAL_OGG, root / "medley.wav", seconds=4, offset=60)
    return root


def write_json(tmp_path: Path, works: object, **more) -> Path:
    path = tmp_path / "meta.json"
    path.write_text(json.dumps({"works": works, **more}))
    return path


def links_of(path_end: str) -> dict[str, int]:
    recording = Recording.objects.get(source_filename__endswith=path_end)
    return dict(
        RecordingWork.objects.filter(recording=recording).values_list("work__title", "basis_points")
    )


def test_works_in_the_json_are_registered_after_the_import_and_a_rerun_changes_nothing(
    folder, tmp_path, staff, capsys
):
    metadata = write_json(tmp_path, works_json())
    call_command("import_catalogue", str(folder), "--metadata", str(metadata),
                 "--staff", staff.username, "--jobs", "1")  # fmt: skip
    out = capsys.readouterr().out
    assert "Works: 2 registered, 0 with new shares, 2 rights holder(s) created, 2 recording(s)" in (
        out
    )
    opening = Work.objects.get(title="Opening")
    assert opening.iswc == "T0345246801"
    assert set(opening.shares.values_list("holder__name", "role", "basis_points")) == {
        ("Ada Writer", "composer", 5000), ("Demo Publishing", "publisher", 5000),
    }  # fmt: skip
    kinds = dict(RightsHolder.objects.values_list("name", "kind"))
    assert kinds == {"Ada Writer": "person", "Demo Publishing": "organisation"}
    assert RightsHolder.objects.get(name="Demo Publishing").ipi == "00052210040"
    assert links_of("opening.wav") == {"Opening": 10_000}
    assert links_of("medley.wav") == {"Opening": 6_000, "Interlude": 4_000}
    assert not ConsentVersion.objects.exists()  # nobody has consented for the works yet

    call_command("import_catalogue", str(folder), "--metadata", str(metadata),
                 "--staff", staff.username, "--jobs", "1")  # fmt: skip
    assert "Works: 0 registered, 0 with new shares, 0 rights holder(s) created, 0 recording(s)" in (
        capsys.readouterr().out
    )
    assert Work.objects.count() == 2 and RecordingWork.objects.count() == 3
    assert Recording.objects.count() == 2


BAD_WORKS = [
    ([{**works_json()[0], "iswc": "T-034.524.680-9"}], "check digit"),
    ([{**works_json()[0], "shares": [ADA, {**PUBLISHING, "basis_points": 4000}]}],
     "sum to exactly 10000"),
    ([{**works_json()[0], "recordings": {"elsewhere.wav": 10_000}}],
     "'elsewhere.wav' is not an audio file"),
    ([{**works_json()[0], "shares": [{**ADA, "role": "drummer", "basis_points": 10_000}]}],
     "role of 'Ada Writer'"),
    ([{**works_json()[0], "shares": [ADA, {**PUBLISHING, "ipi": ""}]}],
     "publisher 'Demo Publishing' has no IPI"),
    ([{**works_json()[0], "shares": [{**ADA, "ipi": "12-34", "basis_points": 10_000}]}],
     "9 to 11 digits"),
    ([works_json()[0]], "work links must sum to exactly 10000"),  # medley.wav: 6,000 only
    ([{**works_json()[0], "recordings": {"sub/opening.wav": 5_000, "opening.wav": 5_000}}],
     "'opening.wav' is linked to this work twice"),
    ([works_json()[0], {**works_json()[1], "iswc": "T0345246801"}], "is also given to"),
    ([{**works_json()[0], "shares": [{**ADA, "basis_points": "half"}]}], "whole number"),
    ([{**works_json()[0], "tempo": 120}], "unknown field(s) tempo"),
    ({"title": "not a list"}, "'works' must be a list"),
]  # fmt: skip


@pytest.mark.parametrize(("works", "fragment"), BAD_WORKS)
def test_bad_works_stop_the_import_before_anything_is_imported(
    folder, tmp_path, staff, works, fragment
):
    metadata = write_json(tmp_path, works)
    with pytest.raises(CommandError) as refused:
        call_command("import_catalogue", str(folder), "--metadata", str(metadata),
                     "--staff", staff.username, "--jobs", "1")  # fmt: skip
    assert fragment in str(refused.value), str(refused.value)
    assert not Recording.objects.exists() and not Work.objects.exists()
    assert not RightsHolder.objects.exists()


def test_works_need_a_staff_user_and_a_file_the_metadata_skips_cannot_be_linked(
    folder, tmp_path, staff, make_user
):
    metadata = write_json(tmp_path, works_json())
    for who in ("", make_user("not-staff").username):
        with pytest.raises(CommandError, match="--staff USERNAME"):
            call_command("import_catalogue", str(folder), "--metadata", str(metadata),
                         "--staff", who)  # fmt: skip
    skipping = write_json(tmp_path, works_json(), files={"medley.wav": {"skip": True}})
    with pytest.raises(CommandError, match="'medley.wav' is skipped by the metadata"):
        call_command("import_catalogue", str(folder), "--metadata", str(skipping),
                     "--staff", staff.username)  # fmt: skip
    assert not Recording.objects.exists() and not Work.objects.exists()


def test_an_existing_holder_with_another_ipi_or_a_registered_iswc_on_another_title_is_refused(
    folder, tmp_path, staff
):
    rights_holder_create(name="Ada Writer", kind="person", ipi="00000000001")
    with pytest.raises(MetadataError, match="registered with IPI '00000000001'"):
        works_import_check(works=load_metadata(write_json(tmp_path, works_json())).works,
                           folder=folder, metadata=MetadataIndex())  # fmt: skip
    RightsHolder.objects.filter(name="Ada Writer").update(ipi="00014107338")
    plan = works_import_check(
        works=load_metadata(write_json(tmp_path, works_json())).works,
        folder=folder, metadata=MetadataIndex(),
    )  # fmt: skip
    works_import_apply(actor=staff, plan=plan, folder=folder, outcomes=[])
    renamed = [{**works_json()[0], "title": "Opening (renamed)"}, works_json()[1]]
    with pytest.raises(MetadataError, match="T0345246801 is registered to the work 'Opening'"):
        works_import_check(works=load_metadata(write_json(tmp_path, renamed)).works,
                           folder=folder, metadata=MetadataIndex())  # fmt: skip


CSV_HEADER = "work_title,iswc,holder,ipi,role,basis_points,recording_path,link_basis_points\n"


def test_a_works_csv_gives_the_same_works_and_new_shares_update_an_existing_work(
    folder, tmp_path, staff, make_recording
):
    csv_path = tmp_path / "works.csv"
    csv_path.write_text(
        CSV_HEADER
        + "Opening,T-034.524.680-1,Ada Writer,00014107338,composer,5000,sub/opening.wav,\n"
        + "Opening,T-034.524.680-1,Demo Publishing,00052210040,publisher,5000,medley.wav,6000\n"
        + "Interlude,,Ada Writer,,composer_lyricist,10000,,\n"
        + "Interlude,,,,,,medley.wav,4000\n"
    )
    works = load_works_csv(csv_path)
    assert [(w.title, len(w.shares), dict(w.recordings)) for w in works] == [
        ("Opening", 2, {"sub/opening.wav": 10_000, "medley.wav": 6_000}),
        ("Interlude", 1, {"medley.wav": 4_000}),
    ]
    plan = works_import_check(works=works, folder=folder, metadata=MetadataIndex())
    opening, medley = make_recording("Opening"), make_recording("Medley")
    outcomes = [
        ImportOutcome(folder / "sub" / "opening.wav", "imported", opening.pk),
        ImportOutcome(folder / "medley.wav", "duplicate", medley.pk),
    ]
    result = works_import_apply(actor=staff, plan=plan, folder=folder, outcomes=outcomes)
    assert (result.works_created, result.holders_created, result.recordings_linked) == (2, 2, 2)
    assert dict(medley.work_links.values_list("work__title", "basis_points")) == {
        "Opening": 6_000, "Interlude": 4_000,
    }  # fmt: skip

    # the file now gives Opening to the writer alone: its shares are replaced
    csv_path.write_text(
        CSV_HEADER
        + "Opening,T0345246801,Ada Writer,,composer,10000,sub/opening.wav,10000\n"
        + "Opening,T0345246801,,,,,medley.wav,6000\n"
        + "Interlude,,Ada Writer,,composer_lyricist,10000,medley.wav,4000\n"
    )
    plan = works_import_check(
        works=load_works_csv(csv_path), folder=folder, metadata=MetadataIndex()
    )
    result = works_import_apply(actor=staff, plan=plan, folder=folder, outcomes=outcomes)
    assert (result.works_created, result.works_updated, result.recordings_linked) == (0, 1, 0)
    assert list(
        Work.objects.get(title="Opening").shares.values_list("holder__name", flat=True)
    ) == ["Ada Writer"]
    # a file that did not import is reported, not linked
    result = works_import_apply(actor=staff, plan=plan, folder=folder, outcomes=outcomes[:1])
    assert sorted(result.not_imported) == ["medley.wav", "medley.wav"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("work_title,holder\nOpening,Ada\n", "lacks column(s)"),
        (CSV_HEADER + "Opening,,,,,,,\n", "needs a holder (a share) or a recording_path"),
        (CSV_HEADER + ",,Ada,,composer,10000,,\n", "work_title is empty"),
        (CSV_HEADER + "Opening,,Ada,,composer,lots,,\n", "whole number"),
        (CSV_HEADER + "Opening,,Ada,,composer,10000,a.wav,\nOpening,,,,,,a.wav,\n", "twice"),
    ],
)
def test_works_csv_errors_are_clear(tmp_path, content, fragment):
    path = tmp_path / "works.csv"
    path.write_text(content)
    with pytest.raises(MetadataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_works_csv(path)


def test_the_command_reads_a_works_csv_and_checks_it_first(folder, tmp_path, staff):
    csv_path = tmp_path / "works.csv"
    csv_path.write_text(CSV_HEADER + "Opening,T-034.524.680-2,Ada,,composer,10000,medley.wav,\n")
    with pytest.raises(CommandError, match="check digit"):
        call_command("import_catalogue", str(folder), "--works-csv", str(csv_path),
                     "--staff", staff.username)  # fmt: skip
    assert not Recording.objects.exists() and not Work.objects.exists()
