"""Idempotent writes of the backfill: silver rows, quarantine, load ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ledgerlake.lake import Lake, with_conflict_retry
from warehouse.tables import LOAD_LEDGER, QUARANTINE, SILVER_TRANSACTIONS

if TYPE_CHECKING:
    from jobs.backfill import FileResult
    from ledgerlake.load.discovery import BatchFile


def known_files(lake: Lake, source_system: str, shas: list[str]) -> dict[str, dict[str, Any]]:
    """Ledger rows (LOADED or REJECTED) of the feed's files with the given fingerprints, by SHA-256.

    The ledger holds one row per file ever processed (thousands, not millions), so the
    feed's rows are fetched whole and matched here rather than through a huge IN list.
    """
    if not shas:
        return {}
    wanted = set(shas)
    rows = (lake.read(LOAD_LEDGER.name)
            .where((F.col("source_system") == source_system) & F.col("status").isin("LOADED", "REJECTED"))
            .select("sha256", "status", "reason", "reason_detail", "source_file").collect())
    return {r["sha256"]: r.asDict() for r in rows if r["sha256"] in wanted}


def silver_rows(rows: DataFrame, load_id: str) -> DataFrame:
    """Accepted canonical records -> silver's columns, sorted by month and account within each task.

    Input partitions follow the files' business-date order, so each month lands in few
    tasks and few files without a shuffle; the account order inside a file lets a
    statement skip most row groups.
    """
    enriched = rows.withColumns({
        "load_id": F.lit(load_id),
        "ingested_at": F.current_timestamp(),
        "event_sequence": F.lit(None).cast("bigint"),
        "posting_month": F.date_format("posting_date", "yyyy-MM"),
    })
    return (enriched.select(*SILVER_TRANSACTIONS.column_names())
            .sortWithinPartitions("posting_month", "account_id", "posted_at", "txn_id"))


def write_silver(lake: Lake, rows: DataFrame, load_id: str, app_id: str, replace_streamed: bool = False) -> None:
    """Publish new rows in one commit; the transaction id makes a replay of the same batch a no-op.

    A plain append, unless some rows replace versions the stream wrote: then one MERGE
    swaps those streamed rows for the batch's and inserts the rest (still one commit).
    """
    data = silver_rows(rows, load_id)
    if not replace_streamed:
        with_conflict_retry(
            lambda: data.write.format("delta").mode("append")
            .option("txnAppId", app_id).option("txnVersion", 1)
            .save(lake.path(SILVER_TRANSACTIONS)),
            "publish silver.transactions",
        )
        return
    from ledgerlake.load.microbatch import idempotent_writes
    from transforms.events import SOURCE_SYSTEM as STREAMED

    values = {c: f"s.{c}" for c in SILVER_TRANSACTIONS.column_names() if c != "posting_month"}
    with idempotent_writes(lake.spark, app_id, 1):
        with_conflict_retry(
            lambda: lake.delta(SILVER_TRANSACTIONS.name).alias("t")
            .merge(data.alias("s"), f"t.txn_id = s.txn_id AND t.source_system = '{STREAMED}'")
            .whenMatchedUpdate(set=values)
            .whenNotMatchedInsert(values=values)
            .execute(),
            "publish silver.transactions (replacing streamed versions)",
        )


def write_quarantine(lake: Lake, rows: DataFrame, source_system: str, load_id: str) -> None:
    """Insert quarantined records once per (file, record number)."""
    data = rows.select(
        F.lit(source_system).alias("source_system"),
        "source_file",
        F.col("file_sha").alias("source_sha256"),
        "record_no",
        "reason",
        F.col("raw").alias("raw_record"),
        "txn_id",
        F.lit(load_id).alias("load_id"),
        F.current_timestamp().alias("quarantined_at"),
    )
    with_conflict_retry(
        lambda: lake.delta(QUARANTINE.name).alias("t")
        .merge(data.alias("s"), "t.source_sha256 = s.source_sha256 AND t.record_no = s.record_no")
        .whenNotMatchedInsertAll().execute(),
        "write ops.quarantine",
    )


def record_files(lake: Lake, source_system: str, files: list[BatchFile], results: list[FileResult],
                 verdicts: dict[str, Any], load_id: str) -> None:
    """One ledger row per file processed (LOADED or REJECTED), inserted once per SHA-256."""
    rows = []
    for f, r in zip(files, results, strict=True):
        v = verdicts[f.sha256]
        loaded = r.status == "LOADED"
        rows.append((
            load_id, source_system, f.name, f.path, f.sha256, f.business_date, r.status, r.reason,
            r.reason_detail, r.records_in, r.accepted if loaded else None, r.quarantined if loaded else None,
            r.inserted if loaded else None, v["control_count"], v["control_debit_total"],
            v["control_credit_total"], v["control_net_total"], f.size,
        ))
    schema = ", ".join(f"{name} {typ}" for name, typ, _ in LOAD_LEDGER.columns if name != "processed_at")
    data = lake.spark.createDataFrame(rows, schema).withColumn("processed_at", F.current_timestamp())
    with_conflict_retry(
        lambda: lake.delta(LOAD_LEDGER.name).alias("t")
        .merge(data.alias("s"), "t.source_system = s.source_system AND t.sha256 = s.sha256 "
                               "AND t.status IN ('LOADED', 'REJECTED')")
        .whenNotMatchedInsertAll().execute(),
        "write ops.load_ledger",
    )
