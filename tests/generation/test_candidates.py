"""Best of several candidates: the worker keeps the draw closest to the references in CLAP
space, logs the choice so it can be reproduced, samples a maker's own track once, and refuses
candidate counts it cannot serve."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.checks import run_checks

from attribution_log.models import AttributionRecord
from catalog.retrieval.runtime import loaded_encoder
from generation.candidates import (
    candidate_seed,
    embed_output,
    generate_best,
    similarity_to_request,
)
from generation.model import GenerationSpec, GeneratorError, ReferenceCondition
from generation.selectors import reference_embedding
from generation.services.running import (
    generation_run,
    generation_spec_for,
    loaded_generator,
    reference_specs_for,
)
from tests.generation.test_job_lifecycle import queued

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("one_torch_thread")]


def served(studio):
    version = studio["model_version"]
    return loaded_generator(version), loaded_encoder(version.encoder)


def request_of(studio, **changes) -> GenerationSpec:
    version = studio["model_version"]
    references = [
        ReferenceCondition(
            reference_embedding(recording_id=r.pk, encoder_version=version.encoder),
            "style",
            weight,
        )
        for r, weight in zip(studio["recordings"][4:6], (2.0, 1.0), strict=True)
    ]
    return GenerationSpec(**{"references": references, "seconds": 1.5, "seed": 11, **changes})


def test_the_kept_candidate_is_the_most_similar_and_reproducible_from_its_seed(studio):
    generator, encoder = served(studio)
    spec = request_of(studio)
    choice = generate_best(generator, spec, count=3, encoder=encoder)

    assert len(choice.similarities) == 3
    assert choice.index == int(np.argmax(choice.similarities))
    assert choice.seed == candidate_seed(spec.seed, choice.index)
    # every candidate is a real, different draw, scored as its own audio would be
    for index, similarity in enumerate(choice.similarities):
        again = GenerationSpec(**{**spec.__dict__, "seed": candidate_seed(spec.seed, index)})
        audio = generator.generate(again)
        assert similarity == pytest.approx(
            similarity_to_request(embed_output(audio, generator.sample_rate, encoder), spec)
        )
        if index == choice.index:
            assert np.array_equal(audio, choice.audio)
    assert len(set(choice.similarities)) == 3
    assert choice.to_dict()["count"] == 3 and choice.to_dict()["kept"] == choice.index

    # one candidate is the request's own seed, exactly as before candidates existed
    single = generate_best(generator, spec, count=1, encoder=None)
    assert single.index == 0 and single.seed == spec.seed and single.similarities == ()
    assert np.array_equal(single.audio, generator.generate(spec))


def test_similarity_follows_the_reference_weights_and_needs_something_to_match():
    a, b = np.eye(4)[0], np.eye(4)[1]
    spec = GenerationSpec(
        references=[ReferenceCondition(a * 3, "style", 3.0), ReferenceCondition(b, "mood", 1.0)],
        seconds=2.0,
        seed=0,
    )
    assert similarity_to_request(a, spec) == pytest.approx(0.75)
    assert similarity_to_request(b, spec) == pytest.approx(0.25)
    prompt_only = GenerationSpec(references=[], seconds=2.0, seed=0, text_embedding=b)
    assert similarity_to_request(b, prompt_only) == pytest.approx(1.0)
    with pytest.raises(GeneratorError, match="nothing to match"):
        similarity_to_request(a, GenerationSpec(references=[], seconds=2.0, seed=0))


def test_a_makers_track_is_transformed_once_and_bad_counts_are_refused(studio):
    generator, encoder = served(studio)
    rng = np.random.default_rng(0)
    track = (0.1 * rng.standard_normal(generator.sample_rate * 2)).astype(np.float32)
    sdedit = request_of(studio, init_audio=track, strength=0.5)
    choice = generate_best(generator, sdedit, count=3, encoder=encoder)
    assert choice.similarities == () and choice.seed == sdedit.seed
    assert np.array_equal(choice.audio, generator.generate(sdedit))

    spec = request_of(studio)
    for count in (0, 9):
        with pytest.raises(GeneratorError, match="candidates must be in"):
            generate_best(generator, spec, count=count, encoder=encoder)
    with pytest.raises(GeneratorError, match="CLAP encoder"):
        generate_best(generator, spec, count=2, encoder=None)
    with pytest.raises(GeneratorError, match="seconds"):  # the request is checked first
        generate_best(generator, request_of(studio, seconds=-1.0), count=3,
                      encoder=encoder)  # fmt: skip


def test_the_worker_serves_the_best_candidate_and_logs_the_choice(studio, make_user, settings):
    settings.GENERATION_CANDIDATES = 3
    generation = generation_run(generation_id=queued(studio, make_user).pk)
    assert generation.status == "succeeded", generation.failure_reason
    payload = AttributionRecord.objects.get(
        generation_ref=generation.ref, kind="generation"
    ).payload
    choice = payload["candidates"]
    assert choice["count"] == 3 and len(choice["similarities"]) == 3
    assert choice["kept"] == int(np.argmax(choice["similarities"]))
    assert choice["kept_seed"] == candidate_seed(generation.seed, choice["kept"])
    # the stored sample (what training-time attribution reads) is the kept candidate's mel
    generator, _ = served(studio)
    spec = generation_spec_for(generation, reference_specs_for(generation), generator)
    kept = GenerationSpec(**{**spec.__dict__, "seed": choice["kept_seed"]})
    stored = np.load(generation.sample.path)
    assert np.allclose(stored, generator.generate_mel(kept), atol=1e-5)
    assert generation.progress_step == generation.progress_total

    settings.GENERATION_CANDIDATES = 1
    single = generation_run(generation_id=queued(studio, make_user, "other").pk)
    payload = AttributionRecord.objects.get(generation_ref=single.ref, kind="generation").payload
    assert payload["candidates"] == {
        "count": 1, "kept": 0, "kept_seed": single.seed, "similarities": []
    }  # fmt: skip


def test_a_candidate_count_the_sampler_refuses_is_a_system_check_error(settings):
    for bad in (0, 9, "3"):
        settings.GENERATION_CANDIDATES = bad
        assert "generation.E001" in [e.id for e in run_checks()]
    settings.GENERATION_CANDIDATES = 3
    assert "generation.E001" not in [e.id for e in run_checks()]
