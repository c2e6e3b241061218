"""A charged, TDA-settled generation made without a model: its attribution-log record, its fee
and its settlement, with two holders on its references and training set, and one outsider."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from attribution.models import TrainingAttribution
from attribution_log.models import AttributionRecord
from attribution_log.services import attribution_record_append
from catalog.services.rights import rights_shares_set
from royalties.services import ChargedReference, generation_fee_post, tda_pool_settle
from tests.royalties.conftest import pricing  # noqa: F401


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def make_generation(world: dict, *, references=None, training=None, settle=None) -> str:
    """Log, charge and (unless `settle` is {}) settle a generation; returns its ref."""
    ref = str(uuid.uuid4())
    references = references or [(world["r1"], 2.0), (world["r2"], 1.0)]
    training = training if training is not None else [world["t1"], world["t2"]]
    attribution_record_append(
        kind=AttributionRecord.Kind.GENERATION,
        generation_ref=ref,
        payload={
            "event": "generation",
            "generation": ref,
            "requested_by": world["maker"].pk,
            "distribution": "commercial",
            "references": [
                {"recording": r.pk, "level": "song", "role": "mood", "weight": w}
                for r, w in references
            ],
        },
    )
    generation_fee_post(
        generation_ref=ref,
        verified_at=timezone.now(),
        distribution="commercial",
        references=[ChargedReference(r.pk, "song", w) for r, w in references],
        training_recording_ids=[t.pk for t in training],
    )
    shares = {world["t1"].pk: 0.75, world["t2"].pk: 0.25} if settle is None else settle
    TrainingAttribution.objects.create(
        generation_ref=ref,
        generation_requested_by=world["maker"].pk,
        model_version_id=1,
        model_checkpoint_sha256="0" * 64,
        config={},
        status=TrainingAttribution.Status.DONE,
        scores={str(t.pk): 1.0 for t in training},
        shares={"payout": {str(k): v for k, v in shares.items()}},
        payout_share_kind="topk" if shares else "unattributed",
    )
    if shares:
        tda_pool_settle(generation_ref=ref, shares=shares)
    return ref


@pytest.fixture
def world(pricing, make_user, make_holder, make_recording, staff):  # noqa: F811
    """Holders A and B (one member each) and outsider C; references r1 (A) and r2 (B),
    training recordings t1 (A) and t2 (B), C's own song; song/commercial costs 1000 cents:
    direct 600 (r1 400, r2 200), TDA pool 200 (t1 150, t2 50), auxiliary 100, platform 100."""
    users = {name: make_user(name) for name in ("member-a", "member-b", "member-c", "maker")}
    holders = {
        key: make_holder(f"Holder {key.upper()}", member=users[f"member-{key}"])
        for key in ("a", "b", "c")
    }
    recordings = {}
    for name, key in (("r1", "a"), ("r2", "b"), ("t1", "a"), ("t2", "b"), ("c_song", "c")):
        recordings[name] = make_recording(name)
        rights_shares_set(actor=staff, recording=recordings[name], shares={holders[key]: 10_000})
    world = {
        **{f"holder_{k}": h for k, h in holders.items()},
        **recordings,
        "member_a": users["member-a"],
        "member_b": users["member-b"],
        "member_c": users["member-c"],
        "maker": users["maker"],
        "staff": staff,
    }
    world["generation"] = make_generation(world)
    return world


@pytest.fixture
def emptied_dispute_events_after(transactional_db):
    """Transactional tests commit dispute events, which Django's flush may truncate only when
    none are left: empty them afterwards (bypassing the guard, as the database's owner may)."""
    yield
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE disputes_disputeevent DISABLE TRIGGER USER")
        cursor.execute("TRUNCATE disputes_disputeevent")
        cursor.execute("ALTER TABLE disputes_disputeevent ENABLE TRIGGER USER")
