"""Maintenance job: serving-tier roll-off, OPTIMIZE/Z-ORDER and VACUUM.

    ledgerlake maintain --roll-off
    ledgerlake maintain --optimize [--months 2026-10,2026-11 | --days 2]
    ledgerlake maintain --vacuum [--retain-hours 168]
    spark-submit jobs/maintain.py --roll-off --optimize --vacuum

Actions run in that order when several are given. Each is idempotent: a second run
finds nothing to roll off, re-clusters the same months, deletes no further files.

* --roll-off moves the serving window forward: rows whose posting month is older than
  the window leave serving.transactions_recent in one Delta commit, and only after a
  check that every one of them is in silver.transactions with identical values
  (count and sum per month, and value by value). A failed check changes nothing
  and exits 1.
* --optimize compacts and Z-orders by account_id the silver months given with --months,
  or those written in the last --days days, and the whole serving tier; it compacts
  the stream's state log too.
* --vacuum removes files no table version within --retain-hours still references
  (default 168 h, the minimum: readers and time travel need them).

After --roll-off or --optimize the serving tier is audited with the serving_transactions
data-quality suite (one pass over the tier, whose files were just rewritten anyway): the
results go to ops.dq_results and the HTML report under <lake>/reports/dq/. The rows are
already visible, so nothing is blocked; a failed critical expectation exits 1 with the
expectation and the observed value (--no-audit skips the audit).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # run as a script by spark-submit: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledgerlake.config import ConfigError, add_common_arguments, config_from_args
from ledgerlake.console import configure_logging, fail, render_table, timed

if TYPE_CHECKING:
    from datetime import date

    from expectations.gate import GateReport, TableGate
    from ledgerlake.lake import Lake
    from ledgerlake.serving import ServingWindow

log = logging.getLogger("ledgerlake.maintain")

DEFAULT_RETAIN_HOURS = 168
DEFAULT_RECENT_DAYS = 2
MIN_RETAIN_HOURS = 168


class MaintainInputError(ValueError):
    """Bad flags; nothing was touched."""


class RollOffCheckError(RuntimeError):
    """Rows about to leave the serving tier are not all in silver with identical values."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerlake maintain",
        description="Lake maintenance: serving-tier roll-off (parity-checked), OPTIMIZE/Z-ORDER by account, VACUUM.",
        epilog="example: ledgerlake maintain --roll-off --optimize --days 1 --vacuum",
    )
    parser.add_argument("--roll-off", action="store_true",
                        help="remove serving rows older than the serving window, after checking silver holds them")
    parser.add_argument("--optimize", action="store_true",
                        help="compact and Z-order (account_id) recent silver months and the serving tier")
    parser.add_argument("--months", metavar="YYYY-MM[,YYYY-MM...]",
                        help="silver months to optimize (default: those written in the last --days days)")
    parser.add_argument("--days", type=int, default=DEFAULT_RECENT_DAYS, metavar="N",
                        help=f"with --optimize and no --months: months written in the last N days "
                             f"(default {DEFAULT_RECENT_DAYS})")
    parser.add_argument("--vacuum", action="store_true", help="delete files no longer referenced by any table")
    parser.add_argument("--retain-hours", type=int, default=DEFAULT_RETAIN_HOURS, metavar="H",
                        help=f"with --vacuum: keep files needed by versions of the last H hours "
                             f"(default and minimum {DEFAULT_RETAIN_HOURS})")
    parser.add_argument("--no-audit", action="store_true",
                        help="skip the data-quality audit of the serving tier after --roll-off/--optimize")
    parser.add_argument("--expectations", metavar="DIR",
                        help="data-quality suites folder (env LEDGERLAKE_EXPECTATIONS; default: expectations/suites)")
    add_common_arguments(parser)
    return parser


