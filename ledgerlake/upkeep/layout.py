"""Data layout for account lookups: compaction and Z-order by account within month partitions.

``silver.transactions`` and ``serving.transactions_recent`` are partitioned by
``posting_month``; Delta's liquid clustering cannot be combined with partitioning,
so each month is rewritten with ``OPTIMIZE ... ZORDER BY (account_id)``: the
month's files (the backfill's batches, the stream's many small commits) become a
few files, each holding a contiguous range of accounts, whose min/max statistics
let a statement skip every other file of the month.

OPTIMIZE commits with ``dataChange = false`` and only conflicts with writers that
removed a file it rewrote, so it runs while the stream keeps appending; such a
conflict is retried.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledgerlake.lake import Lake, with_conflict_retry

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

CLUSTER_COLUMN = "account_id"
PARTITION_COLUMN = "posting_month"
LAYOUT_TABLES = ("silver.transactions", "serving.transactions_recent")
# Target size of a rewritten file. Smaller than Delta's 1 GiB default: a statement reads one
# file per month, so the file is the unit of work of a lookup; 128 MiB keeps the log small
# (a month of a large bank is tens of files) while a lookup decodes at most one file per month.
DEFAULT_TARGET_FILE_MB = 128
MONTHS_PER_COMMIT = 12          # months rewritten per OPTIMIZE commit (one Spark job each)
MAX_SMALL_FILES = 4             # more small files than this in a month (the stream's commits): compact it
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_MAX_FILE_SIZE_CONF = "spark.databricks.delta.optimize.maxFileSize"


class LayoutError(ValueError):
    """A layout request names something that is not a month or not a clustered table."""


@dataclass(frozen=True)
class LayoutResult:
    """What one optimize_months call changed."""

    table: str
    months: list[str]
    files_removed: int = 0
    files_added: int = 0

    def __str__(self) -> str:
        span = f"{self.months[0]}..{self.months[-1]}" if self.months else "no months"
        return (f"{self.table} {span} ({len(self.months)} month(s)): "
                f"{self.files_removed} file(s) rewritten into {self.files_added}")


@dataclass(frozen=True)
class MonthFiles:
    """Data files of one month of a table, from the Delta log."""

    month: str
    files: int
    bytes: int
    overlap: int            # most files whose account_id min/max range holds one account: files a lookup reads
    small_files: int        # files under a quarter of the target size

    def needs_layout(self) -> bool:
        """True when a lookup would read more than two files, or small commits piled up."""
        # Z-order's range boundaries are noisy, so one account can sit in two adjacent files.
        return self.files > 1 and (self.overlap > 2 or self.small_files > MAX_SMALL_FILES)


def _overlap(ranges: list[tuple[str, str]]) -> int:
    """Largest number of closed [min, max] ranges that share a point."""
    events = sorted([(lo, 0) for lo, _ in ranges] + [(hi, 1) for _, hi in ranges])
    depth = best = 0
    for _, is_end in events:
        depth += -1 if is_end else 1
        best = max(best, depth)
    return best


def _check_months(months: Iterable[str]) -> list[str]:
    checked = sorted({str(m) for m in months})
    bad = [m for m in checked if not _MONTH.fullmatch(m)]
    if bad:
        raise LayoutError(f"months must be YYYY-MM, got {bad[:5]}")
    return checked


def _check_table(table: str) -> str:
    if table not in LAYOUT_TABLES:
        raise LayoutError(f"{table} is not clustered by account; choose from {', '.join(LAYOUT_TABLES)}")
    return table


@contextmanager
def _target_file_size(spark: SparkSession, target_bytes: int) -> Iterator[None]:
    """OPTIMIZE reads its output file size from the session; set it for one call only."""
    previous = spark.conf.get(_MAX_FILE_SIZE_CONF, None)
    spark.conf.set(_MAX_FILE_SIZE_CONF, str(target_bytes))
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(_MAX_FILE_SIZE_CONF)
        else:
            spark.conf.set(_MAX_FILE_SIZE_CONF, previous)


def optimize_months(lake: Lake, table: str, months: Iterable[str],
                    target_file_bytes: int = DEFAULT_TARGET_FILE_MB << 20) -> LayoutResult:
    """Compact the given months of a transactions table and Z-order them by account_id.

    One OPTIMIZE commit per group of months; every month's files are rewritten into
    about ``size / target_file_bytes`` files, each a contiguous range of accounts.
    Months without files are skipped by Delta. Safe to run while the stream writes.
    """
    table = _check_table(table)
    wanted = _check_months(months)
    removed = added = 0
    for start in range(0, len(wanted), MONTHS_PER_COMMIT):
        group = wanted[start:start + MONTHS_PER_COMMIT]
        # The months are validated YYYY-MM strings, so the predicate text is safe.
        predicate = f"{PARTITION_COLUMN} IN ({', '.join(repr(m) for m in group)})"

        def run(predicate: str = predicate) -> DataFrame:
            with _target_file_size(lake.spark, target_file_bytes):
                return lake.delta(table).optimize().where(predicate).executeZOrderBy(CLUSTER_COLUMN)

        metrics = with_conflict_retry(run, f"optimize {table} {group[0]}..{group[-1]}").first()["metrics"]
        removed += metrics["numFilesRemoved"]
        added += metrics["numFilesAdded"]
        log.info("layout %s %s..%s: %d file(s) rewritten into %d", table, group[0], group[-1],
                 metrics["numFilesRemoved"], metrics["numFilesAdded"])
    return LayoutResult(table, wanted, removed, added)


def table_files(lake: Lake, table: str) -> DataFrame:
    """The table's current data files (path, partitionValues, size, stats), read from the Delta log only."""
    from pyspark.sql import DataFrame

    return DataFrame(lake.snapshot(table).allFiles().toDF(), lake.spark)


