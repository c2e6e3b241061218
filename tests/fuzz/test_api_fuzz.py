"""`make fuzz`: Schemathesis against the live test server's own `/api/schema/`, as an
anonymous client, a music maker and a rights-holder member, checking for server errors and
responses that break the published schema. Any finding fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from tests.attribution.conftest import emptied_log_after  # noqa: F401
from tests.generation.conftest import (  # noqa: F401
    embedded_catalogue,
    generation_worker,
    pricing,
    studio,
    tiny_checkpoint,
)

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.celery,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("one_torch_thread", "emptied_log_after"),
]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))


def fuzz(live_server, role: str, token: str | None, report_dir: Path) -> dict:
    headers = ["--header", f"Authorization: Token {token}"] if token else []
    command = [
        str(SCHEMATHESIS),
        "--config-file", str(CONFIG),
        "run", f"{live_server.url}/api/schema/",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", os.environ.get("FUZZ_SEED", "17"),
        "--workers", "1",
        "--no-color",
        "--report", "json",
        "--report-json-path", str(report_dir / f"{role}.json"),
        *headers,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    (report_dir / f"{role}.txt").write_text(result.stdout + result.stderr)
    return {"returncode": result.returncode, "stdout": result.stdout}


@pytest.mark.parametrize("role", ["anonymous", "maker", "holder"])
def test_api_answers_every_generated_request_within_its_schema(
    role,
    studio,
    live_server,
    generation_worker,
    make_user,
    settings,  # noqa: F811
):
    report_dir = Path(os.environ.get("FUZZ_REPORT_DIR", settings.STATE_DIR / "fuzz"))
    report_dir.mkdir(parents=True, exist_ok=True)
    users = {"maker": make_user("fuzz-maker"), "holder": studio["member"]}
    token = Token.objects.create(user=users[role]).key if role in users else None
    outcome = fuzz(live_server, role, token, report_dir)
    assert outcome["returncode"] == 0, f"schemathesis found problems as {role}"
