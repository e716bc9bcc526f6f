"""Maintenance: the parity-checked roll-off of the serving tier, OPTIMIZE/Z-ORDER, VACUUM."""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ledgerlake.serving import window_for
from tests.event_files import apply, posted, rows, snapshot, txn

BIN = Path(sys.executable).parent
SEPTEMBER = window_for(date(2026, 9, 15), 6)     # 2026-04 .. 2026-09
NOVEMBER = window_for(date(2026, 11, 26), 6)     # 2026-06 .. 2026-11
EVENTS = {"m-00000.jsonl": [posted(1, posted_at="2026-04-10T10:00:00Z", amount="-4.00"),
                            posted(2, posted_at="2026-05-10T10:00:00Z", amount="5.50"),
                            posted(3, posted_at="2026-05-31T23:00:00Z", amount="6.00"),
                            posted(4, posted_at="2026-06-01T00:00:00Z", amount="7.00"),
                            posted(5, posted_at="2026-08-10T10:00:00Z", amount="8.00")]}


@pytest.fixture
def streamed(lake):
    """Rows streamed while September was the current month: April to August are all in the serving tier."""
    apply(lake, 0, EVENTS, window=SEPTEMBER)
    assert set(rows(lake, "serving.transactions_recent")) == {txn(n) for n in range(1, 6)}
    return lake


def test_roll_off_moves_the_window_in_one_commit(streamed):
    from ledgerlake.upkeep.rolloff import roll_off

    lake = streamed
    before = lake.delta("serving.transactions_recent").history(1).first()["version"]
    silver_before = snapshot(lake)["silver.transactions"]

    result = roll_off(lake, NOVEMBER)

    assert set(rows(lake, "serving.transactions_recent")) == {txn(4), txn(5)}
    assert snapshot(lake)["silver.transactions"] == silver_before           # silver keeps everything
    history = lake.delta("serving.transactions_recent").history(2).collect()
    assert history[0]["version"] == before + 1 and history[0]["operation"] == "DELETE"
    assert [(m.month, m.serving_rows, m.serving_sum, m.identical_rows) for m in result.months] == [
        ("2026-04", 1, Decimal("-4.00"), 1), ("2026-05", 2, Decimal("11.50"), 2)]
    assert result.removed_rows == 3

    again = roll_off(lake, NOVEMBER)                                        # idempotent
    assert again.months == [] and lake.delta("serving.transactions_recent").history(1).first()["version"] == before + 1


@pytest.mark.parametrize("tamper,month", [
    ("UPDATE delta.`{silver}` SET amount = amount + 0.01 WHERE txn_id = '{t1}'", "2026-04"),   # a value differs
    ("DELETE FROM delta.`{silver}` WHERE txn_id = '{t2}'", "2026-05"),                          # missing in silver
    ("UPDATE delta.`{silver}` SET description = 'changed' WHERE txn_id = '{t3}'", "2026-05"),  # same sums, other value
])
def test_roll_off_refuses_and_changes_nothing_when_silver_differs(streamed, tamper, month):
    from ledgerlake.upkeep.rolloff import RollOffCheckError, roll_off

    lake = streamed
    lake.spark.sql(tamper.format(silver=lake.path("silver.transactions"), t1=txn(1), t2=txn(2), t3=txn(3)))
    before = snapshot(lake)
    version = lake.delta("serving.transactions_recent").history(1).first()["version"]
    with pytest.raises(RollOffCheckError, match=month):
        roll_off(lake, NOVEMBER)
    assert snapshot(lake) == before
    assert lake.delta("serving.transactions_recent").history(1).first()["version"] == version


