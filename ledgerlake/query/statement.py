"""``ledgerlake statement --account A --from D1 --to D2``: one account's transactions, oldest first.

Months inside the serving window are read from ``serving.transactions_recent``,
older months from ``silver.transactions``. The account id and the dates are bound
as SQL parameters; the account id is checked to be 12 digits before anything runs.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

from ledgerlake.config import ConfigError, add_common_arguments, config_from_args, parse_iso_date
from ledgerlake.console import configure_logging, exit_statuses, fail, render_table, timed
from ledgerlake.serving import serving_window

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row

    from ledgerlake.lake import Lake

log = logging.getLogger(__name__)

SILVER = "silver.transactions"
SERVING = "serving.transactions_recent"
# The lake contract's columns, in contract order: what csv and json print.
COLUMNS = ["txn_id", "source_system", "account_id", "posting_date", "posted_at", "value_date", "txn_code",
           "amount", "currency", "channel", "description", "balance_after", "reversal_of"]
# What the table format shows (the account is in the heading).
TABLE_COLUMNS = ["posting_date", "posted_at", "txn_id", "txn_code", "channel", "description", "amount",
                 "currency", "balance_after", "reversal_of"]
ORDER = ["posting_date", "posted_at", "txn_id"]   # posting_date is the UTC date of posted_at
_ACCOUNT = re.compile(r"[0-9]{12}")

# Parameters only: the account id and dates never become part of the SQL text.
_TIER_QUERY = """
SELECT {columns}
FROM {table}
WHERE account_id = :account
  AND posting_date BETWEEN :first_day AND :last_day
  AND posting_month BETWEEN :first_month AND :last_month
"""


class StatementError(ValueError):
    """The statement request is malformed."""


@dataclass(frozen=True)
class TierRead:
    """One tier and the posting dates a statement reads from it."""

    table: str
    first_day: date
    last_day: date

    def describe(self) -> str:
        return f"{self.first_day:%Y-%m}..{self.last_day:%Y-%m} from {self.table}"


def check_account(account: str) -> str:
    """The account id if it is exactly 12 digits (leading zeros kept), else a StatementError."""
    if not _ACCOUNT.fullmatch(account or ""):
        raise StatementError(f"--account must be 12 digits, got {account!r}")
    return account


def check_range(first: str, last: str) -> tuple[date, date]:
    """The --from/--to dates, parsed and in order."""
    try:
        start, end = parse_iso_date(first, "--from"), parse_iso_date(last, "--to")
    except ConfigError as exc:
        raise StatementError(str(exc)) from exc
    if start > end:
        raise StatementError(f"--from {start} is after --to {end}")
    return start, end


def plan_tiers(start: date, end: date, window_start: date, serving_exists: bool = True) -> list[TierRead]:
    """Split [start, end] into the part before the serving window (silver) and the part inside it (serving)."""
    if not serving_exists:
        return [TierRead(SILVER, start, end)]
    reads = []
    if start < window_start:
        reads.append(TierRead(SILVER, start, min(end, window_start - timedelta(days=1))))
    if end >= window_start:
        reads.append(TierRead(SERVING, max(start, window_start), end))
    return reads


def statement_frame(lake: Lake, account: str, start: date, end: date, window_start: date) -> DataFrame:
    """The account's transactions in [start, end], each month from the tier that holds it (unordered)."""
    spark = lake.spark
    reads = plan_tiers(start, end, window_start, serving_exists=lake.exists(SERVING))
    frame = None
    for read in reads:
        # The tier by its location: no catalog registration needed, and one session can query several lakes.
        location = lake.path(read.table).replace("`", "``")
        part = spark.sql(
            _TIER_QUERY.format(columns=", ".join(COLUMNS), table=f"delta.`{location}`"),
            args={"account": check_account(account), "first_day": read.first_day, "last_day": read.last_day,
                  "first_month": f"{read.first_day:%Y-%m}", "last_month": f"{read.last_day:%Y-%m}"},
        )
        frame = part if frame is None else frame.unionAll(part)
    assert frame is not None
    log.debug("statement %s..%s: %s", start, end, "; ".join(r.describe() for r in reads))
    return frame


