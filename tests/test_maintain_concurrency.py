"""Maintenance beside the loads: OPTIMIZE and the roll-off commit while a micro-batch or a batch is writing.

A real Delta conflict, every time: the micro-batch's (or batch's) silver write is held while
its data is being written (a Python filter in the executors waits for a file), the maintenance
commits meanwhile, then the write is released and its commit meets the newer table. The
loser is retried on the newest snapshot; the result is that of the two run one after the other.
"""

from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame

from tests.event_files import apply, posted, rows, state, txn
from tests.legacy_files import core_detail, core_file
from tests.test_handoff import load


def _held(gate: Path):  # noqa: ANN202
    """A filter that passes every row once ``gate/go`` exists, after saying so in ``gate/reached``."""
    from pyspark.sql import functions as F

    def wait(_: int) -> bool:
        import os
        import time as clock

        open(os.path.join(gate, "reached"), "w").close()
        while not os.path.exists(os.path.join(gate, "go")):
            clock.sleep(0.05)
        return True

    return F.udf(wait, "boolean").asNondeterministic()(F.lit(1))


@pytest.fixture
def hold_silver_write(monkeypatch, tmp_path):
    """``hold_silver_write(function_name, maintenance)``: the next silver write through ``sinks.<function_name>``
    waits, mid-write, until ``maintenance()`` has committed (run in another thread, session of its own)."""
    from ledgerlake.load import sinks

    gate = tmp_path / "gate"
    gate.mkdir()
    errors: list[BaseException] = []

    def arm(function_name: str, maintenance) -> None:  # noqa: ANN001
        real = getattr(sinks, function_name)

        def held_write(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            if "serving.transactions_recent" in args or (gate / "go").exists():
                return real(*args, **kwargs)
            return real(*[a.where(_held(gate)) if isinstance(a, DataFrame) else a for a in args], **kwargs)

        def maintain_when_reached() -> None:
            try:
                while not (gate / "reached").exists():
                    time.sleep(0.05)
                maintenance()
            except BaseException as exc:      # reported by the test, not lost in the thread
                errors.append(exc)
            finally:
                (gate / "go").touch()

        monkeypatch.setattr(sinks, function_name, held_write)
        threading.Thread(target=maintain_when_reached, daemon=True).start()

    yield arm
    (gate / "go").touch()
    assert not errors, errors


def _retried(caplog) -> list[str]:  # noqa: ANN001
    return [r.getMessage() for r in caplog.records if "concurrent commit, retry" in r.getMessage()]


def test_a_correction_meets_an_optimize_of_its_month_and_is_applied_on_the_compacted_files(
        lake, hold_silver_write, caplog):
    from ledgerlake.lake import Lake
    from ledgerlake.upkeep.layout import optimize_months

    apply(lake, 0, {"e-00000.jsonl": [posted(1, amount="10.00"), posted(2)]})
    apply(lake, 1, {"e-00001.jsonl": [posted(3), posted(4)]})      # October: two files in each tier
    other = Lake(lake.spark.newSession(), lake.root)
    hold_silver_write("replace_transactions", lambda: optimize_months(other, "silver.transactions", ["2026-10"]))

    apply(lake, 2, {"e-00002.jsonl": [posted(1, seq=2, event_type="TXN_CORRECTED", amount="11.00")]})

    assert _retried(caplog), "the correction's commit met the OPTIMIZE"
    operations = [r["operation"] for r in lake.delta("silver.transactions").history().collect()]
    assert "OPTIMIZE" in operations
    silver = lake.read("silver.transactions")
    assert sorted(r["txn_id"] for r in silver.collect()) == [txn(n) for n in (1, 2, 3, 4)]   # each once
    assert rows(lake, "silver.transactions")[txn(1)]["amount"] == Decimal("11.00")
    assert rows(lake, "serving.transactions_recent")[txn(1)]["amount"] == Decimal("11.00")


def test_a_batch_publish_meets_an_optimize_and_a_roll_off_and_loads_every_record_once(
        lake, tmp_path, hold_silver_write, caplog):
    from ledgerlake.lake import Lake
    from ledgerlake.serving import window_for
    from ledgerlake.upkeep.layout import optimize_months
    from ledgerlake.upkeep.rolloff import roll_off

    september = window_for(date(2026, 9, 15), 6)   # 2026-04 .. 2026-09
    apply(lake, 0, {"e-00000.jsonl": [posted(1, amount="10.00"), posted(5, posted_at="2026-05-10T10:00:00Z")]},
          window=september)
    apply(lake, 1, {"e-00001.jsonl": [posted(2, posted_at="2026-09-10T10:00:00Z")]}, window=september)
    core_file(tmp_path / "in", [
        core_detail(txn(1), account="000000000042", posting_date="20261005", value_date="20261005",
                    posting_time="100000", code="POS", amount="12.00", channel="POS"),       # replaces streamed CB1
        core_detail(txn(3), account="000000000042", posting_date="20261005", value_date="20261005"),
    ], business_date="20261005")
    other = Lake(lake.spark.newSession(), lake.root)

    def maintain() -> None:                  # what `ledgerlake maintain --roll-off --optimize` commits
        roll_off(other, window_for(date(2026, 11, 26), 6))
        optimize_months(other, "silver.transactions", ["2026-10"])

    hold_silver_write("write_silver", maintain)

    result = load(lake, tmp_path / "in")

    assert result.exit_code == 0 and result.count("LOADED") == 1
    assert _retried(caplog), "the publish met the OPTIMIZE"
    silver = {r["txn_id"]: r["source_system"] for r in lake.read("silver.transactions").collect()}
    assert silver == {txn(1): "core_banking", txn(2): "events", txn(3): "core_banking", txn(5): "events"}
    assert lake.read("silver.transactions").count() == 4
    serving = {r["txn_id"]: r["source_system"] for r in lake.read("serving.transactions_recent").collect()}
    assert serving == {txn(1): "core_banking", txn(2): "events", txn(3): "core_banking"}   # May rolled off
    assert state(lake)[txn(1)]["status"] == "BATCH"
