"""Reconciliation: what the lake holds per batch file and month, set against the files' control totals.

Pure transforms. Each ``*_differences`` function returns rows of :data:`DIFFERENCE_COLUMNS`:
one row per thing that does not reconcile, so an empty result means all is well.

Identities checked for every file the ledger records as ``LOADED``:

* control count  = records accepted + records quarantined (every detail record is one or the other);
* quarantine     = the file's rows in ``ops.quarantine``;
* new rows       = the file's rows in ``silver.transactions`` (accepted no-op duplicates add none);
* debit / credit = silver's rows of the file + its quarantined records, to the cent. A file with
  no-op duplicates is not compared: their amounts sit in the rows of the earlier file.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from transforms.legacy.spec import SourceSpec

DIFFERENCE_COLUMNS = ["check", "month", "scope", "expected", "actual", "detail"]
STREAM_SYSTEMS = ("events",)     # silver rows that come from no batch file



def _debit() -> Column:
    """Sum of the debits (negative amounts) as a positive total."""
    return F.sum(F.when(F.col("amount") < 0, -F.col("amount"))).cast("decimal(20,2)")


def _credit() -> Column:
    return F.sum(F.when(F.col("amount") > 0, F.col("amount"))).cast("decimal(20,2)")


def _zero(col: str) -> F.Column:
    return F.coalesce(F.col(col), F.lit(0))


def _difference(check: str, month: F.Column, scope: F.Column, expected: F.Column, actual: F.Column,
                detail: F.Column | None = None) -> list[F.Column]:
    return [F.lit(check).alias("check"), month.cast("string").alias("month"), scope.alias("scope"),
            expected.cast("string").alias("expected"),
            actual.cast("string").alias("actual"),
            (detail if detail is not None else F.lit(None).cast("string")).alias("detail")]


def silver_totals(silver: DataFrame) -> DataFrame:
    """silver rows -> one row per (source_system, source_file, posting_month) of batch rows: rows, debit, credit."""
    return (silver.where(~F.col("source_system").isin(*STREAM_SYSTEMS))
            .groupBy("source_system", "source_file", "posting_month")
            .agg(F.count(F.lit(1)).alias("silver_rows"), _debit().alias("silver_debit"),
                 _credit().alias("silver_credit")))


def quarantine_totals(quarantined: DataFrame) -> DataFrame:
    """quarantined records with a parsed ``amount`` -> one row per source_sha256: rows, debit, credit, unparsed."""
    return (quarantined.groupBy("source_sha256")
            .agg(F.count(F.lit(1)).alias("quarantine_rows"), _debit().alias("quarantine_debit"),
                 _credit().alias("quarantine_credit"),
                 F.count_if(F.col("amount").isNull()).alias("quarantine_unparsed")))


def file_totals(ledger: DataFrame, silver: DataFrame, quarantine: DataFrame) -> DataFrame:
    """LOADED ledger rows joined with the lake's figures, one row per (source_system, source_file).

    ``silver`` comes from :func:`silver_totals`, ``quarantine`` from :func:`quarantine_totals`.
    A file name loaded more than once (re-sent with other content) is summed over its loads.
    """
    loaded = (ledger.where(F.col("status") == "LOADED")
              .join(quarantine, ledger["sha256"] == quarantine["source_sha256"], "left"))
    per_file = loaded.groupBy("source_system", "source_file").agg(
        F.date_format(F.min("business_date"), "yyyy-MM").alias("month"),
        F.count(F.lit(1)).alias("loads"),
        F.sum("control_count").alias("control_count"),
        F.sum("records_accepted").alias("accepted"),
        F.sum("records_quarantined").alias("quarantined"),
        F.sum("rows_inserted").alias("inserted"),
        F.sum("control_debit_total").alias("control_debit"),
        F.sum("control_credit_total").alias("control_credit"),
        F.sum(_zero("quarantine_rows")).alias("quarantine_rows"),
        F.sum(_zero("quarantine_debit")).alias("quarantine_debit"),
        F.sum(_zero("quarantine_credit")).alias("quarantine_credit"),
        F.sum(_zero("quarantine_unparsed")).alias("quarantine_unparsed"),
    )
    lake = silver.groupBy("source_system", "source_file").agg(
        F.sum("silver_rows").alias("silver_rows"), F.sum("silver_debit").alias("silver_debit"),
        F.sum("silver_credit").alias("silver_credit"))
    comparable = (F.col("accepted") == F.col("inserted")) & (F.col("quarantine_unparsed") == 0)
    return (per_file.join(lake, ["source_system", "source_file"], "left")
            .withColumns({"silver_rows": _zero("silver_rows"), "silver_debit": _zero("silver_debit"),
                          "silver_credit": _zero("silver_credit")})
            .withColumns({"lake_debit": F.col("silver_debit") + F.col("quarantine_debit"),
                          "lake_credit": F.col("silver_credit") + F.col("quarantine_credit"),
                          "amounts_comparable": comparable}))


def file_differences(files: DataFrame) -> DataFrame:
    """Per-file identities that do not hold (input: :func:`file_totals`)."""
    scope = F.concat_ws(" ", "source_system", "source_file")
    noop = F.col("accepted") - F.col("inserted")
    checks = [
        ("control count", F.col("control_count"), F.col("accepted") + F.col("quarantined"),
         F.format_string("trailer count vs %d accepted + %d quarantined", "accepted", "quarantined")),
        ("quarantined records", F.col("quarantined"), F.col("quarantine_rows"),
         F.lit("ledger's records_quarantined vs rows in ops.quarantine")),
        ("new rows in silver", F.col("inserted"), F.col("silver_rows"),
         F.format_string("ledger's rows_inserted vs rows in silver.transactions (%d no-op duplicates)", noop)),
        ("debit total", F.col("control_debit"), F.col("lake_debit"),
         F.format_string("trailer vs silver %s + quarantined %s", "silver_debit", "quarantine_debit")),
        ("credit total", F.col("control_credit"), F.col("lake_credit"),
         F.format_string("trailer vs silver %s + quarantined %s", "silver_credit", "quarantine_credit")),
    ]
    parts = []
    for check, expected, actual, detail in checks:
        differs = ~expected.eqNullSafe(actual)
        if check.endswith("total"):
            differs = differs & F.col("amounts_comparable")
        parts.append(files.where(differs).select(*_difference(check, F.col("month"), scope, expected, actual, detail)))
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def month_totals(files: DataFrame) -> DataFrame:
    """Control totals per business month of the files, next to what the lake holds (input: :func:`file_totals`)."""
    return (files.groupBy(F.coalesce("month", F.lit("undated")).alias("month")).agg(
        F.count(F.lit(1)).alias("files"),
        F.sum("control_count").alias("control_count"),
        F.sum("accepted").alias("accepted"),
        F.sum("quarantined").alias("quarantined"),
        F.sum("inserted").alias("new_rows"),
        F.sum("silver_rows").alias("silver_rows"),
        F.sum("quarantine_rows").alias("quarantine_rows"),
        F.sum("control_debit").alias("control_debit"),
        F.sum("lake_debit").alias("lake_debit"),
        F.sum("control_credit").alias("control_credit"),
        F.sum("lake_credit").alias("lake_credit"),
        F.count_if(~F.col("amounts_comparable")).alias("files_not_compared"),
    ).orderBy("month"))


def month_differences(months: DataFrame) -> DataFrame:
    """Monthly sums that do not hold (input: :func:`month_totals`); amounts only when every file compares."""
    scope = F.concat(F.lit("month "), F.col("month"))
    checks = [
        ("month control count", F.col("control_count"), F.col("accepted") + F.col("quarantined")),
        ("month rows", F.col("new_rows") + F.col("quarantined"), F.col("silver_rows") + F.col("quarantine_rows")),
        ("month debit total", F.col("control_debit"), F.col("lake_debit")),
        ("month credit total", F.col("control_credit"), F.col("lake_credit")),
    ]
    parts = []
    for check, expected, actual in checks:
        differs = ~expected.eqNullSafe(actual)
        if "total" in check:
            differs = differs & (F.col("files_not_compared") == 0)
        parts.append(months.where(differs).select(*_difference(check, F.col("month"), scope, expected, actual)))
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def orphan_differences(silver: DataFrame, ledger: DataFrame) -> DataFrame:
    """Batch rows in silver whose file the ledger does not record as LOADED (input: :func:`silver_totals`)."""
    loaded = ledger.where(F.col("status") == "LOADED").select("source_system", "source_file").distinct()
    orphans = silver.join(loaded, ["source_system", "source_file"], "left_anti")
    return orphans.select(*_difference(
        "rows without a loaded file", F.col("posting_month"), F.concat_ws(" ", "source_system", "source_file"),
        F.lit(0), F.col("silver_rows"), F.lit("silver rows whose file is not LOADED in ops.load_ledger")))


def duplicate_differences(silver: DataFrame) -> DataFrame:
    """txn_ids with more than one row in silver (the lake keeps one row per txn_id)."""
    per_txn = (silver.groupBy("txn_id")
               .agg(F.count(F.lit(1)).alias("n"),
                    F.min("posting_month").alias("month"),
                    F.array_join(F.array_sort(F.collect_list(F.concat_ws(":", "source_system", "source_file"))),
                                 ", ").alias("files")))
    return per_txn.where("n > 1").select(*_difference(
        "one row per txn_id", F.col("month"), F.concat(F.lit("txn_id "), F.col("txn_id")), F.lit(1), F.col("n"),
        F.concat(F.lit("rows from "), F.col("files"))))


def parity_differences(parity: DataFrame, since: str | None = None) -> DataFrame:
    """Batch-vs-stream differences recorded in ops.parity (detected at or after ``since``, when given)."""
    if since is not None and "detected_at" in parity.columns:
        parity = parity.where(F.col("detected_at") >= F.to_timestamp(F.lit(since)))
    value = lambda c: F.coalesce(F.col(c).cast("string"), F.lit("NULL"))  # noqa: E731
    return parity.select(*_difference(
        "batch vs stream", F.lit(None), F.concat(F.lit("txn_id "), F.col("txn_id"), F.lit(" "), F.col("field")),
        value("batch_value"), value("streamed_value"),
        F.lit("the end-of-day file (expected) differs from the streamed event (actual)")))


def with_amount(spec: SourceSpec) -> Callable[[DataFrame], DataFrame]:
    """quarantine rows -> the same rows with ``amount`` re-parsed from their raw record by the feed's parser."""

    def _amount(rows: DataFrame) -> DataFrame:
        records = rows.withColumnsRenamed({"source_sha256": "file_sha", "raw_record": "raw"})
        if spec.from_quarantine is not None:
            records = records.transform(spec.from_quarantine)
        return (records.transform(spec.parse).select("file_sha", F.expr(spec.mapping["amount"]).alias("amount"))
                .withColumnRenamed("file_sha", "source_sha256"))

    return _amount


def first_rows(differences: DataFrame, per_check: int) -> DataFrame:
    """At most ``per_check`` differences of each check (for printing), with the check's total count."""
    by_check = Window.partitionBy("check")
    ranked = differences.withColumns({
        "_n": F.row_number().over(by_check.orderBy("scope")),
        "of_check": F.count(F.lit(1)).over(by_check),
    })
    return ranked.where(F.col("_n") <= per_check).drop("_n").orderBy("check", "scope")
