from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    """Drills and benchmarks that exercise the whole platform; the top layer (it may import
    every app, and none imports it). Owns no tables."""

    name = "benchmarks"
