"""Musical works from a curated metadata file, around an audio import.

`works_import_check` runs before any audio is imported and checks everything that can be
checked then (ISWC format and check digit, roles, publishers' IPI, share sums, holders'
IPI against the catalogue, that every linked file is an audio file of the folder that the
metadata does not skip, and that each file's links sum to 10,000), so a bad file imports
nothing. `works_import_apply` runs after the audio import, as a staff member, through the
works services: missing holders are created, new works registered, existing ones (same
ISWC; without an ISWC, same title) get the file's shares, and each imported file gets the
file's links. Running the same file again changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from catalog.import_metadata import MetadataError, MetadataIndex, WorkEntry
from catalog.models import IPI_PATTERN, Recording, RecordingWork, RightsHolder, Work, WorkShare
from catalog.services.importing import ImportOutcome, audio_files_in
from catalog.services.rights import basis_points_check, rights_holder_create
from catalog.services.works import (
    WorkShareSpec,
    iswc_checked,
    recording_works_set,
    work_create,
    work_shares_check,
    work_shares_set,
)
from config.exceptions import DomainError, Forbidden


@dataclass(frozen=True)
class PlannedWork:
    title: str
    iswc: str | None
    existing: Work | None
    shares: tuple[tuple[str, str, int], ...]  # (holder name, role, basis points)
    recordings: tuple[tuple[str, int], ...]  # (path relative to the folder, basis points)


@dataclass(frozen=True)
class WorksPlan:
    """What a metadata file's works will do, checked; holders by name (None: to create)."""

    works: tuple[PlannedWork, ...]
    holders: dict[str, RightsHolder | None]
    new_holders: dict[str, RightsHolder]  # unsaved, with kind and IPI


@dataclass
class WorksImportResult:
    holders_created: int = 0
    works_created: int = 0
    works_updated: int = 0
    recordings_linked: int = 0
    not_imported: list[str] = field(default_factory=list)  # linked files that did not import


def works_import_check(
    *, works: Sequence[WorkEntry], folder: Path, metadata: MetadataIndex
) -> WorksPlan:
    """The file's works, checked against the folder and the catalogue; `MetadataError`
    naming the work (or file) otherwise."""
    files = _audio_files(Path(folder))
    holders, new_holders = _holders(works)
    planned: list[PlannedWork] = []
    seen_iswcs: dict[str, str] = {}
    links: dict[str, dict[str, int]] = {}
    for entry in works:
        iswc = _checked(entry.where, lambda e=entry: iswc_checked(e.iswc))
        if iswc and iswc in seen_iswcs:
            raise MetadataError(f"{entry.where}: ISWC {iswc} is also given to {seen_iswcs[iswc]}")
        if iswc:
            seen_iswcs[iswc] = entry.where
        specs = [
            WorkShareSpec(holders[s.holder] or new_holders[s.holder], s.role, s.basis_points)
            for s in entry.shares
        ]
        _checked(entry.where, lambda specs=specs: work_shares_check(specs))
        recordings = []
        for path, basis_points in entry.recordings:
            relative = _file_of(path, files, folder, entry.where)
            if metadata.for_file(relative).get("skip"):
                raise MetadataError(f"{entry.where}: '{path}' is skipped by the metadata")
            if entry.where in links.setdefault(relative, {}):
                raise MetadataError(f"{entry.where}: '{path}' is linked to this work twice")
            links[relative][entry.where] = basis_points
            recordings.append((relative, basis_points))
        planned.append(
            PlannedWork(
                title=entry.title,
                iswc=iswc,
                existing=_existing_work(entry, iswc),
                shares=tuple((s.holder, s.role, s.basis_points) for s in entry.shares),
                recordings=tuple(recordings),
            )
        )
    for relative, parts in links.items():
        _checked(f"file '{relative}'", lambda parts=parts: basis_points_check(parts, "work link"))
    return WorksPlan(works=tuple(planned), holders=holders, new_holders=new_holders)


def works_import_apply(
    *,
    actor: AbstractBaseUser,
    plan: WorksPlan,
    folder: Path,
    outcomes: Iterable[ImportOutcome],
) -> WorksImportResult:
    """Create holders and works and link the imported files, in one transaction."""
    if not getattr(actor, "is_staff", False):
        raise Forbidden("only the platform's rights team (staff) may register works")
    folder = Path(folder)
    recording_ids = {
        str(o.path.relative_to(folder)): o.recording_id for o in outcomes if o.recording_id
    }
    result = WorksImportResult()
    with transaction.atomic():
        holders = dict(plan.holders)
        for name, unsaved in plan.new_holders.items():
            holders[name] = rights_holder_create(name=name, kind=unsaved.kind, ipi=unsaved.ipi)
            result.holders_created += 1
        wanted_links: dict[int, dict[Work, int]] = {}
        for planned in plan.works:
            specs = [WorkShareSpec(holders[h], role, bp) for h, role, bp in planned.shares]
            work = planned.existing
            if work is None:
                work = work_create(
                    actor=actor, title=planned.title, shares=specs, iswc=planned.iswc
                )
                result.works_created += 1
            elif _shares_of(work) != {(s.holder.pk, s.role, s.basis_points) for s in specs}:
                work_shares_set(actor=actor, work=work, shares=specs)
                result.works_updated += 1
            for relative, basis_points in planned.recordings:
                recording_id = recording_ids.get(relative)
                if recording_id is None:
                    result.not_imported.append(relative)
                    continue
                wanted_links.setdefault(recording_id, {})[work] = basis_points
        for recording_id, works in wanted_links.items():
            current = set(
                RecordingWork.objects.filter(recording_id=recording_id).values_list(
                    "work_id", "basis_points"
                )
            )
            if current != {(w.pk, bp) for w, bp in works.items()}:
                recording = Recording.objects.get(pk=recording_id)
                recording_works_set(actor=actor, recording=recording, works=works)
                result.recordings_linked += 1
    return result


