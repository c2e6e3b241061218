"""DATABASE_URL switches from the embedded server to an external PostgreSQL."""

from config.settings.database import database_settings


def test_database_url_selects_an_external_server(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgres://royalty:secret@db.internal:5433/platform")
    config = database_settings(tmp_path / "unused", name="ignored")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"], config["USER"]) == (
        "db.internal", 5433, "platform", "royalty",
    )  # fmt: skip
    assert not (tmp_path / "unused").exists()  # no embedded server was started


def test_without_database_url_the_embedded_server_is_used(monkeypatch, settings):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    default = settings.DATABASES["default"]
    assert default["HOST"].endswith("test-postgres")  # the Unix socket dir of the test server
