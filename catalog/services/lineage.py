"""Fine-tuning lineage: a checkpoint may start another training run (encoder or generator) only
if everything it learned from is still consented to training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from catalog.models import Recording
from config.exceptions import InvalidInput


def parent_manifest(checkpoint: Path, recordings: list[Recording]) -> dict[str, Any]:
    """The manifest beside a parent checkpoint; refuses a parent without one, or one that
    learned from audio not among `recordings` (today's training-consented ones) or cannot say
    what it learned from."""
    checkpoint = Path(checkpoint)
    manifest_path = checkpoint.with_suffix(".manifest.json")
    if not checkpoint.is_file() or not manifest_path.is_file():
        raise InvalidInput(f"{checkpoint} and its .manifest.json are needed to fine-tune from it")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{checkpoint} cannot be fine-tuned from: {exc}") from exc
    consented = {r.content_sha256 for r in recordings}
    learned = {r.get("content_sha256") for r in manifest.get("recordings", [])}
    if not learned or not learned <= consented:
        raise InvalidInput(
            f"{checkpoint.name} learned from {len(learned - consented)} recordings not consented "
            "to training today; train from scratch instead"
        )
    return manifest
