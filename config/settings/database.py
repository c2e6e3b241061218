"""Database selection: DATABASE_URL when set, otherwise the embedded server in the state dir."""

import os
from pathlib import Path


def database_settings(pgdata: Path, *, name: str, stop_at_exit: bool = False) -> dict:
    url = os.environ.get("DATABASE_URL")
    if url:
        import dj_database_url

        return dj_database_url.parse(url, conn_max_age=60)
    from config.embedded_postgres import ensure_running

    return ensure_running(pgdata, database=name, stop_at_exit=stop_at_exit).django_database()
