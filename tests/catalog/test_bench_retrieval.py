"""The retrieval benchmark's measuring core on a tiny synthetic catalogue in the test database
(the command's separate-database handling is not exercised here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.db import connection

from benchmarks.retrieval import (
    INDEX_NAME,
    BenchConfig,
    exact_topk,
    format_report,
    product_index_parameters,
    recall_at_k,
    run_size,
)
from catalog.models import RecordingWindowEmbedding

pytestmark = pytest.mark.django_db

RESULT_KEYS = {
    "size",
    "recordings",
    "windows_per_recording",
    "dim",
    "queries",
    "seed",
    "data",
    "config",
    "server",
    "load",
    "hnsw_build",
    "consent",
    "exact_self_recall",
    "exact_neighbour_similarity",
    "ground_truth_check",
    "explain",
    "pgvector",
    "faiss",
    "matched",
    "goal",
}
ROW_KEYS = {
    "ef_search",
    "recall_at_10",
    "recall_perturbed",
    "recall_fresh",
    "p50_ms",
    "p95_ms",
    "mean_ms",
}


def test_exact_topk_matches_plain_argsort():
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, 512)).astype(np.float32)
    queries = rng.standard_normal((7, 512)).astype(np.float32)
    mask = rng.random(500) < 0.2
    got = exact_topk(vectors, queries, masks={"all": None, "some": mask}, chunk=64)

    half = vectors.astype(np.float16).astype(np.float32)
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    q = queries.astype(np.float16).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    scores = q @ half.T
    assert recall_at_k(got["all"], np.argsort(-scores, axis=1)[:, :10]) == 1.0
    filtered = np.where(mask, scores, -np.inf)
    assert recall_at_k(got["some"], np.argsort(-filtered, axis=1)[:, :10]) == 1.0
    assert mask[got["some"]].all()


def test_run_size_on_tiny_catalogue():
    config = BenchConfig(
        size=300,
        queries=20,
        seed=11,
        ef_search=(40, 100),
        maintenance_work_mem="64MB",
        warmup=2,
        ground_truth_checks=5,
    )
    lines: list[str] = []
    result = run_size(config, log=lines.append)

    assert result.keys() >= RESULT_KEYS
    assert json.loads(json.dumps(result)) == result  # JSON-ready as written by the command
    assert result["size"] == 300 and result["recordings"] == 30
    assert result["consent"]["permitted_recordings"] == 3
    assert result["consent"]["permitted_windows"] == 30

    # exact vs exact: deterministic numpy ground truth; Postgres' exact scan agrees with it
    assert result["exact_self_recall"] == {"unfiltered": 1.0, "filtered": 1.0}
    assert result["ground_truth_check"]["unfiltered"] == 1.0
    assert result["ground_truth_check"]["filtered"] == 1.0

    for name in ("unfiltered", "filtered"):
        rows = result["pgvector"][name]
        assert [r["ef_search"] for r in rows] == [40, 100]
        assert all(r.keys() >= ROW_KEYS for r in rows)
        assert max(r["recall_at_10"] for r in rows) >= 0.9
        assert all(r["p50_ms"] > 0 for r in rows)
        assert [p["ef_search"] for p in result["explain"][name]] == [40, 100]
        plans = result["explain"][name]
        assert all(p.keys() >= {"uses_hnsw", "plan", "execution_ms", "planning_ms"} for p in plans)
        assert all(isinstance(r["uses_hnsw"], bool) for r in rows)
    for rows in result["faiss"]["runs"].values():
        assert all(r.keys() >= ROW_KEYS for r in rows)
        assert max(r["recall_at_10"] for r in rows) >= 0.9
    assert result["faiss"]["build_seconds"] > 0
    assert {"pg_unfiltered", "pg_filtered", "recall"} <= result["matched"].keys()
    assert {"pass", "unfiltered_pass", "filtered_recall_pass", "applies"} <= result["goal"].keys()
    assert result["goal"]["applies"] is False
    assert result["hnsw_build"]["seconds"] > 0
    assert result["consent_index_build"]["index_bytes"] > 0  # the filter's partial index

    # the product tables hold the vectors and the index is back with its migration definition
    assert RecordingWindowEmbedding.objects.count() == 300
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [INDEX_NAME])
        (indexdef,) = cursor.fetchone()
    assert "USING hnsw (embedding halfvec_cosine_ops)" in indexdef
    m, ef_construction = product_index_parameters()
    assert f"m='{m}'" in indexdef and f"ef_construction='{ef_construction}'" in indexdef

    report = "\n".join(format_report(result))
    assert "recall@10" in report and "GOAL" in report