def month_files(lake: Lake, table: str, target_file_bytes: int = DEFAULT_TARGET_FILE_MB << 20,
                ) -> dict[str, MonthFiles]:
    """Files, bytes, account-range overlap and small files per month of a transactions table (Delta log only)."""
    from pyspark.sql import functions as F

    files = (table_files(lake, _check_table(table))
             .select(F.col("partitionValues")[PARTITION_COLUMN].alias("month"), "size",
                     F.get_json_object("stats", f"$.minValues.{CLUSTER_COLUMN}").alias("lo"),
                     F.get_json_object("stats", f"$.maxValues.{CLUSTER_COLUMN}").alias("hi"))
             .collect())
    by_month: dict[str, list] = defaultdict(list)
    for f in files:
        by_month[f["month"]].append(f)
    result = {}
    for month, rows in by_month.items():
        # a file without statistics may hold any account
        ranges = [(r["lo"] or "", r["hi"] or "\uffff") for r in rows]
        result[month] = MonthFiles(month, len(rows), sum(r["size"] for r in rows), _overlap(ranges),
                                   sum(1 for r in rows if r["size"] < target_file_bytes // 4))
    return result


def months_to_optimize(lake: Lake, table: str, months: Iterable[str] | None = None,
                       target_file_bytes: int = DEFAULT_TARGET_FILE_MB << 20) -> list[str]:
    """Months where a lookup reads more than two files or small commits piled up (new data since the layout).

    A month the layout already clustered, or that the backfill wrote as one sorted
    file, is not rewritten again, so maintenance can call this on every run.
    """
    per_month = month_files(lake, table, target_file_bytes)
    if months is not None:
        wanted = set(_check_months(months))
        per_month = {m: f for m, f in per_month.items() if m in wanted}
    return sorted(m for m, f in per_month.items() if f.needs_layout())


def maintain_layout(lake: Lake, months: Iterable[str] | None = None,
                    target_file_bytes: int = DEFAULT_TARGET_FILE_MB << 20) -> list[LayoutResult]:
    """Compact and Z-order every month of both tiers that needs it (all months, or only those given)."""
    chosen = None if months is None else _check_months(months)
    results = []
    for table in LAYOUT_TABLES:
        if not lake.exists(table):
            continue
        todo = months_to_optimize(lake, table, chosen, target_file_bytes)
        if todo:
            results.append(optimize_months(lake, table, todo, target_file_bytes))
        else:
            log.info("layout %s: nothing to do", table)
    return results
