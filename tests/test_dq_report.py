"""Results as data and the report: ops.dq_results rows, the HTML pages, the terminal summary, ledgerlake dq report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from expectations.gate import ExpectationResult, GateReport, record_results
from expectations.report import load_run, terminal_summary, write_report

BIN = Path(sys.executable).parent


def result(expectation: str, severity: str, success: bool, observed: str, where: str, scope: str = "file",
           details: str | None = None) -> ExpectationResult:
    return ExpectationResult("legacy_batch" if scope == "file" else "silver_transactions", expectation,
                             "not_null", "expect_column_values_to_be_between", severity, success, observed,
                             "= 0", details, scope, where, where if scope == "file" else None)


def sample_reports() -> list[GateReport]:
    passed = GateReport("run-A", "batch-1", "cards", "silver.transactions", [
        result("required_not_null[txn_id]", "critical", True, "0", "CARDS_20240301.csv"),
        result("quarantine_share", "warning", False, "0.1000", "CARDS_20240301.csv", details="1 of 10 quarantined"),
        result("txn_id_unique", "critical", True, "0", "2024-03", scope="month"),
    ])
    blocked = GateReport("run-A", "batch-2", "cards", "silver.transactions", [
        result("required_not_null[txn_id]", "critical", True, "0", "CARDS_20240302.csv"),
        result("txn_id_unique", "critical", False, "2", "2024-03", scope="month", details="e.g. txn_id <CD1>"),
    ])
    return [passed, blocked]


def test_results_are_rows_and_the_report_shows_the_failures(lake):
    reports = sample_reports()
    assert record_results(lake, *reports) == 5

    rows = lake.spark.sql("SELECT batch_id, expectation, success, observed_value, publish_blocked, source_file "
                          "FROM ops.dq_results WHERE run_id = 'run-A' AND NOT success ORDER BY batch_id").collect()
    assert [tuple(r) for r in rows] == [
        ("batch-1", "quarantine_share", False, "0.1000", False, "CARDS_20240301.csv"),
        ("batch-2", "txn_id_unique", False, "2", True, None),
    ]

    path = Path(write_report(lake, "run-A"))

    assert path == Path(lake.root) / "reports" / "dq" / "run_run-A.html"
    page = path.read_text()
    assert "Publish BLOCKED for 1 batch(es)" in page
    assert "txn_id_unique" in page and "e.g. txn_id &lt;CD1&gt;" in page      # escaped
    assert "1 of 10 quarantined" in page
    index = (path.parent / "index.html").read_text()
    assert "run_run-A.html" in index and "BLOCKED" in index
    assert (path.parent / "latest.html").read_text() == page
    # the page the job writes from its reports equals the one rebuilt from ops.dq_results
    assert Path(write_report(lake, "run-A", reports)).read_text() == page

    summary = terminal_summary(load_run(lake, "run-A"))
    assert "1 critical and 1 warning expectation(s) failed" in summary
    assert "publish BLOCKED for 1 batch(es): batch-2" in summary
    assert "silver_transactions.txn_id_unique" in summary and "legacy_batch.quarantine_share" in summary
    assert "required_not_null" not in summary      # only failures are listed


@pytest.mark.slow
def test_dq_report_command(lake, ledgerlake_cli):
    record_results(lake, *sample_reports())

    proc = ledgerlake_cli("dq", "report", "--warehouse", lake.root, "--conf", "spark.sql.shuffle.partitions=1")

    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"report: {lake.root}/reports/dq/run_run-A.html" in proc.stdout
    assert "silver_transactions.txn_id_unique" in proc.stdout and "BLOCKED" in proc.stdout
    assert Path(lake.root, "reports", "dq", "run_run-A.html").is_file()

    unknown = ledgerlake_cli("dq", "report", "--run-id", "nope", "--warehouse", lake.root)
    assert unknown.returncode == 2 and "no data-quality results for run 'nope'" in unknown.stderr
