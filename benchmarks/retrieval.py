"""Retrieval benchmark: the product's window query (pgvector HNSW, consent filter in SQL)
against exact search and faiss, on synthetic clustered vectors stored in the real tables.

`run_size` is the measuring core. It works on Django's default connection as it is (the
`bench_retrieval` command points that at its own database first; tests use the test
database) and returns JSON-ready figures; `format_report` turns them into printed lines.

Data model of the synthetic vectors (so recall figures mean something): `clusters` unit
gaussian centres; each recording picks a centre and a recording offset, each of its windows
adds window noise; everything is normalised to unit length. Windows of one recording are
therefore close to each other, recordings of one cluster less so, clusters far apart.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from catalog.models import (
    EMBEDDING_DIM,
    SEARCH_INDEX_DISTRIBUTIONS,
    SEARCH_INDEX_USES,
    Artist,
    EncoderVersion,
    RecordingWindowEmbedding,
    RightsHolder,
)
from catalog.retrieval.vector_search import SearchTuning, window_neighbours
from catalog.selectors import consent_requirement
from catalog.services.consent_masks import consent_masks_refresh

INDEX_NAME = "window_embedding_hnsw"
HNSW_SCAN = re.compile(r"Index Scan using (window_\w+)")
VECTOR_LITERAL = re.compile(r"'\[[^\]]*\]'::halfvec")
WINDOW_TABLE = RecordingWindowEmbedding._meta.db_table
K = 10
USE, DISTRIBUTION = "song_inference", "commercial"
# the product's partial index for the benchmark's consent filter (catalog.models)
CONSENT_INDEX_NAME = (
    f"window_hnsw_{SEARCH_INDEX_USES[USE]}_{SEARCH_INDEX_DISTRIBUTIONS[DISTRIBUTION]}"
)
TARGET = {"size": 1_000_000, "p95_ms": 25.0, "recall": 0.95}
BENCH_NAME = "bench-synthetic"

# Noise scales, as the expected norm of the noise vector (per-dimension sigma * sqrt(dim)).
RECORDING_SPREAD = 0.6
WINDOW_SPREAD = 0.35
QUERY_SPREAD = 0.25
ISOTROPIC_FLOOR = 0.05  # with --local-dim: isotropic noise left outside the subspace

Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    size: int
    queries: int = 200
    seed: int = 0
    ef_search: tuple[int, ...] = (40, 100, 200, 400, 800)
    permitted_fraction: float = 0.10
    clusters: int = 1000
    local_dim: int | None = None  # None: isotropic noise; D: noise in a shared D-d subspace
    windows_per_recording: int = 10
    window_seconds: float = 10.0
    maintenance_work_mem: str = "4GB"
    parallel_maintenance_workers: int = 2
    warmup: int = 20
    ground_truth_checks: int = 5
    faiss: bool = True
    copy_chunk: int = 20_000
    run_tag: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S"))

    @property
    def recordings(self) -> int:
        return -(-self.size // self.windows_per_recording)


def data_description(config: BenchConfig) -> str:
    if config.local_dim:
        noise = (
            f"noise in a shared random {config.local_dim}-d subspace (low intrinsic "
            f"dimension, closer to real embeddings) plus isotropic floor ~{ISOTROPIC_FLOOR}"
        )
    else:
        noise = "isotropic 512-d noise (high intrinsic dimension: a hard case for ANN)"
    return (
        f"synthetic clustered unit vectors (seed {config.seed}): {config.clusters} gaussian "
        f"cluster centres, per-recording offset (norm ~{RECORDING_SPREAD}), per-window noise "
        f"(norm ~{WINDOW_SPREAD}), {noise}; normalised; float32, stored as "
        f"halfvec({EMBEDDING_DIM})"
    )


# --- synthetic data and exact search ---------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _noise(rng: np.random.Generator, n: int, spread: float, basis: np.ndarray | None):
    """n noise vectors of expected norm `spread`: isotropic, or inside `basis`' subspace
    (rows orthonormal) plus a small isotropic floor."""
    dim = EMBEDDING_DIM
    if basis is None:
        return rng.standard_normal((n, dim), dtype=np.float32) * np.float32(spread / np.sqrt(dim))
    local = rng.standard_normal((n, basis.shape[0]), dtype=np.float32) @ basis
    local *= np.float32(spread / np.sqrt(basis.shape[0]))
    local += rng.standard_normal((n, dim), dtype=np.float32) * np.float32(
        ISOTROPIC_FLOOR / np.sqrt(dim)
    )
    return local


def synthetic_windows(config: BenchConfig, rng: np.random.Generator):
    """(vectors (size, dim) float32 unit, centres, noise basis or None)."""
    dim, wpr = EMBEDDING_DIM, config.windows_per_recording
    centres = _unit(rng.standard_normal((config.clusters, dim), dtype=np.float32))
    rec_cluster = rng.integers(config.clusters, size=config.recordings)
    basis = None
    if config.local_dim:
        q, _ = np.linalg.qr(rng.standard_normal((dim, config.local_dim)))
        basis = q.T.astype(np.float32)  # (local_dim, dim), orthonormal rows
    vectors = np.empty((config.size, dim), dtype=np.float32)
    step = 10_000  # recordings per chunk; fixed so the data depends on the seed only
    for first in range(0, config.recordings, step):
        last = min(first + step, config.recordings)
        base = centres[rec_cluster[first:last]] + _noise(rng, last - first, RECORDING_SPREAD, basis)
        rows = np.repeat(base, wpr, axis=0)
        rows += _noise(rng, len(rows), WINDOW_SPREAD, basis)
        lo, hi = first * wpr, min(last * wpr, config.size)
        vectors[lo:hi] = _unit(rows[: hi - lo])
    return vectors, centres, basis


def synthetic_queries(
    vectors: np.ndarray,
    centres: np.ndarray,
    count: int,
    rng: np.random.Generator,
    basis: np.ndarray | None = None,
) -> np.ndarray:
    """Half perturbed stored windows, half windows of fresh recordings of random clusters."""
    near = count // 2
    picked = vectors[rng.integers(len(vectors), size=near)]
    perturbed = picked + _noise(rng, near, QUERY_SPREAD, basis)
    fresh = centres[rng.integers(len(centres), size=count - near)]
    fresh = fresh + _noise(rng, count - near, np.hypot(RECORDING_SPREAD, WINDOW_SPREAD), basis)
    return _unit(np.concatenate([perturbed, fresh]).astype(np.float32))


def halfvec_unit(x: np.ndarray) -> np.ndarray:
    """What Postgres compares: values rounded to float16 (halfvec), cosine = normalised dot."""
    return _unit(np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32))


def exact_topk(
    vectors: np.ndarray,
    queries: np.ndarray,
    *,
    k: int = K,
    masks: dict[str, np.ndarray | None],
    chunk: int = 65_536,
) -> dict[str, np.ndarray]:
    """Exact cosine top-k row indices per query (best first) over halfvec-rounded vectors,
    one result per mask (None = all rows), in one streaming pass over `vectors`."""
    q = halfvec_unit(queries)
    best = {
        name: (np.full((len(q), 0), -np.inf, np.float32), np.zeros((len(q), 0), np.int64))
        for name in masks
    }
    for lo in range(0, len(vectors), chunk):
        hi = min(lo + chunk, len(vectors))
        scores = q @ halfvec_unit(vectors[lo:hi]).T
        for name, mask in masks.items():
            s = scores if mask is None else np.where(mask[lo:hi], scores, -np.inf)
            top_s, top_i = best[name]
            s = np.concatenate([top_s, s], axis=1)
            i = np.concatenate([top_i, np.broadcast_to(np.arange(lo, hi), (len(q), hi - lo))], 1)
            if s.shape[1] > k:
                keep = np.argpartition(-s, k - 1, axis=1)[:, :k]
                s, i = np.take_along_axis(s, keep, 1), np.take_along_axis(i, keep, 1)
            best[name] = (s, i)
    out = {}
    for name, (s, i) in best.items():
        order = np.argsort(-s, axis=1, kind="stable")
        s, i = np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)
        out[name] = np.where(np.isfinite(s), i, -1)
    return out


def recall_at_k(found: list[list[int]] | np.ndarray, truth: np.ndarray, k: int = K) -> float:
    """Mean over queries of |found ∩ truth| / |truth| (truth rows padded with -1 ignored)."""
    total = 0.0
    for got, want in zip(found, truth, strict=True):
        want = {int(w) for w in want[:k] if w >= 0}
        if not want:
            total += 1.0
            continue
        total += len(want & {int(g) for g in list(got)[:k]}) / len(want)
    return total / len(truth)


def recall_figures(found, truth: np.ndarray) -> dict[str, float]:
    """recall@10 overall and per query kind (first half: perturbed stored windows, second
    half: fresh samples, see `synthetic_queries`)."""
    near = len(truth) // 2
    found = list(found)
    return {
        "recall_at_10": recall_at_k(found, truth),
        "recall_perturbed": recall_at_k(found[:near], truth[:near]) if near else None,
        "recall_fresh": recall_at_k(found[near:], truth[near:]),
    }


def neighbour_similarities(
    vectors: np.ndarray, queries: np.ndarray, ranked: np.ndarray, ranks=(1, 10, 11, 100)
) -> dict[str, dict[str, float]]:
    """Mean exact cosine similarity at some ranks, per query kind: how crowded the
    neighbourhood is (10th vs 11th close together = a hard top-10 for any ANN index)."""
    q = halfvec_unit(queries)
    near = len(q) // 2
    out: dict[str, dict[str, float]] = {}
    for kind, rows in (("perturbed", slice(0, near)), ("fresh", slice(near, len(q)))):
        stats = {}
        for rank in ranks:
            if rank > ranked.shape[1]:
                continue
            idx = ranked[rows, rank - 1]
            sims = np.einsum("ij,ij->i", q[rows], halfvec_unit(vectors[idx]))
            stats[f"rank_{rank}"] = float(sims.mean()) if len(sims) else float("nan")
        out[kind] = stats
    return out


def latency_figures(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "mean_ms": float(a.mean()),
    }


# --- loading into the product tables ----------------------------------------------------------


def _copy_dtype(dim: int) -> np.dtype:
    """One row of PostgreSQL binary COPY for (recording_id, encoder_id, window_seconds,
    start_seconds, embedding halfvec); halfvec binary = int16 dim, int16 0, dim x float16."""
    return np.dtype(
        [
            ("nfields", ">i2"),
            ("l_rec", ">i4"),
            ("rec", ">i8"),
            ("l_enc", ">i4"),
            ("enc", ">i8"),
            ("l_ws", ">i4"),
            ("ws", ">f8"),
            ("l_ss", ">i4"),
            ("ss", ">f8"),
            ("l_vec", ">i4"),
            ("vdim", ">u2"),
            ("vunused", ">u2"),
            ("vec", ">f2", (dim,)),
        ]
    )


COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)


def hnsw_index_definition(name: str = INDEX_NAME) -> tuple[str, str]:
    """(CREATE INDEX statement, where it came from): the live definition from pg_indexes,
    else the one the model's Meta index (= its migration) produces."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s AND tablename = %s",
            [name, WINDOW_TABLE],
        )
        row = cursor.fetchone()
    if row:
        return row[0], "pg_indexes"
    index = next(i for i in RecordingWindowEmbedding._meta.indexes if i.name == name)
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        statement = str(index.create_sql(RecordingWindowEmbedding, editor))
    return statement, "model Meta"


