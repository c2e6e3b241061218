"""Which training recordings can the served generator tell apart from audio it never heard?

The removal job's membership test (attribution/tda/removal.py) run over a whole manifest: each
training recording's mean loss over its membership windows, as a percentile among held-out
recordings of its genre and length, under common random numbers. A recording far below the
verification band is one the model leans on, and removing it would move weights; one inside the
band is already indistinguishable from unseen audio. Staff run it before a removal
(`bench_unlearning --scan`) to know which case they are in.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from attribution.services.unlearning import (
    heldout_recordings,
    recording_windows,
    unlearning_settings,
)
from attribution.tda.platform_model import PlatformTarget
from attribution.tda.removal import Membership, RemovalConfig, window_losses
from config.exceptions import InvalidInput
from generation.models import ModelVersion
from generation.services.attribution_inputs import (
    model_version_generator,
    model_version_training_items,
)
from generation.services.models import training_items


def membership_scan(
    *,
    model_version: ModelVersion,
    recording_ids: list[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Per training recording (all of the manifest by default), its membership percentile
    among its held-out recordings, lowest first."""
    options = unlearning_settings()
    generator = model_version_generator(model_version_id=model_version.pk)
    config = generator.config
    items = {
        i.recording_id: i for i in model_version_training_items(model_version_id=model_version.pk)
    }
    wanted = sorted(recording_ids or items)
    unknown = sorted(set(wanted) - set(items))
    if unknown:
        raise InvalidInput(f"recordings {unknown} are not in the manifest of {model_version}")
    target = PlatformTarget(config)
    model = target.prepare(copy.deepcopy(generator.model).cpu())
    removal = RemovalConfig(**options["removal"])
    count = options["membership_windows"]

    def loss_of(item) -> float:
        windows = recording_windows(target, item, count, config)
        return float(window_losses(target, model, windows, removal).mean())

    heldout_of = {
        rid: heldout_recordings(model_version, [rid], options["heldout_recordings"])
        for rid in wanted
    }
    pool = {r.pk: r for group in heldout_of.values() for r in group}
    heldout_loss = {  # draws are keyed by window index: one loss per held-out recording
        item.recording_id: loss_of(item)
        for item in training_items(
            recordings=list(pool.values()), encoder_version=model_version.encoder, config=config
        )
    }
    rows = []
    for n, rid in enumerate(wanted):
        test = Membership(
            {rid: loss_of(items[rid])},
            {r.pk: heldout_loss[r.pk] for r in heldout_of[rid] if r.pk in heldout_loss},
        )
        if not test.heldout:
            raise InvalidInput(f"no held-out recording could be measured for recording {rid}")
        rows.append({
            "recording": rid, "percentile": round(test.percentile(rid), 1),
            "loss": round(test.revoked[rid], 6), "heldout": sorted(test.heldout),
            "act_below": removal.act_below,
        })  # fmt: skip
        if progress:
            progress(n + 1, len(wanted))
    return sorted(rows, key=lambda row: (row["percentile"], row["recording"]))
