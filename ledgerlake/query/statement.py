"""``ledgerlake statement --account A --from D1 --to D2``: one account's transactions, oldest first.

Months inside the serving window are read from ``serving.transactions_recent``, older
months from ``silver.transactions``, by ``ledgerlake.query.reader`` (delta-rs: no JVM
starts). The same reader, and the same rendering, answer the statement service
(``ledgerlake serve-statements``). The account id is checked to be 12 digits and the
dates to be dates before anything is read.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import logging
import re
import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any, TextIO

from ledgerlake.config import ConfigError, add_common_arguments, config_from_args, parse_iso_date
from ledgerlake.console import configure_logging, exit_statuses, fail, render_table, timed
from ledgerlake.query.reader import COLUMNS, SERVING, SILVER, LakeNotFound, StatementReader, TierRead, plan_tiers
from ledgerlake.serving import serving_window

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

__all__ = ["COLUMNS", "SERVING", "SILVER", "StatementError", "check_account", "check_range", "plan_tiers"]

Row = Mapping[str, Any]
# What the table format shows (the account is in the heading).
TABLE_COLUMNS = ["posting_date", "posted_at", "txn_id", "txn_code", "channel", "description", "amount",
                 "currency", "balance_after", "reversal_of"]
_ACCOUNT = re.compile(r"[0-9]{12}")


class StatementError(ValueError):
    """The statement request is malformed."""


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


def in_statement_order(table: pa.Table) -> pa.Table:
    """Oldest first: posting date, then posted_at (a missing time first in its day), then txn_id."""
    import pyarrow.compute as pc

    order = [("posting_date", "ascending"), ("posted_at", "ascending", "at_start"), ("txn_id", "ascending")]
    return table.take(pc.sort_indices(table, sort_keys=order))


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


def currency_totals(currencies: list[str | None], amounts: list[Decimal]) -> list[CurrencyTotal]:
    """Count, debits (negative amounts), credits and net per currency."""
    acc: dict[str, list] = defaultdict(lambda: [0, Decimal("0.00"), Decimal("0.00")])
    for currency, amount in zip(currencies, amounts, strict=True):
        entry = acc[currency or ""]
        entry[0] += 1
        entry[1 if amount < 0 else 2] += amount
    return [CurrencyTotal(c, n, d, cr) for c, (n, d, cr) in sorted(acc.items())]


def text_value(value: object) -> str:
    """A cell of the csv and table formats: times in UTC as ``YYYY-MM-DD HH:MM:SS``, NULL as empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    return str(value)


def json_value(value: object) -> str:
    """A JSON value of the statement's heading and totals (the transactions are encoded by ``json_rows``)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return f'"{value.isoformat()}"'
    return json.dumps(value, ensure_ascii=False)


def json_object(values: Mapping[str, object]) -> str:
    return "{" + ",".join(f'"{key}":{json_value(value)}' for key, value in values.items()) + "}"


_ROW_TEMPLATE = "{" + ",".join(f'"{c}":%s' for c in COLUMNS) + "}"


def json_rows(table: pa.Table) -> list[str]:
    """One JSON object per row, the contract's columns in order, encoded column by column: amounts as exact
    decimal numbers, dates ISO, times ISO-8601 in UTC with milliseconds (as ``ledgerlake sql --format json``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = []
    for name in COLUMNS:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            millis = pc.cast(column, pa.timestamp("ms", tz="UTC"), safe=False)
            texts = pc.strftime(millis, format="%Y-%m-%dT%H:%M:%S").to_pylist()
            cells.append(["null" if t is None else f'"{t}Z"' for t in texts])
        elif pa.types.is_decimal(column.type):
            cells.append(["null" if t is None else t for t in column.cast(pa.string()).to_pylist()])
        elif pa.types.is_date(column.type):
            cells.append(["null" if t is None else f'"{t}"' for t in column.cast(pa.string()).to_pylist()])
        else:
            cells.append(["null" if t is None else encode_basestring(t) for t in column.to_pylist()])
    return [_ROW_TEMPLATE % values for values in zip(*cells, strict=True)]


@dataclass(frozen=True)
class Statement:
    """One account's transactions in a date range, oldest first, and what they were read from."""

    account: str
    start: date
    end: date
    transactions: pa.Table            # the contract's columns, in statement order
    reads: list[TierRead]
    versions: dict[str, int]          # table -> the version every row of that tier was read at

    @functools.cached_property
    def rows(self) -> list[Row]:
        return self.transactions.to_pylist()

    def totals(self) -> list[CurrencyTotal]:
        return currency_totals(self.transactions.column("currency").to_pylist(),
                               self.transactions.column("amount").to_pylist())

    def json_lines(self) -> str:
        """One JSON object per transaction."""
        return "".join(row + "\n" for row in json_rows(self.transactions))

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([[text_value(row[c]) for c in COLUMNS] for row in self.rows])
        return out.getvalue()

    def table(self) -> str:
        """The human-readable statement: heading, transactions, per-currency totals."""
        lines = [f"Statement of account {self.account}, {self.start} to {self.end}",
                 "read: " + "; ".join(r.describe() for r in self.reads), ""]
        lines.append(render_table(TABLE_COLUMNS, [[None if row[c] is None else text_value(row[c]) for c in TABLE_COLUMNS]
                                                  for row in self.rows]))
        count = self.transactions.num_rows
        lines.append(f"({count} transaction{'s' if count != 1 else ''})")
        if count:
            lines += ["", render_table(["currency", "transactions", "debits", "credits", "net"],
                                       [[t.currency, t.transactions, t.debits, t.credits, t.net]
                                        for t in self.totals()])]
        return "\n".join(lines) + "\n"

    def document(self) -> str:
        """The service's JSON answer: the request, the tiers and versions read, transactions and totals."""
        head = json_object({"account_id": self.account, "from": self.start, "to": self.end})[:-1]
        reads = ",".join(json_object({"table": r.table, "from": r.first_day, "to": r.last_day,
                                      "version": self.versions[r.table]}) for r in self.reads)
        rows = ",".join(json_rows(self.transactions))
        totals = ",".join(json_object({"currency": t.currency, "transactions": t.transactions, "debits": t.debits,
                                       "credits": t.credits, "net": t.net}) for t in self.totals())
        return f'{head},"read":[{reads}],"transactions":[{rows}],"totals":[{totals}]}}'

    def render(self, fmt: str) -> str:
        return {"json": self.json_lines, "csv": self.csv, "table": self.table}[fmt]()


def read_statement(reader: StatementReader, account: str, start: date, end: date, window_start: date,
                   cached_only: bool = False) -> Statement | None:
    """The account's statement from the reader's current snapshots (one per tier); with ``cached_only``, None
    when a file would have to be read (see ``StatementReader.lookup``)."""
    found = reader.lookup(check_account(account), start, end, window_start, cached_only)
    if found is None:
        return None
    return Statement(account, start, end, in_statement_order(found.transactions), found.reads, found.versions)


def print_statement(reader: StatementReader, account: str, start: date, end: date, window_start: date, fmt: str,
                    out: TextIO | None = None) -> int:
    """Read the statement and print it in the chosen format; returns the number of transactions."""
    statement = read_statement(reader, account, start, end, window_start)
    assert statement is not None
    (out or sys.stdout).write(statement.render(fmt))
    return statement.transactions.num_rows


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

    try:
        reader = StatementReader(config.warehouse).open()
    except LakeNotFound as exc:
        return fail("statement", str(exc))
    window_start = serving_window(config).first_day
    with timed(log, f"statement {account} {start}..{end}"):
        print_statement(reader, account, start, end, window_start, args.format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
