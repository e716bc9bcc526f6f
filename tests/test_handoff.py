"""The handoff: a batch file replaces streamed versions (one row, parity recorded) and keeps serving in step."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from ledgerlake.config import LakeConfig
from ledgerlake.lake import Lake
from ledgerlake.load.backfill import run_backfill
from ledgerlake.load.discovery import discover, month_range
from tests.event_files import TODAY, apply, posted, rows, state, txn
from tests.helpers import table_snapshot
from tests.legacy_files import core_detail, core_file
from transforms.legacy import get_source

CONFIG = LakeConfig(today=TODAY, serving_months=6)     # window 2026-06 .. 2026-11


def load(lake: Lake, folder: Path):  # noqa: ANN201
    spec = get_source("core_banking")
    months = month_range(None, None)
    return run_backfill(lake, spec, discover(spec, str(folder), months), months, config=CONFIG)


def test_batch_replaces_streamed_version_records_parity_and_owns_the_txn(lake, tmp_path):
    apply(lake, 0, {"e-00000.jsonl": [posted(1, amount="10.00"), posted(2)]})
    core_file(tmp_path / "in", [
        core_detail(txn(1), account="000000000042", posting_date="20261005", value_date="20261005",
                    posting_time="100000", code="POS", amount="12.00", channel="POS"),
        core_detail(txn(3), account="000000000042", posting_date="20261005", value_date="20261005"),
    ], business_date="20261005")

    result = load(lake, tmp_path / "in")

    assert result.exit_code == 0
    silver = rows(lake, "silver.transactions")
    assert lake.read("silver.transactions").where(f"txn_id = '{txn(1)}'").count() == 1
    assert silver[txn(1)]["source_system"] == "core_banking" and silver[txn(1)]["amount"] == Decimal("12.00")
    assert silver[txn(2)]["source_system"] == "events"
    parity = {(r["txn_id"], r["field"]): r for r in lake.read("ops.parity").collect()}
    assert (parity[(txn(1), "amount")]["streamed_value"], parity[(txn(1), "amount")]["batch_value"]) == (
        "10.00", "12.00")
    assert parity[(txn(1), "amount")]["detected_by"] == "backfill"
    assert {field for t, field in parity if t == txn(1)} == {"amount", "description", "balance_after"}
    serving = rows(lake, "serving.transactions_recent")
    assert set(serving) == {txn(1), txn(2), txn(3)}
    assert serving[txn(1)]["source_system"] == "core_banking" and serving[txn(1)]["amount"] == Decimal("12.00")
    assert state(lake)[txn(1)]["status"] == "BATCH"

    # A later event for the batch's txn_id changes nothing; a rerun of the file changes no table.
    apply(lake, 1, {"e-00001.jsonl": [posted(1, seq=2, event_type="TXN_CORRECTED", amount="99.00")]})
    assert rows(lake, "silver.transactions")[txn(1)]["amount"] == Decimal("12.00")
    before = {t: table_snapshot(lake, t) for t in ("silver.transactions", "serving.transactions_recent", "ops.parity")}
    assert load(lake, tmp_path / "in").count("SKIPPED") == 1
    assert {t: table_snapshot(lake, t) for t in before} == before


def test_fresh_backfill_leaves_serving_equal_to_silver_rows_of_the_window(lake, tmp_path):
    details = {  # posting date -> txn number: before, at and inside the window's edges
        "20260531": 1, "20260601": 2, "20260815": 3, "20261126": 4, "20250110": 5,
    }
    for day, n in details.items():
        core_file(tmp_path / "in", [core_detail(txn(n), posting_date=day, value_date=day)], business_date=day)

    assert load(lake, tmp_path / "in").exit_code == 0

    def window_rows(name: str) -> list[tuple]:
        return sorted((r["txn_id"], r["amount"], r["posting_date"]) for r in lake.read(name).collect()
                      if str(r["posting_date"]) >= "2026-06-01")

    assert [r[0] for r in window_rows("silver.transactions")] == [txn(2), txn(3), txn(4)]
    assert window_rows("serving.transactions_recent") == window_rows("silver.transactions")
    assert lake.read("serving.transactions_recent").count() == 3


def _core_txn_1(folder: Path) -> None:
    core_file(folder, [core_detail(txn(1), account="000000000042", posting_date="20261005", value_date="20261005",
                                   posting_time="100000", code="POS", amount="12.00", channel="POS")],
              business_date="20261005")


def _each_txn_id_once(lake: Lake) -> None:
    for table in ("silver.transactions", "serving.transactions_recent"):
        ids = [r["txn_id"] for r in lake.read(table).select("txn_id").collect()]
        assert sorted(ids) == sorted(set(ids)), table


def test_a_batch_published_while_a_micro_batch_is_planned_takes_over_its_txn_ids(lake, tmp_path, monkeypatch):
    from ledgerlake.load import microbatch

    _core_txn_1(tmp_path / "in")
    write = microbatch._write_transactions

    def batch_publishes_first(*args, **kwargs):  # the plan saw no batch row; the batch commits before the stream
        assert load(lake, tmp_path / "in").exit_code == 0
        return write(*args, **kwargs)

    monkeypatch.setattr(microbatch, "_write_transactions", batch_publishes_first)
    stats = apply(lake, 0, {"e-00000.jsonl": [posted(1, amount="10.00"), posted(2)]})

    _each_txn_id_once(lake)
    silver, serving = rows(lake, "silver.transactions"), rows(lake, "serving.transactions_recent")
    assert silver[txn(1)]["source_system"] == serving[txn(1)]["source_system"] == "core_banking"
    assert silver[txn(2)]["source_system"] == serving[txn(2)]["source_system"] == "events"
    assert {t: s["status"] for t, s in state(lake).items()} == {txn(1): "BATCH", txn(2): "LIVE"}
    parity = {(r["txn_id"], r["field"]): r for r in lake.read("ops.parity").collect()}
    assert parity[(txn(1), "amount")]["detected_by"] == "stream"
    assert (stats.actions["UPSERT"], stats.actions["BATCH"]) == (1, 1)


def test_a_micro_batch_committed_while_a_batch_is_judged_yields_to_the_batch(lake, tmp_path, monkeypatch):
    from ledgerlake.load import sinks

    _core_txn_1(tmp_path / "in")
    write_silver = sinks.write_silver

    def stream_commits_first(*args, **kwargs):  # the batch was judged on silver without the streamed row
        apply(lake, 0, {"e-00000.jsonl": [posted(1, amount="10.00"), posted(2)]})
        return write_silver(*args, **kwargs)

    monkeypatch.setattr(sinks, "write_silver", stream_commits_first)
    assert load(lake, tmp_path / "in").exit_code == 0

    _each_txn_id_once(lake)
    silver, serving = rows(lake, "silver.transactions"), rows(lake, "serving.transactions_recent")
    assert silver[txn(1)]["source_system"] == serving[txn(1)]["source_system"] == "core_banking"
    assert silver[txn(2)]["source_system"] == serving[txn(2)]["source_system"] == "events"
    assert state(lake)[txn(1)]["status"] == "BATCH"
    parity = {(r["txn_id"], r["field"]): r for r in lake.read("ops.parity").collect()}
    assert (parity[(txn(1), "amount")]["streamed_value"], parity[(txn(1), "amount")]["batch_value"]) == (
        "10.00", "12.00")
