"""Reconciliation job: control totals per file and month, ledger vs silver, one row per txn_id, batch vs stream.

    ledgerlake reconcile [--from YYYY-MM] [--to YYYY-MM] [--parity-since TIMESTAMP]
    spark-submit jobs/reconcile.py ...

Reads only (``ledgerlake.upkeep.reconcile``). Prints the control totals per business month,
then a table of every difference (the first few of each kind) and exits 1 when anything
does not reconcile, 0 when everything does, 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledgerlake.config import ConfigError, add_common_arguments, config_from_args
from ledgerlake.console import configure_logging, exit_statuses, fail
from ledgerlake.load.discovery import InputError, month_range


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerlake reconcile",
        description="Check the lake against the batch files' control totals and the stream: per file, per month, "
                    "one row per txn_id, batch vs stream parity. Exit 1 and a table of differences when "
                    "anything does not reconcile.",
    )
    parser.add_argument("--from", dest="month_from", metavar="YYYY-MM",
                        help="first business month of the files to check (default: all)")
    parser.add_argument("--to", dest="month_to", metavar="YYYY-MM", help="last business month to check")
    parser.add_argument("--parity-since", metavar="TIMESTAMP",
                        help="only parity differences detected at or after this ISO date/time (default: all)")
    add_common_arguments(parser)
    return parser


@exit_statuses("reconcile")
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 reconciled, 1 differences, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        configure_logging(config.log_level)
        scope = month_range(args.month_from, args.month_to)
        since = parse_since(args.parity_since)
    except (ConfigError, InputError) as exc:
        return fail("reconcile", str(exc))

    from ledgerlake.lake import open_lake
    from ledgerlake.session import build_session
    from ledgerlake.upkeep.reconcile import reconcile, render_report

    spark = build_session(config, "ledgerlake-reconcile")
    lake = open_lake(spark, config.warehouse)
    result = reconcile(lake, scope, since)
    print(render_report(result))
    return result.exit_code


def parse_since(value: str | None) -> str | None:
    """--parity-since as an ISO timestamp Spark understands (UTC when no zone is given)."""
    if value is None or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--parity-since must be an ISO date or date-time, got {value!r}") from None
    return moment.isoformat(sep=" ")


if __name__ == "__main__":
    sys.exit(main())
