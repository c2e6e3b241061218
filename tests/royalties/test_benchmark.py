"""The payout benchmark's core on a tiny ledger in the test database."""

import json

import pytest

from benchmarks.royalties import RoyaltyBenchConfig, run_benchmark
from royalties.models import LedgerEntry
from royalties.selectors import ledger_conservation_check

pytestmark = pytest.mark.django_db


def test_benchmark_builds_a_balanced_ledger_and_times_the_reports():
    config = RoyaltyBenchConfig(
        entries=3000, holders=20, recordings=60, training_recordings=10, requests=3,
        service_sample=5,
    )  # fmt: skip
    lines: list[str] = []
    result = run_benchmark(config, log=lines.append)

    assert json.loads(json.dumps(result)) == result  # written as JSON by the command
    assert result["build"]["entries"] >= 3000
    assert LedgerEntry.objects.count() >= 3000
    assert result["service_cross_check"] == {"generations": 5, "mismatches": 0}
    assert result["conservation"]["ok"] and ledger_conservation_check().ok
    assert set(result["latency"]) == {"summary", "by_recording", "by_generation", "csv"}
    assert all(v["p50_ms"] > 0 for v in result["latency"].values())
    assert result["report_holder"]["entries_in_period"] > 0
    assert result["goal"]["applies"] is False
