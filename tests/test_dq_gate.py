"""The publish gate on real batches: clean batches pass, each broken invariant blocks and is recorded, anomalies warn."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from expectations.gate import BatchGate, GateFailure, GateInputError, TableGate, audit_serving, record_results
from tests.dq_helpers import classify, gated_publish
from tests.legacy_files import core_detail, core_file
from transforms.legacy import get_source


def cb(n: int) -> str:
    return f"CB{n:018d}"


def failed(report, severity: str = "critical") -> set[tuple[str, str]]:
    """(suite.expectation, file or month) of every failed result of that severity."""
    return {(r.qualified_name, r.scope_value) for r in report.results if not r.success and r.severity == severity}


def dq_rows(lake, run_id: str) -> list[dict]:
    return [r.asDict() for r in lake.spark.sql(f"SELECT * FROM ops.dq_results WHERE run_id = '{run_id}'").collect()]


DAY1, DAY2, DAY3 = "CORE_TXN_20240301_000001.dat", "CORE_TXN_20240302_000001.dat", "CORE_TXN_20240303_000001.dat"


@pytest.fixture(scope="module")
def gated(spark, tmp_path_factory, new_lake):
    """A lake whose silver holds day 1 (published through the gate) and a classified batch of days 2 and 3."""

    root = tmp_path_factory.mktemp("dq_gate")
    lake = new_lake(root / "lake")
    gate = BatchGate.load(get_source("core_banking"))
    core_file(root / "day1", [core_detail(txn_id=cb(i), amount=f"-{i}.00") for i in range(1, 5)], "20240301")
    first = classify(lake, "core_banking", root / "day1")
    first_report = gated_publish(lake, gate, first, "run-day1")
    first.release()
    core_file(root / "batch", [core_detail(txn_id=cb(10 + i), posting_date="20240302", value_date="20240302",
                                           amount=f"{i}.50") for i in range(5)]
              + [core_detail(txn_id=cb(19), posting_date="20240302", currency="BTC")], "20240302")
    core_file(root / "batch", [core_detail(txn_id=cb(20 + i), posting_date="20240303", value_date="20240303")
                               for i in range(4)]
              + [core_detail(txn_id="CB12345", posting_date="20240303")], "20240303")
    batch = classify(lake, "core_banking", root / "batch")
    yield lake, gate, batch, first_report
    batch.release()


def test_clean_batches_pass_and_publish(gated):
    lake, gate, batch, first_report = gated
    assert not first_report.blocked and lake.read("silver.transactions").count() == 4

    report = gate.audit(lake, classified=batch.classified, files=batch.verdicts, existing=batch.existing,
                        run_id="clean", batch_id=batch.batch_id)

    assert failed(report) == set()
    assert failed(report, "warning") == {("legacy_batch.quarantine_share", DAY2),
                                         ("legacy_batch.quarantine_share", DAY3)}
    assert report.units == {"legacy_batch": 2, "silver_transactions": 1}
    reconcile = {r.scope_value: r for r in report.results if r.expectation == "records_reconcile"}
    assert reconcile[DAY2].observed_value == "6" and reconcile[DAY2].success
    unique = [r for r in report.results if r.expectation == "txn_id_unique"]
    assert [(u.scope_value, u.observed_value, u.success) for u in unique] == [("2024-03", "0", True)]
    # the batch pass counts what the job reports per file: no second counting pass needed
    by_verdict = {}
    for c in report.verdict_counts:
        key = (c["file_sha"], c["verdict"], c["reason"], c["month"])
        by_verdict[key] = by_verdict.get(key, 0) + c["count"]
    day2 = next(sha for sha, v in batch.verdicts.items() if v["source_file"] == DAY2)
    assert by_verdict == {**{k: v for k, v in by_verdict.items() if k[0] != day2},
                          (day2, "NEW", None, "2024-03"): 5, (day2, "QUARANTINED", "BAD_CURRENCY", "2024-03"): 1}
    rules = [r for r in report.results if r.expectation.startswith("record_rule[")]
    assert len(rules) == 2 * 7 and all(r.success and r.expectation_type == "expect_column_values_to_be_between"
                                       for r in rules)
    report.raise_if_blocked()


def _set(column: str, value: str, where: str):  # noqa: ANN202
    """Corrupt: set column to the SQL value on the rows matching where (a SQL condition)."""
    return lambda df: df.withColumn(column, F.expr(f"CASE WHEN {where} THEN {value} ELSE {column} END"))


NEW_ROW = f"txn_id = '{cb(11)}'"
CORRUPTIONS = {
    # a quarantined record lost between classification and publish
    "records_reconcile": (
        lambda df: df.where(~((F.col("source_file") == DAY2) & (F.col("verdict") == "QUARANTINED"))),
        {("legacy_batch.records_reconcile", DAY2)}, "observed 5"),
    # a quarantined record flagged NEW (so also an accepted record breaking its rule)
    "verdict_matches_reason": (
        _set("verdict", "'NEW'", f"txn_id = '{cb(19)}'"),
        {("legacy_batch.verdict_matches_reason", DAY2), ("legacy_batch.record_rule[BAD_CURRENCY]", DAY2)},
        "observed 1"),
    # (the rules judge the published account_id too)
    "required_not_null[account_id]": (
        _set("account_id", "NULL", NEW_ROW),
        {("legacy_batch.required_not_null[account_id]", DAY2), ("legacy_batch.record_rule[BAD_ACCOUNT]", DAY2),
         ("silver_transactions.required_not_null[account_id]", "2024-03")}, "observed 1"),
    "amount_in_range": (
        _set("amount", "CAST(123456789012345.00 AS DECIMAL(20,2))", NEW_ROW),
        {("legacy_batch.amount_in_range", DAY2)}, "largest |amount| 123,456,789,012,345.00"),
    "amount_in_range_decimal_18_2": (
        _set("amount", "CAST(123456789012345678.00 AS DECIMAL(20,2))", NEW_ROW),
        {("legacy_batch.amount_in_range", DAY2), ("silver_transactions.amount_in_range", "2024-03")}, "observed 1"),
    # the quarantine split skipped for one record: an accepted record breaks BAD_TXN_ID
    "record_rule": (
        lambda df: _set("reason", "NULL", "txn_id = 'CB12345'")(_set("verdict", "'NEW'", "txn_id = 'CB12345'")(df)),
        {("legacy_batch.record_rule[BAD_TXN_ID]", DAY3)}, "first at record 6"),
    # a txn_id already published from day 1
    "txn_id_unique": (
        _set("txn_id", f"'{cb(1)}'", f"txn_id = '{cb(21)}'"),
        {("silver_transactions.txn_id_unique", "2024-03")}, f"e.g. txn_id {cb(1)}"),
    "txn_id_unique_within_batch": (
        _set("txn_id", f"'{cb(10)}'", NEW_ROW),
        {("silver_transactions.txn_id_unique", "2024-03")}, f"e.g. txn_id {cb(10)}"),
    # rows headed for a partition other than their posting month
    "posting_month_matches_partition": (
        lambda df: df.withColumn("posting_month", F.expr(
            f"CASE WHEN {NEW_ROW} THEN '2024-02' ELSE date_format(posting_date, 'yyyy-MM') END")),
        {("silver_transactions.posting_month_matches_partition", "2024-02")}, "observed 1"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_broken_invariant_blocks_the_publish_and_is_recorded(gated, case):
    lake, gate, batch, _ = gated
    corrupt, expected, observed = CORRUPTIONS[case]
    silver_version = lake.delta("silver.transactions").history(1).first()["version"]
    quarantine_rows = lake.read("ops.quarantine").count()
    run_id = f"corrupt-{case}"

    report = gated_publish(lake, gate, batch, run_id, corrupt=corrupt)

    assert report.blocked
    assert failed(report) == expected
    message = report.message()
    for name, where in expected:
        assert name in message and where in message
    assert observed in message
    with pytest.raises(GateFailure, match="blocked by"):
        report.raise_if_blocked()
    # nothing of the batch became visible
    assert lake.delta("silver.transactions").history(1).first()["version"] == silver_version
    assert lake.read("ops.quarantine").count() == quarantine_rows
    # ... and the failure is on record
    rows = dq_rows(lake, run_id)
    recorded = {(f"{r['suite']}.{r['expectation']}", r["scope_value"]) for r in rows
                if not r["success"] and r["severity"] == "critical"}
    assert recorded == expected
    assert all(r["publish_blocked"] and r["batch_id"] == batch.batch_id for r in rows)
    assert len(rows) == len(report.results)


def test_record_rules_drive_both_the_quarantine_and_the_gate(lake, tmp_path):
    """Each record breaking one rule is quarantined with it; let it through and the gate names that rule."""
    spec = get_source("core_banking")
    cases = {
        "BAD_TXN_ID": core_detail(txn_id="CB00000000000000000X"),
        "BAD_ACCOUNT": core_detail(txn_id=cb(2), account="00000000000A"),
        "BAD_DATE": core_detail(txn_id=cb(3), posting_date="20230229"),
        "BAD_TIME": core_detail(txn_id=cb(4), posting_time="246000"),
        "BAD_CURRENCY": core_detail(txn_id=cb(5), currency="XXX"),
        "UNKNOWN_TXN_CODE": core_detail(txn_id=cb(6), code="ZZZ"),
        "BAD_REVERSAL": core_detail(txn_id=cb(7), code="REV"),
    }
    assert set(cases) == {r.reason for r in spec.record_rules}
    core_file(tmp_path / "in", [core_detail(txn_id=cb(1)), *cases.values()])
    batch = classify(lake, "core_banking", tmp_path / "in")
    gate = BatchGate.load(spec)
    reasons = {r["record_no"]: r["reason"] for r in batch.classified.select("record_no", "reason").collect()}
    assert [reasons[i + 3] for i in range(len(cases))] == list(cases)      # header is record 1, good record 2

    split = gate.audit(lake, classified=batch.classified, files=batch.verdicts, existing=None, run_id="split")
    # the quarantine skipped, and the parsed fields dropped from the cache (the gate re-parses them from raw)
    unsplit = (batch.classified.withColumn("verdict", F.lit("NEW")).withColumn("reason", F.lit(None).cast("string"))
               .drop(*[c for c in batch.classified.columns if c.startswith("f_")]))
    leaked = gate.audit(lake, classified=unsplit, files=batch.verdicts, existing=None, run_id="leaked")

    assert failed(split) == set()
    assert {name for name, _ in failed(leaked)} == {f"legacy_batch.record_rule[{r}]" for r in cases} | {
        "legacy_batch.required_not_null[posting_date]", "silver_transactions.required_not_null[posting_date]",
        "silver_transactions.required_not_null[posting_month]"}
    examples = {r.expectation: r.details for r in leaked.results if not r.success}
    assert examples["record_rule[BAD_CURRENCY]"] == "first at record 7"
    batch.release()


def test_anomalies_fail_warnings_but_never_block(lake, tmp_path):
    folder = tmp_path / "in"
    for day in range(1, 8):      # a week of 3 records a day: the history of the volume check
        core_file(folder, [core_detail(txn_id=cb(day * 100 + i), posting_date=f"202403{day:02d}") for i in range(3)],
                  f"202403{day:02d}")
    core_file(folder, [core_detail(txn_id=cb(800 + i), posting_date="20240308") for i in range(20)], "20240308")
    core_file(folder, [core_detail(txn_id=cb(900), posting_date="20240129", value_date="20240129"),
                       core_detail(txn_id=cb(901), posting_date="20240309")], "20240309")
    core_file(folder, [core_detail(txn_id=cb(1000), posting_date="20240310", amount="-2500000.00"),
                       core_detail(txn_id=cb(1001), posting_date="20240310"),
                       core_detail(txn_id=cb(1002), posting_date="20240310", currency="BTC")], "20240310")
    batch = classify(lake, "core_banking", folder)
    gate = BatchGate.load(get_source("core_banking"))

    report = gated_publish(lake, gate, batch, "anomalies")

    assert not report.blocked
    assert failed(report, "warning") == {
        ("legacy_batch.daily_volume", "CORE_TXN_20240308_000001.dat"),
        ("legacy_batch.posting_date_near_business_date", "CORE_TXN_20240309_000001.dat"),
        ("legacy_batch.quarantine_share", "CORE_TXN_20240310_000001.dat"),
        ("legacy_batch.large_amount", "CORE_TXN_20240310_000001.dat"),
    }
    assert lake.read("silver.transactions").count() == 7 * 3 + 20 + 2 + 2     # published despite the warnings
    rows = {(r["expectation"], r["source_file"]): r for r in dq_rows(lake, "anomalies") if not r["success"]}
    volume = rows[("daily_volume", "CORE_TXN_20240308_000001.dat")]
    assert volume["observed_value"] == "6.67" and "20 records on 2024-03-08 vs 3.0/day" in volume["details"]
    far = rows[("posting_date_near_business_date", "CORE_TXN_20240309_000001.dat")]
    assert (far["observed_value"], far["details"]) == ("1", "first at record 2; days away, up to 40")
    share = rows[("quarantine_share", "CORE_TXN_20240310_000001.dat")]
    assert (share["observed_value"], share["details"]) == ("0.3333", "1 of 3 records quarantined")
    large = rows[("large_amount", "CORE_TXN_20240310_000001.dat")]
    assert large["details"] == "first at record 2; largest |amount| 2,500,000.00" and large["severity"] == "warning"
    assert not any(r["publish_blocked"] for r in dq_rows(lake, "anomalies"))
    untested = [r for r in report.results if r.expectation == "daily_volume" and r.observed_value is None]
    assert {r.scope_value for r in untested} == {f"CORE_TXN_202403{d:02d}_000001.dat" for d in range(1, 6)}
    batch.release()


def test_daily_volume_reads_the_history_from_the_load_ledger(lake, tmp_path):
    from ledgerlake.lake import with_conflict_retry
    from warehouse.tables import LOAD_LEDGER

    history = [(f"h{d}", "core_banking", f"OLD_{d}.dat", None, f"sha{d}", date(2024, 2, d), "LOADED", None, None,
                100, 100, 0, 100, 100, None, None, None, None) for d in range(20, 30)]
    schema = ", ".join(f"{n} {t}" for n, t, _ in LOAD_LEDGER.columns if n != "processed_at")
    rows = lake.spark.createDataFrame(history, schema).withColumn("processed_at", F.current_timestamp())
    with_conflict_retry(lambda: rows.write.format("delta").mode("append").save(lake.path("ops.load_ledger")), "t")
    core_file(tmp_path / "in", [core_detail(txn_id=cb(i)) for i in range(3)], "20240301")
    batch = classify(lake, "core_banking", tmp_path / "in")

    report = BatchGate.load(get_source("core_banking")).audit(
        lake, classified=batch.classified, files=batch.verdicts, existing=batch.existing, run_id="history")

    volume = next(r for r in report.results if r.expectation == "daily_volume")
    assert (volume.success, volume.observed_value) == (False, "0.03")
    assert "3 records on 2024-03-01 vs 100.0/day over 10 earlier day(s)" in volume.details
    batch.release()


@pytest.mark.parametrize("source", ["core_banking", "core_banking_ebcdic", "cards"])
def test_contract_samples_meet_every_critical_expectation(lake, samples, source):
    batch = classify(lake, source, samples / source)

    report = BatchGate.load(get_source(source)).audit(
        lake, classified=batch.classified, files=batch.verdicts, existing=None, run_id=f"samples-{source}")

    accepted = [v for v in batch.verdicts.values() if v["reason"] is None]
    assert report.units["legacy_batch"] == len(accepted) > 0
    assert report.critical_failures == []
    batch.release()


def test_gate_refuses_classified_records_without_a_verdict(lake, tmp_path):
    core_file(tmp_path / "in", [core_detail()])
    batch = classify(lake, "core_banking", tmp_path / "in")
    with pytest.raises(GateInputError, match="classified lacks column.*verdict"):
        BatchGate.load(get_source("core_banking")).audit(
            lake, classified=batch.classified.drop("verdict"), files=batch.verdicts, existing=None, run_id="x")
    batch.release()


def test_a_batch_row_replacing_its_streamed_version_is_no_duplicate(lake, tmp_path):
    streamed = _serving_rows(lake.spark, [(cb(1), "000000000001", date(2024, 3, 1), Decimal("-10.00"))])
    streamed.write.format("delta").mode("append").save(lake.path("silver.transactions"))
    core_file(tmp_path / "in", [core_detail(txn_id=cb(1)), core_detail(txn_id=cb(2))], "20240301")
    batch = classify(lake, "core_banking", tmp_path / "in")

    report = BatchGate.load(get_source("core_banking")).audit(
        lake, classified=batch.classified, files=batch.verdicts, existing=batch.existing, run_id="handoff")

    assert failed(report) == set()
    # the same key held by a batch-loaded row would be a duplicate
    copy = streamed.withColumn("source_system", F.lit("cards"))
    copy.write.format("delta").mode("append").save(lake.path("silver.transactions"))
    existing = lake.read("silver.transactions")
    again = BatchGate.load(get_source("core_banking")).audit(
        lake, classified=batch.classified, files=batch.verdicts, existing=existing, run_id="handoff-2")
    assert failed(again) == {("silver_transactions.txn_id_unique", "2024-03")}
    batch.release()


def _serving_rows(spark, rows: list[tuple]):  # noqa: ANN001, ANN202
    return spark.createDataFrame(rows, "txn_id STRING, account_id STRING, posting_date DATE, amount DECIMAL(18,2)") \
        .selectExpr("txn_id", "'events' AS source_system", "account_id", "posting_date",
                    "CAST(posting_date AS TIMESTAMP) AS posted_at", "posting_date AS value_date", "'POS' AS txn_code",
                    "amount", "'EUR' AS currency", "'MOB' AS channel", "'x' AS description",
                    "CAST(NULL AS DECIMAL(18,2)) AS balance_after", "CAST(NULL AS STRING) AS reversal_of",
                    "CAST(NULL AS STRING) AS source_file", "CAST(NULL AS BIGINT) AS record_no",
                    "CAST(NULL AS BIGINT) AS record_hash", "1L AS event_sequence", "'l' AS load_id",
                    "current_timestamp() AS ingested_at", "date_format(posting_date, 'yyyy-MM') AS posting_month")


def test_serving_audit_and_the_upsert_audit_of_the_stream(lake):
    spark = lake.spark
    d = date
    rows = [("EV1", "000000000001", d(2024, 6, 3), Decimal("-5.00")),
            ("EV2", "000000000001", d(2024, 6, 4), Decimal("2000000.00")),
            ("EV3", "000000000002", d(2023, 11, 30), Decimal("-1.00")),     # before the 6-month window
            ("EV1", "000000000002", d(2024, 5, 2), Decimal("-7.00"))]       # a duplicated txn_id
    _serving_rows(spark, rows).write.format("delta").mode("append").save(lake.path("serving.transactions_recent"))

    audited = audit_serving(lake, TableGate.load("serving.transactions_recent"), run_id="serving",
                            today=d(2024, 6, 15), serving_months=6)
    assert audited is not None
    report, html = audited
    assert html is not None and html.endswith(".html")

    assert failed(report) == {("serving_transactions.txn_id_unique", "2024-05"),
                              ("serving_transactions.txn_id_unique", "2024-06")}
    assert failed(report, "warning") == {("serving_transactions.in_serving_window", "2023-11"),
                                         ("serving_transactions.large_amount", "2024-06")}
    window = next(r for r in report.results if r.expectation == "in_serving_window")
    assert window.threshold == "0 rows outside 2024-01-01 .. 2024-06-30"
    assert record_results(lake, report) == len(report.results)

    # the stream's upsert of a new version of EV2 into silver: replaces, so no duplicate; an append would be one
    existing = _serving_rows(spark, rows[:2])
    update = _serving_rows(spark, [("EV2", "000000000001", d(2024, 6, 4), Decimal("20.00"))])
    gate = TableGate.load("silver.transactions")
    upsert = gate.audit(lake, rows=update, existing=existing, run_id="stream", replaces="TRUE")
    append = gate.audit(lake, rows=update, existing=existing, run_id="stream")
    assert failed(upsert) == set() and upsert.units == {"silver_transactions": 1}
    assert failed(append) == {("silver_transactions.txn_id_unique", "2024-06")}
