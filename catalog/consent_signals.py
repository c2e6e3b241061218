"""Consent as machine-readable signals, out and in. Plain module (no Django), so the C2PA
writer (`generation.provenance`) and the importer's XMP reader share one vocabulary.

**Out: CAWG training-and-data-mining entries** (assertion label ``cawg.training-mining``,
CAWG 1.1; each entry ``{"use": "allowed" | "notAllowed" | "constrained", "constraint_info":
"..."}``). A recording's effective consent (what every master holder and every writer and
publisher of its works agree on) maps to them as follows:

* ``cawg.ai_generative_training`` and ``cawg.ai_training``: the ``training`` use. The platform
  trains both generative models (the generator) and non-generative ones (the audio-text
  encoder) on the same consent, so the two entries are equal.
* ``cawg.data_mining``: also the ``training`` use. Extracting patterns from the audio is what
  training does; analysis that only describes a recording for its own catalogue entry (tempo,
  key) is not mining in the CAWG sense.
* ``cawg.ai_inference``: the three inference uses with the distributions. ``allowed`` when
  every level and every distribution is agreed; ``notAllowed`` when no level or no distribution
  is (a maker can do nothing with it); otherwise ``constrained``, with ``constraint_info``
  naming the levels and distributions that are agreed.
* custom entries (C2PA custom labels in the platform's namespace): one per inference level
  (``org.attribution-platform.song_inference``, ``...parameter_inference``,
  ``...audio_inference``: ``allowed`` with every distribution, ``constrained`` naming the
  distributions when only some are agreed, else ``notAllowed``) and the distribution constraint
  ``org.attribution-platform.distribution`` (``allowed``: all three; ``constrained``: naming
  those agreed; ``notAllowed``: none).

A **generated output's own entries** (`output_entries`) say what may be done with the output:
each CAWG entry is the most restrictive of its references' entries (a reference without
entries counts as ``notAllowed``), and never more than ``constrained``: the platform's policy is
that an output may be trained on, mined or used for inference only under terms that attribute
and pay its references' holders. Without references (a prompt alone) the cap applies. The
distribution entry is the distribution the generation was verified for.

**TDMRep** (W3C, ``/.well-known/tdmrep.json``): `tdmrep_rules` gives each recording's audio
URL ``tdm-reservation`` 0 when training is effectively granted and 1 otherwise, with a
``tdm-policy`` URL; a final catch-all rule reserves every audio URL the file does not list yet.

**In: IPTC/PLUS Data Mining** (``plus:DataMining`` in XMP, PLUS LDF vocabulary): every
``DMI-PROHIBITED*`` value reserves training (each prohibits at least generative AI/ML
training, which is what the platform does); ``DMI-ALLOWED`` and ``DMI-UNSPECIFIED`` reserve
nothing (consent stays opt-out either way). An unknown value is an error, not a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

TRAINING_MINING_LABEL = "cawg.training-mining"
ALLOWED, NOT_ALLOWED, CONSTRAINED = "allowed", "notAllowed", "constrained"
USE_VALUES = (NOT_ALLOWED, CONSTRAINED, ALLOWED)  # least permissive first

CUSTOM_NAMESPACE = "org.attribution-platform."
AI_TRAINING = "cawg.ai_training"
AI_GENERATIVE_TRAINING = "cawg.ai_generative_training"
AI_INFERENCE = "cawg.ai_inference"
DATA_MINING = "cawg.data_mining"
STANDARD_ENTRIES = (AI_TRAINING, AI_GENERATIVE_TRAINING, AI_INFERENCE, DATA_MINING)
DISTRIBUTION_ENTRY = f"{CUSTOM_NAMESPACE}distribution"

# The consent names (catalog.models.Use / Distribution values), repeated here so this module
# needs no Django; tests/catalog/test_tdm_signals.py checks they stay equal.
TRAINING = "training"
INFERENCE_USES = ("song_inference", "parameter_inference", "audio_inference")
DISTRIBUTIONS = ("private", "non_commercial", "commercial")
_LABELS = {
    "song_inference": "song-level",
    "parameter_inference": "parameter-level",
    "audio_inference": "audio-level",
    "private": "private use",
    "non_commercial": "non-commercial distribution",
    "commercial": "commercial distribution",
}
LEVEL_ENTRIES = {use: f"{CUSTOM_NAMESPACE}{use}" for use in INFERENCE_USES}

OUTPUT_POLICY = (
    "AI-generated from the references named in this manifest: use only under terms that "
    "attribute and pay their rights holders (attribution-royalty-platform)"
)


def _entry(use: str, constraint_info: str = "") -> dict[str, str]:
    entry = {"use": use}
    if constraint_info and use == CONSTRAINED:
        entry["constraint_info"] = constraint_info
    return entry


def _words(names: Sequence[str]) -> str:
    labels = [_LABELS[n] for n in names]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " or " + labels[-1]


def _distribution_entry(distributions: Sequence[str]) -> dict[str, str]:
    if not distributions:
        return _entry(NOT_ALLOWED)
    if len(distributions) == len(DISTRIBUTIONS):
        return _entry(ALLOWED)
    return _entry(CONSTRAINED, f"outputs only for {_words(distributions)}")


def recording_entries(
    uses: Mapping[str, bool], distributions: Mapping[str, bool]
) -> dict[str, dict[str, str]]:
    """A recording's CAWG entries from its effective consent (module docstring)."""
    trained = _entry(ALLOWED if uses.get(TRAINING) else NOT_ALLOWED)
    levels = [u for u in INFERENCE_USES if uses.get(u)]
    agreed = [d for d in DISTRIBUTIONS if distributions.get(d)]
    if not levels or not agreed:
        inference = _entry(NOT_ALLOWED)
    elif len(levels) == len(INFERENCE_USES) and len(agreed) == len(DISTRIBUTIONS):
        inference = _entry(ALLOWED)
    else:
        inference = _entry(
            CONSTRAINED,
            f"only as a {_words(levels)} reference; outputs only for {_words(agreed)}",
        )
    entries = {
        AI_TRAINING: trained,
        AI_GENERATIVE_TRAINING: dict(trained),
        AI_INFERENCE: inference,
        DATA_MINING: dict(trained),
    }
    for use, label in LEVEL_ENTRIES.items():
        entries[label] = _distribution_entry(agreed) if uses.get(use) else _entry(NOT_ALLOWED)
    entries[DISTRIBUTION_ENTRY] = _distribution_entry(agreed)
    return entries


