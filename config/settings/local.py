"""Local development and the demo: embedded PostgreSQL unless DATABASE_URL is set."""

from config.settings.base import *  # noqa: F403
from config.settings.base import STATE_DIR, env_bool
from config.settings.database import database_settings

DEBUG = env_bool("DJANGO_DEBUG", True)
DATABASES = {"default": database_settings(STATE_DIR / "postgres", name="platform")}