def _server_settings() -> dict[str, str]:
    names = [
        "server_version",
        "shared_buffers",
        "effective_cache_size",
        "work_mem",
        "jit",
        "max_worker_processes",
        "max_parallel_workers",
    ]
    with connection.cursor() as cursor:
        out = {}
        for name in names:
            cursor.execute("SELECT current_setting(%s)", [name])
            out[name] = cursor.fetchone()[0]
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
        out["pgvector"] = row[0] if row else "?"
    return out


def _load_catalogue(config: BenchConfig, states: np.ndarray) -> tuple[int, np.ndarray]:
    """Synthetic artist/holder/user/encoder, recordings, 10000-bp shares and consent rows;
    returns (encoder id, recording ids indexed by synthetic recording number).

    states per recording: 0 no consent version (opted out), 1 granted song_inference +
    commercial, 2 song_inference but not commercial. Runs in one transaction so the deferred
    shares-sum trigger checks every recording at commit."""
    tag = f"{BENCH_NAME}:{config.run_tag}:{config.size}"
    with transaction.atomic():
        user, _ = get_user_model().objects.get_or_create(
            username=BENCH_NAME, defaults={"is_active": False}
        )
        artist, _ = Artist.objects.get_or_create(name="Bench Synthetic Artist")
        holder, _ = RightsHolder.objects.get_or_create(
            name="Bench Synthetic Holder", defaults={"kind": RightsHolder.Kind.ORGANISATION}
        )
        encoder = EncoderVersion.objects.create(
            name=BENCH_NAME,
            version=f"{config.run_tag}-n{config.size}-s{config.seed}",
            config={"synthetic": True, "clusters": config.clusters, "seed": config.seed},
            checkpoint_path="",
            checkpoint_sha256="",
        )
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO catalog_recording (
                    title, artist_id, duration_seconds, audio_file, audio_format, sample_rate,
                    channels, content_sha256, genre, subgenre, country, instruments, moods,
                    musical_key, mode, descriptors, source, source_filename, created_at)
                SELECT 'bench ' || i, %(artist)s, %(duration)s,
                       'bench/' || %(tag)s || '/' || i || '.ogg', 'ogg', 48000, 2,
                       encode(sha256(convert_to(%(tag)s || ':' || i, 'UTF8')), 'hex'),
                       '', '', '', '[]', '[]', '', '', '{}', %(tag)s, i::text, now()
                FROM generate_series(0, %(n)s - 1) AS i
                RETURNING id, source_filename
                """,
                {
                    "artist": artist.pk,
                    "duration": config.windows_per_recording * config.window_seconds,
                    "tag": tag,
                    "n": config.recordings,
                },
            )
            rec_ids = np.zeros(config.recordings, dtype=np.int64)
            for pk, number in cursor.fetchall():
                rec_ids[int(number)] = pk
            cursor.execute(
                "INSERT INTO catalog_rightsshare (recording_id, holder_id, basis_points) "
                "SELECT id, %s, 10000 FROM catalog_recording WHERE source = %s",
                [holder.pk, tag],
            )
            cursor.execute(
                """
                INSERT INTO catalog_consentversion (
                    recording_id, holder_id, number, training, song_inference,
                    parameter_inference, audio_inference, private, non_commercial, commercial,
                    changed_by_id, created_at, granted, revoked, note)
                SELECT s.rec, %(holder)s, 1, false, true, false, false, true, true,
                       s.state = 1, %(user)s, now(),
                       CASE WHEN s.state = 1
                            THEN '["song_inference", "private", "non_commercial", "commercial"]'
                            ELSE '["song_inference", "private", "non_commercial"]' END::jsonb,
                       '[]'::jsonb, %(tag)s
                FROM unnest(%(recs)s::bigint[], %(states)s::int[]) AS s(rec, state)
                WHERE s.state > 0
                """,
                {
                    "holder": holder.pk,
                    "user": user.pk,
                    "tag": tag,
                    "recs": rec_ids.tolist(),
                    "states": states.tolist(),
                },
            )
            cursor.execute(
                "INSERT INTO catalog_currentconsent (recording_id, holder_id, version_id) "
                "SELECT recording_id, holder_id, id FROM catalog_consentversion WHERE note = %s",
                [tag],
            )
    return encoder.pk, rec_ids


def _copy_windows(
    config: BenchConfig, vectors: np.ndarray, encoder_id: int, rec_ids: np.ndarray, log: Log
) -> float:
    """Binary COPY of all windows; returns seconds."""
    dim, wpr = vectors.shape[1], config.windows_per_recording
    dtype = _copy_dtype(dim)
    started = time.perf_counter()
    next_report = started + 15
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.cursor.copy(
            f"COPY {WINDOW_TABLE} (recording_id, encoder_id, window_seconds, start_seconds, "
            "embedding) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.write(COPY_HEADER)
        for lo in range(0, len(vectors), config.copy_chunk):
            hi = min(lo + config.copy_chunk, len(vectors))
            rows = np.arange(lo, hi)
            buf = np.empty(hi - lo, dtype=dtype)
            buf["nfields"] = 5
            buf["l_rec"] = buf["l_enc"] = buf["l_ws"] = buf["l_ss"] = 8
            buf["rec"] = rec_ids[rows // wpr]
            buf["enc"] = encoder_id
            buf["ws"] = config.window_seconds
            buf["ss"] = (rows % wpr) * config.window_seconds
            buf["l_vec"] = 4 + 2 * dim
            buf["vdim"] = dim
            buf["vunused"] = 0
            buf["vec"] = vectors[lo:hi]
            copy.write(buf.tobytes())
            if time.perf_counter() >= next_report:
                next_report += 15
                rate = hi / (time.perf_counter() - started)
                log(f"    copied {hi:,}/{len(vectors):,} rows ({rate:,.0f} rows/s)")
        copy.write(COPY_TRAILER)
    return time.perf_counter() - started


def _analyze() -> None:
    tables = [
        WINDOW_TABLE,
        "catalog_recording",
        "catalog_rightsshare",
        "catalog_consentversion",
        "catalog_currentconsent",
    ]
    verb = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"{verb} {table}")


def _drop_hnsw_indexes() -> list[str]:
    """Drop every HNSW index of the window table (the load is far faster without them)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            [WINDOW_TABLE, "%USING hnsw%"],
        )
        names = sorted(row[0] for row in cursor.fetchall())
        for name in names:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
    return names


