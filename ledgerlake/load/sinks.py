"""Every Delta write of the loads: one writer per table, each commit idempotent and retried on conflicts.

* silver.transactions: the backfill's publish (``write_silver``, one sequence per source system) and the stream's appends,
  replacements and MERGEs (``append_transactions``, ``replace_transactions``, ``merge_transactions``),
  and the removal of streamed versions a batch row took over (``remove_streamed``);
* serving.transactions_recent: the same stream writes and ``remove_streamed``, the backfill's
  ``merge_serving``, the roll-off's ``roll_off_serving``;
* ops.quarantine (``write_quarantine``), ops.parity (``write_parity``), ops.stream_state
  (``append_state``, ``mark_batch_owned``), ops.load_ledger (``record_files``).

Callers decide what to write; these functions only say how it is committed. Inserts into
the ops tables are MERGEs on their natural keys, so a replay adds nothing twice. Writes of
the transaction tables carry a Delta transaction identifier (``txnAppId``/``txnVersion``,
or the session settings of the same name for MERGE), so a replayed commit is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ledgerlake.lake import (
    TXN_APP_ID,
    TXN_VERSION,
    Lake,
    Pin,
    idempotent_writes,
    session_settings,
    with_conflict_retry,
)
from transforms.events import BATCH_OWNED, UPSERT, current_state
from transforms.events import SOURCE_SYSTEM as STREAMED
from warehouse.tables import LOAD_LEDGER, PARITY, QUARANTINE, SERVING_TRANSACTIONS, SILVER_TRANSACTIONS, STREAM_STATE

MERGE_MATERIALIZE_SOURCE = "spark.databricks.delta.merge.materializeSource"
COMMIT_METADATA = "spark.databricks.delta.commitInfo.userMetadata"     # a MERGE's commit user metadata
# A replaceWhere overwrite checks by default that every row it writes matches its predicate;
# the stream's overwrite also carries the batch's new txn_ids, which by design do not.
REPLACE_WHERE_CONSTRAINT_CHECK = "spark.databricks.delta.replaceWhere.constraintCheck.enabled"
# The transaction identifier of the commit that changes streamed rows (overwrite or MERGE):
# the same for both, so a batch committed one way is never replayed the other way.
CHANGE_APP_SUFFIX = "-merge"
LAID_OUT_ROWS = 100_000       # a publish of at least this many rows is written month by month, sorted by account
ROWS_PER_FILE = 2_000_000     # about 90 MB of silver (45 bytes a row), under the layout's 128 MB target
DATA_COLUMNS = [c for c in SILVER_TRANSACTIONS.column_names() if c != "posting_month"]   # posting_month: generated


# --- silver.transactions and serving.transactions_recent -------------------------------------------------------

def publisher(source_system: str) -> str:
    """The transaction identifier of the batch publishes of a source system's transactions: one sequence."""
    return f"ledgerlake-publish-{source_system}"


