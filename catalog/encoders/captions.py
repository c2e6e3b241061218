"""Captions composed from catalogue metadata, the text side of the encoder's training pairs.

Plain module. Facts the catalogue holds go into a caption: genre and subgenre (from the
source), moods, instruments, tempo and mode (measured from the audio at import). Sampled
(training) captions may also carry `tags`: pseudo-labels a pretrained tagger heard in the
recording (`pseudo_tags.py`), which teach the text side words such as "strings" or "techno"
that catalogue facts rarely hold. The canonical caption, the evaluation query, stays facts only.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any


def tempo_word(bpm: float | None) -> str | None:
    if not bpm:
        return None
    if bpm < 90:
        return "slow"
    if bpm < 120:
        return "mid-tempo"
    return "fast"


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def caption_parts(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The phrases a caption can be made of; missing metadata gives no phrase."""
    parts: dict[str, str] = {}
    genre, subgenre = metadata.get("genre") or "", metadata.get("subgenre") or ""
    if subgenre and genre:
        parts["style"] = f"{subgenre.lower()} ({genre.lower()})"
    elif genre or subgenre:
        parts["style"] = (genre or subgenre).lower()
    moods = [m for m in metadata.get("moods") or [] if m]
    if moods:
        parts["mood"] = _join(moods)
    instruments = [i for i in metadata.get("instruments") or [] if i]
    if instruments:
        parts["instruments"] = "with " + _join(instruments)
    tempo = tempo_word(metadata.get("tempo_bpm"))
    if tempo:
        parts["tempo"] = f"{tempo}, around {round(metadata['tempo_bpm'])} BPM"
    if metadata.get("mode") in {"major", "minor"}:
        parts["mode"] = f"in a {metadata['mode']} key"
    tags = [t for t in metadata.get("tags") or [] if t]
    if tags:
        parts["tags"] = _join(tags)
    return parts


def canonical_caption(metadata: Mapping[str, Any]) -> str:
    """The fixed caption used for evaluation and for showing what the encoder was taught."""
    parts = caption_parts({k: v for k, v in metadata.items() if k != "tags"})
    head = " ".join(p for p in (parts.get("mood"), parts.get("style")) if p)
    tail = [parts[k] for k in ("tempo", "mode", "instruments") if k in parts]
    return ", ".join([f"{head} music" if head else "music", *tail])


_TEMPLATES = (
    "{mood} {style} music, {tempo}, {mode}, {instruments}",
    "{tags} {style} music, {mood}, {instruments}",
    "{mood} {tags}",
    "{tags}, {tempo}, {mode}",
    "a {tempo} {style} piece {mode} {instruments}, feeling {mood}",
    "{style} track {instruments}; {mood}; {tempo}",
    "{mood} music in the style of {style}",
    "{instruments} {style} {mode}",
    "{tempo} {mood} tune",
)


def sampled_caption(metadata: Mapping[str, Any], rng: random.Random) -> str:
    """A randomly phrased caption with a random subset of the facts (text augmentation)."""
    parts = caption_parts(metadata)
    keep = {k: v for k, v in parts.items() if k == "style" or rng.random() < 0.7}
    template = rng.choice(_TEMPLATES)
    text = template.format_map(_Blank(keep))
    return " ".join(text.replace(" ,", ",").replace(" ;", ";").split()).strip(" ,;") or "music"


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""
