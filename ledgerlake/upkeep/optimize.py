"""OPTIMIZE: lay out the months of both tiers that need it (compaction + Z-order by account); compact the state log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import functions as F

from ledgerlake.console import render_table, timed
from ledgerlake.lake import Lake, with_conflict_retry
from ledgerlake.upkeep.layout import months_to_optimize, optimize_months

log = logging.getLogger("ledgerlake.maintain")

DEFAULT_RECENT_DAYS = 2


@dataclass
class OptimizeResult:
    """Tables and months compacted."""

    lines: list[tuple[str, str, int, int]] = field(default_factory=list)   # table, scope, files removed, added

    def render(self) -> str:
        return "optimize:\n" + render_table(["table", "scope", "files removed", "files added"], self.lines)


def recently_written_months(lake: Lake, table: str, days: int) -> list[str]:
    """Posting months that received data (not compaction) in commits of the last ``days`` days."""
    versions = [r["version"] for r in lake.delta(table).history()
                .where(F.expr(f"timestamp >= current_timestamp() - INTERVAL {int(days)} DAYS"))
                .select("version").collect()]
    if not versions:
        return []
    log_dir = f"{lake.path(table)}/_delta_log"
    commits = lake.spark.read.json([f"{log_dir}/{v:020d}.json" for v in versions])
    if "add" not in commits.columns:
        return []
    months = (commits.where(F.col("add").isNotNull() & F.col("add.dataChange"))
              .select(F.col("add.partitionValues.posting_month").alias("m")).distinct().collect())
    return sorted(r["m"] for r in months if r["m"])


def optimize(lake: Lake, months: list[str] | None, days: int = DEFAULT_RECENT_DAYS) -> OptimizeResult:
    """Lay out the months of both tiers that need it (compaction + Z-order by account); compact the state log.

    Candidates are silver's months given (or written in the last ``days`` days) and every
    month of the serving tier; of those, only months where a lookup would read more than two
    files or small files piled up are rewritten (``ledgerlake.upkeep.layout.months_to_optimize``),
    so running this often costs little.
    """
    result = OptimizeResult()
    silver_months = months if months is not None else recently_written_months(lake, "silver.transactions", days)
    if not silver_months:
        log.info("optimize: no silver month written in the last %d day(s)", days)
        result.lines.append(("silver.transactions", f"no month written in {days} day(s)", 0, 0))
    for table, candidates in (("silver.transactions", silver_months), ("serving.transactions_recent", None)):
        if candidates == [] or not lake.exists(table):
            continue
        todo = months_to_optimize(lake, table, candidates)
        if todo:
            laid = optimize_months(lake, table, todo)
            result.lines.append((table, ", ".join(todo), laid.files_removed, laid.files_added))
        else:
            scope = ", ".join(candidates) if candidates else "all months"
            result.lines.append((table, f"{scope}: already laid out", 0, 0))
    result.lines.append(("ops.stream_state", "compaction", *_compact(lake, "ops.stream_state")))
    return result


def _compact(lake: Lake, table: str) -> tuple[int, int]:
    """One compaction OPTIMIZE (a single commit, or none when there is nothing to do); returns (removed, added)."""
    with timed(log, f"compact {table}"):
        metrics = with_conflict_retry(lambda: lake.delta(table).optimize().executeCompaction(),
                                      f"compact {table}").select("metrics.*").first()
    removed, added = int(metrics["numFilesRemoved"]), int(metrics["numFilesAdded"])
    log.info("compact %s: %d file(s) rewritten into %d", table, removed, added)
    return removed, added
