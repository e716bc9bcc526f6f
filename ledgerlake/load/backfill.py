"""The backfill: a legacy feed's batch files into silver.transactions, validated, audited and reconciled.

Files are fingerprinted (SHA-256) and skipped when the load ledger already has them, so a
rerun changes nothing. Each batch of files (up to ``batch_bytes``, by default what Spark's
memory holds) is read once and cached;
every later step reads that cache:

1. ``judge_files``: the file statistics and the feed's ordered file checks (control totals
   included): a failing file is rejected whole;
2. ``classify_records``: the record rules' verdicts and the duplicate rules (within a file,
   across the batch's files, against silver);
3. the data-quality audit (write-audit-publish): a failed critical expectation blocks the
   batch with nothing of it written (``GateFailure``);
4. ``publish``: quarantine, the handoff of streamed versions, silver in one commit, the
   serving tier; then one ledger row per file.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ledgerlake.config import LakeConfig
from ledgerlake.console import Progress, render_table, timed
from ledgerlake.lake import Lake, Pin
from ledgerlake.load import handoff, sinks
from ledgerlake.load.discovery import BatchFile, Discovery, InputError, MonthRange
from ledgerlake.serving import serving_window
from transforms import validation
from transforms.legacy.spec import SourceSpec
from transforms.publish import to_quarantine_rows, to_silver_rows
from transforms.validation import NEW, NOOP, QUARANTINED
from warehouse.tables import LOAD_LEDGER, SILVER_TRANSACTIONS

if TYPE_CHECKING:
    from expectations.gate import BatchGate, GateReport

log = logging.getLogger("ledgerlake.backfill")

# A batch is cached once, parsed (about 0.7 bytes of cache per byte of fixed-width input, measured),
# and every step reads that cache while Spark also needs memory to shuffle, sort and write it:
# a batch's input may take this share of the memory Spark has for caching and execution.
CACHE_SHARE = 0.4
MIN_BATCH_MB, MAX_BATCH_MB = 64, 4096
MAX_BROADCAST_KEYS = 200_000   # a batch of up to this many records sends its txn_ids to silver's scan
MAX_LISTED_SUSPECTS = 20_000   # up to this many duplicate suspects are filtered by value, not joined
MAX_DECISIONS = 5               # times a batch is judged again when other publishes of its source commit first


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


def memory_batch_bytes(spark: SparkSession) -> int:
    """The input size of a batch that the Spark application's memory holds: ``CACHE_SHARE`` of the
    unified (storage and execution) memory of its executors, between 64 MB and 4 GB.

    Executors report it when they register; in local mode the driver is the executor. On a cluster
    whose executors have not registered yet the driver's alone counts: smaller batches, never too big.
    """
    context = spark.sparkContext._jsc.sc()  # noqa: SLF001 - executors' memory is not in PySpark's API
    infos = list(context.statusTracker().getExecutorInfos())
    driver = context.env().blockManager().blockManagerId()
    executors = [i for i in infos if (i.host(), i.port()) != (driver.host(), driver.port())]
    memory = sum(int(i.totalOnHeapStorageMemory()) for i in (executors or infos))
    return max(MIN_BATCH_MB << 20, min(MAX_BATCH_MB << 20, int(memory * CACHE_SHARE)))


def run_backfill(lake: Lake, spec: SourceSpec, found: Discovery, months: MonthRange,
                 batch_bytes: int | None = None, config: LakeConfig | None = None,
                 gate: BatchGate | None = None) -> BackfillResult:
    """Load the discovered files, batch by batch, and return what happened to each.

    ``batch_bytes``: the input size of a batch (default: what memory holds, ``memory_batch_bytes``).
    ``gate``: the data-quality gate loaded at job start (default: the shipped suites).
    The run stops at the first batch it blocks; the HTML report is written in any case.
    """
    from expectations.gate import BatchGate, GateFailure

    gate = gate or BatchGate.load(spec)
    if batch_bytes is None:
        batch_bytes = memory_batch_bytes(lake.spark)
        log.info("batches of up to %d MB of input (%.0f%% of the memory Spark caches and computes in)",
                 batch_bytes >> 20, CACHE_SHARE * 100)
    result = BackfillResult(spec.name, months, out_of_range=found.out_of_range,
                            undated_skipped=found.undated_skipped)
    for name, earlier in found.same_content:
        result.files.append(FileResult(name, "", None, "SKIPPED", note=f"same content as {earlier}"))
    with timed(log, "files known to the load ledger"):
        pending = _skip_known(lake, spec, found.files, result)

    progress = Progress(len(pending), f"backfill {spec.name}")
    load_id = uuid.uuid4().hex
    batches = chunk(pending, batch_bytes)
    for i, batch in enumerate(batches):
        try:
            outcome = load_batch(lake, spec, batch, load_id, config, gate=gate, reports=result.dq_reports)
        except GateFailure as exc:
            _stop_at_block(result, exc.report, batch, [f for rest in batches[i + 1:] for f in rest])
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


def known_files(lake: Lake, source_system: str, shas: list[str]) -> dict[str, dict[str, Any]]:
    """Ledger rows (LOADED or REJECTED) of the feed's files with the given fingerprints, by SHA-256.

    The ledger holds one row per file ever processed (thousands, not millions), so the
    feed's rows are fetched whole and matched here rather than through a huge IN list.
    """
    if not shas or not lake.written(LOAD_LEDGER.name):   # a new lake's ledger is empty: nothing to read
        return {}
    wanted = set(shas)
    rows = (lake.read(LOAD_LEDGER.name)
            .where((F.col("source_system") == source_system) & F.col("status").isin("LOADED", "REJECTED"))
            .select("sha256", "status", "reason", "reason_detail", "source_file").collect())
    return {r["sha256"]: r.asDict() for r in rows if r["sha256"] in wanted}


def _skip_known(lake: Lake, spec: SourceSpec, files: list[BatchFile], result: BackfillResult) -> list[BatchFile]:
    """The files the ledger does not know yet; the others are recorded as SKIPPED in ``result``."""
    known = known_files(lake, spec.source_system, [f.sha256 for f in files])
    pending: list[BatchFile] = []
    for f in files:
        previous = known.get(f.sha256)
        if previous is None:
            pending.append(f)
        elif previous["status"] == "REJECTED":
            result.files.append(FileResult(f.name, f.sha256, f.business_date, "SKIPPED",
                                           reason=previous["reason"], reason_detail=previous["reason_detail"],
                                           note="rejected earlier; fix and re-send the file"))
        else:
            result.files.append(FileResult(f.name, f.sha256, f.business_date, "SKIPPED", note="loaded earlier"))
    return pending


def _stop_at_block(result: BackfillResult, report: GateReport, batch: list[BatchFile],
                   later: list[BatchFile]) -> None:
    """Record a batch the gate blocked, and the later batches not attempted."""
    log.error("%s", report.message())
    result.blocked = report
    note = f"publish blocked by the data-quality gate (batch {report.batch_id}); not recorded as loaded"
    result.files.extend(FileResult(f.name, f.sha256, f.business_date, "BLOCKED", note=note) for f in batch)
    if later:
        log.error("%d file(s) of later batches not attempted after the block", len(later))
    result.files.extend(FileResult(f.name, f.sha256, f.business_date, "NOT_ATTEMPTED",
                                   note="not attempted: an earlier batch was blocked") for f in later)


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


def read_batch(spark: SparkSession, spec: SourceSpec, files: list[BatchFile]) -> tuple[DataFrame, DataFrame]:
    """The batch's file metadata and its records: split, parsed, mapped, checked against the record rules."""
    meta = spark.createDataFrame(
        [(f.sha256, f.name, f.path, f.business_date, i, f.size) for i, f in enumerate(files)],
        "file_sha STRING, source_file STRING, source_path STRING, business_date DATE, "
        "file_order INT, file_size BIGINT",
    )
    content = (spark.read.format("binaryFile").load([f.path for f in files])
               .select(F.sha2("content", 256).alias("file_sha"), "content"))
    parsed = (content.transform(spec.split).transform(spec.parse)
              .withColumn("is_detail", F.coalesce(F.expr(spec.is_detail), F.lit(False)))
              .transform(validation.to_canonical(spec))
              .transform(validation.with_record_reason(spec.record_rules))
              .withColumn("record_hash", F.expr(spec.identity)))
    return meta, parsed


