from django.apps import AppConfig


class AttributionLogConfig(AppConfig):
    """The inference-time attribution log: append-only, hash-chained records of what every
    verification and generation used (below generation, which writes it)."""

    name = "attribution_log"
    verbose_name = "Inference-time attribution log"