def training_mining_assertion(entries: Mapping[str, Mapping[str, str]]) -> dict:
    """The ``cawg.training-mining`` assertion data for `entries`."""
    return {"entries": {label: dict(entry) for label, entry in entries.items()}}


def _least(uses: Iterable[str]) -> str:
    return min(uses, key=USE_VALUES.index)


def output_entries(
    references: Sequence[Mapping[str, Mapping[str, str]]], distribution: str
) -> dict[str, dict[str, str]]:
    """A generated output's own entries: its references' most restrictive, capped at
    ``constrained`` by the platform's policy, and the distribution it was verified for."""
    entries: dict[str, dict[str, str]] = {}
    for label in STANDARD_ENTRIES:
        use = _least(
            [CONSTRAINED] + [(ref.get(label) or {}).get("use", NOT_ALLOWED) for ref in references]
        )
        if use not in USE_VALUES:
            use = NOT_ALLOWED  # an unknown value is read as the CAWG default for constrained
        entries[label] = _entry(use, OUTPUT_POLICY)
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}")
    if distribution == "commercial":
        entries[DISTRIBUTION_ENTRY] = _entry(ALLOWED)
    else:
        entries[DISTRIBUTION_ENTRY] = _entry(
            CONSTRAINED, f"verified for {_LABELS[distribution]} only"
        )
    return entries


