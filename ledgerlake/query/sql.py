"""``ledgerlake sql "QUERY" [--format table|csv|json]``: Spark SQL over the lake's tables by name."""

from __future__ import annotations

import argparse
import csv
import getpass
import logging
import sys
from typing import TYPE_CHECKING

from ledgerlake.config import ConfigError, add_common_arguments, config_from_args
from ledgerlake.console import configure_logging, exit_statuses, fail, render_table
from ledgerlake.extensions import REFUSED

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger("ledgerlake.sql")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerlake sql",
        description="Run a Spark SQL query against the lake (silver.*, serving.*, ops.* by name).",
        epilog='example: ledgerlake sql "SELECT status, count(*) FROM ops.load_ledger GROUP BY status"',
    )
    parser.add_argument("query", help="the SQL statement")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="table (default), csv with a header line, or json: one object per row")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="print at most N rows")
    parser.add_argument("--allow-writes", action="store_true",
                        help="accept statements that change the lake or the session (default: queries only: "
                             "SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)")
    add_common_arguments(parser)
    return parser


def print_result(df: DataFrame, fmt: str, limit: int | None = None, out=None) -> int:  # noqa: ANN001
    """Print a query result in the chosen format; returns the number of rows printed."""
    out = out or sys.stdout
    if limit is not None:
        df = df.limit(limit)
    if fmt == "json":
        # Spark renders decimals exactly and dates/timestamps in ISO-8601.
        lines = df.toJSON().collect()
        for line in lines:
            out.write(line + "\n")
        return len(lines)
    rows = df.collect()
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(df.columns)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    else:
        out.write(render_table(df.columns, rows) + "\n")
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
    return len(rows)


@exit_statuses("sql")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        return fail("sql", str(exc))
    configure_logging(config.log_level)
    if not args.query.strip():
        return fail("sql", "the query is empty")

    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    from ledgerlake.extensions import check_read_only, is_refusal, read_only_conf
    from ledgerlake.lake import open_lake
    from ledgerlake.session import build_session

    spark = build_session(config, "ledgerlake-sql")
    open_lake(spark, config.warehouse)
    if not args.allow_writes:
        for key, value in read_only_conf(config.warehouse).items():
            spark.conf.set(key, value)
        check_read_only(spark)
    log.info("query by %s: %s", getpass.getuser(), " ".join(args.query.split()))
    try:
        print_result(spark.sql(args.query), args.format, args.limit)
    except (PySparkException, Py4JJavaError) as exc:
        text = str(exc).strip()
        if is_refusal(exc):
            return fail("sql", text[text.index(REFUSED):].splitlines()[0])
        return fail("sql", text.splitlines()[0] if text else type(exc).__name__, code=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
