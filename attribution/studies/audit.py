"""Seed 003 section 5 on the platform's own catalogue and model (`manage.py audit_robustness`,
`manage.py audit_model`), with the product's pieces: the audit's clip space in pgvector, its
encoder version and calibration, and the generations' stored outputs.

- `robustness_study` (5.1): target clips of random catalogue recordings, perturbed (pitch
  shift, time stretch, white noise, three kinds of mash-up), embedded and searched against
  every catalogue clip; top-1/5/10 recall of the source recording per setting.
  "Outside audio" are recordings held out of the search for the whole study (every recording
  on this machine is in the demo catalogue), or files from `--outside-dir`.
- `model_study` (5.2): for N generations, the similarity of the output to its references and
  to its most similar training recording (Table 2), and the share of outputs with a training
  clip at or above each threshold (Table 3, k = 1 and k = 10).

Reports (CSV, JSON, PNG) go under TDA_STATE_DIR/reports/<command>-<UTC time>/, listed on the
staff reports page with the TDA studies.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from attribution.audit import AuditError, ClipSpec, best_matches
from attribution.audit.calibration import THRESHOLD_NAMES
from attribution.audit.plots import plot_model, plot_robustness
from attribution.audit.robustness import (
    Case,
    RobustnessConfig,
    describe,
    perturbed,
    recall_rows,
    threshold_table,
)
from attribution.models import ClipEmbedding
from attribution.services.audit import (
    EMBED_BATCH,
    audio_clip_vectors,
    audit_clip_spec,
    audit_encoder_version,
    clip_hits,
    clips_search,
    current_calibration,
)
from attribution.studies.context import Out, quiet, study_generations_make
from attribution.studies.reports import StudyReport, report_directory, write_csv, write_json
from catalog.audio.decoding import AudioDecodeError, load_mono
from catalog.encoders import AudioTextEncoder
from catalog.models import EncoderVersion, Recording
from catalog.retrieval.runtime import loaded_encoder
from config.exceptions import Conflict, DomainError, InvalidInput

AUDIO_SUFFIXES = (".ogg", ".opus", ".flac", ".wav", ".mp3")


def _encoder_and_spec(encoder: str | None, spec: ClipSpec | None):
    encoder_version = audit_encoder_version(encoder)
    spec = spec or audit_clip_spec()
    calibration = current_calibration(encoder_version=encoder_version, spec=spec)
    return encoder_version, loaded_encoder(encoder_version), spec, calibration


def _embed(encoder: AudioTextEncoder, clips: Sequence[np.ndarray]) -> np.ndarray:
    """One clip per call, as the audit embeds (see services.audit.EMBED_BATCH)."""
    stacked = np.stack(clips).astype(np.float32)
    return np.concatenate(
        [
            encoder.embed_audio(stacked[i : i + EMBED_BATCH])
            for i in range(0, len(stacked), EMBED_BATCH)
        ]
    )


def _rank(
    vector: np.ndarray,
    target: int,
    *,
    encoder_version: EncoderVersion,
    spec: ClipSpec,
    k: int,
    excluded: Sequence[int],
) -> int | None:
    hits = clip_hits(
        vector=vector,
        output_start=0.0,
        encoder_version=encoder_version,
        spec=spec,
        k=k,
        excluded_ids=excluded,
    )
    ranked = [m.recording_id for m in best_matches(hits, k=k)]
    return ranked.index(target) + 1 if target in ranked else None


# -- 5.1 robustness ----------------------------------------------------------------------------


@dataclass
class RobustnessOptions:
    recordings: int = 30
    held_out: int = 10  # recordings left out of the search: the "outside audio"
    generations: int = 20  # reference + output mash-ups
    outside_dir: str = ""
    seed: int = 0
    encoder: str | None = None
    quick: bool = False  # fewer settings per perturbation (tests, smoke runs)
    grid: RobustnessConfig = field(default_factory=RobustnessConfig)

    def __post_init__(self) -> None:
        if self.recordings < 1:
            raise InvalidInput("--recordings must be at least 1")
        if self.held_out < 0 or self.generations < 0:
            raise InvalidInput("--held-out and --generations must not be negative")
        if self.quick:
            self.grid = RobustnessConfig(
                pitch=(-12, -3, 3, 12), stretch=(0.8, 1.2), noise=(-30, 0, 30),
                mashup=(0.2, 0.5, 0.8),
            )  # fmt: skip


def _clip_at(audio: np.ndarray, start: float, seconds: float, rate: int) -> np.ndarray | None:
    begin, size = int(round(start * rate)), int(round(seconds * rate))
    chunk = audio[begin : begin + size]
    return chunk.astype(np.float32) if len(chunk) == size else None


def _audio(recording: Recording, rate: int) -> np.ndarray | None:
    try:
        return load_mono(Path(recording.audio_file.path), sample_rate=rate)
    except (AudioDecodeError, OSError, ValueError):
        return None


def _outside_clips(options, held_out_audio, rng, rate, seconds) -> list[np.ndarray]:
    """Clips of audio the search cannot return: files of --outside-dir, else held-out
    recordings."""
    sources: list[np.ndarray] = []
    if options.outside_dir:
        folder = Path(options.outside_dir)
        if not folder.is_dir():
            raise InvalidInput(f"--outside-dir {folder} is not a folder")
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
            try:
                sources.append(load_mono(path, sample_rate=rate))
            except (AudioDecodeError, OSError, ValueError):
                continue
        if not sources:
            raise InvalidInput(f"--outside-dir {folder} holds no decodable audio")
    else:
        sources = held_out_audio
    clips = []
    for audio in sources:
        if len(audio) >= int(seconds * rate):
            start = rng.uniform(0, len(audio) / rate - seconds)
            clips.append(_clip_at(audio, start, seconds, rate))
    return [c for c in clips if c is not None]


def _generated_cases(*, count: int, encoder, spec, rate, out: Out) -> list[Case]:
    """A reference clip and a clip of its output, at the best clip pair the product's audit
    found (or the first clips when the generation has no audit yet)."""
    from attribution.models import SimilarityAudit
    from generation.services.attribution_inputs import generated_output, succeeded_generation_refs

    cases = []
    for ref in succeeded_generation_refs(limit=count):
        try:
            output = generated_output(generation_ref=ref)
        except Conflict as exc:
            out(f"  skipped generation {ref}: {exc.message}")
            continue
        if not output.reference_ids:
            continue
        target = output.reference_ids[0]
        audit = SimilarityAudit.objects.filter(generation_ref=ref, status="done").first()
        pair = (audit.reference_scores or {}).get(str(target)) if audit else None
        out_start = pair["output_start_seconds"] if pair else 0.0
        ref_start = pair["recording_start_seconds"] if pair else 0.0
        generated_audio = load_mono(output.path, sample_rate=rate)
        reference_audio = _audio(Recording.objects.get(pk=target), rate)
        if reference_audio is None:
            continue
        clip = _clip_at(reference_audio, ref_start, spec.clip_seconds, rate)
        generated = _clip_at(generated_audio, out_start, spec.clip_seconds, rate)
        if clip is None or generated is None:
            continue
        segment = reference_audio[int(ref_start * rate) :][
            : int(spec.clip_seconds * 1.25 * rate) + 1
        ]
        cases.append(Case(target, ref_start, clip, segment.copy(), generated=generated,
                          meta={"generation": ref}))  # fmt: skip
    return cases


def robustness_study(*, options: RobustnessOptions, out: Out = quiet) -> StudyReport:
    """Seed 003 Figure 1 on the catalogue: recall@1/5/10 of the source per setting."""
    started = time.monotonic()
    encoder_version, encoder, spec, calibration = _encoder_and_spec(options.encoder, None)
    rate = encoder.sample_rate
    rng = np.random.default_rng(options.seed)
    ids = sorted(
        set(
            ClipEmbedding.objects.filter(
                encoder=encoder_version, clip_seconds=spec.clip_seconds,
                hop_seconds=spec.hop_seconds,
            ).values_list("recording_id", flat=True)
        )
    )  # fmt: skip
    needed = options.recordings + (0 if options.outside_dir else options.held_out) + 1
    if len(ids) < needed:
        raise Conflict(
            f"{len(ids)} recordings have {spec.label} clips; the study needs {needed} "
            "(fewer --recordings / --held-out, or run `manage.py embed_clips`)"
        )
    order = [int(i) for i in rng.permutation(ids)]
    held_out = [] if options.outside_dir else order[: options.held_out]
    pool = order[len(held_out) :]
    max_factor = max([1.0, *[1 / f for f in options.grid.stretch]])
    recordings = Recording.objects.in_bulk(pool)
    starts = {}
    for rid, start in ClipEmbedding.objects.filter(
        encoder=encoder_version, clip_seconds=spec.clip_seconds, hop_seconds=spec.hop_seconds,
        recording_id__in=pool,
    ).values_list("recording_id", "start_seconds"):  # fmt: skip
        starts.setdefault(rid, []).append(start)

    held_out_audio = [a for a in (_audio(Recording.objects.get(pk=r), rate) for r in held_out)
                      if a is not None]  # fmt: skip
    outside = _outside_clips(options, held_out_audio, rng, rate, spec.clip_seconds)
    cases: list[Case] = []
    for rid in pool:
        if len(cases) >= options.recordings:
            break
        audio = _audio(recordings[rid], rate)
        if audio is None:
            out(f"  skipped recording {rid}: cannot be decoded")
            continue
        duration = len(audio) / rate
        usable = [s for s in starts.get(rid, []) if s + spec.clip_seconds * max_factor <= duration]
        if not usable:
            continue
        start = float(rng.choice(usable))
        clip = _clip_at(audio, start, spec.clip_seconds, rate)
        other_id = int(rng.choice([r for r in pool if r != rid]))
        other_audio = _audio(recordings[other_id], rate)
        other = None
        if other_audio is not None and len(other_audio) >= len(clip):
            other_start = rng.uniform(0, len(other_audio) / rate - spec.clip_seconds)
            other = _clip_at(other_audio, other_start, spec.clip_seconds, rate)
        segment = audio[int(round(start * rate)) :][
            : int(spec.clip_seconds * max_factor * rate) + 1
        ]
        cases.append(
            Case(rid, start, clip, segment.copy(), other=other,
                 outside=outside[len(cases) % len(outside)] if outside else None,
                 meta={"other": other_id})
        )  # fmt: skip
    generated_cases = (
        _generated_cases(count=options.generations, encoder=encoder, spec=spec, rate=rate, out=out)
        if options.generations
        else []
    )
    out(
        f"encoder {encoder_version}, clips {spec.label}: {len(cases)} target clips, "
        f"{len(held_out)} recordings held out as outside audio, "
        f"{len(generated_cases)} reference/output pairs"
    )
    grid = options.grid.grid(outside=bool(outside), generated=bool(generated_cases))
    outcomes: dict = {}
    k = max(options.grid.ks)
    for n, perturbation in enumerate(grid, 1):
        these = generated_cases if perturbation.kind == "mashup_generated" else cases
        clips, targets = [], []
        for i, case in enumerate(these):
            try:
                audio = perturbed(case, perturbation, rate, seed=options.seed + i)
            except AuditError as exc:
                out(f"  {perturbation.kind} {perturbation.label}: {exc}")
                continue
            if audio is not None:
                clips.append(audio)
                targets.append(case.recording_id)
        if not clips:
            continue
        vectors = _embed(encoder, clips)
        outcomes[perturbation] = [
            _rank(v, t, encoder_version=encoder_version, spec=spec, k=k, excluded=held_out)
            for v, t in zip(vectors, targets, strict=True)
        ]
        row = recall_rows({perturbation: outcomes[perturbation]}, options.grid.ks)[0]
        out(
            f"[{n}/{len(grid)}] {perturbation.kind:<17} {perturbation.label:>8}: "
            + "  ".join(f"top{kk} {row[f'top{kk}']:.2f}" for kk in options.grid.ks)
            + f"  (n={row['n']})"
        )
    rows = recall_rows(outcomes, options.grid.ks)
    directory = report_directory("audit_robustness")
    columns = ["kind", "setting", "amount", "n", *[f"top{kk}" for kk in options.grid.ks]]
    files = [
        write_csv(directory / "robustness.csv", rows, columns),
        plot_robustness(rows, directory / "robustness.png", options.grid.ks),
    ]
    baseline = next((r for r in rows if r["kind"] == "none"), {})
    summary = {
        "created": datetime.now(UTC).isoformat(),
        "headline": {
            "encoder": str(encoder_version),
            "targets": len(cases),
            "unperturbed top1": baseline.get("top1"),
        },
        "encoder": str(encoder_version),
        "clip_spec": asdict(spec),
        "calibration_id": calibration.pk,
        "held_out_recordings": held_out,
        "outside_dir": options.outside_dir,
        "targets": [{"recording": c.recording_id, "start": c.start_seconds} for c in cases],
        "generated_pairs": [c.meta for c in generated_cases],
        "rows": rows,
        "seconds": time.monotonic() - started,
    }
    files.append(write_json(directory / "summary.json", summary))
    return StudyReport(directory=directory, rows=rows, summary=summary, files=files)


# -- 5.2 a model's outputs ---------------------------------------------------------------------


@dataclass
class ModelOptions:
    generations: int = 20  # the most recent succeeded generations of the model version
    generate: int = 0  # make this many new ones first (product services, in process)
    model_version_id: int | None = None
    encoder: str | None = None
    user: str = "maker"  # the demo music maker
    seconds: float | None = None
    references: int = 2
    seed: int = 0
    k: int = 10

    def __post_init__(self) -> None:
        if self.generations < 1 or self.generate < 0 or not 1 <= self.k <= 100:
            raise InvalidInput("--generations >= 1, --generate >= 0, --k in 1..100")


def model_study(*, options: ModelOptions, out: Out = quiet) -> StudyReport:
    """Seed 003 Tables 2 and 3 on the platform's generations."""
    from generation.selectors import active_model_version, model_version_get
    from generation.services.attribution_inputs import generated_output, succeeded_generation_refs

    started = time.monotonic()
    encoder_version, encoder, spec, calibration = _encoder_and_spec(options.encoder, None)
    model_version = (
        model_version_get(model_version_id=options.model_version_id)
        if options.model_version_id
        else active_model_version()
    )
    if options.generate:
        study_generations_make(
            model_version=model_version, username=options.user, count=options.generate,
            references=options.references, distribution="commercial",
            seconds=options.seconds, seed=options.seed, out=out,
        )  # fmt: skip
    refs = succeeded_generation_refs(model_version_id=model_version.pk, limit=options.generations)
    if not refs:
        raise Conflict(f"model version {model_version} has no succeeded generation (--generate)")
    training = list(model_version.training_recording_ids)
    rows, skipped = [], {}
    for n, ref in enumerate(refs, 1):
        try:
            output = generated_output(generation_ref=ref)
            audio = load_mono(output.path, sample_rate=encoder.sample_rate)
            starts, vectors = audio_clip_vectors(audio=audio, encoder=encoder, spec=spec)
        except (AudioDecodeError, OSError, DomainError) as exc:  # named, never a silent zero
            skipped[ref] = getattr(exc, "message", str(exc))
            out(f"[{n}/{len(refs)}] {ref}: skipped: {skipped[ref]}")
            continue
        result = clips_search(
            starts=starts, vectors=vectors, encoder_version=encoder_version, spec=spec,
            k=options.k + len(output.reference_ids), reference_ids=output.reference_ids,
            training_ids=training,
            recording_ids=training,
        )  # fmt: skip
        reference_best = max((m.similarity for m in result.references.values()), default=None)
        top = result.matches[0] if result.matches else None
        non_reference = [m for m in result.matches if not m.is_reference][: options.k]
        rows.append(
            {
                "generation": ref,
                "clips": len(starts),
                "references": list(output.reference_ids),
                "reference_similarity": reference_best,
                "top_training_recording": top.recording_id if top else None,
                "top_training_similarity": top.similarity if top else None,
                "top_is_reference": top.is_reference if top else None,
                "top_non_reference_similarity": non_reference[0].similarity
                if non_reference
                else None,
                "top_k_non_reference": [m.similarity for m in non_reference],
            }
        )
        out(
            f"[{n}/{len(refs)}] {ref}: {len(starts)} clips, references "
            f"{reference_best if reference_best is not None else float('nan'):.3f}, "
            f"#1 training {top.similarity if top else float('nan'):.3f} "
            f"(recording {top.recording_id if top else '-'}"
            f"{', a reference' if top and top.is_reference else ''})"
        )
    if not rows:
        raise Conflict(f"none of the {len(refs)} generations could be studied", details=skipped)
    thresholds = dict(calibration.thresholds)
    steps = [(name, thresholds[name]) for name in THRESHOLD_NAMES if name != "random"]
    # above bin 1 in quarter-sigma steps (the paper: 0.02 steps, about a quarter of its sigma),
    # in the space the Gaussian was fitted in
    config = calibration.config
    for extra in (0.25, 0.5, 0.75, 1.0):
        sigmas = 2 + extra
        if config.get("fit") == "raw":
            value = calibration.mean + sigmas * calibration.std
        else:
            value = float(np.tanh(config["z_mean"] + sigmas * config["z_std"]))
        steps.append((f"mean+{sigmas:g}sigma", value))
    table2 = {
        "output_vs_references": describe([r["reference_similarity"] for r in rows]),
        "output_vs_top_training": describe([r["top_training_similarity"] for r in rows]),
        "output_vs_top_non_reference_training": describe(
            [r["top_non_reference_similarity"] for r in rows]
        ),
    }
    # Table 3 counts training recordings that were not references of the output: those are
    # the ones a flag is about (references are expected to be similar, and are paid).
    table3 = threshold_table(
        [r["top_k_non_reference"] for r in rows], sorted(steps, key=lambda s: s[1]), k=options.k
    )
    directory = report_directory("audit_model")
    files = [
        write_csv(
            directory / "outputs.csv",
            rows,
            [
                "generation",
                "clips",
                "reference_similarity",
                "top_training_recording",
                "top_training_similarity",
                "top_is_reference",
                "top_non_reference_similarity",
            ],
        ),  # fmt: skip
        write_csv(
            directory / "table3.csv",
            table3,
            [
                "threshold",
                "value",
                "top1_count",
                "top1_share",
                f"top{options.k}_count",
                f"top{options.k}_share",
                "outputs",
                f"top{options.k}_clips",
            ],
        ),  # fmt: skip
        plot_model(
            [r["reference_similarity"] for r in rows],
            [r["top_training_similarity"] for r in rows],
            thresholds,
            directory / "model.png",
        ),
    ]
    summary = {
        "created": datetime.now(UTC).isoformat(),
        "headline": {
            "model": str(model_version),
            "outputs": len(rows),
            "ref mean": table2["output_vs_references"]["mean"],
            "top training mean": table2["output_vs_top_training"]["mean"],
        },
        "model_version": str(model_version),
        "encoder": str(encoder_version),
        "clip_spec": asdict(spec),
        "calibration_id": calibration.pk,
        "thresholds": thresholds,
        "table2": table2,
        "table3": table3,
        "outputs": rows,
        "skipped": skipped,
        "seconds": time.monotonic() - started,
    }
    files.append(write_json(directory / "summary.json", summary))
    return StudyReport(directory=directory, rows=rows, summary=summary, files=files)
