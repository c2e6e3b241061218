"""gunicorn settings for the web process (local stack and production image)."""

import os

bind = os.environ.get("PLATFORM_HTTP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
timeout = 120
accesslog = "-"
errorlog = "-"
capture_output = True
