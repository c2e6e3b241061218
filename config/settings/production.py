"""Production: everything from the environment; an external Postgres with pgvector is required."""

import os

from config.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
if "DATABASE_URL" not in os.environ:
    raise RuntimeError("production settings need DATABASE_URL (PostgreSQL with pgvector)")

import dj_database_url  # noqa: E402

DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
