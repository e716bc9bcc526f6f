"""Backfill job: load a legacy feed's batch files into silver.transactions, validated and reconciled.

    ledgerlake backfill --source core_banking --input PATH [--from YYYY-MM] [--to YYYY-MM]
    spark-submit jobs/backfill.py --source core_banking --input PATH ...

Files are fingerprinted (SHA-256) and skipped when the load ledger already has them,
so a rerun changes nothing. Untrustworthy files are rejected whole and recorded;
failing records are quarantined with their reason; accepted records are published
to silver in one Delta commit per batch of files.

Write-audit-publish: each batch is audited by the data-quality suites (expectations/suites)
after it is classified and before anything of it is written. A failed critical expectation
blocks the batch: no quarantine, silver, serving or ledger row of it is written (a rerun
after the fix loads its files), its results are recorded in ops.dq_results with
publish_blocked, later batches are not attempted and the job exits 1.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # run as a script by spark-submit: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledgerlake.config import ConfigError, LakeConfig, add_common_arguments, config_from_args, parse_iso_date
from ledgerlake.console import Progress, configure_logging, fail, render_table, timed
from ledgerlake.load.discovery import BatchFile, Discovery, InputError, MonthRange, discover, month_range
from transforms.legacy import SOURCES, UnknownSourceError, get_source
from transforms.legacy.spec import SourceSpec

if TYPE_CHECKING:
    from expectations.gate import BatchGate, GateReport

log = logging.getLogger("ledgerlake.backfill")

DEFAULT_BATCH_MB = 512
MAX_LISTED_SUSPECTS = 20_000   # up to this many duplicate suspects are filtered by value, not joined


@dataclass
class FileResult:
    """What happened to one file."""

    name: str
    sha256: str
    business_date: date | None
    status: str                      # LOADED, REJECTED, SKIPPED; BLOCKED (by the gate), NOT_ATTEMPTED (after a block)
    reason: str | None = None
    reason_detail: str | None = None
    records_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    inserted: int = 0
    control_debit: Decimal | None = None
    control_credit: Decimal | None = None
    note: str = ""
    quarantine_reasons: Counter = field(default_factory=Counter)
    months: set[str] = field(default_factory=set)     # posting months of its published rows


@dataclass
class BackfillResult:
    """Outcome of a backfill run, for the summary and the exit status."""

    source: str
    months: MonthRange
    files: list[FileResult] = field(default_factory=list)
    quarantine_reasons: Counter = field(default_factory=Counter)
    out_of_range: int = 0
    undated_skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    layout: list = field(default_factory=list)          # ledgerlake.upkeep.layout.LayoutResult per tier laid out
    dq_reports: list[GateReport] = field(default_factory=list)   # the gate's report of every audited batch
    dq_report_path: str | None = None                   # the run's HTML data-quality report
    blocked: GateReport | None = None                   # the batch the gate blocked (the run stopped there)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def rejected(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "REJECTED" or f.reason]

    @property
    def exit_code(self) -> int:
        return 1 if self.rejected or self.blocked else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerlake backfill",
        description="Load a legacy feed's batch files into silver.transactions "
                    "(validated, quarantined, reconciled; reruns are no-ops).",
    )
    parser.add_argument("--source", required=True, metavar="SOURCE",
                        help=f"batch feed: {', '.join(sorted(SOURCES))}")
    parser.add_argument("--input", required=True, metavar="PATH", help="directory (searched recursively) or file")
    parser.add_argument("--from", dest="month_from", metavar="YYYY-MM", help="first business month to load")
    parser.add_argument("--to", dest="month_to", metavar="YYYY-MM", help="last business month to load")
    parser.add_argument("--date", dest="business_date", metavar="YYYY-MM-DD",
                        help="load only the files of this business date (the daily batch); not with --from/--to")
    parser.add_argument("--batch-mb", type=int, default=DEFAULT_BATCH_MB, metavar="MB",
                        help=f"input size per Delta commit (default {DEFAULT_BATCH_MB})")
    parser.add_argument("--expectations", metavar="DIR",
                        help="data-quality suites folder (env LEDGERLAKE_EXPECTATIONS; default: expectations/suites)")
    add_common_arguments(parser)
    parser.epilog = ("exit status: 0 loaded, 1 a file was rejected or the data-quality gate blocked a batch "
                     "(nothing of that batch was written), 2 bad input")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 a file rejected or a batch blocked, 2 bad input)."""
    from expectations.gate import BatchGate
    from expectations.suite import SuiteError

    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        configure_logging(config.log_level)
        spec = get_source(args.source)
        # The suites are checked before any data is read: a broken suite file stops the job here.
        gate = BatchGate.load(spec, args.expectations)
        months = month_range(args.month_from, args.month_to)
        day = parse_iso_date(args.business_date, "--date") if args.business_date else None
        if day is not None:
            if months.bounded:
                raise InputError("--date cannot be combined with --from/--to")
            months = MonthRange((day.year, day.month), (day.year, day.month))
        if args.batch_mb < 1:
            raise InputError("--batch-mb must be at least 1")
        found = discover(spec, args.input, months, day=day)
    except (ConfigError, InputError, UnknownSourceError, SuiteError) as exc:
        return fail("backfill", str(exc))

    from ledgerlake.lake import open_lake
    from ledgerlake.session import build_session

    spark = build_session(config, f"ledgerlake-backfill-{spec.name}")
    lake = open_lake(spark, config.warehouse)
    result = run_backfill(lake, spec, found, months, batch_bytes=args.batch_mb << 20, config=config, gate=gate)
    print(render_summary(result))
    if result.blocked is not None:
        return fail("backfill", result.blocked.message(), code=1)
    return result.exit_code


