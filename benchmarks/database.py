"""A throwaway database for benchmark commands, so measurements never touch real data.

Created afresh (a leftover from a --keep run is dropped) on the same server as the configured
database (embedded or DATABASE_URL), migrated,
made Django's default connection for the duration, and dropped afterwards unless kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import sql


def _admin_connect(settings_dict: dict, dbname: str) -> psycopg.Connection:
    params = {
        "dbname": dbname,
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
        "host": settings_dict.get("HOST") or None,
        "port": settings_dict.get("PORT") or None,
    }
    options = settings_dict.get("OPTIONS") or {}
    for key in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
        if key in options:
            params[key] = options[key]
    return psycopg.connect(autocommit=True, **{k: v for k, v in params.items() if v is not None})


@contextmanager
def benchmark_database(name: str, *, keep: bool, log: Callable[[str], None]) -> Iterator[None]:
    conn = connections[DEFAULT_DB_ALIAS]
    original = conn.settings_dict["NAME"]
    if original == name:
        raise CommandError(f"the configured database is already '{name}'")
    with _admin_connect(conn.settings_dict, original) as admin:  # always a fresh one
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    log(f"benchmark database '{name}' created on the server of '{original}'; migrating")
    conn.close()
    conn.settings_dict["NAME"] = name
    # DEBUG=True (local settings) would log and format every query, adding client-side time
    # to each measurement; production runs with DEBUG=False.
    debug_was, settings.DEBUG = settings.DEBUG, False
    log("settings.DEBUG=False for the run (no per-query logging, as in production)")
    try:
        call_command("migrate", verbosity=0)
        yield
    finally:
        settings.DEBUG = debug_was
        conn.close()
        conn.settings_dict["NAME"] = original
        if keep:
            log(f"kept database '{name}' (--keep)")
        else:
            with _admin_connect(conn.settings_dict, original) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            log(f"dropped database '{name}'")


def in_benchmark_database(name: str) -> bool:
    return connections[DEFAULT_DB_ALIAS].settings_dict["NAME"] == name
