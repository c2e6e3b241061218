"""Reads of the catalogue, rights and consent. Writes live in `catalog.services`.

Effective consent is unanimous on both sides of a song: a recording permits a use (and a
distribution) only when it has master rights shares, every holder with a master share has
granted that use (and distribution) in its latest consent version for the recording, and
every writer and publisher with a share in a work the recording embodies has granted it in
its latest consent version for that work. No shares, or no consent version yet, means opted
out.

The package splits them by what they read: `consent` (effective consent and consent
versions), `recordings` (recordings and rights holders), `works` (works and their shares)
and `portal` (what the rights-holder portal shows). Import from `catalog.selectors`.
"""

from catalog.selectors.consent import (
    ConsentRequirement,
    EffectiveConsent,
    HolderConsent,
    consent_current,
    consent_history,
    consent_requirement,
    holder_current_consents,
    holder_current_work_consents,
    parse_distribution,
    parse_use,
    recording_effective_consent,
    recording_permits,
    recordings_consent_state,
    recordings_permitting,
)
from catalog.selectors.portal import (
    CONSENT_EXPLANATIONS,
    CONSENT_NAMES,
    REVOCATION_CONSEQUENCES,
    CoHolderShare,
    ConsentHistoryEntry,
    ConsentToggle,
    RecordingConsentOverview,
    WorkConsentOverview,
    basis_points_percent,
    consent_history_entries,
    consent_label,
    holder_consent_overview,
    holder_work_consent_overview,
    parse_consent_names,
)
from catalog.selectors.recordings import (
    holder_readable_by,
    holder_recording_get,
    holder_recordings,
    holder_recordings_any_side,
    recording_audio_intact,
    recording_audio_readable_by,
    recording_get,
    recording_rights_shares,
    recordings_existing,
    recordings_labels,
    recordings_rights_holders,
    recordings_work_shares,
    user_holders,
    user_is_member,
)
from catalog.selectors.works import (
    holder_ids_with_works,
    holder_work_get,
    holder_works,
    holders_by_ids,
    recordings_works,
    work_effective_consent,
    work_get,
    works_all,
    works_by_ids,
)

__all__ = [
    "CONSENT_EXPLANATIONS",
    "CONSENT_NAMES",
    "CoHolderShare",
    "ConsentHistoryEntry",
    "ConsentRequirement",
    "ConsentToggle",
    "EffectiveConsent",
    "HolderConsent",
    "REVOCATION_CONSEQUENCES",
    "RecordingConsentOverview",
    "WorkConsentOverview",
    "basis_points_percent",
    "consent_current",
    "consent_history",
    "consent_history_entries",
    "consent_label",
    "consent_requirement",
    "holder_consent_overview",
    "holder_current_consents",
    "holder_current_work_consents",
    "holder_ids_with_works",
    "holder_readable_by",
    "holder_recording_get",
    "holder_recordings",
    "holder_recordings_any_side",
    "holder_work_consent_overview",
    "holder_work_get",
    "holder_works",
    "holders_by_ids",
    "parse_consent_names",
    "parse_distribution",
    "parse_use",
    "recording_audio_intact",
    "recording_audio_readable_by",
    "recording_effective_consent",
    "recording_get",
    "recording_permits",
    "recording_rights_shares",
    "recordings_consent_state",
    "recordings_existing",
    "recordings_labels",
    "recordings_permitting",
    "recordings_rights_holders",
    "recordings_work_shares",
    "recordings_works",
    "user_holders",
    "user_is_member",
    "work_effective_consent",
    "work_get",
    "works_all",
    "works_by_ids",
]