def write_silver(lake: Lake, rows: DataFrame, pin: Pin, marker: str, replace_streamed: bool = False,
                 expected_rows: int = 0) -> int | None:
    """Publish a batch's new silver rows in one commit, if silver has not changed under its decision.

    ``rows``: silver-shaped (``transforms.publish.to_silver_rows``), judged against silver at
    ``pin`` (see ``Lake.pin``). The commit carries the next number of the source's publish
    sequence: when another publish of the source committed since the pin, Delta skips this
    one (or refuses it as a conflict, then skips it), and None is returned: the caller must
    judge the batch again. Otherwise the version of the commit, which ``marker`` (the commit's
    user metadata) tells apart from the others.

    A plain append, unless some rows replace versions the stream wrote: then one MERGE swaps
    those streamed rows for the batch's and inserts the rest (still one commit). Rows are
    written sorted by month and account. A large batch (``expected_rows`` of at least
    ``LAID_OUT_ROWS``) is written in its final layout: each month by one task, in files of up
    to ``ROWS_PER_FILE`` consecutive accounts, so a month that held nothing before needs no
    rewrite by the layout step. A small one keeps its input partitions (the files' business-date
    order: each month lands in few files without a shuffle).
    """
    data = rows.repartition("posting_month") if expected_rows >= LAID_OUT_ROWS else rows
    data = data.sortWithinPartitions("posting_month", "account_id", "posted_at", "txn_id")
    sequence = pin.sequence + 1
    if not replace_streamed:
        with_conflict_retry(
            lambda: data.write.format("delta").mode("append").option("maxRecordsPerFile", ROWS_PER_FILE)
            .option("txnAppId", pin.app_id).option("txnVersion", sequence).option("userMetadata", marker)
            .save(lake.path(SILVER_TRANSACTIONS)),
            "publish silver.transactions",
        )
    else:
        values = {c: f"s.{c}" for c in DATA_COLUMNS}
        with idempotent_writes(lake.spark, pin.app_id, sequence), \
                session_settings(lake.spark, {COMMIT_METADATA: marker}):
            with_conflict_retry(
                lambda: lake.delta(SILVER_TRANSACTIONS.name).alias("t")
                .merge(data.alias("s"), f"t.txn_id = s.txn_id AND t.source_system = '{STREAMED}'")
                .whenMatchedUpdate(set=values)
                .whenNotMatchedInsert(values=values)
                .execute(),
                "publish silver.transactions (replacing streamed versions)",
            )
    return lake.committed_since(SILVER_TRANSACTIONS.name, pin.version, marker)


def merge_serving(lake: Lake, rows: DataFrame, app_id: str) -> None:
    """Upsert silver rows into the serving tier by txn_id (rows that differ only), skipped on a replay."""
    values = {c: f"s.{c}" for c in DATA_COLUMNS}
    changed = "NOT (t.source_system <=> s.source_system AND t.record_hash <=> s.record_hash)"
    with idempotent_writes(lake.spark, f"{app_id}-serving", 1):
        with_conflict_retry(
            lambda: lake.delta(SERVING_TRANSACTIONS.name).alias("t")
            .merge(rows.alias("s"), "t.txn_id = s.txn_id")
            .whenMatchedUpdate(changed, set=values)
            .whenNotMatchedInsert(values=values)
            .execute(),
            "merge serving.transactions_recent",
        )


def remove_streamed(lake: Lake, table: str, txn_ids: list[str]) -> None:
    """Remove the streamed versions of these txn_ids from a transactions table (a batch row replaced them).

    The DELETE is planned again on the newest snapshot when it conflicts: it decides nothing
    beforehand, so a retry is never stale.
    """
    stale = F.col("txn_id").isin(txn_ids) & (F.col("source_system") == STREAMED)
    with_conflict_retry(lambda: lake.delta(table).delete(stale), f"remove replaced streamed rows from {table}")


def roll_off_serving(lake: Lake, first_month: str) -> None:
    """Remove every serving row older than ``first_month`` in one commit.

    A partition-only predicate: Delta removes whole files, without rewriting any.
    """
    with_conflict_retry(
        lambda: lake.delta(SERVING_TRANSACTIONS.name).delete(F.col("posting_month") < first_month),
        "roll-off serving.transactions_recent")


def _quoted(values: Sequence[str]) -> str:
    """A SQL list of string literals (posting months, txn_ids: validated formats, no quotes inside)."""
    return ", ".join(f"'{v}'" for v in values)


def _write_by_month(lake: Lake, table: str, rows: DataFrame, app_id: str, batch_id: int,
                    replace_where: str | None = None) -> None:
    """One commit of silver-shaped rows, skipped on a replay by (app_id, batch_id).

    An append, or with ``replace_where`` an overwrite of the rows it matches. One file per
    posting month, sorted by account so statements skip row groups.
    """
    data = (rows.select(*DATA_COLUMNS).repartition(F.date_format("posting_date", "yyyy-MM"))
            .sortWithinPartitions("posting_date", "account_id", "txn_id"))
    writer = data.write.format("delta").option("txnAppId", app_id).option("txnVersion", batch_id)
    if replace_where is None:
        writer, what = writer.mode("append"), f"append {table}"
    else:
        writer, what = writer.mode("overwrite").option("replaceWhere", replace_where), f"replace rows in {table}"
    with_conflict_retry(lambda: writer.save(lake.path(table)), what)


