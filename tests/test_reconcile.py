"""ledgerlake reconcile: a clean lake reconciles; each kind of broken lake is reported exactly."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from ledgerlake.load.discovery import month_range
from ledgerlake.upkeep.reconcile import reconcile, render_report
from tests.helpers import backfill
from tests.legacy_files import card_line, cards_file, core_detail, core_file
from tests.test_core_banking_ebcdic import detail as ebcdic_detail
from tests.test_core_banking_ebcdic import header as ebcdic_header
from tests.test_core_banking_ebcdic import trailer as ebcdic_trailer

BIN = Path(sys.executable).parent
CB = "CB0000000000000000{:02d}".format


def write_feeds(root: Path) -> None:
    """Three feeds, quarantined records in each, one accepted no-op duplicate, two months."""
    core = root / "core"
    core_file(core, [core_detail(txn_id=CB(1), amount="-10.00"), core_detail(txn_id=CB(2), amount="25.00"),
                     core_detail(txn_id=CB(3), amount="-5.00", currency="XYZ")], "20240301")
    core_file(core, [core_detail(txn_id=CB(4), amount="7.50", posting_date="20240302", value_date="20240302"),
                     core_detail(txn_id=CB(1), amount="-10.00")], "20240302")     # CB01 again: a no-op
    core_file(core, [core_detail(txn_id=CB(5), amount="100.00", posting_date="20240401", value_date="20240401")],
              "20240401")
    cards_file(root / "cards", [card_line(ref="CD0000000000000001", amount="-20.00"),
                                card_line(ref="CD0000000000000002", amount="-3.10", account="12345")])
    ebc = root / "ebcdic"
    ebc.mkdir()
    records = [ebcdic_detail("CB000000000000000011", "-12.50"), ebcdic_detail("CB000000000000000012", "7.25",
                                                                             currency="XYZ")]
    (ebc / "CORE_TXN_20240303_000001.ebc").write_bytes(
        ebcdic_header("20240303") + b"".join(records) + ebcdic_trailer(2, "12.50", "7.25"))


@pytest.fixture(scope="module")
def loaded(spark, tmp_path_factory, new_lake):
    """A lake with the feeds above loaded (built once; tests copy it before changing anything)."""

    root = tmp_path_factory.mktemp("reconcile")
    write_feeds(root)
    lake = new_lake(root / "lake")
    for source, folder in (("core_banking", "core"), ("cards", "cards"), ("core_banking_ebcdic", "ebcdic")):
        assert backfill(lake, source, root / folder).exit_code == 0
    return root / "lake"


def copy_lake(spark, source: Path, target: Path):  # noqa: ANN201
    from ledgerlake.lake import open_lake

    shutil.copytree(source, target)
    return open_lake(spark, str(target))


def test_a_clean_lake_reconciles(spark, loaded, tmp_path):
    lake = copy_lake(spark, loaded, tmp_path / "lake")

    result = reconcile(lake, month_range(None, None))

    assert result.counts == {} and result.exit_code == 0
    months = {m["month"]: m for m in result.months}
    assert set(months) == {"2024-03", "2024-04"}
    march = months["2024-03"]
    # four files: core 01 (3 records, 1 quarantined), core 02 (2, one a no-op), cards (2, 1 quarantined), ebcdic (2, 1)
    assert (march["files"], march["control_count"], march["accepted"], march["quarantined"]) == (4, 9, 6, 3)
    assert (march["new_rows"], march["silver_rows"], march["quarantine_rows"]) == (5, 5, 3)
    assert march["files_not_compared"] == 1                      # the file with the no-op duplicate
    april = months["2024-04"]
    assert (april["control_debit"], april["lake_debit"], april["control_credit"], april["lake_credit"]) == (
        0, 0, 100, 100)
    report = render_report(result)
    assert "everything reconciles" in report and "2024-03" in report


def test_every_kind_of_difference_is_reported(spark, loaded, tmp_path):
    from pyspark.sql import functions as F

    lake = copy_lake(spark, loaded, tmp_path / "lake")
    silver = lake.delta("silver.transactions")
    silver.delete(F.col("txn_id") == CB(2))                                   # a lost row (credit 25.00)
    lake.delta("ops.load_ledger").update(F.col("source_file") == "CORE_TXN_20240401_000001.dat",
                                         {"control_debit_total": F.lit(1).cast("decimal(20,2)")})
    lake.delta("ops.quarantine").delete(F.col("source_file") == "CARDS_20240301.csv")   # a lost quarantined record
    (lake.read("silver.transactions").where(F.col("txn_id") == CB(4))
     .withColumn("source_file", F.lit("CORE_TXN_20240309_000001.dat"))
     .write.format("delta").mode("append").save(lake.path("silver.transactions")))   # a second row for CB04
    parity = lake.read("ops.parity")                      # created by the backfill, empty: no streamed rows
    assert parity.count() == 0
    spark.createDataFrame(
        [(CB(5), "amount", "99.00", "100.00", "2024-04-02 10:00:00"),
         (CB(5), "description", "OLD", "NEW", "2024-01-01 10:00:00")],
        "txn_id STRING, field STRING, streamed_value STRING, batch_value STRING, detected_at STRING",
    ).select("txn_id", "field", "streamed_value", "batch_value", F.lit(None).cast("bigint").alias("streamed_sequence"),
             F.lit("CORE_TXN_20240401_000001.dat").alias("batch_source_file"), F.lit("backfill").alias("detected_by"),
             F.lit(None).cast("string").alias("load_id"), F.to_timestamp("detected_at").alias("detected_at"),
             ).select(*parity.columns).write.format("delta").mode("append").save(lake.path("ops.parity"))

    result = reconcile(lake, month_range(None, None), parity_since="2024-02-01 00:00:00")

    rows = {(d["check"], d["scope"]): (d["expected"], d["actual"]) for d in result.differences}
    assert rows == {
        ("new rows in silver", "core_banking CORE_TXN_20240301_000001.dat"): ("2", "1"),
        ("credit total", "core_banking CORE_TXN_20240301_000001.dat"): ("25.00", "0.00"),
        ("debit total", "core_banking CORE_TXN_20240401_000001.dat"): ("1.00", "0.00"),
        ("quarantined records", "cards CARDS_20240301.csv"): ("1", "0"),
        ("debit total", "cards CARDS_20240301.csv"): ("23.10", "20.00"),
        ("month rows", "month 2024-03"): ("8", "6"),
        ("month debit total", "month 2024-04"): ("1.00", "0.00"),
        ("rows without a loaded file", "core_banking CORE_TXN_20240309_000001.dat"): ("0", "1"),
        ("one row per txn_id", f"txn_id {CB(4)}"): ("1", "2"),
        ("batch vs stream", f"txn_id {CB(5)} amount"): ("100.00", "99.00"),
    }
    assert result.exit_code == 1 and result.total == 10
    report = render_report(result)
    assert "DIFFERENCES" in report and "CORE_TXN_20240309_000001.dat" in report
    assert "2024-03 " in report and "DIFFERS" in report


def test_without_a_parity_table_the_check_is_noted(spark, loaded, tmp_path):
    lake = copy_lake(spark, loaded, tmp_path / "lake")
    shutil.rmtree(lake.path("ops.parity"))               # a lake from before the stream existed
    result = reconcile(lake, month_range("2024-04", "2024-04"))
    assert [m["month"] for m in result.months] == ["2024-04"] and result.counts == {}
    assert any("ops.parity does not exist" in note for note in result.notes)


@pytest.mark.parametrize("args,message", [
    (["--from", "2024-13"], "--from must be a month YYYY-MM"),
    (["--from", "2024-05", "--to", "2024-02"], "--from 2024-05 is after --to 2024-02"),
    (["--parity-since", "yesterday"], "--parity-since must be an ISO date or date-time"),
    ([], "no lake at"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message, ledgerlake_cli, monkeypatch):
    monkeypatch.setenv("LEDGERLAKE_WAREHOUSE", str(tmp_path / "nothing"))
    proc = ledgerlake_cli("reconcile", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ledgerlake reconcile: error:") and message in lines[0]
    assert not (tmp_path / "nothing").exists()


def test_a_lake_deleted_under_the_session_does_not_break_the_next(spark, loaded, tmp_path):
    """The session catalog still names the deleted lake's tables; opening another lake re-points them."""
    from ledgerlake.lake import open_lake

    gone = copy_lake(spark, loaded, tmp_path / "gone")
    shutil.rmtree(tmp_path / "gone")
    lake = copy_lake(spark, loaded, tmp_path / "next")
    assert lake.read("ops.parity").count() == 0
    location = spark.sql("DESCRIBE TABLE EXTENDED ops.parity").where("col_name = 'Location'").first()[1]
    assert location.rstrip("/").endswith(f"{tmp_path}/next/ops/parity") and gone.root != lake.root
    assert open_lake(spark, lake.root).read("silver.transactions").count() > 0