@dataclass
class Classified:
    """A batch's detail records of accepted files with their verdicts, and what they were judged against."""

    rows: DataFrame                 # details with verdict (NEW, NOOP, QUARANTINED) and reason
    silver: DataFrame | None        # silver at ``pin.version`` (None for an empty silver)
    pin: Pin                        # silver's version and the source's publish sequence the verdicts rest on
    suspects: int                   # duplicate suspects found

    @property
    def version(self) -> int:
        return self.pin.version


@dataclass
class Tally:
    """Records per file of a batch, by verdict, reason and posting month (from the audit's pass)."""

    by_verdict: Counter
    reasons: dict[str, Counter]
    months: dict[str, set[str]]
    recovered: Counter = field(default_factory=Counter)   # NOOP rows an unrecorded earlier load inserted

    @classmethod
    def of(cls, report: GateReport, accepted: list[str]) -> Tally:
        tally = cls(Counter(), {sha: Counter() for sha in accepted}, {sha: set() for sha in accepted})
        for r in report.verdict_counts:
            tally.by_verdict[(r["file_sha"], r["verdict"])] += r["count"]
            if r["verdict"] == QUARANTINED:
                tally.reasons[r["file_sha"]][r["reason"]] += r["count"]
            elif r["month"]:
                tally.months[r["file_sha"]].add(r["month"])
        return tally

    @property
    def all_months(self) -> list[str]:
        return sorted(set().union(*self.months.values()))


