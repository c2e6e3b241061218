"""Seed 000's evaluation commands on the tiny studio generator (4 training recordings):
`tda_self_influence` (Train-to-Train grid) and `tda_compare` (Test-to-Train comparison with
the fast path) write finite tables, valid PNGs and a symmetric correlation matrix; staff (only)
see the reports; bad input ends in a CommandError with a clear message."""

from __future__ import annotations

import csv
import json
import math
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from attribution.studies.compare import OUTPUT_COLUMNS
from attribution.studies.self_influence import SELF_INFLUENCE_COLUMNS, study_grid
from attribution.tda import TDAConfig, frechet_distance
from attribution.tda.baselines import (
    correlation_matrix,
    frechet_distance_in_span,
    kmeans_representatives,
    max_window_similarity,
    normalised_views,
)
from catalog.models import EncoderVersion
from generation.models import ModelVersion
from tests.generation.conftest import TRAINED

PNG = b"\x89PNG\r\n\x1a\n"
TINY_TDA = {"loss_mask": True, "learning_rate": 1e-7, "items_per_batch": 2,
            "loss_timesteps": 8, "unlearn_timesteps": 8, "fisher_timesteps": 4}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tda_settings(settings, tmp_path):
    settings.TDA_STATE_DIR = tmp_path / "tda"
    settings.TDA_CONFIG = TINY_TDA
    return settings


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def report_of(output: str) -> Path:
    line = next(line for line in output.splitlines() if line.startswith("Report: "))
    return Path(line.removeprefix("Report: "))


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == PNG


def finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