def test_optimize_compacts_and_clusters_without_changing_data(lake):
    from ledgerlake.upkeep.optimize import optimize, recently_written_months

    for i in range(3):                                          # the stream's small commits: a file each
        apply(lake, i, {f"o-{i:05d}.jsonl": [posted(10 * i + k, account_no=f"{k:012d}") for k in range(1, 4)]})
    silver_files = list((Path(lake.path("silver.transactions")) / "posting_month=2026-10").glob("*.parquet"))
    assert len(silver_files) == 3
    before = snapshot(lake)
    assert recently_written_months(lake, "silver.transactions", 1) == ["2026-10"]

    result = optimize(lake, None, days=1)

    assert snapshot(lake) == before
    assert ("silver.transactions", "2026-10", 3, 1) in result.lines
    assert ("serving.transactions_recent", "2026-10", 3, 1) in result.lines
    latest = lake.delta("silver.transactions").history(1).first()
    assert latest["operation"] == "OPTIMIZE" and "account_id" in latest["operationParameters"]["zOrderBy"]
    assert lake.read("silver.transactions").select("_metadata.file_path").distinct().count() == 1
    # compaction is no data change: the months it rewrote are not "recently written" again
    assert recently_written_months(lake, "silver.transactions", 1) == ["2026-10"]
    again = optimize(lake, ["2026-09", "2026-10"]).lines                  # laid out already: nothing rewritten
    assert again[:2] == [("silver.transactions", "2026-09, 2026-10: already laid out", 0, 0),
                         ("serving.transactions_recent", "all months: already laid out", 0, 0)]


def test_vacuum_removes_old_unreferenced_files_only(lake):
    from ledgerlake.upkeep.vacuum import vacuum

    apply(lake, 0, {"v-00000.jsonl": [posted(1)]})
    month = Path(lake.path("silver.transactions")) / "posting_month=2026-10"
    old_orphan, new_orphan = month / "part-orphan-old.snappy.parquet", month / "part-orphan-new.snappy.parquet"
    for f in (old_orphan, new_orphan):
        f.write_bytes(b"left behind by a killed writer")
    eight_days_ago = time.time() - 8 * 24 * 3600
    os.utime(old_orphan, (eight_days_ago, eight_days_ago))
    before = snapshot(lake)

    result = vacuum(lake, 168)

    assert not old_orphan.exists() and new_orphan.exists()
    assert ("silver.transactions", 1) in result.lines
    assert snapshot(lake) == before
    assert vacuum(lake, 168).lines == [(name, 0) for name, _ in result.lines]      # nothing more to delete


@pytest.mark.parametrize("args,message", [
    ([], "choose at least one action: --roll-off, --optimize, --vacuum"),
    (["--vacuum", "--retain-hours", "24"], "--retain-hours 24 is below 168"),
    (["--optimize", "--months", "2026-13"], "--months must be a month YYYY-MM"),
    (["--optimize", "--days", "0"], "--days must be at least 1"),
])
def test_bad_flags_are_a_one_line_error(tmp_path, args, message, ledgerlake_cli):
    proc = ledgerlake_cli("maintain", *args, "--warehouse", str(tmp_path / "lake"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "lake").exists()


@pytest.mark.slow
def test_cli_roll_off_exit_status(streamed, tmp_path, ledgerlake_cli):
    lake = streamed
    args = ["maintain", "--roll-off", "--warehouse", lake.root, "--today", "2026-11-26",
            "--conf", "spark.sql.shuffle.partitions=2"]
    lake.spark.sql(f"UPDATE delta.`{lake.path('silver.transactions')}` SET amount = 0 WHERE txn_id = '{txn(2)}'")
    refused = ledgerlake_cli(*args)
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert "roll-off refused, nothing changed: 2026-05: serving has 2 row(s)" in refused.stderr
    lake.spark.sql(f"UPDATE delta.`{lake.path('silver.transactions')}` SET amount = 5.50 WHERE txn_id = '{txn(2)}'")
    done = ledgerlake_cli(*args, "--optimize", "--vacuum")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 row(s) of 2 month(s) left the serving tier (window 2026-06..2026-11)" in done.stdout
    assert "optimize:" in done.stdout and "vacuum (retention 168 h)" in done.stdout
    assert "data quality: serving tier" in done.stdout and "0 critical failure(s)" in done.stdout
    audited = lake.read("ops.dq_results").where("suite = 'serving_transactions'").collect()
    assert audited and all(r["success"] or r["severity"] == "warning" for r in audited)
    assert set(rows(lake, "serving.transactions_recent")) == {txn(4), txn(5)}