def load_batch(lake: Lake, spec: SourceSpec, files: list[BatchFile], load_id: str,
               config: LakeConfig | None = None, gate: BatchGate | None = None,
               reports: list[GateReport] | None = None) -> list[FileResult]:
    """Validate, audit and publish one batch of files; returns one result per file.

    The files are read, split, parsed, mapped and checked against the record rules in one
    pass whose result is cached (in memory, spilling to disk); every later step reads that
    cache. The audit runs before the first write of the batch; its results go to
    ops.dq_results (and to ``reports``). A failed critical expectation raises GateFailure
    with nothing of the batch written: no quarantine, parity, silver, serving or ledger row.
    """
    from expectations.gate import BatchGate

    gate = gate or BatchGate.load(spec)
    meta, parsed = read_batch(lake.spark, spec, files)
    # Cache only what later steps read: the statistics' inputs, lineage and the canonical columns.
    parsed = parsed.select(*cached_columns(spec, parsed.columns)).persist(StorageLevel.MEMORY_AND_DISK)
    tally: Tally | None = None
    try:
        verdicts = judge_files(spec, meta, parsed, len(files))
        accepted = [sha for sha, row in verdicts.items() if row["reason"] is None]
        if accepted:
            tally = judge_and_publish(lake, spec, files, meta, parsed, verdicts, accepted, load_id,
                                      config or LakeConfig(), gate, reports if reports is not None else [])
    finally:
        parsed.unpersist()
    results = file_results(files, verdicts, tally)
    with timed(log, "write ops.load_ledger"):
        sinks.record_files(lake, ledger_rows(spec.source_system, files, results, verdicts, load_id))
    return results


class StaleDecision(RuntimeError):
    """Other publishes of the source kept committing while a batch was judged (transient: run again)."""


