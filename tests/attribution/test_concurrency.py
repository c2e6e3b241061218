"""Appends from several threads (each with its own database connection and transactions)
still form one linear chain."""

from __future__ import annotations

import threading

import pytest
from django.db import connections, transaction

from attribution_log.models import AttributionRecord
from attribution_log.selectors import attribution_chain_verify
from attribution_log.services import attribution_record_append

pytestmark = pytest.mark.django_db(transaction=True)

THREADS, PER_THREAD = 4, 12


def test_concurrent_appends_form_one_linear_chain(emptied_log_after):
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(PER_THREAD):
                if i % 3 == 0:  # some appends share a transaction with the caller's work
                    with transaction.atomic():
                        attribution_record_append(
                            kind="verification", generation_ref=f"t{n}-{i}", payload={"i": i}
                        )
                        attribution_record_append(
                            kind="generation", generation_ref=f"t{n}-{i}", payload={"i": i}
                        )
                else:
                    attribution_record_append(
                        kind="generation", generation_ref=f"t{n}-{i}", payload={"n": n, "i": i}
                    )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors

    expected = THREADS * (PER_THREAD + PER_THREAD // 3)
    rows = list(AttributionRecord.objects.values_list("previous_hash", "record_hash"))
    assert len(rows) == expected
    assert len({previous for previous, _ in rows}) == expected  # no fork: each hash used once
    for (_, before), (after, _) in zip(rows, rows[1:], strict=False):
        assert after == before
    report = attribution_chain_verify(batch_size=7)
    assert report.ok and report.checked == expected


def test_appends_refuse_to_run_under_repeatable_read(emptied_log_after):
    """A REPEATABLE READ snapshot can predate the lock and miss the newest head (a fork)."""
    with pytest.raises(RuntimeError, match="READ COMMITTED"), transaction.atomic():
        with connections["default"].cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        attribution_record_append(kind="generation", generation_ref="rr", payload={})
    assert not AttributionRecord.objects.exists()
