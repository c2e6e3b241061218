"""Writes of the attribution app: the inference-time log (`log`) and training-time
attribution jobs (`training`, imported from there: it loads generation's model code)."""

from attribution.services.log import attribution_record_append

__all__ = ["attribution_record_append"]