@pytest.mark.django_db
def test_studies_on_the_tiny_generator_and_the_staff_page(
    studio,  # noqa: F811
    make_user,
    staff,
    tda_settings,
):
    maker = make_user("maker")

    # -- Train-to-Train: 2 k-means targets, 2 settings (masks both vs none) --------------------
    output = run(
        "tda_self_influence", "--targets", "2", "--padded-targets", "0", "--lr", "1e-7",
        "--steps", "1", "--layer-groups", "blocks", "--masks", "both", "none",
        "--loss-timesteps", "4", "--fd-targets", "2", "--fd-samples", "1", "--sample-steps", "3",
    )  # fmt: skip
    assert "2 grid settings (one factor at a time)" in output
    assert "R(z_tar)" in output and "Wall time" in output
    table_directory = directory = report_of(output)
    assert directory.parent == Path(tda_settings.TDA_STATE_DIR) / "reports"
    table = json.loads((directory / "table.json").read_text())
    rows = table["rows"]
    masks = [(r["unlearn_mask"], r["loss_mask"], r["bank"]) for r in rows]
    assert masks == [(True, True, 0), (True, True, 1), (False, False, 0), (False, False, 1)]
    for row in rows:
        assert row["targets"] == 2 and row["fd_samples"] == 2
        for key in ("mean_rank", "median_rank", "clap_topk", "clap_botk", "fd", "seconds"):
            assert finite(row[key]), (key, row)
        # lr 1e-7: a small update in the linear regime, whose own loss still rises
        assert 0 < row["own_loss_rise"] < 0.01 and row["pearson_first_order"] > 0.99
        assert len(row["ranks"]) == 2 and row["fd"] >= 0
        for target, higher in row["outranked_by"].items():  # exactly the items ranked above
            assert len(higher) == row["ranks"][target] - 1 and target not in map(str, higher)
        assert row["mean_rank_padded"] is None  # the studio's recordings fill the context
    assert sum(t["kmeans"] for t in table["targets"]) == 2
    assert any("padded" in note for note in table["notes"])
    with (directory / "table.csv").open() as handle:
        lines = list(csv.reader(handle))
    assert tuple(lines[0]) == SELF_INFLUENCE_COLUMNS and len(lines) == 5
    assert set(table["hubs"]) == {"1e-07"} and set(table["hubs"]["1e-07"]["top"]) == {"0", "1"}
    assert_png(directory / "self_influence.png")
    fishers = list((Path(tda_settings.TDA_STATE_DIR) / "models").glob("*/fisher-*.pt"))
    assert len(fishers) == 2  # one shared Fisher per M_L setting, where the product's jobs look

    # -- Test-to-Train on 2 new generations, fast path on -------------------------------------
    output = run(
        "tda_compare", "--generate", "2", "--user", maker.username, "--seconds", "1.5",
        "--fast-repeats", "1", "--probe-timesteps", "2", "--projection-dims", "512", "4096",
    )  # fmt: skip
    assert "generated 2/2" in output and "Pearson correlation" in output
    assert "dim 512) over 2 outputs" in output and "NOT reached" in output
    directory = report_of(output)
    summary = json.loads((directory / "summary.json").read_text())
    names = summary["correlation"]["names"]
    assert names == ["unlearning", "clap", "activation", "rps", "fast"]
    matrix = np.array(summary["correlation"]["matrix"], dtype=float)
    assert matrix.shape == (5, 5) and np.all(np.isfinite(matrix))
    assert np.allclose(matrix, matrix.T) and np.allclose(np.diag(matrix), 1.0)
    assert np.all(np.abs(matrix) <= 1 + 1e-9)
    assert len(summary["rows"]) == 2
    for row in summary["rows"]:
        for key in ("exact_seconds", "fast_seconds", "speedup", "spearman_fast"):
            assert finite(row[key]), (key, row)
        assert row["top_recording"] in studio["model_version"].training_recording_ids
    fast = summary["fast_path"]
    assert fast["outputs"] == 2 and finite(fast["mean_speedup"]) and not fast["goal_reached"]
    assert set(summary["fast_path_by_projection_dim"]) == {"512", "4096"}
    by_dim = summary["fast_path_by_projection_dim"]
    assert by_dim["4096"]["mean_spearman"] >= 0.8  # 4 items: the fast path ranks like exact
    assert by_dim["4096"]["mean_spearman"] >= by_dim["512"]["mean_spearman"]
    scores = json.loads((directory / "scores.json").read_text())
    assert sorted(scores["ids"]) == sorted(studio["model_version"].training_recording_ids)
    for entry in scores["outputs"]:
        for name in names:
            assert len(entry[name]) == TRAINED and all(finite(v) for v in entry[name])
        assert max(entry["clap"]) <= 1 + 1e-6 and max(entry["activation"]) <= 1 + 1e-6
    with (directory / "outputs.csv").open() as handle:
        lines = list(csv.reader(handle))
    assert tuple(lines[0]) == OUTPUT_COLUMNS and len(lines) == 3
    for name in ("fig1_normalised_scores.png", "fig2_correlation.png", "fast_path.png"):
        assert_png(directory / name)
    assert len(list((directory / "runs").glob("*.json"))) == 2

    # the same outputs again, named, with the fast path off
    refs = [row["generation"] for row in summary["rows"]]
    output = run("tda_compare", "--generations", *refs, "--no-fast", "--probe-timesteps", "1")
    again = json.loads((report_of(output) / "scores.json").read_text())
    for first, second in zip(scores["outputs"], again["outputs"], strict=True):
        assert first["unlearning"] == second["unlearning"]  # exact scores are reproducible

    # -- the staff page lists the reports and serves their figures ----------------------------
    client = Client()
    client.force_login(staff)
    page = client.get("/attribution/reports/")
    assert page.status_code == 200
    html = page.content.decode()
    reports = sorted(p.name for p in (Path(tda_settings.TDA_STATE_DIR) / "reports").iterdir())
    assert len(reports) == 3 and all(name in html for name in reports)
    assert html.index(directory.name) < html.index(table_directory.name)  # newest first
    assert html.count("<img") == 1 + 3 + 2
    image = client.get(f"/attribution/reports/{directory.name}/fig2_correlation.png")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content)[:8] == PNG
    assert client.get(f"/attribution/reports/{directory.name}/..%2Fsecret.png").status_code == 404
    assert client.get(f"/attribution/reports/{directory.name}/missing.png").status_code == 404
    for user in (maker, None):
        other = Client()
        if user is not None:
            other.force_login(user)
        for url in ("/attribution/reports/", f"/attribution/reports/{directory.name}/table.csv"):
            response = other.get(url)
            assert response.status_code == 302 and "/admin/login/" in response["Location"]

    # -- bad input that needs a real model version ---------------------------------------------
    with pytest.raises(CommandError, match="generation .* does not exist"):
        run("tda_compare", "--generations", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(CommandError, match="needs --user"):
        run("tda_compare", "--generate", "1")


@pytest.mark.django_db
def test_bad_input_is_a_command_error_with_a_clear_message(make_recording, tda_settings):
    with pytest.raises(CommandError, match="--targets must be at least 1"):
        run("tda_self_influence", "--targets", "0")
    for command in ("tda_self_influence", "tda_compare"):
        with pytest.raises(CommandError, match="model version 999999 does not exist"):
            run(command, "--model-version", "999999")
        with pytest.raises(CommandError, match="no active generator"):
            run(command)

    encoder = EncoderVersion.objects.create(
        name="never-run", version="1", checkpoint_path="/nonexistent.pt", checkpoint_sha256="0"
    )
    recordings = [make_recording(), make_recording()]
    bare = ModelVersion.objects.create(
        name="bare", version="1", checkpoint_path="/nonexistent.pt", checkpoint_sha256="1" * 64,
        encoder=encoder, training_recording_ids=[r.pk for r in recordings],
    )  # fmt: skip
    for command in ("tda_self_influence", "tda_compare"):
        with pytest.raises(CommandError, match="2 of its 2 training recordings have no embed"):
            run(command, "--model-version", str(bare.pk))


def test_grid_helpers_and_baseline_maths():
    """No database: the grid's one-factor-at-a-time default, k-means targets, windowed
    similarity, Fig. 1 views and the correlation matrix."""
    base = TDAConfig(learning_rate=1e-7, loss_mask=True)
    grid = study_grid(base)
    assert grid[0].varied == "base" and grid[0].layer_group == "blocks"
    assert len(grid) == 1 + 6 + 2 + 3 + 3  # lr 1e-7..1e-1 x6 more, steps x2, groups, masks
    lrs = sorted({g.learning_rate for g in grid})
    assert lrs[0] == 1e-7 and lrs[-1] == 1e-1 and len(lrs) == 7  # seed 000's search range
    assert len(set(g.label for g in grid)) == len(grid)
    assert len(study_grid(base, full=True)) == 7 * 3 * 4 * 4
    with pytest.raises(Exception, match="unknown grid values"):
        study_grid(base, layer_groups=["attention"])

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 16))
    rows = np.concatenate([c + 0.01 * rng.standard_normal((5, 16)) for c in centres])
    chosen = kmeans_representatives(rows, 3, seed=1)
    assert sorted(i // 5 for i in chosen) == [0, 1, 2]  # one per cluster
    assert kmeans_representatives(rows, 3, seed=1) == chosen

    query = np.eye(4)[:2]
    items = [np.eye(4)[2:], np.array([[1.0, 1.0, 0, 0]]), np.eye(4)[:1]]
    assert np.allclose(max_window_similarity(query, items), [0.0, 1 / np.sqrt(2), 1.0])

    before, after = rng.standard_normal((6, 40)), rng.standard_normal((5, 40)) + 0.3
    assert frechet_distance_in_span(before, after) == pytest.approx(
        frechet_distance(before, after), rel=1e-6
    )

    outputs = [
        {"a": np.array([3.0, 1.0, 2.0]), "b": np.array([1.0, 2.0, 3.0]), "c": np.ones(3)},
        {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([1.0, 2.0, 3.0]), "c": np.ones(3)},
    ]
    matrix = correlation_matrix(outputs, ["a", "b", "c"])
    assert np.allclose(np.diag(matrix), 1.0) and np.allclose(matrix, matrix.T, equal_nan=True)
    assert matrix[0, 1] == pytest.approx((-0.5 + 1.0) / 2) and np.isnan(matrix[0, 2])
    views = normalised_views(outputs, ["a", "b"], "a")
    assert np.allclose(views["minmax"]["a"], [[1.0, 0.5, 0.0], [1.0, 0.5, 0.0]])
    assert np.allclose(views["softmax"]["b"].sum(axis=1), 1.0)
