"""A batch classified the way the backfill classifies it, for the gate's tests and benchmark.

``classify`` follows jobs/backfill.py load_batch step by step with the same transforms
and the same narrow cache (file verdicts, record rules, duplicate verdicts against
silver), stopping where the backfill would write; ``gated_publish`` then runs the gate
and writes only if it passes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledgerlake.load.discovery import discover, month_range

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyspark.sql import DataFrame

    from expectations.gate import BatchGate, GateReport
    from ledgerlake.lake import Lake


@dataclass
class Classified:
    """What load_batch holds right before its writes."""

    classified: DataFrame            # derived from the cached parse, as in load_batch
    verdicts: dict[str, Any]         # file_sha -> verdict row
    existing: DataFrame | None       # silver as of the version read before the commit
    batch_id: str
    cached: list[DataFrame]

    def release(self) -> None:
        for df in self.cached:
            df.unpersist()


def classify(lake: Lake, source: str, path: Path | str, keep_rule_inputs: bool = False) -> Classified:
    """Parse, gate and classify every file of ``source`` under ``path`` as one batch.

    ``keep_rule_inputs``: cache the parsed fields the record rules read too (see
    expectations.gate.rule_columns), so the gate need not parse them again.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from expectations.gate import rule_columns
    from ledgerlake.load.backfill import MAX_LISTED_SUSPECTS, cached_columns, known_files, read_batch
    from transforms.legacy import get_source
    from transforms.validation import (
        duplicate_suspects,
        file_statistics,
        with_duplicate_verdict,
        with_file_verdict,
    )

    spark = lake.spark
    spec = get_source(source)
    files = discover(spec, str(path), month_range(None, None)).files
    known_files(lake, spec.source_system, [f.sha256 for f in files])      # run_backfill reads the ledger first
    meta, parsed = read_batch(spark, spec, files)
    keep = cached_columns(spec, parsed.columns)
    if keep_rule_inputs:
        keep += [c for c in rule_columns(spec, parsed.columns) if c not in keep]
    parsed = parsed.select(*keep).persist(StorageLevel.MEMORY_AND_DISK)
    cached = [parsed]
    verdicts = {
        row["file_sha"]: row
        for row in meta.join(parsed.transform(file_statistics(spec)), "file_sha", "left")
        .transform(with_file_verdict(spec.file_checks, spec.control_totals)).collect()
    }
    accepted = [sha for sha, row in verdicts.items() if row["reason"] is None]
    existing = hashes = None
    version = lake.version("silver.transactions")
    if version > 0:
        existing = spark.read.format("delta").option("versionAsOf", version).load(lake.path("silver.transactions"))
        hashes = (existing.where(F.col("source_system") == spec.source_system)
                  .where(F.col("record_hash").isNotNull())
                  .select("txn_id", F.col("record_hash").alias("existing_hash")))
    details = (parsed.where(F.col("is_detail") & F.col("file_sha").isin(accepted))
               .join(F.broadcast(meta.select("file_sha", "source_file", "file_order")), "file_sha"))
    suspects = details.transform(duplicate_suspects(hashes)).persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(suspects)
    few = suspects.count() <= MAX_LISTED_SUSPECTS
    classified = details.transform(with_duplicate_verdict(hashes, [r["txn_id"] for r in suspects.collect()]
                                                          if few else suspects))
    if not few:
        classified = classified.persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(classified)
    return Classified(classified, verdicts, existing, uuid.uuid4().hex[:16], cached)


def gated_publish(lake: Lake, gate: BatchGate, batch: Classified, run_id: str,
                  corrupt: Callable[[DataFrame], DataFrame] | None = None) -> GateReport:
    """Write-audit-publish: audit the batch, record the results, write only when no critical failure."""
    from pyspark.sql import functions as F

    from expectations.gate import record_results
    from ledgerlake.load.sinks import publisher, write_quarantine, write_silver
    from transforms.publish import to_quarantine_rows, to_silver_rows

    classified = corrupt(batch.classified) if corrupt else batch.classified
    report = gate.audit(lake, classified=classified, files=batch.verdicts, existing=batch.existing,
                        run_id=run_id, batch_id=batch.batch_id)
    record_results(lake, report)
    if report.blocked:
        return report
    if any(c["verdict"] == "QUARANTINED" for c in report.verdict_counts):
        write_quarantine(lake, classified.where(F.col("verdict") == "QUARANTINED")
                         .withColumnRenamed("file_sha", "source_sha256")
                         .transform(to_quarantine_rows(gate.spec.source_system, run_id)))
    write_silver(lake, classified.where(F.col("verdict") == "NEW")
                 .withColumn("event_sequence", F.lit(None).cast("bigint")).transform(to_silver_rows(run_id)),
                 lake.pin("silver.transactions", publisher(gate.spec.source_system)), f"test-{batch.batch_id}")
    return report
