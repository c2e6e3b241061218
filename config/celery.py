"""The Celery app.

Queues by kind of work: `generation`, `attribution` (training-time attribution), `audit`
(the similarity audit), `embedding` (imports, embeddings). Pools: config/workers.py.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