def append_transactions(lake: Lake, table: str, rows: DataFrame, app_id: str, batch_id: int) -> None:
    """Append rows of txn_ids that have no streamed row yet: one blind commit, skipped on a replay."""
    _write_by_month(lake, table, rows, f"{app_id}-append", batch_id)


@dataclass(frozen=True)
class Change:
    """The streamed rows a micro-batch replaces, moves or removes, and its transaction identifier."""

    months: list[str]     # the posting months they are stored in
    keys: list[str]       # their txn_ids
    app_id: str           # the stream's application id
    batch_id: int

    def predicate(self) -> str:
        return (f"source_system = '{STREAMED}' AND posting_month IN ({_quoted(self.months)}) "
                f"AND txn_id IN ({_quoted(self.keys)})")


def replace_settings(spark: Any) -> AbstractContextManager[None]:
    """Session settings for ``replace_transactions``: its new txn_ids do not match its predicate by design."""
    return session_settings(spark, {REPLACE_WHERE_CONSTRAINT_CHECK: "false"})


def replace_transactions(lake: Lake, table: str, upserts: DataFrame, change: Change) -> None:
    """One overwrite commit: remove the changed streamed rows, write the batch's new versions and new rows.

    ``upserts``: every row the batch inserts or replaces (all of them win: the plan has
    compared sequences against the stream's state). The ``replaceWhere`` predicate names
    the streamed rows that must go, by source, month and txn_id, so Delta reads only those
    months' files that can hold the txn_ids, and marks the rows deleted (deletion vectors)
    rather than rewriting files. Rows from batch files never match: the batch is the book of
    record. Run inside ``replace_settings``. A replayed batch's overwrite is skipped by its
    transaction identifier.
    """
    _write_by_month(lake, table, upserts, f"{change.app_id}{CHANGE_APP_SUFFIX}", change.batch_id,
                    replace_where=change.predicate())


def merge_settings(spark: Any, app_id: str, batch_id: int) -> AbstractContextManager[None]:
    """Session settings for the micro-batch's transaction MERGEs.

    Their transaction identifier (``<app id>-merge``, version = batch id). Their source is a
    slice of the batch's checkpointed plan, deterministic, so Delta need not copy it before
    its two passes (a Spark job per MERGE).
    """
    return session_settings(spark, {TXN_APP_ID: f"{app_id}{CHANGE_APP_SUFFIX}", TXN_VERSION: str(batch_id),
                                    MERGE_MATERIALIZE_SOURCE: "none"})


def merge_transactions(lake: Lake, table: str, rows: DataFrame, months: list[str], action_column: str) -> None:
    """MERGE newer streamed versions into a transactions table, reading only the months that can match.

    For a micro-batch that changes more streamed rows than can be named in a predicate.
    Only rows whose streamed version already exists can match, and those live in ``months``.
    ``action_column``: UPSERT (insert, or replace a lower event_sequence, moving the row if
    its month changed); anything else removes the streamed row. Rows from batch files are
    never touched: the batch is the book of record. Run inside ``merge_settings``: a replayed
    batch's MERGE is then skipped.
    """
    streamed = f"t.source_system = '{STREAMED}'"
    values = {c: f"s.{c}" for c in DATA_COLUMNS}
    condition = f"t.txn_id = s.txn_id AND t.posting_month IN ({_quoted(months)})"
    with_conflict_retry(
        lambda: lake.delta(table).alias("t").merge(rows.alias("s"), condition)
        .whenMatchedDelete(f"{streamed} AND s.{action_column} != '{UPSERT}'")
        .whenMatchedUpdate(f"{streamed} AND s.{action_column} = '{UPSERT}' "
                           "AND coalesce(t.event_sequence < s.event_sequence, TRUE)", set=values)
        .whenNotMatchedInsert(f"s.{action_column} = '{UPSERT}'", values=values)
        .execute(),
        f"merge {table}",
    )


# --- ops tables ------------------------------------------------------------------------------------------------

