"""Validation transforms shared by every batch feed: file verdicts, record reasons, duplicates."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from transforms.legacy.spec import DUPLICATE_TXN_ID, FileCheck, RecordRule, SourceSpec

NEW = "NEW"              # accepted, adds a row to silver
NOOP = "NOOP"            # accepted, identical to the row silver already holds (or an earlier file)
QUARANTINED = "QUARANTINED"


def first_failing(checks: list[tuple[str, str]], default: str = "NULL") -> str:
    """SQL CASE giving the value paired with the first condition that holds."""
    if not checks:
        return default
    return "CASE " + " ".join(f"WHEN {cond} THEN {value}" for cond, value in checks) + f" ELSE {default} END"


def file_statistics(spec: SourceSpec) -> Callable[[DataFrame], DataFrame]:
    """records -> one row per file with the statistics the file checks read."""

    def _stats(records: DataFrame) -> DataFrame:
        return records.groupBy("file_sha").agg(*[F.expr(e).alias(n) for n, e in spec.file_stats.items()])

    return _stats


def with_file_verdict(checks: list[FileCheck], control_totals: dict[str, str]) -> Callable[[DataFrame], DataFrame]:
    """files+statistics -> adds ``reason``/``reason_detail`` (first failing check) and control totals."""
    reason = first_failing([(f"coalesce({c.fails}, TRUE)", f"'{c.reason}'") for c in checks])
    detail = first_failing([(f"coalesce({c.fails}, TRUE)", c.detail) for c in checks])

    def _verdict(files: DataFrame) -> DataFrame:
        with_reason = files.selectExpr("*", f"{reason} AS reason", f"{detail} AS reason_detail")
        return with_reason.selectExpr(
            "*", *[f"CASE WHEN reason IS NULL THEN {expr} END AS {name}" for name, expr in control_totals.items()]
        )

    return _verdict


def with_record_reason(rules: list[RecordRule]) -> Callable[[DataFrame], DataFrame]:
    """Adds ``reason``: the first rule (in contract order) that the record breaks, else NULL."""
    case = first_failing([(f"NOT coalesce({r.valid}, FALSE)", f"'{r.reason}'") for r in rules])
    return lambda records: records.withColumn("reason", F.expr(case))


def duplicate_suspects(existing: DataFrame | None, few_keys: bool = False) -> Callable[[DataFrame], DataFrame]:
    """records -> the txn_ids that need the ordered duplicate rules (distinct ``txn_id``).

    A txn_id is a suspect when it occurs more than once among the records (valid or not:
    a superset is harmless) or is already in silver. In practice these are few, so the
    ordered window logic runs on a small subset and the wide records are never shuffled.
    ``few_keys``: the records are few (a daily file): their keys are broadcast, so silver's
    txn_ids are scanned, never shuffled.
    """

    def _suspects(records: DataFrame) -> DataFrame:
        keys = records.select("txn_id")
        repeated = keys.groupBy("txn_id").count().where("count > 1").select("txn_id")
        if existing is None:
            return repeated
        known = existing.select("txn_id").join(F.broadcast(keys) if few_keys else keys, "txn_id", "left_semi")
        return repeated.unionByName(known).distinct()

    return _suspects


def with_duplicate_verdict(existing: DataFrame | None,
                           suspects: DataFrame | list[str]) -> Callable[[DataFrame], DataFrame]:
    """Apply the duplicate rules within and across files, and against silver's book rows.

    Input: records with ``file_sha, file_order, record_no, txn_id, record_hash, reason``.
    ``existing`` holds ``txn_id, existing_hash`` of rows already loaded from batch files;
    ``suspects`` the txn_ids from :func:`duplicate_suspects`, as a DataFrame or, when few,
    as a list (a plain filter Spark pushes below the parsing, so only suspect records
    are parsed twice).
    Adds ``verdict`` (NEW, NOOP, QUARANTINED) and sets ``reason`` to DUPLICATE_TXN_ID where due.
    Files are applied in ``file_order`` as if loaded one after another.
    """

    def _simple(records: DataFrame) -> DataFrame:
        valid = F.col("reason").isNull()
        return records.withColumn("verdict", F.when(valid, F.lit(NEW)).otherwise(F.lit(QUARANTINED)))

    def _verdict(records: DataFrame) -> DataFrame:
        if isinstance(suspects, list):
            if not suspects:
                return records.transform(_simple)
            is_suspect = F.col("txn_id").isin(suspects)
            simple = records.where(~is_suspect).transform(_simple)
            ordered = records.where(is_suspect).transform(_ordered_verdict(existing))
            return simple.unionByName(ordered)
        flagged = records.join(F.broadcast(suspects.withColumn("_suspect", F.lit(True))), "txn_id", "left")
        simple = flagged.where(F.col("_suspect").isNull()).transform(_simple)
        ordered = flagged.where(F.col("_suspect")).transform(_ordered_verdict(existing))
        return simple.drop("_suspect").unionByName(ordered.drop("_suspect"))

    return _verdict


def _ordered_verdict(existing: DataFrame | None) -> Callable[[DataFrame], DataFrame]:
    """The duplicate rules for txn_ids that occur more than once (in the batch or with silver)."""

    def _verdict(records: DataFrame) -> DataFrame:
        valid = F.col("reason").isNull()
        in_file = Window.partitionBy("txn_id", "file_sha")
        in_file_ordered = in_file.orderBy("record_no").rowsBetween(Window.unboundedPreceding, Window.currentRow)
        across = Window.partitionBy("txn_id")

        df = records.repartition("txn_id")
        df = df.withColumns({
            "_valid_in_file": F.count(F.when(valid, 1)).over(in_file),
            "_distinct_in_file": F.when(
                F.min(F.when(valid, F.col("record_hash"))).over(in_file)
                != F.max(F.when(valid, F.col("record_hash"))).over(in_file), True).otherwise(False),
            "_rank_in_file": F.count(F.when(valid, 1)).over(in_file_ordered),
        })
        # A record that survives its own file: the first of identical copies, with no conflicting copy.
        survivor = valid & ~F.col("_distinct_in_file") & (F.col("_rank_in_file") == 1)
        df = df.withColumn("_survivor", survivor)
        df = df.withColumns({
            "_first_order": F.min(F.when(F.col("_survivor"), F.col("file_order"))).over(across),
            "_first_hash": F.min_by(F.col("record_hash"),
                                    F.when(F.col("_survivor"), F.col("file_order"))).over(across),
        })
        if existing is not None:
            df = df.join(existing, on="txn_id", how="left")
        else:
            df = df.withColumn("existing_hash", F.lit(None).cast("bigint"))
        reference = F.coalesce(F.col("existing_hash"), F.col("_first_hash"))
        verdict = (
            F.when(~valid, F.lit(QUARANTINED))
            .when(~F.col("_survivor"), F.lit(QUARANTINED))
            .when(F.col("record_hash") != reference, F.lit(QUARANTINED))
            .when(F.col("existing_hash").isNotNull() | (F.col("file_order") != F.col("_first_order")), F.lit(NOOP))
            .otherwise(F.lit(NEW))
        )
        return (
            df.withColumn("verdict", verdict)
            .withColumn("reason", F.when(valid & (F.col("verdict") == QUARANTINED), F.lit(DUPLICATE_TXN_ID))
                        .otherwise(F.col("reason")))
            .drop("_valid_in_file", "_distinct_in_file", "_rank_in_file", "_survivor", "_first_order",
                  "_first_hash", "existing_hash")
        )

    return _verdict


def to_canonical(spec: SourceSpec) -> Callable[[DataFrame], DataFrame]:
    """Parsed detail records -> the lake contract's columns (plus whatever lineage is present)."""

    def _map(records: DataFrame) -> DataFrame:
        return records.withColumns({name: F.expr(expr) for name, expr in spec.mapping.items()})

    return _map