def _checked(where: str, check):
    """Run a service check, turning its 400 into the metadata file's error."""
    try:
        return check()
    except DomainError as exc:
        raise MetadataError(f"{where}: {exc.message}") from exc


def _audio_files(folder: Path) -> dict[str, list[str]]:
    """{relative path or bare file name: [relative paths]} of the folder's audio files."""
    files: dict[str, list[str]] = {}
    for path in audio_files_in(folder):
        relative = str(path.relative_to(folder))
        files.setdefault(relative, []).append(relative)
        if path.name != relative:
            files.setdefault(path.name, []).append(relative)
    return files


def _file_of(path: str, files: dict[str, list[str]], folder: Path, where: str) -> str:
    matches = files.get(path.strip().removeprefix("./"), [])
    if not matches:
        raise MetadataError(f"{where}: '{path}' is not an audio file in {folder}")
    if len(matches) > 1:
        raise MetadataError(
            f"{where}: '{path}' names several files ({', '.join(matches)}); give the path"
        )
    return matches[0]


def _holders(works: Sequence[WorkEntry]) -> tuple[dict, dict]:
    """The file's holders by name: existing ones (their IPI must agree with the file's) and
    new ones to create (an organisation when it publishes, else a person)."""
    named = {share.holder for entry in works for share in entry.shares}
    existing = {h.name: h for h in RightsHolder.objects.filter(name__in=named)}
    ipis: dict[str, str] = {}
    publishes: set[str] = set()
    for entry in works:
        for share in entry.shares:
            if share.ipi and not re.fullmatch(IPI_PATTERN, share.ipi):
                raise MetadataError(
                    f"{entry.where}: IPI of '{share.holder}' must be 9 to 11 digits, "
                    f"got '{share.ipi}'"
                )
            known = ipis.setdefault(share.holder, share.ipi)
            if share.ipi and known and share.ipi != known:
                raise MetadataError(
                    f"{entry.where}: '{share.holder}' is given IPI {share.ipi} here and "
                    f"{known} elsewhere in the file"
                )
            ipis[share.holder] = known or share.ipi
            if share.role == WorkShare.Role.PUBLISHER:
                publishes.add(share.holder)
            holder = existing.get(share.holder)
            if holder is not None and share.ipi and share.ipi != holder.ipi:
                raise MetadataError(
                    f"{entry.where}: rights holder '{holder.name}' is registered with IPI "
                    f"'{holder.ipi or 'none'}', the file gives {share.ipi}; correct the file "
                    "or the holder (admin) first"
                )
    new = {}
    for name in sorted(named - set(existing)):
        holder = RightsHolder(
            name=name,
            kind=RightsHolder.Kind.ORGANISATION if name in publishes else RightsHolder.Kind.PERSON,
            ipi=ipis.get(name, ""),
        )
        try:
            holder.full_clean()
        except ValidationError as exc:
            raise MetadataError(f"rights holder '{name[:80]}': {exc.messages[0]}") from exc
        new[name] = holder
    return {name: existing.get(name) for name in named}, new


def _existing_work(entry: WorkEntry, iswc: str | None) -> Work | None:
    """The catalogue's work with this ISWC (its title must agree), or without an ISWC the one
    ISWC-less work of this title."""
    if iswc:
        work = Work.objects.filter(iswc=iswc).first()
        if work is not None and work.title != entry.title:
            raise MetadataError(
                f"{entry.where}: ISWC {iswc} is registered to the work '{work.title}'"
            )
        return work
    same_title = list(Work.objects.filter(iswc__isnull=True, title=entry.title)[:2])
    if len(same_title) > 1:
        raise MetadataError(
            f"{entry.where}: several works without an ISWC are titled '{entry.title}'; "
            "give the ISWC"
        )
    return same_title[0] if same_title else None


def _shares_of(work: Work) -> set[tuple[int, str, int]]:
    return set(WorkShare.objects.filter(work=work).values_list("holder_id", "role", "basis_points"))