def judge_and_publish(lake: Lake, spec: SourceSpec, files: list[BatchFile], meta: DataFrame, parsed: DataFrame,
                      verdicts: dict[str, Any], accepted: list[str], load_id: str, config: LakeConfig,
                      gate: BatchGate, reports: list[GateReport]) -> Tally:
    """Judge the accepted files' records against silver, audit and publish them; the batch's tally.

    Any number of loads may run at once. The verdicts rest on a snapshot of silver; when another
    publish of the same source system committed after it (a manual re-load beside the daily run,
    the ASCII and EBCDIC extracts of one system, an identical re-send under another name), the
    publish does not commit and the batch is judged again on the newer silver, so nothing is
    inserted twice and the verdicts and counts are those of what was really committed.
    """
    from expectations.gate import GateFailure, record_results

    for attempt in range(1, MAX_DECISIONS + 1):
        cached: list[DataFrame] = []
        try:
            batch = classify_records(lake, spec, meta, parsed, accepted, cached,
                                     records=sum(int(verdicts[sha]["n_details"] or 0) for sha in accepted))
            # Write-audit-publish: the suites judge what is about to become visible (the batch's
            # records, silver's touched months with the NEW rows) before anything is written.
            with timed(log, "data-quality gate (audit before publish)"):
                report = gate.audit(lake, classified=batch.rows, files=verdicts, existing=batch.silver,
                                    run_id=load_id, batch_id=batch_fingerprint(files))
            tally = Tally.of(report, accepted)
            published = False
            if not report.blocked:
                tally.recovered = unrecorded_inserts(lake, batch.silver, spec.source_system, files, tally)
                published = publish(lake, spec, files, batch, tally, load_id, config, cached)
            if published or report.blocked:
                reports.append(report)
                with timed(log, "write ops.dq_results"):
                    record_results(lake, report)
                if report.blocked:
                    raise GateFailure(report)
                return tally
        finally:
            for df in cached:
                df.unpersist()
        log.warning("silver.transactions: another %s publish committed while this batch was judged; "
                    "judging it again on the newer silver (%d/%d)", spec.source_system, attempt, MAX_DECISIONS)
    raise StaleDecision(f"other {spec.source_system} publishes kept committing while this batch was judged "
                        f"({MAX_DECISIONS} times); nothing of it was published")


def unrecorded_inserts(lake: Lake, silver: DataFrame | None, source_system: str, files: list[BatchFile],
                       tally: Tally) -> Counter:
    """Silver rows of the batch's files that a load wrote but never recorded in the ledger, by SHA-256.

    A load that stopped between its silver commit and its ledger row (a crash, a killed
    task; or a concurrent load of the same file that has not written its ledger row yet) left
    rows that this run judges NOOP; they are the file's rows all the same, and its ledger row
    counts them as inserted. Only files with NOOP rows are looked up, in their months only.
    """
    noop = {f.name: tally.months[f.sha256] for f in files if tally.by_verdict[(f.sha256, NOOP)]}
    if silver is None or not noop:
        return Counter()
    names = sorted(noop)
    recorded = (lake.read(LOAD_LEDGER.name)
                .where((F.col("source_system") == source_system) & F.col("source_file").isin(names))
                .select("source_file", "load_id"))
    rows = (silver.where(F.col("posting_month").isin(sorted(set().union(*noop.values())))
                         & (F.col("source_system") == source_system) & F.col("source_file").isin(names))
            .groupBy("source_file", "load_id").count()
            .join(recorded, ["source_file", "load_id"], "left_anti")
            .groupBy("source_file").agg(F.sum("count").alias("n")).collect())
    by_name = {r["source_file"]: int(r["n"]) for r in rows}
    return Counter({f.sha256: by_name[f.name] for f in files if f.name in by_name})


