"""Provenance of generated audio: readable WAV metadata and a signed C2PA manifest.

Modules (callers import from the package, which re-exports every public name):

- `record`: the provenance record (`Provenance`, `ReferenceIngredient`, `UploadIngredient`), the
  labels and keys it is written under, and `ProvenanceError`.
- `wav`: `write_wav`, the RIFF/WAVE writer.
- `signing`: `sign_wav` and the C2PA manifest definition.
- `reading`: `read_provenance` and `ProvenanceReport`.
- `credentials`: `SigningCredentials`, `credentials_from_files`, `development_credentials`.
- `files`: atomic writes and the lock file.

Every generated track carries its inference-time attribution twice:

* **Readable metadata** (`wav.write_wav`): a RIFF ``LIST/INFO`` chunk that ordinary tools show
  (``INAM`` title, ``ISFT`` software, ``ICMT`` a one-line summary naming the references and
  their rights holders, ``ICRD`` date) and a custom ``aprv`` chunk holding the full
  provenance as JSON (`Provenance.to_dict`).
* **A signed C2PA manifest** (`signing.sign_wav`, c2pa-python 0.38 / c2pa-rs 0.91): claim
  generator ``attribution-royalty-platform``; a ``c2pa.actions`` assertion; a custom assertion
  ``org.attribution-platform.generation`` holding the provenance dict; the output's own
  ``cawg.training-mining`` assertion; one ingredient per reference and, when the maker's own
  track was transformed (audio or temporal level), one for that upload. The data hash covers
  every byte outside the C2PA chunk, so editing the audio or the ``aprv``/``INFO`` chunks
  afterwards shows up as ``assertion.dataHash.mismatch``.

Ingredients and actions (C2PA 2.x). A reference recording conditions the output without
becoming part of it: relationship ``inputTo``. An uploaded track that the output transforms
(SDEdit at the audio level, a regenerated segment at the temporal level) is what the output
was made from: relationship ``parentOf``. Without an upload the actions are one ``c2pa.created``
with digital source type ``trainedAlgorithmicMedia`` linking the references; with one they are
``c2pa.opened`` linking the parent (C2PA 2.x: a parent is opened, not created) and
``c2pa.edited`` with digital source type ``compositeWithTrainedAlgorithmicMedia`` linking the
references (the output composites the maker's audio with the model's).

Ingredients are described by metadata only. The c2pa Builder accepts ingredients inside the
manifest definition (``"ingredients": [...]``) without an asset stream, so the reference
recordings' audio is neither needed nor copied, and no stand-in files are made. Each reference
ingredient has the recording title, its media type and, under the metadata key
``org.attribution-platform.reference``, the recording id, artist, ISRC, rights holders, level,
role, weight and consent version ids; the upload's has ``org.attribution-platform.upload``
(its SHA-256, level, segment, strength).

Consent signals (CAWG training and data mining, `catalog.consent_signals`): an ingredient's own
``cawg.training-mining`` assertion would live in the ingredient's own manifest, which only its
rights holders could sign and which catalogue recordings do not have, and c2pa-python 0.38
takes no assertions for a metadata-only ingredient. So each reference ingredient carries its
recording's entries (its effective consent when the output was made) as ingredient metadata
under the key ``cawg.training-mining`` (``{"entries": {...}}``, the assertion's own data
shape), signed by the platform as part of the ingredient assertion. The output's own
``cawg.training-mining`` assertion is `catalog.consent_signals.output_entries`: the references'
most restrictive entries, capped at ``constrained`` by the platform's policy, and the
distribution the generation was verified for.

Trust: c2pa-rs validates the signing chain against its trust settings. `read_provenance`
passes the caller's roots as ``trust.trust_anchors`` (which replaces the SDK's own anchor list,
so "trusted" means "chains to a root this platform configured"); without them the reader
reports ``signingCredential.untrusted``.

Known SDK quirk, handled in `reading`: ``Reader.json()`` in c2pa-rs 0.91.3 renders arrays of
numbers in assertion data as base64 byte strings (``[1, 300]`` -> ``"ASw="``), although the
signed CBOR is right. `read_provenance` therefore takes the data of this platform's own
assertions and ingredient metadata from ``Reader.crjson()``, which decodes them losslessly.

Plain package without Django imports: paths and credentials are passed in by the caller.
"""

from generation.provenance.credentials import (
    SigningCredentials,
    credentials_from_files,
    development_credentials,
)
from generation.provenance.reading import ProvenanceReport, read_provenance
from generation.provenance.record import (
    CLAIM_GENERATOR,
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    GENERATION_ASSERTION,
    OWN_NAMESPACE,
    PROVENANCE_CHUNK_ID,
    PROVENANCE_SCHEMA,
    REFERENCE_METADATA_KEY,
    TRAINED_ALGORITHMIC_MEDIA,
    TRAINING_MINING,
    UPLOAD_METADATA_KEY,
    WAV_MEDIA_TYPE,
    Provenance,
    ProvenanceError,
    ReferenceIngredient,
    UploadIngredient,
)
from generation.provenance.signing import sign_wav
from generation.provenance.wav import write_wav

__all__ = [
    "CLAIM_GENERATOR",
    "COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA",
    "GENERATION_ASSERTION",
    "OWN_NAMESPACE",
    "PROVENANCE_CHUNK_ID",
    "PROVENANCE_SCHEMA",
    "REFERENCE_METADATA_KEY",
    "TRAINED_ALGORITHMIC_MEDIA",
    "TRAINING_MINING",
    "UPLOAD_METADATA_KEY",
    "WAV_MEDIA_TYPE",
    "Provenance",
    "ProvenanceError",
    "ProvenanceReport",
    "ReferenceIngredient",
    "SigningCredentials",
    "UploadIngredient",
    "credentials_from_files",
    "development_credentials",
    "read_provenance",
    "sign_wav",
    "write_wav",
]