def _order_key(row: Row) -> tuple:
    """Oldest first: posting date, then posted_at (a missing time first in its day), then txn_id."""
    posted = row["posted_at"]
    return row["posting_date"], posted is not None, posted or row["posting_date"], row["txn_id"]


def in_statement_order(rows: list[Row]) -> list[Row]:
    """Sort collected statement rows: a statement is small, so Python sorts it without another Spark job."""
    return sorted(rows, key=_order_key)


@dataclass(frozen=True)
class CurrencyTotal:
    """Per-currency totals of a statement."""

    currency: str
    transactions: int
    debits: Decimal
    credits: Decimal

    @property
    def net(self) -> Decimal:
        return self.debits + self.credits


def currency_totals(rows: list[Row]) -> list[CurrencyTotal]:
    """Count, debits (negative amounts), credits and net per currency."""
    acc: dict[str, list] = defaultdict(lambda: [0, Decimal("0.00"), Decimal("0.00")])
    for row in rows:
        entry = acc[row["currency"] or ""]
        entry[0] += 1
        entry[1 if row["amount"] < 0 else 2] += row["amount"]
    return [CurrencyTotal(c, n, d, cr) for c, (n, d, cr) in sorted(acc.items())]


def render_statement(account: str, start: date, end: date, rows: list[Row], reads: list[TierRead]) -> str:
    """The human-readable statement: heading, transactions, per-currency totals."""
    lines = [f"Statement of account {account}, {start} to {end}",
             "read: " + "; ".join(r.describe() for r in reads), ""]
    lines.append(render_table(TABLE_COLUMNS, [[row[c] for c in TABLE_COLUMNS] for row in rows]))
    lines.append(f"({len(rows)} transaction{'s' if len(rows) != 1 else ''})")
    if rows:
        lines += ["", render_table(["currency", "transactions", "debits", "credits", "net"],
                                   [[t.currency, t.transactions, t.debits, t.credits, t.net]
                                    for t in currency_totals(rows)])]
    return "\n".join(lines)


def print_statement(lake: Lake, account: str, start: date, end: date, window_start: date, fmt: str,
                    out: TextIO | None = None) -> int:
    """Run the statement and print it in the chosen format; returns the number of transactions."""
    out = out or sys.stdout
    frame = statement_frame(lake, account, start, end, window_start)
    if fmt == "json":
        from pyspark.sql import functions as F

        # Spark renders decimals exactly and timestamps in ISO-8601, as `ledgerlake sql --format json` does.
        rows = in_statement_order(frame.select(*ORDER, F.to_json(F.struct(*COLUMNS)).alias("json")).collect())
        out.writelines(row["json"] + "\n" for row in rows)
        return len(rows)
    rows = in_statement_order(frame.collect())
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([["" if row[c] is None else row[c] for c in COLUMNS] for row in rows])
    else:
        reads = plan_tiers(start, end, window_start, serving_exists=lake.exists(SERVING))
        out.write(render_statement(account, start, end, rows, reads) + "\n")
    return len(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerlake statement",
        description="Print one account's transactions in a date range, oldest first (posted_at, then txn_id): "
                    "months in the serving window from serving.transactions_recent, older months from "
                    "silver.transactions.",
        epilog="example: ledgerlake statement --account 000123456789 --from 2024-01-01 --to 2024-12-31",
    )
    parser.add_argument("--account", required=True, metavar="ACCOUNT", help="12-digit account number")
    parser.add_argument("--from", dest="first", required=True, metavar="YYYY-MM-DD", help="first posting date")
    parser.add_argument("--to", dest="last", required=True, metavar="YYYY-MM-DD", help="last posting date (inclusive)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="table (default, with per-currency totals), csv with a header line, "
                             "or json: one object per transaction")
    add_common_arguments(parser)
    return parser


@exit_statuses("statement")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        account = check_account(args.account)
        start, end = check_range(args.first, args.last)
    except (ConfigError, StatementError) as exc:
        return fail("statement", str(exc))
    configure_logging(config.log_level)

    from ledgerlake.lake import Lake
    from ledgerlake.session import build_session

    spark = build_session(config, "ledgerlake-statement")
    lake = Lake(spark, config.warehouse).require()
    window_start = serving_window(config).first_day
    with timed(log, f"statement {account} {start}..{end}"):
        print_statement(lake, account, start, end, window_start, args.format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