def judge_files(spec: SourceSpec, meta: DataFrame, parsed: DataFrame, n_files: int) -> dict[str, Any]:
    """Each file's statistics and verdict (its first failing file check, or none), by SHA-256."""
    with timed(log, f"parse and gate {n_files} file(s)"):
        verdicts = {
            row["file_sha"]: row
            for row in meta.join(parsed.transform(validation.file_statistics(spec)), "file_sha", "left")
            .transform(validation.with_file_verdict(spec.file_checks, spec.control_totals))
            .collect()
        }
    # Spark lists zero-byte files but yields no row for them; any other missing file changed on disk.
    changed = [r["source_file"] for r in verdicts.values() if r["n_rows"] is None and r["file_size"] > 0]
    if changed:
        raise InputError(f"file(s) changed while loading, nothing of this batch was written: {changed}")
    return verdicts


def classify_records(lake: Lake, spec: SourceSpec, meta: DataFrame, parsed: DataFrame, accepted: list[str],
                     cached: list[DataFrame], records: int) -> Classified:
    """Verdicts of the accepted files' detail records (``records`` of them): the record rules, then
    the duplicate rules.

    Silver is pinned to its current version: a recomputation after our own commit sees the
    same rows, and the publish commits only if no other publish of the source came after the
    pin. Persisted frames are appended to ``cached`` for the caller to release.
    """
    existing = silver = None
    pin = lake.pin(SILVER_TRANSACTIONS.name, sinks.publisher(spec.source_system))
    version = pin.version
    details = (
        parsed.where(F.col("is_detail") & F.col("file_sha").isin(accepted))
        .join(F.broadcast(meta.select("file_sha", "source_file", "file_order")), "file_sha")
    )
    if version > 0:
        silver = (lake.spark.read.format("delta").option("versionAsOf", version)
                  .load(lake.path(SILVER_TRANSACTIONS)))
        existing = (silver
                    .where(F.col("source_system") == spec.source_system)
                    .where(F.col("record_hash").isNotNull())
                    .select("txn_id", F.col("record_hash").alias("existing_hash")))
    with timed(log, "find duplicate suspects"):
        few_keys = records <= MAX_BROADCAST_KEYS
        if existing is not None and few_keys:
            # Core systems number transactions in order: the range of a day's txn_ids lets Delta skip,
            # by their statistics, the files of every other month (any order stays correct, only slower).
            low, high = details.agg(F.min("txn_id"), F.max("txn_id")).first()
            existing = existing.where(F.col("txn_id").between(low, high)) if low is not None else existing
        suspects = (details.transform(validation.duplicate_suspects(existing, few_keys=few_keys))
                    .persist(StorageLevel.MEMORY_AND_DISK))
        cached.append(suspects)
        n_suspects = suspects.count()
    few = n_suspects <= MAX_LISTED_SUSPECTS
    suspect_ids = [r["txn_id"] for r in suspects.collect()] if few else suspects
    classified = details.transform(validation.with_duplicate_verdict(existing, suspect_ids))
    if not few:   # the joined verdict is computed once, not once per write
        classified = classified.persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(classified)
    return Classified(classified, silver, pin, n_suspects)


