"""Run the whole platform locally: `python platform/local_stack.py demo` (what `make demo` does).

Steps: demo music packages, embedded PostgreSQL + pgvector (unless DATABASE_URL is set),
Redis reachable, migrations, static files, demo catalogue/accounts, the audio-text encoder
and the catalogue's embeddings, then the web server
(gunicorn), the Celery worker pools of config/workers.py (a generation worker, and a
background worker for attribution, audits and embeddings at lower OS priority) and Celery
beat (the job sweeper). A worker that dies is started again, as a process supervisor would;
Ctrl-C stops every process this script started.

`python platform/local_stack.py stop-db` stops an embedded server left running by
`manage.py` commands. This folder is deliberately not a Python package (see DESIGN.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalog.demo.sources import missing_packages  # noqa: E402  (plain module, no Django)
from config.embedded_postgres import ensure_running, stop  # noqa: E402
from config.workers import POOLS, WorkerPool, beat_command, spawn  # noqa: E402

STATE_DIR = Path(os.environ.get("PLATFORM_STATE_DIR", ROOT / ".state")).resolve()
PGDATA = STATE_DIR / "postgres"
PYTHON = sys.executable


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def manage(*args: str) -> None:
    subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], cwd=ROOT, check=True)


def ensure_music_packages() -> None:
    missing = missing_packages()
    if not missing:
        print("demo music packages present")
        return
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"missing Debian packages {missing}: run `sudo {' '.join(command)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(command, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(command, env=env, check=True)


def ensure_database() -> bool:
    """Returns whether this script started the embedded server (and so should stop it)."""
    if os.environ.get("DATABASE_URL"):
        print("using DATABASE_URL")
        return False
    was_running = (PGDATA / "postmaster.pid").exists()
    server = ensure_running(PGDATA, database="platform")
    print(f"embedded PostgreSQL ({'reused' if was_running else 'started'}): {server.uri()}")
    return not was_running


def broker_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 2):
            return True
    except OSError:
        return False


def ensure_redis(children: list[subprocess.Popen]) -> None:
    url = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    if broker_reachable(url):
        print(f"Celery broker reachable at {url}")
        return
    if urlparse(url).hostname in {"127.0.0.1", "localhost"} and shutil.which("redis-server"):
        port = str(urlparse(url).port or 6379)
        children.append(
            subprocess.Popen(
                ["redis-server", "--port", port, "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        for _ in range(50):
            if broker_reachable(url):
                print(f"started redis-server on port {port}")
                return
            time.sleep(0.1)
    sys.exit(f"Celery broker not reachable at {url}; start Redis or set CELERY_BROKER_URL")


def wait_for_http(url: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    return False


def wait_for_warm_workers(folder: Path, timeout: float = 120.0) -> bool:
    """Every web worker has loaded the encoder (platform/gunicorn.conf.py marks it)."""
    expected = int(os.environ.get("WEB_CONCURRENCY", "2"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and len(list(folder.iterdir())) >= expected:
            return True
        time.sleep(0.2)
    return False


def terminate(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)


def start_pool(pool: WorkerPool) -> subprocess.Popen:
    return spawn(pool.command(PYTHON), cwd=ROOT, nice=pool.nice)


def demo(host: str, port: int) -> int:
    children: list[subprocess.Popen] = []
    started_db = False

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    # Set explicitly: a shell may have started us with SIGINT ignored (background jobs).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        step("Demo music (Debian packages of freely licensed game soundtracks)")
        ensure_music_packages()
        step("Database")
        started_db = ensure_database()
        step("Celery broker")
        ensure_redis(children)
        step("Migrations and static files")
        manage("migrate", "--noinput", "-v", "0")
        manage("collectstatic", "--noinput", "-v", "0")
        step("Demo catalogue, rights, consent and accounts")
        manage("demo_setup")
        step("Audio-text encoder (committed demo checkpoint, or trained if consent changed)")
        manage("train_encoder", "--if-needed")
        step("Embeddings of the catalogue (10-s windows + track vectors in pgvector)")
        manage("embed_catalogue")
        step("Similarity audit's encoder (aisfx's pretrained embedding, from its card)")
        manage("register_encoder", "aisfx", "catalog/encoders/pretrained/aisfx.json")
        step("3-s clips of the catalogue and the similarity audit's thresholds (seed 003)")
        manage("embed_clips", "--calibrate")
        step("The audit's second score: melody fingerprints (basic-pitch), calibrated")
        manage("register_encoder", "melody", "catalog/encoders/pretrained/melody-basic-pitch.json")
        manage("embed_clips", "--encoder", "melody", "--calibrate")
        step("Generator (committed demo checkpoint, or trained if consent changed; <= 20 min)")
        manage("train_generator", "--if-needed")

        step("Starting web server, Celery workers and beat")
        warm = STATE_DIR / "web-warm"
        shutil.rmtree(warm, ignore_errors=True)
        # The demo serves people: no debug pages (DJANGO_DEBUG=1 turns them back on).
        env = {"DJANGO_DEBUG": "0", **os.environ, "PLATFORM_HTTP_BIND": f"{host}:{port}",
               "PLATFORM_WEB_WARM_DIR": str(warm)}  # fmt: skip
        children.append(
            subprocess.Popen(
                [PYTHON, "-m", "gunicorn", "-c", str(ROOT / "platform/gunicorn.conf.py"),
                 "config.wsgi:application"],
                cwd=ROOT, env=env, start_new_session=True,
            )
        )  # fmt: skip
        workers = {pool.name: start_pool(pool) for pool in POOLS}
        children.extend(workers.values())
        children.append(spawn(beat_command(PYTHON, STATE_DIR), cwd=ROOT))
        for pool in POOLS:
            print(f"worker {pool.name}: queues {', '.join(pool.queues)} (nice +{pool.nice})")
        base = f"http://{host}:{port}"
        if not wait_for_http(base + "/") or not wait_for_warm_workers(warm):
            print("web server did not answer in time", file=sys.stderr)
            return 1
        print(
            f"\nThe platform is running:\n"
            f"  web         {base}/\n"
            f"  API docs    {base}/api/docs/\n"
            f"  catalogue   {base}/api/catalogue/recordings/\n"
            f'  retrieval   POST {base}/api/retrieval/text/  {{"prompt": "calm piano"}}\n'
            f"  generate    POST {base}/api/generations/  (see README: two references)\n"
            f"  admin       {base}/admin/\n"
            f"Sign in with the demo accounts printed above. Ctrl-C stops everything.\n",
            flush=True,
        )
        pools = {pool.name: pool for pool in POOLS}
        while True:
            for name, child in list(workers.items()):
                if child.poll() is not None:  # killed or crashed: its jobs are redelivered
                    print(f"worker {name} exited with {child.returncode}; starting it again",
                          file=sys.stderr, flush=True)  # fmt: skip
                    children.remove(child)
                    workers[name] = start_pool(pools[name])
                    children.append(workers[name])
            for child in children:
                if child not in workers.values() and child.poll() is not None:
                    print(
                        f"process {child.args[:4]} exited with {child.returncode}", file=sys.stderr
                    )
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"step failed: {' '.join(map(str, exc.cmd))}", file=sys.stderr)
        return exc.returncode or 1
    finally:
        terminate(children)
        if started_db:
            stop(PGDATA)
        print("all processes stopped", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["demo", "stop-db"], nargs="?", default="demo")
    parser.add_argument("--host", default=os.environ.get("PLATFORM_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PLATFORM_PORT", "8000")))
    args = parser.parse_args()
    if args.command == "stop-db":
        print("stopped" if stop(PGDATA) else "no embedded server running")
        return 0
    return demo(args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
