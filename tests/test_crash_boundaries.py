"""A crash at any commit boundary of a batch or a micro-batch, then a rerun: the state of an uninterrupted run.

Every Delta commit a batch (or a micro-batch) makes goes through one of the functions in
``BACKFILL_COMMITS`` (``STREAM_COMMITS``). Run k dies right after the k-th commit; run k + 1
starts from what run k left and dies after commit k + 1; and so on, until a run gets through.
Every commit boundary is thus the point some run resumes from, and the final lake must equal
that of one uninterrupted run from the same start, ledger counts and parity included.
ops.dq_results is left out: it logs each audit that ran, and a crashed run's audit did run.
"""

from __future__ import annotations

import shutil
import threading

import pytest

from ledgerlake.lake import open_lake
from tests.event_files import apply, batch_row, posted, snapshot, txn
from tests.helpers import table_snapshot
from tests.legacy_files import core_detail, core_file
from tests.test_handoff import load

BACKFILL_COMMITS = ("sinks.write_quarantine", "sinks.write_parity", "sinks.write_silver", "sinks.remove_streamed",
                    "sinks.merge_serving", "sinks.mark_batch_owned", "gate.record_results", "sinks.record_files")
STREAM_COMMITS = ("sinks.append_transactions", "sinks.remove_streamed", "sinks.write_quarantine",
                  "sinks.write_parity", "sinks.append_state")
VOLATILE = ("load_id", "ingested_at", "processed_at", "quarantined_at", "updated_at", "batch_id", "detected_at")
BACKFILL_TABLES = ("silver.transactions", "serving.transactions_recent", "ops.quarantine", "ops.load_ledger",
                   "ops.parity")


class Crash(BaseException):
    """The process dies (not an Exception: nothing on the way catches it)."""


class CrashAfter:
    """Patches the commit functions: a run 'dies' right after the first commit no earlier run died after."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]) -> None:
        import expectations.gate
        from ledgerlake.load import sinks

        modules = {"sinks": sinks, "gate": expectations.gate}
        self.crashed: list[tuple[str, int]] = []    # (commit function, its n-th call in the run)
        self.commits: list[str] = []
        self.lock = threading.Lock()
        for name in names:
            module, function = name.split(".")
            monkeypatch.setattr(modules[module], function, self._wrap(name, getattr(modules[module], function)))

    def _wrap(self, name, real):  # noqa: ANN001, ANN202
        def commit(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            result = real(*args, **kwargs)
            with self.lock:
                boundary = (name, self.commits.count(name))
                self.commits.append(name)
                if boundary not in self.crashed:
                    self.crashed.append(boundary)
                    raise Crash(name)
            return result
        return commit

    def runs(self, run) -> list[str]:  # noqa: ANN001
        """Run ``run()`` again and again, each time from what the last one left, until one completes;
        the boundaries the runs died at."""
        for _ in range(50):
            self.commits = []
            try:
                run()
            except Crash:
                continue
            return [name for name, _ in self.crashed]
        raise AssertionError("the run never completed")


def _copy(start, path):  # noqa: ANN001, ANN202
    shutil.copytree(start.root, path)
    return open_lake(start.spark, str(path))


# --- a batch ----------------------------------------------------------------------------------------------------

@pytest.fixture
def streamed_lake(lake, tmp_path):
    """A lake where the stream already wrote CB1 (in the window) and CB4 (whose batch row is dated before it)."""
    apply(lake, 0, {"e-00000.jsonl": [posted(1, amount="10.00"), posted(2), posted(4)]})
    core_file(tmp_path / "in", [
        core_detail(txn(1), account="000000000042", posting_date="20261005", value_date="20261005",
                    posting_time="100000", code="POS", amount="12.00", channel="POS"),       # replaces streamed CB1
        core_detail(txn(3), account="000000000042", posting_date="20261005", value_date="20261005"),   # new
        core_detail(txn(4), account="000000000042", posting_date="20260520", value_date="20260520"),   # out of window
        core_detail("CB12345ABC0000000000"),                                                   # quarantined
    ], business_date="20261005")
    return lake


def test_batch_crashed_at_each_commit_then_rerun_equals_an_uninterrupted_run(streamed_lake, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    clean = _copy(streamed_lake, tmp_path / "clean")
    assert load(clean, folder).exit_code == 0
    crashed = streamed_lake

    boundaries = CrashAfter(monkeypatch, BACKFILL_COMMITS).runs(lambda: load(crashed, folder))

    for table in BACKFILL_TABLES:
        assert table_snapshot(crashed, table, VOLATILE) == table_snapshot(clean, table, VOLATILE), table
    assert snapshot(crashed)["ops.stream_state"] == snapshot(clean)["ops.stream_state"]
    assert set(boundaries) == set(BACKFILL_COMMITS)      # the case reaches every kind of commit
    serving = {r["txn_id"]: r["source_system"] for r in crashed.read("serving.transactions_recent").collect()}
    assert serving == {txn(1): "core_banking", txn(2): "events", txn(3): "core_banking"}


# --- a micro-batch ----------------------------------------------------------------------------------------------

def test_micro_batch_crashed_at_each_commit_then_replayed_equals_an_uninterrupted_run(lake, tmp_path, monkeypatch):
    from ledgerlake.load import microbatch, sinks

    events = {"e-00000.jsonl": [posted(1), posted(2, amount="20.00"), posted(5, amount="5.00"), "not json"]}
    write = microbatch._write_transactions

    def batch_loads_cb2_meanwhile(target, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        """The plan saw no batch row for CB2; a batch file's row commits before the micro-batch's own."""
        rows = target.read("silver.transactions").where(f"txn_id = '{txn(2)}' AND source_system = 'core_banking'")
        if rows.isEmpty():
            (batch_row(target.spark, 2, "20.50", "2026-10-05").write.format("delta").mode("append")
             .save(target.path("silver.transactions")))
        return write(target, *args, **kwargs)

    monkeypatch.setattr(microbatch, "_write_transactions", batch_loads_cb2_meanwhile)
    start = lake
    sinks.append_transactions(start, "silver.transactions", batch_row(start.spark, 5, "5.50", "2026-10-05"),
                              "earlier-batch", 0)       # CB5: a batch row before the stream sees it
    clean = _copy(start, tmp_path / "clean")
    apply(clean, 0, events)

    boundaries = CrashAfter(monkeypatch, STREAM_COMMITS).runs(lambda: apply(start, 0, events))

    assert snapshot(start) == snapshot(clean)
    assert set(boundaries) == set(STREAM_COMMITS)
    silver = {r["txn_id"]: r["source_system"] for r in start.read("silver.transactions").collect()}
    assert silver == {txn(1): "events", txn(2): "core_banking", txn(5): "core_banking"}
