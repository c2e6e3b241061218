"""The real components the platform stands on: PostgreSQL with pgvector, Redis for Celery."""

import pytest
from django.db import connection


@pytest.mark.django_db
def test_database_is_postgres_with_pgvector_0_8():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        (version,) = cursor.fetchone()
        cursor.execute("SELECT '[1,2,3]'::vector <=> '[1,2,4]'::vector")
        (distance,) = cursor.fetchone()
    major, minor = (int(part) for part in version.split(".")[:2])
    assert (major, minor) >= (0, 8)
    assert 0 < distance < 0.01


@pytest.mark.django_db
def test_pgvector_supports_hnsw_halfvec_index_and_iterative_scan():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE probe (id int, v halfvec(3))")
        cursor.execute("CREATE INDEX ON probe USING hnsw (v halfvec_cosine_ops)")
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute("INSERT INTO probe VALUES (1, '[1,0,0]'), (2, '[0,1,0]')")
        cursor.execute("SELECT id FROM probe ORDER BY v <=> '[0.9,0.1,0]' LIMIT 1")
        assert cursor.fetchone() == (1,)
