"""The gate's metrics, computed in few Spark aggregation passes over data already at hand.

* batch pass: ONE pass over the batch's (cached) classified records computes every counted
  check of the batch suite (per file) and of the table suite on the NEW rows (per month);
* table pass: one pass over the touched months already in the table (partition-pruned,
  column-pruned) for the table suite's counted checks;
* uniqueness pass: one grouping by a 64-bit hash of the key over the new rows and the
  touched months; only colliding hashes are looked at again, by the key itself.

A pass evaluates each check once per row into a bit of a mask and groups the rows by
(file, month, verdict, mask): clean rows share mask 0, so a handful of aggregates per
group replace two or three per check, and the groups (a few per file) come back to the
driver, where pandas expands the masks into per-check counts, examples and largest values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from expectations.plan import ALL_ROWS, Expectation

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame

log = logging.getLogger("ledgerlake.dq")

ACCEPTED_SQL = "verdict IN ('NEW', 'NOOP')"
NEW_SQL = "verdict = 'NEW'"
NO_MONTH = "(none)"       # month key of rows without a posting month
NEW_PREFIX = "new__"      # table-suite metrics over a batch's NEW rows, in the batch pass
MAX_DUPLICATES = 10_000   # duplicated keys brought back to the driver, at most
BITS_PER_MASK = 62


def metric_columns(expectations: list[Expectation], prefix: str = "") -> dict[str, str]:
    """Metric columns of counted checks and how to combine them across groups (sum, min, max)."""
    out: dict[str, str] = {}
    for e in expectations:
        if not e.counted:
            continue
        out[prefix + e.metric] = "sum"
        out[f"{prefix}{e.metric}__example"] = "min"
        if e.value is not None:
            out[f"{prefix}{e.metric}__max"] = "max"
    return out


@dataclass(frozen=True)
class _Flag:
    """A counted check as one bit of a mask column."""

    expectation: Expectation
    mask: str
    bit: int
    prefix: str
    example: str               # column whose smallest value among breaking rows is the example
    value: str | None          # column holding the check's value (largest is reported)


class _Masks:
    """Counted checks packed into BIGINT mask columns, plus the value columns they report."""

    def __init__(self) -> None:
        self.flags: list[_Flag] = []
        self.terms: dict[str, list[str]] = {}
        self.values: dict[str, str] = {}     # SQL value expression -> column name

    def add(self, checks: list[Expectation], rows_sql: dict[str, str], example: str, prefix: str = "") -> None:
        for e in checks:
            if not e.counted:
                continue
            index = len(self.flags)
            mask, bit = f"_mask{index // BITS_PER_MASK}", index % BITS_PER_MASK
            self.terms.setdefault(mask, []).append(
                f"CASE WHEN coalesce(({rows_sql[e.rows]}) AND ({e.breaks}), FALSE) THEN {1 << bit}L ELSE 0L END")
            value = None
            if e.value is not None:
                value = self.values.setdefault(e.value, f"_value{len(self.values)}")
            self.flags.append(_Flag(e, mask, bit, prefix, example, value))

    def columns(self) -> list[Column]:
        from pyspark.sql import functions as F

        masks = [F.expr(" + ".join(terms) if terms else "0L").alias(name) for name, terms in self.terms.items()]
        values = [F.expr(f"CAST({sql} AS DOUBLE)").alias(name) for sql, name in self.values.items()]
        return masks + values

    def aggregates(self, examples: list[str]) -> tuple[list[Column], list[str]]:
        """count, smallest example per example column, largest value per value column (and their names)."""
        from pyspark.sql import functions as F

        names = ["_n", *[f"_min_{c}" for c in examples], *[f"_max_{c}" for c in self.values.values()]]
        aggs = ([F.count(F.lit(1))] + [F.min(c) for c in examples] + [F.max(c) for c in self.values.values()])
        return [a.alias(n) for a, n in zip(aggs, names, strict=True)], names

    def expand(self, groups: pd.DataFrame, by: list[str]) -> pd.DataFrame:
        """Per ``by`` group: for every check, the rows that break it, the smallest example, the largest value."""
        import pandas as pd

        groups = groups.copy()
        for column in groups.columns:
            if column.startswith("_min_"):     # NULL-tolerant minimum: strings as pandas strings, else numbers
                texts = groups[column].map(lambda v: isinstance(v, str)).any()
                groups[column] = groups[column].astype("string") if texts else pd.to_numeric(
                    groups[column], errors="coerce")
        keys = groups[by].drop_duplicates().reset_index(drop=True)
        out = keys.copy()
        for flag in self.flags:
            name = flag.prefix + flag.expectation.metric
            hit = groups[(groups[flag.mask].astype("int64") & (1 << flag.bit)) != 0] if len(groups) else groups
            agg = {"_n": "sum", f"_min_{flag.example}": "min"}
            if flag.value:
                agg[f"_max_{flag.value}"] = "max"
            per = hit.groupby(by, dropna=False).agg(agg).reset_index() if len(hit) else pd.DataFrame(
                columns=[*by, *agg])
            per = per.rename(columns={"_n": name, f"_min_{flag.example}": f"{name}__example",
                                      f"_max_{flag.value}": f"{name}__max"})
            out = out.merge(per, on=by, how="left")
            out[name] = pd.to_numeric(out[name], errors="coerce").fillna(0).astype("int64")
            if f"{name}__max" not in out.columns and flag.expectation.value is not None:
                out[f"{name}__max"] = None
        loose = [c for c in out.columns if c.endswith(("__example", "__max"))]
        out[loose] = out[loose].astype("object").where(out[loose].notna(), None)
        return out


def _collect(df: DataFrame, columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([r.asDict() for r in df.collect()], columns=columns)


def batch_pass(classified: DataFrame, business_dates: DataFrame, batch_checks: list[Expectation],
               table_checks: list[Expectation]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One aggregation over a batch's classified records: a row per (file_sha, posting month).

    Also returns the records per (file_sha, month, verdict, reason), the counts a job
    reports per file, so it need not count them again.

    ``business_dates`` (file_sha, business_date) is broadcast to the records. Batch checks
    count over all or the accepted records (example: the record number); table checks
    (columns prefixed ``new__``, example: the txn_id) over the NEW rows, those the publish
    would add. NEW rows without a ``posting_month`` get the one the writer derives.
    """
    import pandas as pd
    from pyspark.sql import functions as F

    from warehouse.tables import MONTH_EXPR

    df = classified.drop("business_date")
    if "posting_month" not in df.columns:
        df = df.withColumn("posting_month", F.expr(MONTH_EXPR))
    df = df.join(F.broadcast(business_dates), "file_sha", "left")
    masks = _Masks()
    masks.add(batch_checks, {ALL_ROWS: "TRUE", "accepted": ACCEPTED_SQL}, "record_no")
    masks.add(table_checks, {ALL_ROWS: NEW_SQL, "accepted": NEW_SQL}, "txn_id", NEW_PREFIX)
    projected = df.select("file_sha", F.coalesce(F.col("posting_month"), F.lit(NO_MONTH)).alias("month"),
                          "verdict", "reason", "record_no", "txn_id", *masks.columns())
    keys = ["file_sha", "month", "verdict", "reason", *masks.terms]
    aggs, names = masks.aggregates(["record_no", "txn_id"])
    groups = _collect(projected.groupBy(*keys).agg(*aggs), [*keys, *names])
    out = masks.expand(groups, ["file_sha", "month"])
    verdict = groups["verdict"]
    for name, chosen in (("records_classified", verdict.isin(["NEW", "NOOP", "QUARANTINED"])),
                         ("accepted", verdict.isin(["NEW", "NOOP"])), ("quarantined", verdict == "QUARANTINED"),
                         (NEW_PREFIX + "rows", verdict == "NEW")):
        counts = groups[chosen].groupby(["file_sha", "month"], dropna=False)["_n"].sum().rename(name).reset_index()
        out = out.merge(counts, on=["file_sha", "month"], how="left")
        out[name] = pd.to_numeric(out[name], errors="coerce").fillna(0).astype("int64")
    verdicts = (groups.groupby(["file_sha", "month", "verdict", "reason"], dropna=False)["_n"].sum()
                .rename("count").reset_index())
    return out, verdicts


