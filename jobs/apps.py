from django.apps import AppConfig


class JobsConfig(AppConfig):
    """The background-job lifecycle every app's jobs share; owns no tables."""

    name = "jobs"
    verbose_name = "Background jobs"