def run_backfill(lake, spec: SourceSpec, found: Discovery, months: MonthRange,  # noqa: ANN001
                 batch_bytes: int = DEFAULT_BATCH_MB << 20, config: LakeConfig | None = None,
                 gate: BatchGate | None = None) -> BackfillResult:
    """Load the discovered files, batch by batch, and return what happened to each.

    ``gate``: the data-quality gate loaded at job start (default: the shipped suites).
    The run stops at the first batch it blocks; the HTML report is written in any case.
    """
    from expectations.gate import BatchGate, GateFailure
    from ledgerlake.load.sinks import known_files

    gate = gate or BatchGate.load(spec)
    result = BackfillResult(spec.name, months, out_of_range=found.out_of_range,
                            undated_skipped=found.undated_skipped)
    for name, earlier in found.same_content:
        result.files.append(FileResult(name, "", None, "SKIPPED", note=f"same content as {earlier}"))
    known = known_files(lake, spec.source_system, [f.sha256 for f in found.files])
    pending: list[BatchFile] = []
    for f in found.files:
        previous = known.get(f.sha256)
        if previous is None:
            pending.append(f)
        elif previous["status"] == "REJECTED":
            result.files.append(FileResult(f.name, f.sha256, f.business_date, "SKIPPED",
                                           reason=previous["reason"], reason_detail=previous["reason_detail"],
                                           note="rejected earlier; fix and re-send the file"))
        else:
            result.files.append(FileResult(f.name, f.sha256, f.business_date, "SKIPPED",
                                           note="loaded earlier"))

    progress = Progress(len(pending), f"backfill {spec.name}")
    load_id = uuid.uuid4().hex
    batches = chunk(pending, batch_bytes)
    for i, batch in enumerate(batches):
        try:
            outcome = load_batch(lake, spec, batch, load_id, config, gate=gate, reports=result.dq_reports)
        except GateFailure as exc:
            log.error("%s", exc)
            result.blocked = exc.report
            note = f"publish blocked by the data-quality gate (batch {exc.report.batch_id}); not recorded as loaded"
            result.files.extend(FileResult(f.name, f.sha256, f.business_date, "BLOCKED", note=note) for f in batch)
            later = [f for rest in batches[i + 1:] for f in rest]
            if later:
                log.error("%d file(s) of later batches not attempted after the block", len(later))
            result.files.extend(FileResult(f.name, f.sha256, f.business_date, "NOT_ATTEMPTED",
                                           note="not attempted: an earlier batch was blocked") for f in later)
            break
        result.files.extend(outcome)
        for f in outcome:
            if f.status == "REJECTED":
                log.warning("rejected %s: %s (%s)", f.name, f.reason, f.reason_detail)
        progress.advance(len(batch), sum(f.records_in for f in outcome))
    for f in result.files:
        result.quarantine_reasons.update(f.quarantine_reasons)
    if result.dq_reports:
        from expectations.report import write_report

        with timed(log, "data-quality report"):
            result.dq_report_path = write_report(lake, load_id, result.dq_reports)
    written = sorted(set().union(*(f.months for f in result.files)))
    if written:
        from ledgerlake.upkeep.layout import maintain_layout

        # Months that received rows in earlier runs now hold several files: cluster them again.
        with timed(log, f"layout of {len(written)} month(s) written"):
            result.layout = maintain_layout(lake, written)
    result.seconds = progress.elapsed
    return result


