"""The batch side of the handoff: a batch file replaces streamed versions and keeps the serving tier in step.

The end-of-day file is the book of record. When it carries txn_ids the stream already
wrote, its version replaces the streamed row (still one row per txn_id), every field
that differed goes to ``ops.parity``, and ``ops.stream_state`` marks those txn_ids as
the batch's, so later events leave them alone. Batch rows whose posting date lies in
the serving window are merged into ``serving.transactions_recent``.
"""

from __future__ import annotations

import logging

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ledgerlake.lake import Lake
from ledgerlake.load import sinks
from ledgerlake.serving import ServingWindow
from transforms.events import SOURCE_SYSTEM as STREAMED
from transforms.parity import parity_rows
from warehouse.tables import SERVING_TRANSACTIONS, SILVER_TRANSACTIONS, STREAM_STATE

log = logging.getLogger(__name__)


def streamed_versions(lake: Lake, version: int, new_rows: DataFrame) -> DataFrame | None:
    """Silver's streamed rows (as of ``version``) that the batch's new rows replace; None when there are none.

    Streamed rows are few and recent; Delta's statistics on ``source_system`` skip every
    file written by batch loads, so this reads little even over years of history.
    """
    streamed = (lake.spark.read.format("delta").option("versionAsOf", version)
                .load(lake.path(SILVER_TRANSACTIONS))
                .where(F.col("source_system") == STREAMED)
                .join(new_rows.select("txn_id"), "txn_id", "left_semi")
                .persist(StorageLevel.MEMORY_AND_DISK))
    if streamed.isEmpty():
        streamed.unpersist()
        return None
    return streamed


def remove_late_versions(lake: Lake, version: int, batch_rows: DataFrame, load_id: str) -> None:
    """Remove the streamed versions of the batch's txn_ids that silver still holds as of ``version``.

    The batch decided on an older snapshot of silver; a micro-batch that committed between that
    snapshot and the batch's own commit (``version``) may have appended its version of a txn_id
    the batch also carries, and a run that died right after its silver commit left such rows
    beside the batch rows it had just written. ``batch_rows``: every accepted row of the batch
    (new or already in silver). Those streamed rows leave silver now (parity recorded). A
    micro-batch that commits after the batch sees the batch row itself.
    """
    late = streamed_versions(lake, version, batch_rows)
    if late is None:
        return
    try:
        txn_ids = sorted(r["txn_id"] for r in late.select("txn_id").collect())
        log.warning("%d streamed version(s) beside the batch's rows: the batch rows replace them", len(txn_ids))
        record_parity(lake, late, batch_rows, load_id)
        sinks.remove_streamed(lake, SILVER_TRANSACTIONS.name, txn_ids)
    finally:
        late.unpersist()


def record_parity(lake: Lake, streamed: DataFrame, new_rows: DataFrame, load_id: str) -> int:
    """Write one ops.parity row per contract field where the batch differs from the streamed version."""
    found = parity_rows(streamed, new_rows.join(streamed.select("txn_id"), "txn_id", "left_semi"))
    found = found.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        n = found.count()
        if n:
            sinks.write_parity(lake, found, detected_by="backfill", load_id=load_id)
        return n
    finally:
        found.unpersist()


def sync_serving(lake: Lake, window: ServingWindow, months: list[str], files: list[str], app_id: str) -> None:
    """Bring the serving tier in step with silver for this batch's rows inside the window.

    The source is silver itself (the batch's files, window months only), so a rerun after
    a crash between the two commits merges exactly what silver holds.
    """
    in_window = [m for m in months if window.contains_month(m)]
    if in_window:
        rows = (lake.read(SILVER_TRANSACTIONS.name)
                .where(F.col("posting_month").isin(in_window) & F.col("source_file").isin(files)))
        sinks.merge_serving(lake, rows, app_id)


def hand_over(lake: Lake, batch_rows: DataFrame) -> None:
    """The batch's txn_ids (``batch_rows``: its accepted rows) leave the stream: nothing to do without one.

    Streamed versions the serving tier still holds leave it (those whose batch row lies outside
    the window are not replaced by the merge), then the txn_ids are marked batch-owned. Both
    steps read what is committed, not what this run decided, so a rerun after a crash anywhere
    after the silver commit does exactly what is left to do.
    """
    if lake.version(STREAM_STATE.name) == 0:
        return
    streamed = (lake.read(SERVING_TRANSACTIONS.name).where(F.col("source_system") == STREAMED)
                .join(batch_rows.select("txn_id"), "txn_id", "left_semi").select("txn_id"))
    if replaced := sorted(r["txn_id"] for r in streamed.collect()):
        sinks.remove_streamed(lake, SERVING_TRANSACTIONS.name, replaced)
    sinks.mark_batch_owned(lake, batch_rows.select("txn_id", "posting_date")
                           .withColumn("posting_month", F.date_format("posting_date", "yyyy-MM")))
