"""gunicorn settings for the web process (local stack and production image)."""

import os

bind = os.environ.get("PLATFORM_HTTP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
timeout = 120
accesslog = "-"
errorlog = "-"
capture_output = True


def post_worker_init(worker) -> None:
    """Warm each web worker before it serves: the first retrieval must not load the encoder."""
    from catalog.retrieval.runtime import encoder_warm_up

    worker.log.info("encoder warmed up in %.1f s", encoder_warm_up())
    if os.environ.get("PLATFORM_WEB_WARM_DIR"):  # the local stack waits for every worker
        folder = os.environ["PLATFORM_WEB_WARM_DIR"]
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, str(os.getpid())), "w").close()
