"""Serving-tier roll-off: rows older than the serving window leave serving.transactions_recent.

Only after a check that every one of them is in silver.transactions with identical values
(count and sum per month, and value by value); a failed check changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from pyspark.sql import functions as F

from ledgerlake.console import render_table, timed
from ledgerlake.lake import Lake
from ledgerlake.load.sinks import roll_off_serving
from ledgerlake.serving import ServingWindow
from transforms.parity import PARITY_FIELDS
from warehouse.tables import SERVING_TRANSACTIONS

log = logging.getLogger("ledgerlake.maintain")


class RollOffCheckError(RuntimeError):
    """Rows about to leave the serving tier are not all in silver with identical values."""


@dataclass
class MonthCheck:
    """Serving rows of one month about to roll off, against silver."""

    month: str
    serving_rows: int
    serving_sum: Decimal
    identical_rows: int
    identical_sum: Decimal

    @property
    def ok(self) -> bool:
        return self.serving_rows == self.identical_rows and self.serving_sum == self.identical_sum


@dataclass
class RollOffResult:
    """What the roll-off checked and removed."""

    window: str
    months: list[MonthCheck] = field(default_factory=list)
    removed_rows: int = 0

    def render(self) -> str:
        if not self.months:
            return f"roll-off: nothing older than the serving window {self.window}"
        table = render_table(["month", "rows", "sum", "in silver, identical"],
                             [(m.month, m.serving_rows, m.serving_sum, m.identical_rows) for m in self.months])
        return (f"roll-off: {self.removed_rows:,} row(s) of {len(self.months)} month(s) left the serving tier "
                f"(window {self.window}), each checked against silver\n{table}")


def roll_off(lake: Lake, window: ServingWindow) -> RollOffResult:
    """Remove serving rows older than the window in one commit, after the parity check against silver."""
    version = lake.version(SERVING_TRANSACTIONS.name)
    old = (lake.spark.read.format("delta").option("versionAsOf", version)
           .load(lake.path("serving.transactions_recent"))
           .where(F.col("posting_month") < window.first_month))
    result = RollOffResult(str(window))
    with timed(log, "roll-off check against silver"):
        months = sorted(r[0] for r in old.select("posting_month").distinct().collect())
        if not months:
            log.info("roll-off: serving holds nothing older than %s", window.first_month)
            return result
        silver = lake.read("silver.transactions").where(F.col("posting_month").isin(months))
        same = F.lit(True)
        for name in ["txn_id", "source_system", *PARITY_FIELDS]:
            same = same & F.col(f"s.{name}").eqNullSafe(F.col(f"b.{name}"))
        checked = (old.alias("s").join(silver.alias("b"), F.col("s.txn_id") == F.col("b.txn_id"), "left")
                   .groupBy(F.col("s.posting_month").alias("month"))
                   .agg(F.count(F.lit(1)).alias("serving_rows"),
                        F.coalesce(F.sum("s.amount"), F.lit(0)).alias("serving_sum"),
                        F.count_if(same).alias("identical_rows"),
                        F.coalesce(F.sum(F.when(same, F.col("b.amount"))), F.lit(0)).alias("identical_sum"))
                   .orderBy("month").collect())
    result.months = [MonthCheck(r["month"], r["serving_rows"], r["serving_sum"], r["identical_rows"],
                                r["identical_sum"]) for r in checked]
    bad = [m for m in result.months if not m.ok]
    if bad:
        raise RollOffCheckError("; ".join(
            f"{m.month}: serving has {m.serving_rows} row(s) summing {m.serving_sum}, "
            f"silver has {m.identical_rows} of them identical summing {m.identical_sum}" for m in bad))

    with timed(log, f"roll-off delete of {len(months)} month(s)"):
        roll_off_serving(lake, window.first_month)
    result.removed_rows = sum(m.serving_rows for m in result.months)
    log.info("roll-off: removed %d row(s) of months %s from the serving tier", result.removed_rows, ", ".join(months))
    return result