def chunk(files: list[BatchFile], batch_bytes: int) -> list[list[BatchFile]]:
    """Consecutive groups of files (load order kept) of at most batch_bytes each (at least one file)."""
    batches: list[list[BatchFile]] = []
    current: list[BatchFile] = []
    size = 0
    for f in files:
        if current and size + f.size > batch_bytes:
            batches.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size
    if current:
        batches.append(current)
    return batches


def batch_fingerprint(files: list[BatchFile]) -> str:
    """Stable id of a batch: the same files give the same Delta transaction id on a rerun."""
    return hashlib.sha256("".join(f.sha256 for f in files).encode()).hexdigest()[:32]


def cached_columns(spec: SourceSpec, columns: list[str]) -> list[str]:
    """Columns of the parsed batch that later steps read: lineage, verdict inputs, statistics' inputs,
    and the parsed fields the data-quality gate's record-rule expectations read."""
    from expectations.gate import gate_columns

    stats_text = " ".join(spec.file_stats.values())
    keep = {"file_sha", "record_no", "raw", "is_detail", "reason", "record_hash", *spec.mapping}
    keep |= {c for c in columns if re.search(rf"\b{re.escape(c)}\b", stats_text)}
    keep |= set(gate_columns(spec, columns))
    return [c for c in columns if c in keep]


def read_batch(spark, spec: SourceSpec, files: list[BatchFile]):  # noqa: ANN001, ANN201
    """The batch's file metadata and its records: split, parsed, mapped, checked against the record rules."""
    from pyspark.sql import functions as F

    from transforms.validation import to_canonical, with_record_reason

    meta = spark.createDataFrame(
        [(f.sha256, f.name, f.path, f.business_date, i, f.size) for i, f in enumerate(files)],
        "file_sha STRING, source_file STRING, source_path STRING, business_date DATE, "
        "file_order INT, file_size BIGINT",
    )
    content = (spark.read.format("binaryFile").load([f.path for f in files])
               .select(F.sha2("content", 256).alias("file_sha"), "content"))
    parsed = (content.transform(spec.split).transform(spec.parse)
              .withColumn("is_detail", F.coalesce(F.expr(spec.is_detail), F.lit(False)))
              .transform(to_canonical(spec))
              .transform(with_record_reason(spec.record_rules))
              .withColumn("record_hash", F.expr(spec.identity)))
    return meta, parsed


