"""Rows as the lake's tables take them: silver.transactions and ops.quarantine, for batch and stream alike."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from warehouse.tables import MONTH_EXPR, QUARANTINE, SILVER_TRANSACTIONS


def to_silver_rows(load_id: str, keep: tuple[str, ...] = ()) -> Callable[[DataFrame], DataFrame]:
    """Canonical records (contract columns, ``source_file``, ``record_no``, ``record_hash``, ``event_sequence``)
    -> silver.transactions' columns, stamped with the load and its time.

    ``keep``: further columns of the input to carry along after silver's.
    """

    def _rows(records: DataFrame) -> DataFrame:
        return records.withColumns({
            "load_id": F.lit(load_id),
            "ingested_at": F.current_timestamp(),
            "posting_month": F.expr(MONTH_EXPR),
        }).select(*SILVER_TRANSACTIONS.column_names(), *keep)

    return _rows


def to_quarantine_rows(source_system: str, load_id: str) -> Callable[[DataFrame], DataFrame]:
    """Failing records or lines (``source_file``, ``source_sha256``, ``record_no``, ``reason``, ``raw``,
    ``txn_id``) -> ops.quarantine's columns."""

    def _rows(bad: DataFrame) -> DataFrame:
        return bad.withColumns({
            "source_system": F.lit(source_system),
            "raw_record": F.col("raw"),
            "load_id": F.lit(load_id),
            "quarantined_at": F.current_timestamp(),
        }).select(*QUARANTINE.column_names())

    return _rows
