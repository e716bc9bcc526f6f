"""Layout: Z-order by account within months makes a statement read fewer files; compaction of small commits."""

from __future__ import annotations

import random
from datetime import date

import pytest

from ledgerlake.query.reader import COLUMNS, SERVING, SILVER, StatementReader
from ledgerlake.upkeep.layout import (
    LayoutError,
    maintain_layout,
    month_files,
    months_to_optimize,
    optimize_months,
)
from tests.lake_rows import txn, write_rows
from tests.scan_metrics import scan_metrics

ACCOUNTS = [f"{n:012d}" for n in range(100, 160)]
MONTHS = ["2024-01", "2024-02"]


def _batch(seed: int, n: int = 240) -> list[tuple]:
    """Transactions of every account in random order, spread over two months (like a daily load)."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        day = date(2024, 1, 1).toordinal() + rnd.randrange(60)
        posted = date.fromordinal(day).isoformat() + f" {rnd.randrange(24):02d}:{rnd.randrange(60):02d}:00"
        rows.append(txn(f"T{seed}-{i:04d}", rnd.choice(ACCOUNTS), posted, f"-{rnd.randrange(1, 999)}.{i % 100:02d}",
                        description="x" * rnd.randrange(40)))
    return rows


def _statement(lake, account: str):  # noqa: ANN001, ANN202
    """The statement's query as Spark (the JDBC path) runs it, and the files the statement reader would open."""
    df = lake.read(SILVER).where(f"account_id = '{account}' AND posting_month BETWEEN '2024-01' AND '2024-02'") \
        .select(*COLUMNS)
    rows = sorted(tuple(r) for r in df.collect())                   # the action that fills the scan metrics
    candidates = StatementReader(lake.root).open().snapshots()[SILVER].candidates(account, "2024-01", "2024-02")
    return rows, scan_metrics(df), len(candidates)


def test_zorder_by_account_reduces_files_a_statement_reads(lake):
    for seed in range(4):                                     # four loads, each spanning every account
        write_rows(lake, SILVER, _batch(seed))
    before_layout = month_files(lake, SILVER)
    files_before = sum(before_layout[m].files for m in MONTHS)
    assert files_before >= 8
    assert months_to_optimize(lake, SILVER) == MONTHS
    assert [before_layout[m].overlap for m in MONTHS] == [before_layout[m].files for m in MONTHS]

    rows_before, read_before, opened_before = _statement(lake, ACCOUNTS[7])
    assert read_before.files == files_before == opened_before  # unclustered: every file may hold the account

    target = max(f.bytes for f in before_layout.values()) // 4   # small files, so a month spans several
    result = optimize_months(lake, SILVER, MONTHS, target_file_bytes=target)
    assert result.months == MONTHS and result.files_removed == files_before

    after_layout = month_files(lake, SILVER)
    files_after = sum(after_layout[m].files for m in MONTHS)
    assert files_after > len(MONTHS)                         # each month is several account ranges ...
    assert all(after_layout[m].overlap <= 2 for m in MONTHS)
    rows_after, read_after, opened_after = _statement(lake, ACCOUNTS[7])
    assert rows_after == rows_before                         # ... the same rows ...
    assert read_after.files < files_after                    # ... and the statement skips most of them
    assert read_after.files <= 2 * len(MONTHS)
    assert opened_after == read_after.files                # the statement reader skips the same files
    assert read_after.bytes < read_before.bytes
    assert months_to_optimize(lake, SILVER, target_file_bytes=target) == []

    last = lake.delta(SILVER).history(1).first()
    assert last["operation"] == "OPTIMIZE" and "account_id" in last["operationParameters"]["zOrderBy"]


