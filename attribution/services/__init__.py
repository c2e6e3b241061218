"""Writes of the attribution app: training-time attribution jobs (`training`, imported from
there: it loads generation's model code) and the similarity audit (`audit`: clip embeddings,
calibrations, audits of generated outputs). The inference-time log is `attribution_log`."""
