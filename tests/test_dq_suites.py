"""Suite files: shipped suites load, record rules and expectations share one declaration, bad suites stop start-up."""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from expectations.gate import BatchGate, TableGate
from expectations.plan import plan_suite
from expectations.suite import SUITES_DIR, SuiteError, load_suite
from transforms.legacy import SOURCES
from transforms.legacy.spec import RecordRule
from warehouse.tables import TXN_COLUMNS

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_record_rules_and_expectations_come_from_one_declaration(source):
    spec = SOURCES[source]
    gate = BatchGate.load(spec)
    rule_expectations = [e for e in gate.expectations if e.check == "record_rules"]
    assert [e.name for e in rule_expectations] == [f"record_rule[{r.reason}]" for r in spec.record_rules]
    for rule, expectation in zip(spec.record_rules, rule_expectations, strict=True):
        assert expectation.breaks == f"NOT coalesce({rule.valid}, FALSE)"   # the quarantine's own condition
        assert expectation.severity == "critical"


def test_a_new_record_rule_gets_its_expectation_without_touching_the_suites():
    spec = SOURCES["cards"]
    extended = replace(spec, record_rules=[*spec.record_rules, RecordRule("BAD_AUTH", "c_auth_code RLIKE '^[A-Z0-9]{6}$'")])

    names = [e.name for e in BatchGate.load(extended).expectations]

    assert "record_rule[BAD_AUTH]" in names
    assert "record_rule[BAD_AUTH]" not in [e.name for e in BatchGate.load(spec).expectations]


def test_required_columns_cover_every_non_nullable_contract_column():
    required = {name for name, _, nullable in TXN_COLUMNS if not nullable}
    for suite_name in ("legacy_batch", "silver_transactions", "serving_transactions"):
        suite = load_suite(suite_name)
        checked = {c for d in suite.declarations if d.check == "not_null" for c in d.params["columns"]}
        assert required <= checked, suite_name


def test_severities_of_the_issue():
    planned = {e.name: e for e in BatchGate.load(SOURCES["core_banking"]).expectations}
    for name in ("records_reconcile", "required_not_null[txn_id]", "amount_in_range", "record_rule[BAD_DATE]"):
        assert planned[name].severity == "critical"
    for name in ("posting_date_near_business_date", "quarantine_share", "daily_volume", "large_amount"):
        assert planned[name].severity == "warning"
    silver = {e.name: e.severity for e in TableGate.load("silver.transactions").expectations}
    assert silver["txn_id_unique"] == silver["posting_month_matches_partition"] == "critical"


def test_amounts_are_read_exactly_from_the_suite():
    silver = {e.name: e for e in plan_suite(load_suite("silver_transactions"))}
    # 9999999999999999.99 is not representable as a float; the suite keeps it exact
    assert silver["amount_in_range"].breaks == "abs(amount) > 9999999999999999.99"


def test_great_expectations_builds_every_shipped_suite():
    from expectations import gx_runtime

    validator = gx_runtime.validator()
    for name in ("legacy_batch", "silver_transactions", "serving_transactions"):
        planned = plan_suite(load_suite(name), rules=SOURCES["core_banking"].record_rules)
        suite = validator.suite(name, planned)
        assert len(suite.expectations) == len(planned)
        assert {e.severity.value for e in suite.expectations} <= {"critical", "warning"}