# --- TDMRep ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TdmLocation:
    """One resource in ``tdmrep.json``: where it is, whether training is granted for it, and
    the URL of the policy that says more."""

    location: str
    training_granted: bool
    policy_url: str


def tdmrep_rules(locations: Iterable[TdmLocation], *, fallback: str) -> list[dict]:
    """The ``/.well-known/tdmrep.json`` array: one rule per location (reserved unless
    training is granted), then `fallback` (a pattern covering every such location) reserved,
    so a recording added after the file was generated is not mined by default."""
    rules = [
        {
            "location": loc.location,
            "tdm-reservation": 0 if loc.training_granted else 1,
            "tdm-policy": loc.policy_url,
        }
        for loc in locations
    ]
    rules.append({"location": fallback, "tdm-reservation": 1})
    return rules


# --- IPTC/PLUS Data Mining ---------------------------------------------------------------------

PLUS_VOCABULARY = "http://ns.useplus.org/ldf/vocab/"
# PLUS LDF "Data Mining" values -> whether the value reserves (prohibits) training.
DATA_MINING_VALUES: dict[str, bool] = {
    "DMI-UNSPECIFIED": False,
    "DMI-ALLOWED": False,
    "DMI-PROHIBITED-AIMLTRAINING": True,
    "DMI-PROHIBITED-GENAIMLTRAINING": True,
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": True,
    "DMI-PROHIBITED": True,
    "DMI-PROHIBITED-SEECONSTRAINT": True,
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": True,
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": True,
}


def data_mining_code(value: str) -> str:
    """'http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED' (or the bare code) -> 'DMI-PROHIBITED';
    raises ValueError for anything outside the PLUS vocabulary."""
    text = str(value).strip()
    code = text[len(PLUS_VOCABULARY) :] if text.startswith(PLUS_VOCABULARY) else text
    if code not in DATA_MINING_VALUES:
        raise ValueError(
            f"unknown plus:DataMining value {text!r}; expected one of the PLUS vocabulary: "
            + ", ".join(PLUS_VOCABULARY + c for c in DATA_MINING_VALUES)
        )
    return code


def data_mining_reserves_training(value: str) -> bool:
    return DATA_MINING_VALUES[data_mining_code(value)]


# --- reservations that come with a file ---------------------------------------------------------

# Where a reservation came from (catalog.models.ConsentReservation.Source values).
XMP_DATA_MINING = "xmp_data_mining"
XMP_TDMREP = "xmp_tdmrep"
METADATA_TDMREP = "metadata_tdmrep"


@dataclass(frozen=True)
class Reservation:
    """A reservation of mining/training rights as found at import: where, the value as
    written, and the tdm-policy URL when one was given."""

    source: str
    value: str
    policy: str = ""


def reservations_from(
    *,
    data_mining: Sequence[str] = (),
    xmp_tdm_reservation: int | None = None,
    xmp_tdm_policy: str = "",
    metadata_tdm_reservation: int | None = None,
    metadata_tdm_policy: str = "",
) -> list[Reservation]:
    """The reservations a file comes with: its XMP's Data Mining value that prohibits training
    (the first, when several do), its XMP's TDMRep reservation and the metadata file's.
    A 0 anywhere lifts nothing stated elsewhere. Raises ValueError for an unknown value."""
    found = []
    prohibiting = [v for v in data_mining if data_mining_reserves_training(v)]
    if prohibiting:
        found.append(Reservation(XMP_DATA_MINING, prohibiting[0]))
    if xmp_tdm_reservation == 1:
        found.append(Reservation(XMP_TDMREP, "1", xmp_tdm_policy))
    if metadata_tdm_reservation == 1:
        found.append(Reservation(METADATA_TDMREP, "1", metadata_tdm_policy))
    return found
