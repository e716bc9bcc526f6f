"""Batch-vs-stream parity: which contract fields of a streamed transaction the batch file tells differently.

Used from both sides of the handoff: by the stream when an event arrives for a
txn_id a batch file already loaded, and by the backfill when its batch version
replaces a streamed row. Rows go to ``ops.parity``.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from warehouse.tables import CONTRACT_COLUMN_NAMES

# Every contract column but the key and the source, which differ by construction.
PARITY_FIELDS = [c for c in CONTRACT_COLUMN_NAMES if c not in ("txn_id", "source_system")]


def as_text(column: str, dtype: str) -> Column:
    """A value as comparable text: decimals exact, timestamps ISO-8601 in UTC, NULL kept."""
    col = F.col(column)
    if dtype.startswith("timestamp"):
        return F.date_format(F.to_utc_timestamp(col, F.current_timezone()), "yyyy-MM-dd'T'HH:mm:ss.SSSSSS")
    return col.cast("string")


def parity_rows(streamed: DataFrame, batch: DataFrame) -> DataFrame:
    """Streamed and batch versions of the same txn_ids -> one row per differing contract field.

    ``streamed``: rows with silver's columns (``event_sequence`` optional) as the stream wrote them;
    ``batch``: rows with silver's columns from the batch file (``source_file`` optional).
    Only txn_ids present on both sides are compared. Output columns: ``txn_id, field,
    streamed_value, batch_value, streamed_sequence, batch_source_file`` (values as text).
    """
    s_types = dict(streamed.dtypes)
    b_types = dict(batch.dtypes)
    s = streamed.select(
        "txn_id",
        (F.col("event_sequence") if "event_sequence" in s_types else F.lit(None)).cast("bigint")
        .alias("streamed_sequence"),
        *[as_text(f, s_types[f]).alias(f"_s_{f}") for f in PARITY_FIELDS],
    )
    b = batch.select(
        "txn_id",
        (F.col("source_file") if "source_file" in b_types else F.lit(None)).cast("string")
        .alias("batch_source_file"),
        *[as_text(f, b_types[f]).alias(f"_b_{f}") for f in PARITY_FIELDS],
    )
    pairs = F.array(*[
        F.struct(F.lit(f).alias("field"), F.col(f"_s_{f}").alias("streamed_value"), F.col(f"_b_{f}").alias("batch_value"))
        for f in PARITY_FIELDS
    ])
    return (
        s.join(b, "txn_id")
        .select("txn_id", "streamed_sequence", "batch_source_file", F.explode(pairs).alias("_p"))
        .where(~F.col("_p.streamed_value").eqNullSafe(F.col("_p.batch_value")))
        .select("txn_id", "_p.field", "_p.streamed_value", "_p.batch_value", "streamed_sequence", "batch_source_file")
    )


def cancelled_parity_rows(cancelled: DataFrame, batch: DataFrame) -> DataFrame:
    """A cancellation streamed for a txn_id the batch booked -> one ``status`` row (CANCELLED vs BOOKED)."""
    b_types = dict(batch.dtypes)
    b = batch.select(
        "txn_id",
        (F.col("source_file") if "source_file" in b_types else F.lit(None)).cast("string").alias("batch_source_file"),
    )
    return cancelled.select("txn_id", F.col("sequence").cast("bigint").alias("streamed_sequence")).join(
        b, "txn_id"
    ).select(
        "txn_id", F.lit("status").alias("field"), F.lit("CANCELLED").alias("streamed_value"),
        F.lit("BOOKED").alias("batch_value"), "streamed_sequence", "batch_source_file",
    )