def test_maintenance_compacts_the_streams_small_commits_and_leaves_clean_months(lake):
    for i in range(6):                                        # six micro-batches into the current month
        write_rows(lake, SERVING, [txn(f"E{i}-{j}", ACCOUNTS[(i * 7 + j) % 60], f"2024-03-0{1 + i} 10:{j:02d}:00",
                                       "-1.00") for j in range(5)])
    write_rows(lake, SILVER, [txn("OLD-1", ACCOUNTS[0], "2023-11-05 10:00:00", "-1.00")])   # one file: fine
    ids_before = sorted(r["txn_id"] for r in lake.read(SERVING).collect())
    assert month_files(lake, SERVING)["2024-03"].files >= 6

    results = maintain_layout(lake)

    assert [(r.table, r.months) for r in results] == [(SERVING, ["2024-03"])]
    assert month_files(lake, SERVING)["2024-03"].files == 1
    assert month_files(lake, SILVER)["2023-11"].files == 1
    assert sorted(r["txn_id"] for r in lake.read(SERVING).collect()) == ids_before
    assert maintain_layout(lake) == []                       # nothing left to do: no rewrite


def test_layout_rejects_what_is_not_a_month_or_a_clustered_table(lake):
    with pytest.raises(LayoutError, match="months must be YYYY-MM"):
        optimize_months(lake, SILVER, ["2024-1"])
    with pytest.raises(LayoutError, match="months must be YYYY-MM"):
        optimize_months(lake, SILVER, ["2024-01') OR (1=1"])
    with pytest.raises(LayoutError, match="not clustered by account"):
        optimize_months(lake, "ops.quarantine", ["2024-01"])


def test_backfill_clusters_a_month_again_once_daily_loads_pile_up(spark, tmp_path, new_lake):
    """Each daily load adds a file to its month; when lookups would read more than two, the backfill re-clusters."""
    from tests.helpers import backfill
    from tests.legacy_files import core_detail, core_file

    lake = new_lake(tmp_path / "lake")
    layouts = []
    for day in (1, 2, 3):
        folder = tmp_path / f"day{day}"
        posting = f"202403{day:02d}"
        core_file(folder, [core_detail(txn_id=f"CB{day:02d}{i:016d}", account=f"{100 + (i * 7) % 40:012d}",
                                       posting_date=posting, value_date=posting, amount=f"-{i + 1}.00")
                           for i in range(40)], posting)
        result = backfill(lake, "core_banking", folder)
        assert result.exit_code == 0 and [f.months for f in result.files] == [{"2024-03"}]
        layouts.append([(r.table, r.months) for r in result.layout])
        files = month_files(lake, SILVER)["2024-03"]
        assert not files.needs_layout()                     # after every run a lookup reads at most two files
    assert layouts[:2] == [[], []]                          # one or two sorted files: nothing to do
    assert layouts[2] == [(SILVER, ["2024-03"])]            # the third overlapping file triggers the layout
    assert month_files(lake, SILVER)["2024-03"].files == 1
    assert lake.read(SILVER).count() == 120


def test_a_large_publish_is_written_in_its_final_layout(spark, tmp_path, new_lake, monkeypatch):
    """A batch of at least LAID_OUT_ROWS rows leaves each month in files of consecutive accounts, at most
    ROWS_PER_FILE rows each: the layout step after it finds nothing to rewrite."""
    from ledgerlake.load import sinks
    from tests.helpers import backfill
    from tests.legacy_files import core_detail, core_file

    monkeypatch.setattr(sinks, "LAID_OUT_ROWS", 50)      # this batch of 120 rows counts as large
    monkeypatch.setattr(sinks, "ROWS_PER_FILE", 25)
    lake = new_lake(tmp_path / "lake")
    folder = tmp_path / "in"
    for day, posting in enumerate(("20240305", "20240410", "20240320")):   # files out of month order
        core_file(folder, [core_detail(txn_id=f"CB{day:02d}{i:016d}", account=f"{100 + (i * 7) % 40:012d}",
                                       posting_date=posting, value_date=posting, amount=f"-{i + 1}.00")
                           for i in range(40)], posting)
    result = backfill(lake, "core_banking", folder)
    assert result.exit_code == 0 and lake.read(SILVER).count() == 120
    assert result.layout == []                              # nothing rewritten after the publish
    files = month_files(lake, SILVER)
    assert sorted(files) == ["2024-03", "2024-04"]
    # files of consecutive accounts: a lookup reads one (two when an account spans a file boundary)
    assert max(f.overlap for f in files.values()) <= 2 and not any(f.needs_layout() for f in files.values())
    assert files["2024-03"].files == 80 // 25 + 1 and files["2024-04"].files == 40 // 25 + 1