def table_pass(rows: DataFrame, table_checks: list[Expectation]) -> pd.DataFrame:
    """One aggregation over table rows (or rows about to be written): a row per posting month."""
    from pyspark.sql import functions as F

    masks = _Masks()
    masks.add(table_checks, {ALL_ROWS: "TRUE", "accepted": "TRUE"}, "txn_id")
    projected = rows.select(F.coalesce(F.col("posting_month"), F.lit(NO_MONTH)).alias("month"), "txn_id",
                            *masks.columns())
    keys = ["month", *masks.terms]
    aggs, names = masks.aggregates(["txn_id"])
    groups = _collect(projected.groupBy(*keys).agg(*aggs), [*keys, *names])
    out = masks.expand(groups, ["month"])
    rows_per_month = groups.groupby("month", dropna=False)["_n"].sum().rename("rows").reset_index()
    return out.merge(rows_per_month, on="month", how="left")


def duplicates_pass(new_keys: DataFrame | None, old_keys: DataFrame | None, column: str) -> pd.DataFrame:
    """Values of ``column`` held by more than one row of the prospective state, per month.

    ``new_keys``: (``column``, month) of the rows to publish; ``old_keys``: (``column``,
    month, replaceable) of the rows already in the touched months, ``replaceable`` when a
    new row with the same value supersedes it (an upsert, or a batch row replacing the
    streamed version). A duplicated value is counted in each month it occurs in (at most
    its first and last month).

    The rows are grouped by a 64-bit hash of the key (a cheap shuffle of longs); the few
    hashes seen more than once are then grouped by the key itself, so a hash collision
    never passes for a duplicate.
    """
    import pandas as pd
    from pyspark.sql import functions as F

    empty = pd.DataFrame(columns=["month", "duplicates", "duplicates__example"])
    parts = []
    if new_keys is not None:
        parts.append(new_keys.select(F.col(column).alias("key"), "month", F.lit(True).alias("is_new"),
                                     F.lit(False).alias("replaceable")))
    if old_keys is not None:
        parts.append(old_keys.select(F.col(column).alias("key"), "month", F.lit(False).alias("is_new"),
                                     "replaceable"))
    if not parts:
        return empty
    keys = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
    keys = keys.withColumn("hash", F.xxhash64("key"))

    def prospective():  # noqa: ANN202
        """Rows holding the value after the publish: the new ones and the old ones they do not replace."""
        n_new, n_old = F.count_if(F.col("is_new")), F.count_if(~F.col("is_new"))
        n_kept = F.count_if(~F.col("is_new") & ~F.col("replaceable"))
        return F.when(n_new > 0, n_new + n_kept).otherwise(n_old).alias("n")

    suspects = [r["hash"] for r in keys.groupBy("hash").agg(prospective()).where(F.col("n") > 1)
                .select("hash").limit(MAX_DUPLICATES + 1).collect()]
    if not suspects:
        return empty
    dups = (keys.where(F.col("hash").isin(suspects)).groupBy("key")
            .agg(prospective(), F.min("month").alias("first"), F.max("month").alias("last"))
            .where(F.col("n") > 1).collect())
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    for row in dups:
        key = str(row["key"])
        for month in {row["first"], row["last"]}:
            counts[month] = counts.get(month, 0) + 1
            examples[month] = min(examples.get(month, key), key)
    if len(suspects) > MAX_DUPLICATES:   # a runaway defect: the counts are lower bounds, the verdict stands
        log.warning("more than %d duplicated %s values; counts per month are lower bounds", MAX_DUPLICATES, column)
    return pd.DataFrame([{"month": m, "duplicates": n, "duplicates__example": examples[m]} for m, n in counts.items()],
                        columns=["month", "duplicates", "duplicates__example"])


def combine(frames: list[pd.DataFrame], by: str, how: dict[str, str]) -> pd.DataFrame:
    """Roll partial aggregates up by ``by``: counts add up, examples take the smallest, values the largest."""
    import pandas as pd

    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=[by, *how])
    data = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].copy()
    for column, fn in how.items():
        values = data[column] if column in data.columns else pd.Series([None] * len(data), dtype="object")
        if fn == "sum":
            data[column] = pd.to_numeric(values, errors="coerce").fillna(0).astype("int64")
        elif values.map(lambda v: isinstance(v, str)).any():
            data[column] = values.astype("string")
        else:
            data[column] = pd.to_numeric(values, errors="coerce").astype("float64")
    out = data.groupby(by, sort=True, dropna=False).agg(how).reset_index()
    loose = [c for c, fn in how.items() if fn != "sum"]
    out[loose] = out[loose].astype("object").where(out[loose].notna(), None)
    return out