def _insert_once(lake: Lake, table: str, rows: DataFrame, same: str) -> None:
    """Insert the rows that the table does not hold yet (``same``: the MERGE condition of t and s)."""
    with_conflict_retry(
        lambda: lake.delta(table).alias("t").merge(rows.alias("s"), same).whenNotMatchedInsertAll().execute(),
        f"write {table}",
    )


def write_quarantine(lake: Lake, rows: DataFrame) -> None:
    """Insert quarantined records once per (source, file content, record number).

    ``rows``: shaped by ``transforms.publish.to_quarantine_rows``.
    """
    _insert_once(lake, QUARANTINE.name, rows, "t.source_system = s.source_system "
                 "AND t.source_sha256 = s.source_sha256 AND t.record_no = s.record_no")


def write_parity(lake: Lake, found: DataFrame, detected_by: str, load_id: str) -> None:
    """Insert parity rows once per (txn_id, field, side that found it, streamed sequence, values)."""
    rows = found.select(
        "txn_id", "field", "streamed_value", "batch_value", "streamed_sequence", "batch_source_file",
        F.lit(detected_by).alias("detected_by"),
        F.lit(load_id).alias("load_id"),
        F.current_timestamp().alias("detected_at"),
    )
    _insert_once(lake, PARITY.name, rows, "t.txn_id = s.txn_id AND t.field = s.field "
                 "AND t.detected_by = s.detected_by AND t.streamed_sequence <=> s.streamed_sequence "
                 "AND t.streamed_value <=> s.streamed_value AND t.batch_value <=> s.batch_value")


def append_state(lake: Lake, rows: DataFrame, app_id: str, batch_id: int) -> None:
    """Append a micro-batch's txn_id versions to ops.stream_state (the last write of a batch)."""
    with_conflict_retry(
        lambda: rows.select(*STREAM_STATE.column_names()).write.format("delta").mode("append")
        .option("txnAppId", app_id).option("txnVersion", batch_id)
        .save(lake.path(STREAM_STATE.name)),
        "append ops.stream_state",
    )


def mark_batch_owned(lake: Lake, batch_rows: DataFrame) -> None:
    """Handoff: txn_ids a batch file has just loaded are the batch's from now on.

    ``batch_rows``: the batch's silver rows (``txn_id``, ``posting_month``). Only txn_ids the
    stream has seen get a BATCH version (their highest sequence, the batch row's month), so a
    later event for them changes nothing and only feeds ops.parity. For the backfill to call
    after its silver commit; calling it twice records nothing new.
    """
    rows = batch_rows.select("txn_id", "posting_month").dropDuplicates(["txn_id"])
    current = (lake.read(STREAM_STATE.name).join(rows.select("txn_id"), "txn_id", "left_semi")
               .transform(current_state).where(F.col("status") != BATCH_OWNED).select("txn_id", "sequence"))
    marks = current.join(rows, "txn_id").select(
        "txn_id", "sequence", F.lit(BATCH_OWNED).alias("status"), "posting_month",
        F.lit(None).cast("string").alias("event_id"), F.lit(None).cast("string").alias("event_type"),
        F.lit(None).cast("bigint").alias("batch_id"), F.current_timestamp().alias("updated_at"))
    with_conflict_retry(
        lambda: marks.select(*STREAM_STATE.column_names()).write.format("delta").mode("append")
        .save(lake.path(STREAM_STATE.name)),
        "mark batch-owned txn_ids in ops.stream_state",
    )


def record_files(lake: Lake, rows: list[dict[str, Any]]) -> None:
    """One ledger row per file processed (LOADED or REJECTED), inserted once per (source, SHA-256).

    ``rows``: ops.load_ledger's columns but ``processed_at``, which is stamped here.
    """
    columns = [c for c in LOAD_LEDGER.columns if c[0] != "processed_at"]
    schema = ", ".join(f"{name} {typ}" for name, typ, _ in columns)
    data = (lake.spark.createDataFrame([tuple(r[name] for name, _, _ in columns) for r in rows], schema)
            .withColumn("processed_at", F.current_timestamp()))
    _insert_once(lake, LOAD_LEDGER.name, data, "t.source_system = s.source_system AND t.sha256 = s.sha256 "
                 "AND t.status IN ('LOADED', 'REJECTED')")
