"""The contract's sample folders load exactly as their expected_*.json files say, and reruns are no-ops."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.helpers import backfill, ledger, quarantine_counts, silver, table_snapshot

VOLATILE = ("load_id", "ingested_at", "processed_at", "quarantined_at")


def holds_expected(lake, expected: dict) -> None:  # noqa: ANN001
    """Assert the lake's ledger, quarantine and silver are what an ``expected_<source>.json`` says."""
    got_ledger = ledger(lake)
    assert set(got_ledger) == set(expected["ledger"])
    for name, want in expected["ledger"].items():
        got = got_ledger[name]
        assert got["status"] == want["status"], name
        if want["status"] == "REJECTED":
            assert got["reason"] == want["reason"], name
        else:
            assert got["reason"] is None
            assert (got["records_in"], got["records_accepted"], got["records_quarantined"]) == (
                want["records_in"], want["records_accepted"], want["records_quarantined"]), name
            assert got["records_accepted"] + got["records_quarantined"] == got["control_count"]

    assert quarantine_counts(lake) == expected["quarantine"]

    by_month = {
        f"{r['source_system']}|{r['m']}": [r["n"], str(r["s"])]
        for r in lake.spark.sql(
            f"SELECT source_system, date_format(posting_date, 'yyyy-MM') AS m, count(*) AS n, sum(amount) AS s "
            f"FROM delta.`{lake.path('silver.transactions')}` GROUP BY 1, 2").collect()
    }
    assert by_month == expected["silver_by_month"]

    rows = silver(lake)
    assert len(rows) == expected["silver_count"]
    assert set(rows) == set(expected["rows"])
    for txn_id, want in expected["rows"].items():
        got = rows[txn_id]
        for column, value in want.items():
            actual = got[column]
            if isinstance(actual, Decimal):
                actual = str(actual)
            elif actual is not None and column in ("posting_date", "value_date", "posted_at"):
                actual = actual.isoformat()
            assert actual == value, f"{txn_id}.{column}"


@pytest.mark.parametrize("source", ["core_banking", "core_banking_ebcdic", "cards"])
def test_sample_folder_matches_expected(lake, samples, source):
    expected = json.loads((samples / f"expected_{source}.json").read_text())
    result = backfill(lake, source, samples / source)

    holds_expected(lake, expected)
    assert result.exit_code == 1  # the samples include rejected files
    # contract-valid data meets every critical data-quality expectation
    assert result.blocked is None and result.dq_reports
    assert [r.describe() for report in result.dq_reports for r in report.critical_failures] == []


@pytest.mark.parametrize("source", ["core_banking", "cards"])
def test_rerun_changes_no_table(lake, samples, source):
    backfill(lake, source, samples / source)
    before = {t: table_snapshot(lake, t, VOLATILE)
              for t in ("silver.transactions", "ops.quarantine", "ops.load_ledger")}
    versions = {t: lake.delta(t).history(1).first()["version"] for t in before}

    again = backfill(lake, source, samples / source)

    assert {t: table_snapshot(lake, t, VOLATILE) for t in before} == before
    assert {t: lake.delta(t).history(1).first()["version"] for t in before} == versions
    assert again.count("SKIPPED") == len(again.files)
    # files rejected earlier are still reported, so the rerun does not pass silently
    assert again.exit_code == 1
