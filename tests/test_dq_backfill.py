"""The gate wired into the backfill: every batch audited before its first write, a critical failure blocks it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from ledgerlake.config import LakeConfig
from ledgerlake.load.backfill import BackfillResult, render_summary, run_backfill
from ledgerlake.load.discovery import discover, month_range
from tests.legacy_files import core_detail, core_file
from transforms.legacy import get_source

CONFIG = LakeConfig(today=date(2024, 3, 20))          # March 2024 is inside the serving window
WRITTEN = ("silver.transactions", "serving.transactions_recent", "ops.quarantine", "ops.load_ledger", "ops.parity")
DAY2 = "CORE_TXN_20240302_000001.dat"


def cb(n: int) -> str:
    return f"CB{n:018d}"


def run(lake, folder: Path, batch_bytes: int = 256 << 20) -> BackfillResult:  # noqa: ANN001
    spec = get_source("core_banking")
    months = month_range(None, None)
    return run_backfill(lake, spec, discover(spec, str(folder), months), months, batch_bytes=batch_bytes,
                        config=CONFIG)


def versions(lake) -> dict[str, int]:  # noqa: ANN001
    return {name: lake.version(name) for name in WRITTEN}


def dq_rows(lake, run_id: str) -> list[dict]:  # noqa: ANN001
    return [r.asDict() for r in lake.read("ops.dq_results").where(F.col("run_id") == run_id).collect()]


def corrupting(monkeypatch, corrupt) -> None:  # noqa: ANN001
    """Corrupt the classified records inside load_batch: the last transform before the audit and the writes."""
    import transforms.validation as validation

    original = validation.with_duplicate_verdict

    def patched(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        step = original(*args, **kwargs)
        return lambda df: corrupt(step(df))

    monkeypatch.setattr(validation, "with_duplicate_verdict", patched)


def _set(column: str, value: str, where: str):  # noqa: ANN202
    return lambda df: df.withColumn(column, F.expr(f"CASE WHEN {where} THEN {value} ELSE {column} END"))


@pytest.fixture(scope="module")
def loaded(spark, tmp_path_factory, new_lake):
    """Day 1 published through the gated backfill; day 2 (5 good records, 1 quarantined) waiting."""

    root = tmp_path_factory.mktemp("dq_backfill")
    lake = new_lake(root / "lake")
    core_file(root / "day1", [core_detail(txn_id=cb(i), amount=f"-{i}.00") for i in range(1, 5)], "20240301")
    first = run(lake, root / "day1")
    core_file(root / "day2", [core_detail(txn_id=cb(10 + i), posting_date="20240302", value_date="20240302")
                              for i in range(5)]
              + [core_detail(txn_id=cb(19), posting_date="20240302", currency="BTC")], "20240302")
    return lake, root, first


def test_a_clean_batch_is_audited_recorded_and_reported(loaded):
    lake, _, first = loaded

    assert first.exit_code == 0 and first.blocked is None and first.count("LOADED") == 1
    [report] = first.dq_reports
    assert report.critical_failures == [] and report.units == {"legacy_batch": 1, "silver_transactions": 1}
    assert lake.read("silver.transactions").count() == 4 and lake.read("serving.transactions_recent").count() == 4
    rows = dq_rows(lake, report.run_id)
    assert len(rows) == len(report.results) > 0 and not any(r["publish_blocked"] for r in rows)
    assert {r["source_file"] for r in rows if r["suite"] == "legacy_batch"} == {"CORE_TXN_20240301_000001.dat"}
    # the audit's pass gave the counts the ledger records
    ledger = lake.read("ops.load_ledger").first()
    assert (ledger["records_in"], ledger["records_accepted"], ledger["rows_inserted"]) == (4, 4, 4)
    page = Path(first.dq_report_path)
    assert page == Path(lake.root) / "reports" / "dq" / f"run_{report.run_id}.html" and page.is_file()
    summary = render_summary(first)
    assert "data quality: 1 batch(es) audited" in summary and "0 critical failure(s)" in summary
    assert f"data-quality report: {page}" in summary


CORRUPTIONS = {
    # a txn_id already published (day 1) given to a new row
    "duplicate_txn_id": (_set("txn_id", f"'{cb(1)}'", f"txn_id = '{cb(11)}'"),
                         "silver_transactions.txn_id_unique", "2024-03", "observed 1"),
    "null_required_column": (_set("account_id", "NULL", f"txn_id = '{cb(11)}'"),
                             "legacy_batch.required_not_null[account_id]", DAY2, "observed 1"),
    "amount_out_of_range": (_set("amount", "CAST(123456789012345.00 AS DECIMAL(20,2))", f"txn_id = '{cb(11)}'"),
                            "legacy_batch.amount_in_range", DAY2, "largest |amount| 123,456,789,012,345.00"),
    "wrong_partition_month": (
        lambda df: df.withColumn("posting_month", F.expr(
            f"CASE WHEN txn_id = '{cb(11)}' THEN '2024-02' ELSE date_format(posting_date, 'yyyy-MM') END")),
        "silver_transactions.posting_month_matches_partition", "2024-02", "observed 1"),
    # the quarantined record lost on the way: accepted + quarantined != records in
    "counts_do_not_add_up": (lambda df: df.where(F.col("verdict") != "QUARANTINED"),
                             "legacy_batch.records_reconcile", DAY2, "observed 5"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupted_batch_is_blocked_with_nothing_written(loaded, monkeypatch, case):
    lake, root, _ = loaded
    corrupt, expectation, where, observed = CORRUPTIONS[case]
    corrupting(monkeypatch, corrupt)
    before = versions(lake)
    results_before = lake.version("ops.dq_results")

    result = run(lake, root / "day2")

    assert result.blocked is not None and result.exit_code == 1
    assert [f.status for f in result.files] == ["BLOCKED"]
    assert versions(lake) == before            # no silver, serving, quarantine, parity or ledger commit
    assert lake.version("ops.dq_results") == results_before + 1
    message = result.blocked.message()
    assert expectation in message and where in message and observed in message
    rows = dq_rows(lake, result.blocked.run_id)
    failed = {(f"{r['suite']}.{r['expectation']}", r["scope_value"]) for r in rows
              if not r["success"] and r["severity"] == "critical"}
    assert (expectation, where) in failed
    assert rows and all(r["publish_blocked"] for r in rows)
    summary = render_summary(result)
    assert "1 blocked" in summary and f"PUBLISH BLOCKED: {message}" in summary
    assert "rerun after the fix" in summary and Path(result.dq_report_path).is_file()


def test_after_a_block_later_batches_wait_and_a_rerun_loads_everything(loaded, monkeypatch):
    lake, root, _ = loaded
    folder = root / "anomalies"
    core_file(folder, [core_detail(txn_id=cb(300), posting_date="20240303", amount="-2500000.00"),
                       core_detail(txn_id=cb(301), posting_date="20240303"),
                       core_detail(txn_id=cb(302), posting_date="20240303", currency="BTC")], "20240303")
    core_file(folder, [core_detail(txn_id=cb(400), posting_date="20240130", value_date="20240130"),
                       core_detail(txn_id=cb(401), posting_date="20240304")], "20240304")
    before = versions(lake)
    with monkeypatch.context() as patch:
        corrupting(patch, _set("txn_id", f"'{cb(2)}'", f"txn_id = '{cb(301)}'"))
        blocked = run(lake, folder, batch_bytes=1)          # one file per batch

    assert [f.status for f in blocked.files] == ["BLOCKED", "NOT_ATTEMPTED"] and blocked.exit_code == 1
    assert len(blocked.dq_reports) == 1 and versions(lake) == before
    assert "1 blocked, 1 not attempted" in render_summary(blocked)

    fixed = run(lake, folder, batch_bytes=1)

    assert [f.status for f in fixed.files] == ["LOADED", "LOADED"] and fixed.exit_code == 0
    assert [f.inserted for f in fixed.files] == [2, 2] and fixed.files[0].quarantined == 1
    # anomalies: failed warnings, recorded, never blocking
    warnings = {(r.expectation, r.scope_value) for report in fixed.dq_reports for r in report.failed_warnings}
    assert warnings == {("quarantine_share", "CORE_TXN_20240303_000001.dat"),
                        ("large_amount", "CORE_TXN_20240303_000001.dat"),
                        ("posting_date_near_business_date", "CORE_TXN_20240304_000001.dat")}
    rows = [r for report in fixed.dq_reports for r in dq_rows(lake, report.run_id)]
    assert {(r["expectation"], r["source_file"]) for r in rows if not r["success"]} == warnings
    assert not any(r["publish_blocked"] for r in rows)
    summary = render_summary(fixed)
    assert "0 critical failure(s), 3 warning(s) failed" in summary
    assert "warning: legacy_batch.large_amount (warning) failed for file CORE_TXN_20240303_000001.dat" in summary


@pytest.mark.slow
def test_cli_exit_status_message_and_report(spark, tmp_path, monkeypatch, ledgerlake_cli):
    core_file(tmp_path / "in", [core_detail(txn_id=cb(1)), core_detail(txn_id=cb(2))], "20240301")
    warehouse = tmp_path / "lake"
    corrupting(monkeypatch, lambda df: df.withColumn("account_id", F.lit(None).cast("string")))

    blocked = ledgerlake_cli("backfill", "--source", "core_banking", "--input", str(tmp_path / "in"),
                             "--warehouse", str(warehouse), "--today", "2024-03-20")

    assert blocked.returncode == 1, blocked.stderr[-3000:]
    error = [line for line in blocked.stderr.splitlines() if line.startswith("ledgerlake backfill: error:")]
    assert len(error) == 1
    assert "legacy_batch.required_not_null[account_id] (critical) failed for file CORE_TXN_20240301_000001.dat: " \
           "observed 2" in error[0]
    assert "PUBLISH BLOCKED" in blocked.stdout and "data-quality report:" in blocked.stdout

    # what `ledgerlake dq report` prints for that run (the command itself: tests/test_dq_report.py)
    from expectations.report import latest_run_id, load_run, terminal_summary
    from ledgerlake.lake import open_lake

    lake = open_lake(spark, str(warehouse))
    run_id = latest_run_id(lake)
    assert f"data-quality report: {warehouse}/reports/dq/run_{run_id}.html" in blocked.stdout
    summary = terminal_summary(load_run(lake, run_id))
    assert "publish BLOCKED for 1 batch(es)" in summary
    assert "legacy_batch.required_not_null[account_id]" in summary
    assert lake.version("silver.transactions") == lake.version("ops.load_ledger") == 0


def test_cli_bad_suite_stops_the_backfill_before_any_data_is_read(tmp_path, ledgerlake_cli):
    from expectations.suite import SUITES_DIR

    folder = tmp_path / "suites"
    folder.mkdir()
    for suite in SUITES_DIR.glob("*.yml"):
        (folder / suite.name).write_text(suite.read_text().replace("column: amount", "column: amout", 1))
    core_file(tmp_path / "in", [core_detail()])
    warehouse = tmp_path / "lake"

    proc = ledgerlake_cli("backfill", "--source", "core_banking", "--input", str(tmp_path / "in"),
                          "--expectations", str(folder), "--warehouse", str(warehouse))

    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ledgerlake backfill: error:") and "amout" in lines[0]
    assert not warehouse.exists()