def _build_hnsw(config: BenchConfig, statement: str, name: str = INDEX_NAME) -> dict:
    notices: list[str] = []

    def on_notice(diag) -> None:
        notices.append(f"{diag.severity}: {diag.message_primary}")

    raw = connection.connection
    raw.add_notice_handler(on_notice)
    try:
        with connection.cursor() as cursor:
            if connection.in_atomic_block:
                # Inside an outer transaction (tests) the deferred FK and shares-sum checks of
                # the load are still pending, and CREATE INDEX refuses to run with those.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(
                "SELECT set_config('maintenance_work_mem', %s, false), "
                "set_config('max_parallel_maintenance_workers', %s, false)",
                [config.maintenance_work_mem, str(config.parallel_maintenance_workers)],
            )
            cursor.execute(
                "SELECT current_setting('maintenance_work_mem'), "
                "current_setting('max_parallel_maintenance_workers')"
            )
            mwm, workers = cursor.fetchone()
            started = time.perf_counter()
            cursor.execute(statement)
            seconds = time.perf_counter() - started
            cursor.execute("SELECT pg_relation_size(%s::regclass)", [name])
            size = cursor.fetchone()[0]
            if not connection.in_atomic_block:
                cursor.execute("RESET maintenance_work_mem")
                cursor.execute("RESET max_parallel_maintenance_workers")
    finally:
        raw.remove_notice_handler(on_notice)
    return {
        "seconds": seconds,
        "statement": statement,
        "maintenance_work_mem": mwm,
        "max_parallel_maintenance_workers": int(workers),
        "index_bytes": size,
        "notices": notices,
    }


