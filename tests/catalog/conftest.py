from tests.catalog.retrieval_fixtures import embedded_catalogue, tiny_checkpoint  # noqa: F401