def publish(lake: Lake, spec: SourceSpec, files: list[BatchFile], batch: Classified, tally: Tally,
            load_id: str, config: LakeConfig, cached: list[DataFrame]) -> bool:
    """Write an audited batch: quarantine, the handoff of streamed versions, silver, the serving tier.

    False, with silver unchanged, when another publish of the source committed after the batch
    was judged (``sinks.write_silver``). Streamed versions of its txn_ids that the stream appended
    meanwhile are removed right after the publish (``handoff.remove_late_versions``). Quarantine
    and parity rows are inserted once by their natural keys, so a batch judged again writes none
    of them twice. Every step after the silver commit reads what is committed, so a rerun after
    a crash at any of its commits finishes exactly what was left (``tests/test_crash_boundaries.py``).
    """
    classified = batch.rows
    if any(tally.by_verdict[(sha, QUARANTINED)] for sha in tally.reasons):
        with timed(log, "quarantine failing records"):
            sinks.write_quarantine(lake, classified.where(F.col("verdict") == QUARANTINED)
                                   .withColumnRenamed("file_sha", "source_sha256")
                                   .transform(to_quarantine_rows(spec.source_system, load_id)))
    new_rows = classified.where(F.col("verdict") == NEW)
    accepted = classified.where(F.col("verdict") != QUARANTINED)
    app_id = f"backfill-{spec.name}-{batch_fingerprint(files)}"
    marker = f"ledgerlake backfill {spec.name} load {load_id} batch {batch_fingerprint(files)} {uuid.uuid4().hex[:8]}"
    replaced = handoff.streamed_versions(lake, batch.version, new_rows) if batch.version > 0 else None
    if replaced is not None:
        cached.append(replaced)
        with timed(log, "handoff: streamed versions replaced, parity"):
            handoff.record_parity(lake, replaced, new_rows, load_id)
    with timed(log, f"publish silver.transactions ({batch.suspects:,} duplicate suspects)"):
        rows = (new_rows.withColumn("event_sequence", F.lit(None).cast("bigint"))
                .transform(to_silver_rows(load_id)))
        version = sinks.write_silver(lake, rows, batch.pin, marker, replace_streamed=replaced is not None,
                                     expected_rows=sum(n for (_, verdict), n in tally.by_verdict.items()
                                                       if verdict == NEW))
        if version is None:
            return False
    # Others committed between the decision and this publish, or an earlier run of these files
    # stopped after its own: streamed rows may stand beside the batch's.
    if version > batch.pin.version + 1 or tally.recovered:
        handoff.remove_late_versions(lake, version, accepted, load_id)
    with timed(log, "serving tier and stream handoff"):
        handoff.sync_serving(lake, serving_window(config), tally.all_months, [f.name for f in files], app_id)
        handoff.hand_over(lake, accepted)
    return True


def file_results(files: list[BatchFile], verdicts: dict[str, Any], tally: Tally | None) -> list[FileResult]:
    """One result per file: REJECTED with its reason, or LOADED with its counts."""
    results = []
    for f in files:
        row = verdicts[f.sha256]
        records_in = int(row["n_details"] or 0)
        if row["reason"] is not None or tally is None:
            results.append(FileResult(f.name, f.sha256, f.business_date, "REJECTED", row["reason"],
                                      row["reason_detail"], records_in=records_in))
            continue
        quarantined = tally.by_verdict[(f.sha256, QUARANTINED)]
        results.append(FileResult(
            f.name, f.sha256, f.business_date, "LOADED", records_in=records_in, accepted=records_in - quarantined,
            quarantined=quarantined, inserted=tally.by_verdict[(f.sha256, NEW)] + tally.recovered[f.sha256],
            control_debit=row["control_debit_total"], control_credit=row["control_credit_total"],
            quarantine_reasons=tally.reasons[f.sha256], months=tally.months[f.sha256],
        ))
    return results


def ledger_rows(source_system: str, files: list[BatchFile], results: list[FileResult], verdicts: dict[str, Any],
                load_id: str) -> list[dict[str, Any]]:
    """ops.load_ledger rows of a batch's files: status, reason, record counts and control totals."""
    rows = []
    for f, r in zip(files, results, strict=True):
        v = verdicts[f.sha256]
        loaded = r.status == "LOADED"
        rows.append({
            "load_id": load_id, "source_system": source_system, "source_file": f.name, "source_path": f.path,
            "sha256": f.sha256, "business_date": f.business_date, "status": r.status, "reason": r.reason,
            "reason_detail": r.reason_detail, "records_in": r.records_in,
            "records_accepted": r.accepted if loaded else None,
            "records_quarantined": r.quarantined if loaded else None,
            "rows_inserted": r.inserted if loaded else None,
            "control_count": v["control_count"], "control_debit_total": v["control_debit_total"],
            "control_credit_total": v["control_credit_total"], "control_net_total": v["control_net_total"],
            "file_size": f.size,
        })
    return rows


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
