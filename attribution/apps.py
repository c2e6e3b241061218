from django.apps import AppConfig


class AttributionConfig(AppConfig):
    """Inference-time attribution log and training-time attribution (TDA); see issues 4-5."""

    name = "attribution"

    def ready(self) -> None:
        from attribution import checks  # noqa: F401  (registers the system checks)
