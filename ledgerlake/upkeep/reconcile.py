"""Reconciliation: control totals per file and month, ledger vs silver, one row per txn_id, batch vs stream.

Reads only: every check is a transform of ``transforms.reconciliation`` over the lake's
tables, and the differences come back as rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ledgerlake.console import render_table, timed
from ledgerlake.lake import Lake
from ledgerlake.load.discovery import MonthRange
from transforms import reconciliation as R
from transforms.legacy import SOURCES

log = logging.getLogger("ledgerlake.reconcile")

SHOWN_PER_CHECK = 20
PARITY_TABLE = "ops.parity"


@dataclass
class Reconciliation:
    """What the run found."""

    scope: MonthRange
    months: list[dict] = field(default_factory=list)
    differences: list[dict] = field(default_factory=list)     # the first SHOWN_PER_CHECK of each check
    counts: dict[str, int] = field(default_factory=dict)      # check -> number of differences
    months_differing: set[str] = field(default_factory=set)
    files: int = 0
    files_not_compared: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def exit_code(self) -> int:
        return 1 if self.total else 0


def reconcile(lake: Lake, scope: MonthRange, parity_since: str | None = None) -> Reconciliation:
    """Run every check against the lake; the differences come back as rows, nothing is written."""
    result = Reconciliation(scope)
    ledger = lake.read("ops.load_ledger")
    if scope.bounded:
        fmt = lambda m: f"{m[0]:04d}-{m[1]:02d}"  # noqa: E731
        month = F.date_format("business_date", "yyyy-MM")
        if scope.start:
            ledger = ledger.where(month >= fmt(scope.start))
        if scope.end:
            ledger = ledger.where(month <= fmt(scope.end))
    ledger = ledger.persist(StorageLevel.MEMORY_AND_DISK)
    silver = lake.read("silver.transactions")
    if scope.bounded:
        silver = silver.where(F.col("posting_month").between(*_month_bounds(scope)))
    silver_totals = R.silver_totals(silver).persist(StorageLevel.MEMORY_AND_DISK)
    cached = [ledger, silver_totals]
    try:
        with timed(log, "control totals per file and month"):
            files = R.file_totals(ledger, _silver_of_files(lake, ledger, scope, silver_totals),
                                  R.quarantine_totals(quarantined_amounts(lake, ledger)))
            files = files.persist(StorageLevel.MEMORY_AND_DISK)
            cached.append(files)
            months = R.month_totals(files)
            result.months = [r.asDict() for r in months.collect()]
            result.files = sum(m["files"] for m in result.months)
            result.files_not_compared = sum(m["files_not_compared"] for m in result.months)
            differences = [R.file_differences(files), R.month_differences(months),
                           R.orphan_differences(silver_totals, lake.read("ops.load_ledger"))]
        differences.append(R.duplicate_differences(silver))
        if lake.exists(PARITY_TABLE):
            differences.append(R.parity_differences(lake.read(PARITY_TABLE), parity_since))
        else:
            result.notes.append(f"{PARITY_TABLE} does not exist yet: no batch-vs-stream parity to check")
        everything = differences[0]
        for part in differences[1:]:
            everything = everything.unionByName(part)
        with timed(log, "differences"):
            everything = everything.persist(StorageLevel.MEMORY_AND_DISK)
            cached.append(everything)
            shown = R.first_rows(everything, SHOWN_PER_CHECK).collect()
            result.months_differing = {r["month"] for r in everything.select("month").distinct().collect()}
        result.differences = [r.asDict() for r in shown]
        result.counts = {r["check"]: r["of_check"] for r in shown}
    finally:
        for df in cached:
            df.unpersist()
    if result.files_not_compared:
        result.notes.append(f"{result.files_not_compared} file(s) with accepted no-op duplicates: their amounts "
                            "are not compared (those rows belong to earlier files)")
    return result


def _month_bounds(scope: MonthRange) -> tuple[str, str]:
    fmt = lambda m, d: f"{m[0]:04d}-{m[1]:02d}" if m else d  # noqa: E731
    return fmt(scope.start, "0000-00"), fmt(scope.end, "9999-99")


def _silver_of_files(lake: Lake, ledger: DataFrame, scope: MonthRange, silver_totals: DataFrame) -> DataFrame:
    """silver totals of the scope's files: a file's rows may post outside its business month, so not month-pruned."""
    if not scope.bounded:
        return silver_totals
    names = [r["source_file"] for r in ledger.select("source_file").distinct().collect()]
    return R.silver_totals(lake.read("silver.transactions").where(F.col("source_file").isin(names)))


def quarantined_amounts(lake: Lake, ledger: DataFrame) -> DataFrame:
    """The quarantined records of the ledger's loaded files, each with its amount re-parsed by its feed's parser."""
    loaded = ledger.where(F.col("status") == "LOADED").select("sha256", "source_system", "source_file").collect()
    parts = []
    for spec in SOURCES.values():
        shas = [r["sha256"] for r in loaded
                if r["source_system"] == spec.source_system and spec.file_pattern.match(r["source_file"])]
        if not shas:
            continue
        rows = (lake.read("ops.quarantine").where(F.col("source_sha256").isin(shas))
                .select("source_sha256", "record_no", "raw_record"))
        parts.append(rows.transform(R.with_amount(spec)))
    if not parts:
        return lake.spark.createDataFrame([], "source_sha256 STRING, amount DECIMAL(18,2)")
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def render_report(result: Reconciliation) -> str:
    """Monthly control totals, then the differences (or that there are none)."""
    lines = [f"reconcile ({result.scope}): {result.files} loaded file(s) in {len(result.months)} month(s); "
             f"{result.total} difference(s)"]
    if result.months:
        lines.append("control totals per business month:")
        lines.append(render_table(
            ["month", "files", "control count", "accepted", "quarantined", "new rows", "silver rows",
             "debit (files)", "debit (lake)", "credit (files)", "credit (lake)", "status"],
            [(m["month"], m["files"], m["control_count"], m["accepted"], m["quarantined"], m["new_rows"],
              m["silver_rows"], m["control_debit"], m["lake_debit"], m["control_credit"], m["lake_credit"],
              _month_status(m, result)) for m in result.months]))
    for note in result.notes:
        lines.append(f"note: {note}")
    if result.total:
        lines.append("DIFFERENCES (expected = what the files/ledger say, actual = what the lake holds):")
        lines.append(render_table(["check", "month", "where", "expected", "actual", "detail"],
                                  [(d["check"], d["month"], d["scope"], d["expected"], d["actual"], d["detail"])
                                   for d in result.differences]))
        lines.append("by check: " + ", ".join(f"{check} {n}" for check, n in sorted(result.counts.items())))
        shown = len(result.differences)
        if shown < result.total:
            lines.append(f"({shown} of {result.total} differences shown, at most {SHOWN_PER_CHECK} per check)")
    else:
        lines.append("everything reconciles")
    return "\n".join(lines)


def _month_status(month: dict, result: Reconciliation) -> str:
    if month["month"] in result.months_differing:
        return "DIFFERS"
    return "ok" if not month["files_not_compared"] else f"ok ({month['files_not_compared']} not compared)"