BAD_SUITES = {
    "not_yaml": ("legacy_batch", "  - name: x\n check: [unclosed", "not valid YAML at line"),
    "unknown_column": ("legacy_batch", "columns: [txn_id, source_system, account_id, posting_date, amount]",
                       "names column 'acount_id', which does not exist in the classified records"),
    "unknown_column_table": ("silver_transactions", "column: posting_month\n",
                             "names column 'posting_mnth', which does not exist in silver.transactions"),
    "unknown_check": ("legacy_batch", "check: quarantine_share", "unknown check 'quarantine_ratio'"),
    "bad_severity": ("legacy_batch", "severity: warning\n\n  - name: daily_volume",
                     "'severity' must be critical or warning, got 'warn'"),
    "bad_share": ("legacy_batch", "max_share: 0.05", "'max_share' must be a share between 0 and 1, got 5"),
    "bad_amount": ("legacy_batch", "max: 1000000.00", "'max' must be a positive amount, got 'a lot'"),
    "history_longer_than_window": ("legacy_batch", "min_history_days: 5", "min_history_days (40) exceeds window_days"),
    "duplicate_name": ("legacy_batch", "name: large_amount", "expectation name 'quarantine_share' is used twice"),
    "unknown_key": ("legacy_batch", "max_days: 31", "unknown key(s) max_dayz"),
    "wrong_target": ("silver_transactions", "check: unique", "check 'reconciled' does not apply"),
    "not_a_partition": ("silver_transactions", "column: posting_month\n",
                        "'txn_id' is not a generated partition column"),
}
REPLACEMENTS = {
    "not_yaml": None,
    "unknown_column": "columns: [txn_id, source_system, acount_id, posting_date, amount]",
    "unknown_column_table": "column: posting_mnth\n",
    "unknown_check": "check: quarantine_ratio",
    "bad_severity": "severity: warn\n\n  - name: daily_volume",
    "bad_share": "max_share: 5",
    "bad_amount": "max: a lot",
    "history_longer_than_window": "min_history_days: 40",
    "duplicate_name": "name: quarantine_share",
    "unknown_key": "max_dayz: 31",
    "wrong_target": "check: reconciled",
    "not_a_partition": "column: txn_id\n",
}


def broken_suites(tmp_path: Path, case: str) -> Path:
    folder = tmp_path / "suites"
    shutil.copytree(SUITES_DIR, folder)
    suite, old, _ = BAD_SUITES[case]
    path = folder / f"{suite}.yml"
    text = path.read_text()
    if REPLACEMENTS[case] is None:
        text += old
    else:
        assert old in text, (case, old)
        text = text.replace(old, REPLACEMENTS[case], 1) if case != "not_a_partition" else \
            text.replace("check: matches_partition\n    column: posting_month", "check: matches_partition\n"
                         "    column: txn_id")
    path.write_text(text)
    return folder


@pytest.mark.parametrize("case", list(BAD_SUITES))
def test_a_bad_suite_is_a_clear_error_at_load(tmp_path, case):
    folder = broken_suites(tmp_path, case)
    with pytest.raises(SuiteError) as info:
        BatchGate.load(SOURCES["core_banking"], folder)
    message = str(info.value)
    assert BAD_SUITES[case][2] in message
    assert f"{BAD_SUITES[case][0]}.yml" in message and "\n" not in message


def test_a_missing_suite_file_is_named(tmp_path):
    with pytest.raises(SuiteError, match="suite file not found: .*legacy_batch.yml"):
        BatchGate.load(SOURCES["core_banking"], tmp_path)


def test_cli_lists_suites_and_rejects_a_bad_one(tmp_path, ledgerlake_cli):
    ok = ledgerlake_cli("dq", "suites", "--source", "cards")
    assert ok.returncode == 0, ok.stderr
    assert "record_rule[BAD_MCC]" in ok.stdout and "txn_id_unique" in ok.stdout

    folder = broken_suites(tmp_path, "unknown_column")
    bad = ledgerlake_cli("dq", "suites", "--expectations", str(folder))
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "acount_id" in lines[0] and lines[0].startswith("ledgerlake dq: error:")


def test_audit_with_a_bad_suite_stops_before_spark_starts(tmp_path, ledgerlake_cli):
    folder = broken_suites(tmp_path, "unknown_column_table")
    folder.joinpath("legacy_batch.yml").unlink()
    shutil.copy(SUITES_DIR / "serving_transactions.yml", folder)
    (folder / "serving_transactions.yml").write_text(
        (folder / "serving_transactions.yml").read_text().replace("column: posting_date", "column: posted_on", 1))
    warehouse = tmp_path / "lake"

    proc = ledgerlake_cli("dq", "audit-serving", "--expectations", str(folder), "--warehouse", str(warehouse))

    assert proc.returncode == 2
    assert "posted_on" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not warehouse.exists()      # no session, no lake, no data read
