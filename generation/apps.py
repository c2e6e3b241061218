from django.apps import AppConfig


class GenerationConfig(AppConfig):
    """Reference-conditioned generation (requests, verification, the model); see issue 4."""

    name = "generation"
