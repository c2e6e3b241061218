from django.apps import AppConfig


class GenerationConfig(AppConfig):
    """Reference-conditioned generation (requests, verification, the model); see issue 4."""

    name = "generation"

    def ready(self) -> None:
        from generation import checks  # noqa: F401  (registers the system checks)
