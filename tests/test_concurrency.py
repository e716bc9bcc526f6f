"""Loads at once: two backfills judged on the same snapshot of silver never insert a txn_id twice.

Each load runs in a thread with a session of its own (as separate processes would: Delta's
optimistic concurrency decides, not a lock of ours). A barrier holds both at the silver
publish until both have judged their batch on the same silver, so the race happens every time.
Great Expectations keeps one project context per process, so the two threads take turns at
the audit (separate processes, as in production, need not).
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledgerlake.lake import Lake
from tests.helpers import backfill, ledger
from tests.legacy_files import core_detail, core_file
from tests.test_core_banking_ebcdic import detail, header, trailer

CB = "CB{:018d}".format


BARRIER = threading.Barrier(2, timeout=900)       # a busy machine: judging may take minutes


@pytest.fixture
def racing_publishes(monkeypatch):
    """Hold each thread's first silver publish until both reached it; record whether each publish committed."""
    from expectations.gate import BatchGate
    from ledgerlake.load import sinks

    real, audit = sinks.write_silver, BatchGate.audit
    BARRIER.reset()
    barrier = BARRIER
    first = threading.local()
    outcomes: list[bool] = []
    one_audit_at_a_time = threading.Lock()

    def audit_in_turn(*args, **kwargs):
        with one_audit_at_a_time:
            return audit(*args, **kwargs)

    def write_silver(*args, **kwargs):
        if not getattr(first, "done", False):
            first.done = True
            barrier.wait()
        version = real(*args, **kwargs)
        outcomes.append(version is not None)
        return version

    monkeypatch.setattr(sinks, "write_silver", write_silver)
    monkeypatch.setattr(BatchGate, "audit", audit_in_turn)
    return outcomes


def run_both(spark, root, loads):  # noqa: ANN001
    """Run each (source, folder) load at once, each on a session of its own; their results."""
    def load(source_and_folder):  # noqa: ANN001
        source, folder = source_and_folder
        try:
            return backfill(Lake(spark.newSession(), str(root)), source, folder)
        except BaseException:
            BARRIER.abort()          # the other load must not wait for this one: its error is the news
            raise

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(load, each) for each in loads]
    errors = [f.exception() for f in futures if f.exception() is not None]
    for error in sorted(errors, key=lambda e: isinstance(e, threading.BrokenBarrierError)):
        raise error                  # a load's own error before the other's broken wait
    return [f.result() for f in futures]


def test_overlapping_loads_at_once_insert_every_txn_id_once(spark, new_lake, tmp_path, racing_publishes):
    lake = new_lake(tmp_path / "lake")
    a, b = tmp_path / "a", tmp_path / "b"
    core_file(a, [core_detail(txn_id=CB(n), amount="-1.00") for n in (1, 2, 3)], "20240301")
    shared = core_file(a, [core_detail(txn_id=CB(n), amount="-2.00") for n in (4, 5)], "20240302")
    b.mkdir()
    shutil.copy(shared, b / shared.name)                     # the same file in both runs
    core_file(b, [core_detail(txn_id=CB(n), amount="-1.00") for n in (3, 6)], "20240303")   # CB3: a re-send

    results = run_both(spark, lake.root, [("core_banking", a), ("core_banking", b)])

    assert [r.exit_code for r in results] == [0, 0]
    assert sorted(racing_publishes[:2]) == [False, True]     # one publish found silver changed under it
    assert racing_publishes[2:] == [True]                    # and committed once judged again
    ids = [r["txn_id"] for r in lake.read("silver.transactions").select("txn_id").collect()]
    assert sorted(ids) == [CB(n) for n in range(1, 7)]        # each txn_id once
    got = ledger(lake)
    assert sorted(got) == ["CORE_TXN_20240301_000001.dat", "CORE_TXN_20240302_000001.dat",
                           "CORE_TXN_20240303_000001.dat"]
    assert {row["status"] for row in got.values()} == {"LOADED"}
    # the ledger accounts for every row of silver, whichever load won the race
    assert sum(row["rows_inserted"] for row in got.values()) == len(ids)
    assert lake.read("ops.quarantine").count() == 0


def test_ascii_and_ebcdic_extracts_of_one_system_at_once_insert_each_txn_id_once(spark, new_lake, tmp_path,
                                                                                 racing_publishes):
    lake = new_lake(tmp_path / "lake")
    ascii_dir, ebcdic_dir = tmp_path / "ascii", tmp_path / "ebcdic"
    core_file(ascii_dir, [core_detail(txn_id=CB(1), amount="-12.50", description="Café", balance="10.00"),
                          core_detail(txn_id=CB(2), amount="-1.00")])
    ebcdic_dir.mkdir()
    (ebcdic_dir / "CORE_TXN_20240302_000001.ebc").write_bytes(
        header("20240302") + detail(CB(1), "-12.50") + detail(CB(3), "-2.00") + trailer(2, "14.50", "0"))

    results = run_both(spark, lake.root, [("core_banking", ascii_dir), ("core_banking_ebcdic", ebcdic_dir)])

    assert [r.exit_code for r in results] == [0, 0]
    assert sorted(racing_publishes[:2]) == [False, True]
    ids = [r["txn_id"] for r in lake.read("silver.transactions").select("txn_id").collect()]
    assert sorted(ids) == [CB(1), CB(2), CB(3)]                # CB1, in both extracts, once
    got = ledger(lake)
    assert sum(row["rows_inserted"] for row in got.values()) == 3
    assert lake.read("ops.quarantine").count() == 0