# --- product queries -----------------------------------------------------------------------


def product_index_parameters() -> tuple[int, int]:
    """(m, ef_construction) of the window HNSW index as the model declares it."""
    index = next(i for i in RecordingWindowEmbedding._meta.indexes if i.name == INDEX_NAME)
    return index.m, index.ef_construction


def _permitted():
    return consent_requirement(use=USE, distribution=DISTRIBUTION)


def _product_query(query, encoder_id, ef, permitted, row_of) -> list[int]:
    hits = window_neighbours(
        query=query,
        encoder_id=encoder_id,
        limit=K,
        consent=permitted,
        tuning=SearchTuning(ef_search=ef),
    )
    return [row_of(h.recording_id, h.start_seconds) for h in hits]


def _explain(query, encoder_id: int, ef: int, filtered: bool) -> dict:
    """EXPLAIN (ANALYZE) of exactly the SQL `window_neighbours` runs, under the same tuning."""
    from django.test.utils import CaptureQueriesContext

    permitted = _permitted() if filtered else None
    connection.queries_log.clear()  # a full log (DEBUG=True) would make the capture empty
    with CaptureQueriesContext(connection) as captured:
        window_neighbours(
            query=query,
            encoder_id=encoder_id,
            limit=K,
            consent=permitted,
            tuning=SearchTuning(ef_search=ef),
        )
    sql = next(q["sql"] for q in captured.captured_queries if "<=>" in q["sql"])
    with transaction.atomic(), connection.cursor() as cursor:
        tuning = SearchTuning(ef_search=ef)
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), "
            "set_config('hnsw.iterative_scan', %s, true), "
            "set_config('hnsw.max_scan_tuples', %s, true)",
            [str(tuning.ef_search), tuning.iterative_scan, str(tuning.max_scan_tuples)],
        )
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        plan = [row[0] for row in cursor.fetchall()]
    plan = [VECTOR_LITERAL.sub("'[...]'::halfvec", line) for line in plan]
    text = "\n".join(plan)
    executed = re.search(r"Execution Time: ([0-9.]+) ms", text)
    planned = re.search(r"Planning Time: ([0-9.]+) ms", text)
    return {
        "ef_search": ef,
        "uses_hnsw": bool(HNSW_SCAN.search(text)),
        "index": HNSW_SCAN.search(text).group(1) if HNSW_SCAN.search(text) else None,
        "jit": any(line.strip().startswith("JIT:") for line in plan),
        "execution_ms": float(executed.group(1)) if executed else None,
        "planning_ms": float(planned.group(1)) if planned else None,
        "plan": plan,
    }


