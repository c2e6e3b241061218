"""Test session: its own embedded server (stopped when the session ends) and Redis database."""

import os

from config.settings.base import *  # noqa: F403
from config.settings.base import STATE_DIR
from config.settings.database import database_settings

DATABASES = {
    "default": database_settings(STATE_DIR / "test-postgres", name="platform", stop_at_exit=True)
}
# One test database per test session, so that two sessions on one machine (two checkouts'
# CI, or a developer's run beside CI) do not drop each other's database.
DATABASES["default"]["TEST"] = {"NAME": f"test_platform_{os.getpid()}"}
CELERY_BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
MEDIA_ROOT = STATE_DIR / "test-media"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CATALOG_ANALYSIS_SECONDS = 20.0
WHITENOISE_AUTOREFRESH = True  # serve static files from the finders; no collectstatic in tests
TDA_STATE_DIR = STATE_DIR / "test-tda"
# Tests that attribute generations turn this on (with a worker or in process); others would
# leave jobs in the broker for a later test's worker.
TDA_ON_GENERATION = False
# Audits are run in process by the tests that need them.
AUDIT_ON_GENERATION = False
# The tiny tests audit with the tiny encoder they make active; the musicnn tests name musicnn.
AUDIT_ENCODER = ""
AUDIT_MELODY_ENCODER = ""  # needs 2-s clips; tests that use it set 3-s clips
# The tiny test generator's context is 2 s: audit clips (and so the shortest output) scale down
# with it. Tests of the product's 3-s clips set these back.
AUDIT_CLIP_SECONDS = 1.5
AUDIT_CLIP_HOP_SECONDS = 0.75
GENERATION_MIN_SECONDS = AUDIT_CLIP_SECONDS

# Consent changes in other tests must not start removals from their models; the unlearning
# tests turn it on.
UNLEARNING_ON_REVOCATION = False
