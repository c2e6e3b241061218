"""Writes of the attribution app: the inference-time log (`log`), training-time attribution
jobs (`training`, imported from there: it loads generation's model code) and the similarity
audit (`audit`: clip embeddings, calibrations, audits of generated outputs)."""

from attribution.services.log import attribution_record_append

__all__ = ["attribution_record_append"]