def compact_plan(plan: list[str], width: int = 110) -> list[str]:
    """The plan's node lines only (first line and '->' lines), cut to `width`."""
    nodes = [line for i, line in enumerate(plan) if i == 0 or "->" in line]
    return [line if len(line) <= width else line[: width - 3] + "..." for line in nodes]


def _exact_in_postgres(query, encoder_id, permitted, row_of) -> list[int]:
    """The product query with index scans disabled: Postgres' own exact answer."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
        return _product_query(query, encoder_id, 40, permitted, row_of)


def _time_queries(queries, run) -> tuple[list[list[int]], list[float]]:
    """Wall time of each product call, as the application sees it (ORM + round trip)."""
    found, ms = [], []
    for q in queries:
        started = time.perf_counter_ns()
        rows = run(q)
        ms.append((time.perf_counter_ns() - started) / 1e6)
        found.append(rows)
    return found, ms


def smallest_reaching(rows: list[dict], recall: float) -> dict | None:
    reaching = [r for r in rows if r["recall_at_10"] >= recall]
    return min(reaching, key=lambda r: r["ef_search"]) if reaching else None


# --- faiss -----------------------------------------------------------------------------------


def _bench_faiss(config: BenchConfig, vectors, queries, truth, log: Log) -> dict:
    import faiss

    default_threads = faiss.omp_get_max_threads()
    m, ef_construction = product_index_parameters()
    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    log(
        f"  faiss: building IndexHNSWFlat(M={m}, efConstruction={ef_construction}) like the "
        f"product index, {default_threads} threads"
    )
    started = time.perf_counter()
    index.add(vectors)
    build = time.perf_counter() - started
    log(f"  faiss: built in {build:.1f} s")
    out = {
        "build_seconds": build,
        "default_threads": default_threads,
        "version": faiss.__version__,
        "compile_options": faiss.get_compile_options().strip(),
        "runs": {},
    }
    try:
        for threads in sorted({1, default_threads}):
            faiss.omp_set_num_threads(threads)
            rows = []
            for ef in config.ef_search:
                index.hnsw.efSearch = ef
                for q in queries[: config.warmup]:
                    index.search(q[None, :], K)
                found, ms = [], []
                for q in queries:
                    started = time.perf_counter_ns()
                    _, ids = index.search(q[None, :], K)
                    ms.append((time.perf_counter_ns() - started) / 1e6)
                    found.append(ids[0].tolist())
                row = {"ef_search": ef, **recall_figures(found, truth)}
                row.update(latency_figures(ms))
                rows.append(row)
                log(
                    f"  faiss {threads} thread(s) efSearch={ef}: recall@10 "
                    f"{row['recall_at_10']:.3f}, p50 {row['p50_ms']:.3f} ms"
                )
            out["runs"][f"{threads}_thread" if threads == 1 else f"{threads}_threads"] = rows
    finally:
        faiss.omp_set_num_threads(default_threads)
    return out


# --- the whole measurement for one size -----------------------------------------------------


def run_size(config: BenchConfig, log: Log = print) -> dict:
    """Load `config.size` synthetic windows into the product tables of the current database,
    build the HNSW index, and measure the product query against exact search and faiss."""
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        log(f"[{time.perf_counter() - t0:7.1f}s] {msg}")

    # Independent streams: the data does not change with --queries, nor consent with either.
    data_rng, query_rng, consent_rng = (np.random.default_rng([config.seed, i]) for i in range(3))
    wpr = config.windows_per_recording
    say(f"N={config.size:,}: generating {data_description(config)}")
    vectors, centres, basis = synthetic_windows(config, data_rng)
    queries = synthetic_queries(vectors, centres, config.queries, query_rng, basis)

    # Consent: exactly round(fraction * recordings) recordings granted, the rest split between
    # "song_inference without commercial" and "no consent version at all".
    n_rec = config.recordings
    n_permitted = max(1, round(config.permitted_fraction * n_rec))
    states = consent_rng.choice([0, 2], size=n_rec)
    states[consent_rng.choice(n_rec, size=n_permitted, replace=False)] = 1
    row_permitted = np.repeat(states == 1, wpr)[: config.size]

    say("exact ground truth (numpy brute force over halfvec-rounded vectors)")
    ranked = exact_topk(
        vectors, queries, k=100, masks={"unfiltered": None, "filtered": row_permitted}
    )
    truth = {name: r[:, :K] for name, r in ranked.items()}
    similarities = neighbour_similarities(vectors, queries, ranked["unfiltered"])
    say(
        "exact cosine similarity at rank 1/10/11/100: "
        + "; ".join(
            f"{kind} queries " + "/".join(f"{v:.3f}" for v in stats.values())
            for kind, stats in similarities.items()
        )
    )
    exact_self = (
        {
            name: recall_at_k(truth[name], exact_topk(vectors, queries, masks={name: m})[name])
            for name, m in (("unfiltered", None), ("filtered", row_permitted))
        }
        if config.size <= 20_000
        else None
    )

    statement, source = hnsw_index_definition()
    consent_statement, _ = hnsw_index_definition(CONSENT_INDEX_NAME)
    dropped = _drop_hnsw_indexes()
    say(f"dropped {', '.join(dropped)} ({INDEX_NAME} from {source}: {statement})")

    started = time.perf_counter()
    encoder_id, rec_ids = _load_catalogue(config, states)
    catalogue_seconds = time.perf_counter() - started
    say(f"catalogue rows: {n_rec:,} recordings, shares, consent in {catalogue_seconds:.1f} s")
    say(f"COPY {config.size:,} windows")
    copy_seconds = _copy_windows(config, vectors, encoder_id, rec_ids, say)
    say(f"COPY done in {copy_seconds:.1f} s ({config.size / copy_seconds:,.0f} rows/s)")
    started = time.perf_counter()
    with transaction.atomic():
        masked = consent_masks_refresh(recording_ids=rec_ids.tolist())
    mask_seconds = time.perf_counter() - started
    say(f"consent masks of {masked:,} rows from the consent tables in {mask_seconds:.1f} s")
    started = time.perf_counter()
    _analyze()
    analyze_seconds = time.perf_counter() - started
    setup_seconds = time.perf_counter() - t0

    say(
        f"building HNSW index (maintenance_work_mem={config.maintenance_work_mem}, "
        f"max_parallel_maintenance_workers={config.parallel_maintenance_workers})"
    )
    build = _build_hnsw(config, statement)
    say(f"HNSW build {build['seconds']:.1f} s, index {build['index_bytes'] / 2**20:,.0f} MiB")
    for notice in build["notices"]:
        say(f"  server: {notice}")
    consent_build = _build_hnsw(config, consent_statement, CONSENT_INDEX_NAME)
    say(
        f"partial HNSW build ({CONSENT_INDEX_NAME}, the filter's windows only) "
        f"{consent_build['seconds']:.1f} s, {consent_build['index_bytes'] / 2**20:,.0f} MiB; "
        "the product's other partial indexes are not built here (no bench row permits them)"
    )

    index_of = {int(pk): i for i, pk in enumerate(rec_ids)}

    def row_of(recording_id: int, start_seconds: float) -> int:
        return index_of[recording_id] * wpr + round(start_seconds / config.window_seconds)

    permitted_count = _permitted().recordings().filter(pk__in=rec_ids.tolist()).count()
    if permitted_count != n_permitted:
        raise AssertionError(
            f"consent SQL permits {permitted_count} bench recordings, expected {n_permitted}"
        )
    masked_windows = (
        RecordingWindowEmbedding.objects.filter(encoder_id=encoder_id)
        .filter(consent_mask__in=_permitted().masks)
        .count()
    )
    if masked_windows != int(row_permitted.sum()):
        raise AssertionError(
            f"consent masks permit {masked_windows} windows, expected {int(row_permitted.sum())}"
        )
    consent = {
        "recordings": n_rec,
        "permitted_recordings": permitted_count,
        "fraction": permitted_count / n_rec,
        "permitted_windows": int(row_permitted.sum()),
        "use": USE,
        "distribution": DISTRIBUTION,
    }

    checks = min(config.ground_truth_checks, len(queries))
    say(f"ground-truth check: Postgres exact scan (index off) vs numpy, {checks} queries")
    gt_check = {"queries": checks}
    for name, permitted in (("unfiltered", None), ("filtered", _permitted())):
        found = [_exact_in_postgres(q, encoder_id, permitted, row_of) for q in queries[:checks]]
        gt_check[name] = recall_at_k(found, truth[name][:checks])

    pg: dict[str, list[dict]] = {"unfiltered": [], "filtered": []}
    explain: dict[str, list[dict]] = {"unfiltered": [], "filtered": []}
    for ef in config.ef_search:
        for name, permitted in (("unfiltered", None), ("filtered", _permitted())):

            def run(q, ef=ef, permitted=permitted):
                return _product_query(q, encoder_id, ef, permitted, row_of)

            for q in queries[: config.warmup]:
                run(q)
            found, ms = _time_queries(queries, run)
            row = {"ef_search": ef, **recall_figures(found, truth[name])}
            row.update(latency_figures(ms))
            plan = _explain(queries[0], encoder_id, ef, name == "filtered")
            explain[name].append(plan)
            row["uses_hnsw"] = plan["uses_hnsw"]
            row["explain_execution_ms"] = plan["execution_ms"]
            row["explain_planning_ms"] = plan["planning_ms"]
            pg[name].append(row)
            say(
                f"pgvector {name:10s} ef_search={ef:<4d} recall@10 {row['recall_at_10']:.3f} "
                f"p50 {row['p50_ms']:.2f} ms p95 {row['p95_ms']:.2f} ms "
                f"(HNSW index used: {'yes' if plan['uses_hnsw'] else 'NO'})"
            )

    faiss_figures = None
    if config.faiss:
        faiss_figures = _bench_faiss(config, vectors, queries, truth["unfiltered"], say)

    result = {
        "size": config.size,
        "recordings": n_rec,
        "windows_per_recording": wpr,
        "dim": EMBEDDING_DIM,
        "queries": len(queries),
        "seed": config.seed,
        "data": data_description(config),
        "config": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in asdict(config).items()
            if k != "run_tag"
        },
        "server": _server_settings(),
        "product_tuning": {k: v for k, v in asdict(SearchTuning()).items() if k != "ef_search"},
        "load": {
            "rows": config.size,
            "copy_seconds": copy_seconds,
            "rows_per_s": config.size / copy_seconds,
            "analyze_seconds": analyze_seconds,
            "consent_mask_seconds": mask_seconds,
            "setup_seconds": setup_seconds,
        },
        "hnsw_build": build,
        "consent_index_build": consent_build,
        "consent": consent,
        "exact_self_recall": exact_self,
        "exact_neighbour_similarity": similarities,
        "ground_truth_check": gt_check,
        "explain": explain,
        "pgvector": pg,
        "faiss": faiss_figures,
    }
    result["matched"] = matched_figures(result)
    result["goal"] = goal_figures(result)
    say("done")
    return result


def matched_figures(result: dict) -> dict:
    """Smallest ef reaching the target recall per engine, and pgvector/faiss latency ratios."""
    recall = TARGET["recall"]
    pg_u = smallest_reaching(result["pgvector"]["unfiltered"], recall)
    pg_f = smallest_reaching(result["pgvector"]["filtered"], recall)
    out = {"recall": recall, "pg_unfiltered": pg_u, "pg_filtered": pg_f}
    if result["faiss"]:
        for run_name, rows in result["faiss"]["runs"].items():
            best = smallest_reaching(rows, recall)
            out[f"faiss_{run_name}"] = best
            ratio = None
            if pg_u and best:
                ratio = {
                    "p50": pg_u["p50_ms"] / best["p50_ms"],
                    "p95": pg_u["p95_ms"] / best["p95_ms"],
                }
            out[f"ratio_pg_over_faiss_{run_name}"] = ratio
    return out


def goal_figures(result: dict) -> dict:
    m = result["matched"]
    u, f = m["pg_unfiltered"], m["pg_filtered"]
    unfiltered_ok = any(
        r["recall_at_10"] >= TARGET["recall"] and r["p95_ms"] <= TARGET["p95_ms"]
        for r in result["pgvector"]["unfiltered"]
    )
    return {
        "target": TARGET,
        "applies": result["size"] >= TARGET["size"],
        "unfiltered_pass": unfiltered_ok,
        "filtered_recall_pass": f is not None,
        "filtered_p95_within_target": bool(f and f["p95_ms"] <= TARGET["p95_ms"]),
        "unfiltered_at": u,
        "filtered_at": f,
        "pass": unfiltered_ok and f is not None,
    }


# --- printing ------------------------------------------------------------------------------


def _ms(v: float) -> str:
    return f"{v:8.2f}" if v >= 0.1 else f"{v:8.3f}"


def _server_ms(row: dict) -> str:
    if row.get("explain_execution_ms") is None:
        return ""
    return f"  {row.get('explain_planning_ms') or 0:6.2f} / {row['explain_execution_ms']:.2f}"


def format_report(r: dict) -> list[str]:
    build, load, consent = r["hnsw_build"], r["load"], r["consent"]
    srv = r["server"]
    mwm, workers = build["maintenance_work_mem"], build["max_parallel_maintenance_workers"]
    index_mib = build["index_bytes"] / 2**20
    lines = [
        "=" * 96,
        f"N = {r['size']:,} windows ({r['recordings']:,} recordings x "
        f"{r['windows_per_recording']}), dim {r['dim']}, {r['queries']} queries, k=10",
        f"data: {r['data']}",
        f"server: PostgreSQL {srv['server_version']}, pgvector {srv['pgvector']}, "
        f"shared_buffers {srv['shared_buffers']}, jit {srv['jit']}",
        f"load: COPY {load['rows']:,} rows in {load['copy_seconds']:.1f} s "
        f"({load['rows_per_s']:,.0f} rows/s); setup incl. catalogue+consent+VACUUM ANALYZE "
        f"{load['setup_seconds']:.1f} s",
        f"HNSW build: {build['seconds']:.1f} s (maintenance_work_mem={mwm}, "
        f"max_parallel_maintenance_workers={workers}), index {index_mib:,.0f} MiB",
        f"  {build['statement']}",
        f"partial index for the consent filter: {r['consent_index_build']['seconds']:.1f} s, "
        f"{r['consent_index_build']['index_bytes'] / 2**20:,.0f} MiB",
        "product query: window_neighbours(limit=10) with SearchTuning defaults "
        + ", ".join(f"{k}={v}" for k, v in r.get("product_tuning", {}).items()),
        f"consent filter: {consent['permitted_recordings']:,}/{consent['recordings']:,} "
        f"recordings ({consent['fraction']:.1%}) permit {consent['use']}/"
        f"{consent['distribution']} -> {consent['permitted_windows']:,} windows",
    ]
    for name, plans in r["explain"].items():
        used = ", ".join(
            f"ef={p['ef_search']} {p['index'] if p['uses_hnsw'] else 'NO'}"
            + (" (JIT!)" if p["jit"] else "")
            for p in plans
        )
        lines.append(f"EXPLAIN {name}: HNSW index scan: {used}")
    for name, plans in r["explain"].items():
        best = r["matched"][f"pg_{name}"] or r["pgvector"][name][-1]
        plan = next(p for p in plans if p["ef_search"] == best["ef_search"])
        lines.append(
            f"plan, {name}, ef_search={plan['ef_search']} "
            f"(EXPLAIN ANALYZE planning {plan['planning_ms']} ms, "
            f"execution {plan['execution_ms']} ms):"
        )
        lines += [f"    {line}" for line in compact_plan(plan["plan"])]
    gt = r["ground_truth_check"]
    lines.append(
        f"ground-truth check, Postgres exact (index off) vs numpy exact, {gt['queries']} "
        f"queries: recall@10 unfiltered {gt['unfiltered']:.3f}, filtered {gt['filtered']:.3f}"
    )
    for kind, stats in r["exact_neighbour_similarity"].items():
        lines.append(
            f"exact neighbours, {kind} queries: mean cosine at rank "
            + ", ".join(f"{k.removeprefix('rank_')}: {v:.3f}" for k, v in stats.items())
        )
    lines.append(
        "queries: first half perturbed stored windows ('pert'), second half fresh samples "
        "around random cluster centres ('fresh'); latency = wall time of window_neighbours()"
    )
    lines.append("")
    lines.append(
        f"{'engine':34s}{'ef':>5s}{'recall@10':>10s}{'pert':>6s}{'fresh':>6s}"
        f"{'p50 ms':>9s}{'p95 ms':>9s}{'mean ms':>9s}"
        f"  {'plan':>5s}  server ms planning/execution (1 query, EXPLAIN ANALYZE)"
    )
    table = [
        ("pgvector window_neighbours", r["pgvector"]["unfiltered"]),
        ("pgvector + consent filter (10%)", r["pgvector"]["filtered"]),
    ]
    if r["faiss"]:
        for run_name, rows in r["faiss"]["runs"].items():
            table.append((f"faiss HNSWFlat, {run_name.replace('_', ' ')}", rows))
    for label, rows in table:
        for row in rows:
            lines.append(
                f"{label:34s}{row['ef_search']:5d}{row['recall_at_10']:10.3f}"
                f"{row['recall_perturbed'] or 0:6.3f}{row['recall_fresh']:6.3f}"
                f"{_ms(row['p50_ms'])} {_ms(row['p95_ms'])} {_ms(row['mean_ms'])}"
                + ("" if "uses_hnsw" not in row else "   hnsw" if row["uses_hnsw"] else "  exact")
                + _server_ms(row)
            )
    if r["faiss"]:
        lines.append(
            f"faiss build: {r['faiss']['build_seconds']:.1f} s "
            f"({r['faiss']['default_threads']} threads)"
        )
    m = r["matched"]

    def ef_of(row):
        return f"ef={row['ef_search']}" if row else "none in grid"

    parts = [
        f"pgvector {ef_of(m['pg_unfiltered'])}",
        f"pgvector filtered {ef_of(m['pg_filtered'])}",
    ]
    parts += [
        f"{key.removeprefix('faiss_').replace('_', ' ')} faiss {ef_of(val)}"
        for key, val in m.items()
        if key.startswith("faiss_")
    ]
    lines.append(f"smallest ef with recall@10 >= {m['recall']}: " + ", ".join(parts))
    for key, ratio in m.items():
        if key.startswith("ratio_") and ratio:
            lines.append(
                f"latency ratio pgvector/faiss ({key.removeprefix('ratio_pg_over_faiss_')}) "
                f"at recall >= {m['recall']}: p50 {ratio['p50']:.1f}x, p95 {ratio['p95']:.1f}x"
            )
    g = r["goal"]
    scope = "" if g["applies"] else f" [goal is stated for N={TARGET['size']:,}; for reference]"
    u, f = g["unfiltered_at"], g["filtered_at"]
    lines.append(
        f"GOAL p95 <= {TARGET['p95_ms']:.0f} ms & recall@10 >= {TARGET['recall']}: "
        f"{'PASS' if g['unfiltered_pass'] else 'MISS'}"
        + (
            f" (ef={u['ef_search']}: p95 {u['p95_ms']:.2f} ms, recall {u['recall_at_10']:.3f})"
            if u
            else ""
        )
        + scope
    )
    lines.append(
        f"GOAL filtered recall@10 >= {TARGET['recall']}: "
        f"{'PASS' if g['filtered_recall_pass'] else 'MISS'}"
        + (
            f" (ef={f['ef_search']}: recall {f['recall_at_10']:.3f}, p95 {f['p95_ms']:.2f} ms "
            f"{'<=' if g['filtered_p95_within_target'] else '>'} {TARGET['p95_ms']:.0f} ms)"
            if f
            else ""
        )
        + scope
    )
    return lines