def load_batch(lake, spec: SourceSpec, files: list[BatchFile], load_id: str,  # noqa: ANN001
               config: LakeConfig | None = None, gate: BatchGate | None = None,
               reports: list[GateReport] | None = None) -> list[FileResult]:
    """Validate, audit and publish one batch of files; returns one result per file.

    The files are read, split, parsed, mapped and checked against the record rules in one
    pass whose result is cached (in memory, spilling to disk); every later step reads that
    cache: the file gates, the duplicate suspects, the data-quality audit (whose one
    aggregation pass also gives the counts per file), the quarantine and silver.

    The audit runs before the first write of the batch; its results go to ops.dq_results
    (and to ``reports``). A failed critical expectation raises GateFailure with nothing of
    the batch written: no quarantine, parity, silver, serving or ledger row.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from expectations.gate import BatchGate, GateFailure, record_results
    from ledgerlake.load.handoff import hand_over, record_parity, streamed_versions, sync_serving
    from ledgerlake.load.sinks import record_files, write_quarantine, write_silver
    from ledgerlake.serving import serving_window
    from transforms.validation import (
        NEW,
        QUARANTINED,
        duplicate_suspects,
        file_statistics,
        with_duplicate_verdict,
        with_file_verdict,
    )

    gate = gate or BatchGate.load(spec)
    spark = lake.spark
    meta, parsed = read_batch(spark, spec, files)
    # Cache only what later steps read: the statistics' inputs, lineage and the canonical columns.
    parsed = parsed.select(*cached_columns(spec, parsed.columns)).persist(StorageLevel.MEMORY_AND_DISK)
    cached: list = [parsed]
    try:
        with timed(log, f"parse and gate {len(files)} file(s)"):
            verdicts = {
                row["file_sha"]: row
                for row in meta.join(parsed.transform(file_statistics(spec)), "file_sha", "left")
                .transform(with_file_verdict(spec.file_checks, spec.control_totals))
                .collect()
            }
        # Spark lists zero-byte files but yields no row for them; any other missing file changed on disk.
        changed = [r["source_file"] for r in verdicts.values() if r["n_rows"] is None and r["file_size"] > 0]
        if changed:
            raise InputError(f"file(s) changed while loading, nothing of this batch was written: {changed}")
        accepted = [sha for sha, row in verdicts.items() if row["reason"] is None]
        counts: dict[str, dict] = {}
        if accepted:
            existing = silver = None
            version = lake.version("silver.transactions")
            if version > 0:
                # Pinned to the current version: a recomputation after our own commit sees the same rows.
                silver = (lake.spark.read.format("delta").option("versionAsOf", version)
                          .load(lake.path("silver.transactions")))
                existing = (silver
                            .where(F.col("source_system") == spec.source_system)
                            .where(F.col("record_hash").isNotNull())
                            .select("txn_id", F.col("record_hash").alias("existing_hash")))
            details = (
                parsed.where(F.col("is_detail") & F.col("file_sha").isin(accepted))
                .join(F.broadcast(meta.select("file_sha", "source_file", "file_order")), "file_sha")
            )
            with timed(log, "find duplicate suspects"):
                suspects = details.transform(duplicate_suspects(existing)).persist(StorageLevel.MEMORY_AND_DISK)
                cached.append(suspects)
                n_suspects = suspects.count()
            few = n_suspects <= MAX_LISTED_SUSPECTS
            suspect_ids = [r["txn_id"] for r in suspects.collect()] if few else suspects
            classified = details.transform(with_duplicate_verdict(existing, suspect_ids))
            if not few:   # the joined verdict is computed once, not once per write
                classified = classified.persist(StorageLevel.MEMORY_AND_DISK)
                cached.append(classified)
            # Write-audit-publish: the suites judge what is about to become visible (the batch's
            # records, silver's touched months with the NEW rows) before anything is written.
            with timed(log, "data-quality gate (audit before publish)"):
                report = gate.audit(lake, classified=classified, files=verdicts, existing=silver,
                                    run_id=load_id, batch_id=batch_fingerprint(files))
            if reports is not None:
                reports.append(report)
            with timed(log, "write ops.dq_results"):
                record_results(lake, report)
            if report.blocked:
                raise GateFailure(report)
            # The audit's pass counted the records per file, verdict, reason and posting month.
            by_verdict: Counter = Counter()
            reasons: dict[str, Counter] = {sha: Counter() for sha in accepted}
            months: dict[str, set[str]] = {sha: set() for sha in accepted}
            for r in report.verdict_counts:
                by_verdict[(r["file_sha"], r["verdict"])] += r["count"]
                if r["verdict"] == QUARANTINED:
                    reasons[r["file_sha"]][r["reason"]] += r["count"]
                elif r["month"]:
                    months[r["file_sha"]].add(r["month"])
            if any(by_verdict[(sha, QUARANTINED)] for sha in accepted):
                with timed(log, "quarantine failing records"):
                    write_quarantine(lake, classified.where(F.col("verdict") == QUARANTINED),
                                     spec.source_system, load_id)
            new_rows = classified.where(F.col("verdict") == NEW)
            app_id = f"backfill-{spec.name}-{batch_fingerprint(files)}"
            replaced = streamed_versions(lake, version, new_rows) if version > 0 else None
            if replaced is not None:
                cached.append(replaced)
                replaced_ids = [r["txn_id"] for r in replaced.select("txn_id").collect()]
                with timed(log, f"handoff: {len(replaced_ids):,} streamed version(s) replaced, parity"):
                    record_parity(lake, replaced, new_rows, load_id)
            with timed(log, f"publish silver.transactions ({n_suspects:,} duplicate suspects)"):
                write_silver(lake, new_rows, load_id, app_id=app_id, replace_streamed=replaced is not None)
            with timed(log, "serving tier and stream handoff"):
                sync_serving(lake, serving_window(config or LakeConfig()), sorted(set().union(*months.values())),
                             [f.name for f in files], replaced_ids if replaced is not None else [], app_id)
                hand_over(lake, classified.where(F.col("verdict") != QUARANTINED))
            for f in files:
                if f.sha256 in accepted:
                    records_in = int(verdicts[f.sha256]["n_details"] or 0)
                    q = by_verdict[(f.sha256, QUARANTINED)]
                    counts[f.sha256] = {"records_in": records_in, "accepted": records_in - q, "quarantined": q,
                                        "inserted": by_verdict[(f.sha256, NEW)], "reasons": reasons[f.sha256],
                                        "months": months[f.sha256]}
    finally:
        for df in cached:
            df.unpersist()

    results = []
    for f in files:
        row = verdicts[f.sha256]
        if row["reason"] is not None:
            results.append(FileResult(f.name, f.sha256, f.business_date, "REJECTED", row["reason"],
                                      row["reason_detail"], records_in=int(row["n_details"] or 0)))
            continue
        c = counts[f.sha256]
        results.append(FileResult(
            f.name, f.sha256, f.business_date, "LOADED", records_in=c["records_in"], accepted=c["accepted"],
            quarantined=c["quarantined"], inserted=c["inserted"],
            control_debit=row["control_debit_total"], control_credit=row["control_credit_total"],
            quarantine_reasons=c["reasons"], months=c["months"],
        ))
    with timed(log, "write ops.load_ledger"):
        record_files(lake, spec.source_system, files, results, verdicts, load_id)
    return results


def render_summary(result: BackfillResult) -> str:
    """The end-of-run report: files, records, control totals, rejections."""
    loaded = [f for f in result.files if f.status == "LOADED"]
    records_in = sum(f.records_in for f in loaded)
    accepted = sum(f.accepted for f in loaded)
    quarantined = sum(f.quarantined for f in loaded)
    inserted = sum(f.inserted for f in loaded)
    debit = sum((f.control_debit or Decimal(0) for f in loaded), Decimal(0))
    credit = sum((f.control_credit or Decimal(0) for f in loaded), Decimal(0))
    rate = records_in / result.seconds if result.seconds else 0.0
    stopped = "".join(f", {n} {label}" for label, n in (("blocked", result.count("BLOCKED")),
                                                        ("not attempted", result.count("NOT_ATTEMPTED"))) if n)
    lines = [
        f"backfill {result.source} ({result.months}): "
        f"{len(loaded)} loaded, {result.count('REJECTED')} rejected, {result.count('SKIPPED')} skipped{stopped} "
        f"in {result.seconds:,.1f}s",
        f"  records: {records_in:,} in, {accepted:,} accepted ({inserted:,} new rows), "
        f"{quarantined:,} quarantined  [{rate:,.0f} rec/s]",
        f"  control totals of loaded files: debit {debit:,.2f}  credit {credit:,.2f}  net {credit - debit:,.2f}",
    ]
    if result.out_of_range:
        lines.append(f"  {result.out_of_range} file(s) outside the month range were left alone")
    if result.undated_skipped:
        lines.append(f"  {len(result.undated_skipped)} file(s) without a business date were left alone "
                     f"(run without --from/--to to record them): {', '.join(result.undated_skipped[:5])}")
    for laid in result.layout:
        lines.append(f"  layout: {laid.table} {len(laid.months)} month(s) clustered by account, "
                     f"{laid.files_removed} file(s) rewritten into {laid.files_added}")
    if result.quarantine_reasons:
        lines.append("  quarantined by reason: " + ", ".join(
            f"{reason} {n}" for reason, n in sorted(result.quarantine_reasons.items())))
    lines.extend(render_dq(result))
    if result.rejected:
        lines.append("  rejected files:")
        lines.append(render_table(
            ["file", "reason", "detail", "note"],
            [(f.name, f.reason, f.reason_detail, f.note) for f in result.rejected],
        ))
    return "\n".join(lines)


def render_dq(result: BackfillResult) -> list[str]:
    """The summary's data-quality lines: failures per severity, the report's path, the blocked batch."""
    reports = result.dq_reports
    if not reports:
        return ["  data quality: nothing audited (no new files)"]
    critical = sum(len(r.critical_failures) for r in reports)
    warnings = sum(len(r.failed_warnings) for r in reports)
    checked = sum(len(r.results) for r in reports)
    seconds = sum(r.seconds for r in reports)
    lines = [f"  data quality: {len(reports)} batch(es) audited in {seconds:,.1f}s, {checked:,} result(s) in "
             f"ops.dq_results: {critical} critical failure(s), {warnings} warning(s) failed"]
    failed = [r for report in reports for r in report.failed_warnings]
    for r in failed[:5]:
        lines.append(f"    warning: {r.describe()}")
    if len(failed) > 5:
        lines.append(f"    ... and {len(failed) - 5} more warning(s) (see the report)")
    if result.blocked is not None:
        lines.append(f"  PUBLISH BLOCKED: {result.blocked.message()}")
        lines.append("  nothing of that batch was written and its files are not in the load ledger: "
                     "rerun after the fix to load them")
    if result.dq_report_path:
        lines.append(f"  data-quality report: {result.dq_report_path}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