def parse_months(text: str | None) -> list[str] | None:
    """--months as a sorted list of YYYY-MM, or None when not given."""
    if text is None:
        return None
    from ledgerlake.load.discovery import InputError, parse_month

    months = []
    for part in text.split(","):
        try:
            year, month = parse_month(part.strip(), "--months") or (0, 0)
        except InputError as exc:
            raise MaintainInputError(str(exc)) from None
        months.append(f"{year:04d}-{month:02d}")
    return sorted(set(months))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0 done, 1 roll-off check or serving audit failed, 2 bad input."""
    from expectations.gate import TableGate
    from expectations.suite import SuiteError

    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        configure_logging(config.log_level)
        if not (args.roll_off or args.optimize or args.vacuum):
            raise MaintainInputError("choose at least one action: --roll-off, --optimize, --vacuum")
        audit = (args.roll_off or args.optimize) and not args.no_audit
        # The suite is checked before anything is touched.
        gate = TableGate.load("serving.transactions_recent", args.expectations) if audit else None
        months = parse_months(args.months)
        if args.days < 1:
            raise MaintainInputError("--days must be at least 1")
        if args.retain_hours < MIN_RETAIN_HOURS:
            raise MaintainInputError(
                f"--retain-hours {args.retain_hours} is below {MIN_RETAIN_HOURS}: running streams, "
                "SQL clients and time travel may still read those files")
    except (ConfigError, MaintainInputError, SuiteError) as exc:
        return fail("maintain", str(exc))

    from jobs.stream import stream_spark_conf
    from ledgerlake.lake import open_lake
    from ledgerlake.serving import serving_window
    from ledgerlake.session import build_session

    config = dataclasses.replace(config, spark_conf={**stream_spark_conf(), **config.spark_conf})
    spark = build_session(config, "ledgerlake-maintain")
    lake = open_lake(spark, config.warehouse)
    if args.roll_off:
        try:
            result = roll_off(lake, serving_window(config))
        except RollOffCheckError as exc:
            return fail("maintain", f"roll-off refused, nothing changed: {exc}", code=1)
        print(result.render())
    if args.optimize:
        print(optimize(lake, months, args.days).render())
    if args.vacuum:
        print(vacuum(lake, args.retain_hours).render())
    if gate is not None:
        report = audit_serving_tier(lake, gate, config.current_date(), config.serving_months)
        if report is not None and report.blocked:
            return fail("maintain", f"serving tier audit: {report.message()}", code=1)
    return 0


def audit_serving_tier(lake: Lake, gate: TableGate, today: date, serving_months: int) -> GateReport | None:
    """The serving suite over the whole tier: results to ops.dq_results, the HTML report; None when empty."""
    import uuid

    from expectations.gate import record_results
    from expectations.report import write_report
    from warehouse.tables import SERVING_TRANSACTIONS

    run_id = f"maintain-{uuid.uuid4().hex[:12]}"
    with timed(log, "data-quality audit of the serving tier"):
        report = gate.audit(lake, existing=lake.read(SERVING_TRANSACTIONS.name), run_id=run_id, today=today,
                            serving_months=serving_months)
    if not report.results:
        print("data quality: serving tier empty, nothing audited")
        return None
    record_results(lake, report)
    path = write_report(lake, run_id, [report])
    print(f"data quality: serving tier {len(report.results)} result(s), {len(report.critical_failures)} critical "
          f"failure(s), {len(report.failed_warnings)} warning(s) failed; report: {path}")
    for r in report.failed_warnings[:5]:
        print(f"  warning: {r.describe()}")
    return report


@dataclass
class MonthCheck:
    """Serving rows of one month about to roll off, against silver."""

    month: str
    serving_rows: int
    serving_sum: Decimal
    identical_rows: int
    identical_sum: Decimal

    @property
    def ok(self) -> bool:
        return self.serving_rows == self.identical_rows and self.serving_sum == self.identical_sum


@dataclass
class RollOffResult:
    """What the roll-off checked and removed."""

    window: str
    months: list[MonthCheck] = field(default_factory=list)
    removed_rows: int = 0

    def render(self) -> str:
        if not self.months:
            return f"roll-off: nothing older than the serving window {self.window}"
        table = render_table(["month", "rows", "sum", "in silver, identical"],
                             [(m.month, m.serving_rows, m.serving_sum, m.identical_rows) for m in self.months])
        return (f"roll-off: {self.removed_rows:,} row(s) of {len(self.months)} month(s) left the serving tier "
                f"(window {self.window}), each checked against silver\n{table}")


def roll_off(lake: Lake, window: ServingWindow) -> RollOffResult:
    """Remove serving rows older than the window in one commit, after the parity check against silver."""
    from pyspark.sql import functions as F

    from transforms.parity import PARITY_FIELDS

    serving_table = lake.delta("serving.transactions_recent")
    version = serving_table.history(1).first()["version"]
    old = (lake.spark.read.format("delta").option("versionAsOf", version)
           .load(lake.path("serving.transactions_recent"))
           .where(F.col("posting_month") < window.first_month))
    result = RollOffResult(str(window))
    with timed(log, "roll-off check against silver"):
        months = sorted(r[0] for r in old.select("posting_month").distinct().collect())
        if not months:
            log.info("roll-off: serving holds nothing older than %s", window.first_month)
            return result
        silver = lake.read("silver.transactions").where(F.col("posting_month").isin(months))
        same = F.lit(True)
        for name in ["txn_id", "source_system", *PARITY_FIELDS]:
            same = same & F.col(f"s.{name}").eqNullSafe(F.col(f"b.{name}"))
        checked = (old.alias("s").join(silver.alias("b"), F.col("s.txn_id") == F.col("b.txn_id"), "left")
                   .groupBy(F.col("s.posting_month").alias("month"))
                   .agg(F.count(F.lit(1)).alias("serving_rows"),
                        F.coalesce(F.sum("s.amount"), F.lit(0)).alias("serving_sum"),
                        F.count_if(same).alias("identical_rows"),
                        F.coalesce(F.sum(F.when(same, F.col("b.amount"))), F.lit(0)).alias("identical_sum"))
                   .orderBy("month").collect())
    result.months = [MonthCheck(r["month"], r["serving_rows"], r["serving_sum"], r["identical_rows"],
                                r["identical_sum"]) for r in checked]
    bad = [m for m in result.months if not m.ok]
    if bad:
        raise RollOffCheckError("; ".join(
            f"{m.month}: serving has {m.serving_rows} row(s) summing {m.serving_sum}, "
            f"silver has {m.identical_rows} of them identical summing {m.identical_sum}" for m in bad))

    from ledgerlake.lake import with_conflict_retry

    # A partition-only predicate: Delta removes whole files in one commit, without rewriting any.
    with timed(log, f"roll-off delete of {len(months)} month(s)"):
        with_conflict_retry(lambda: serving_table.delete(F.col("posting_month") < window.first_month),
                            "roll-off serving.transactions_recent")
    result.removed_rows = sum(m.serving_rows for m in result.months)
    log.info("roll-off: removed %d row(s) of months %s from the serving tier", result.removed_rows, ", ".join(months))
    return result


@dataclass
class OptimizeResult:
    """Tables and months compacted."""

    lines: list[tuple[str, str, int, int]] = field(default_factory=list)   # table, scope, files removed, added

    def render(self) -> str:
        return "optimize:\n" + render_table(["table", "scope", "files removed", "files added"], self.lines)


def recently_written_months(lake: Lake, table: str, days: int) -> list[str]:
    """Posting months that received data (not compaction) in commits of the last ``days`` days."""
    from pyspark.sql import functions as F

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
    from ledgerlake.upkeep.layout import months_to_optimize, optimize_months

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
    from ledgerlake.lake import with_conflict_retry

    with timed(log, f"compact {table}"):
        metrics = with_conflict_retry(lambda: lake.delta(table).optimize().executeCompaction(),
                                      f"compact {table}").select("metrics.*").first()
    removed, added = int(metrics["numFilesRemoved"]), int(metrics["numFilesAdded"])
    log.info("compact %s: %d file(s) rewritten into %d", table, removed, added)
    return removed, added


@dataclass
class VacuumResult:
    """Files deleted per table."""

    retain_hours: int
    lines: list[tuple[str, int]] = field(default_factory=list)

    def render(self) -> str:
        return (f"vacuum (retention {self.retain_hours} h):\n"
                + render_table(["table", "files deleted"], self.lines))


def vacuum(lake: Lake, retain_hours: int = DEFAULT_RETAIN_HOURS) -> VacuumResult:
    """VACUUM every table of the lake with the given retention."""
    from warehouse.tables import ALL_TABLES

    result = VacuumResult(retain_hours)
    for name in ALL_TABLES:
        if not lake.exists(name):
            continue
        with timed(log, f"vacuum {name}"):
            before = _data_files(lake, name)
            lake.delta(name).vacuum(float(retain_hours))
            deleted = len(before - _data_files(lake, name))
        log.info("vacuum %s: %d file(s) deleted", name, deleted)
        result.lines.append((name, deleted))
    return result


def _data_files(lake: Lake, name: str) -> set[str]:
    """Data files under a table's directory (the Delta log excluded), via Hadoop's file system."""
    spark = lake.spark
    jvm = spark.sparkContext._jvm  # noqa: SLF001 - Hadoop's FileSystem API, for local and object stores alike
    root = jvm.org.apache.hadoop.fs.Path(lake.path(name))
    fs = root.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # noqa: SLF001
    found: set[str] = set()
    files = fs.listFiles(root, True)
    while files.hasNext():
        path = files.next().getPath().toString()
        if "/_delta_log/" not in path:
            found.add(path)
    return found


if __name__ == "__main__":
    sys.exit(main())
