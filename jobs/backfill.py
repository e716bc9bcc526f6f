"""Backfill job: load a legacy feed's batch files into silver.transactions, validated and reconciled.

    ledgerlake backfill --source core_banking --input PATH [--from YYYY-MM] [--to YYYY-MM]
    spark-submit jobs/backfill.py --source core_banking --input PATH ...

The load itself is ``ledgerlake.load.backfill``: files fingerprinted and skipped when the
load ledger has them, untrustworthy files rejected whole, failing records quarantined,
each batch audited by the data-quality suites before one Delta commit publishes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledgerlake.config import ConfigError, LakeConfig, add_common_arguments, config_from_args, parse_iso_date
from ledgerlake.console import configure_logging, exit_statuses, fail, timed
from ledgerlake.load.discovery import Discovery, InputError, MonthRange, discover, month_range
from transforms.legacy import SOURCES, UnknownSourceError, get_source

log = logging.getLogger("ledgerlake.backfill")

SMALL_LOAD_MB = 64     # files of at most this many MB in all run with the settings of small commits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerlake backfill",
        description="Load a legacy feed's batch files into silver.transactions "
                    "(validated, quarantined, reconciled; reruns are no-ops).",
    )
    parser.add_argument("--source", required=True, metavar="SOURCE",
                        help=f"batch feed: {', '.join(sorted(SOURCES))}")
    parser.add_argument("--input", required=True, metavar="PATH", help="directory (searched recursively) or file")
    parser.add_argument("--from", dest="month_from", metavar="YYYY-MM", help="first business month to load")
    parser.add_argument("--to", dest="month_to", metavar="YYYY-MM", help="last business month to load")
    parser.add_argument("--date", dest="business_date", metavar="YYYY-MM-DD",
                        help="load only the files of this business date (the daily batch); not with --from/--to")
    parser.add_argument("--batch-mb", type=int, metavar="MB",
                        help="input size per Delta commit (default: what Spark's memory holds, 40%% of the "
                             "executors' unified memory, 64..4096 MB)")
    parser.add_argument("--expectations", metavar="DIR",
                        help="data-quality suites folder (env LEDGERLAKE_EXPECTATIONS; default: expectations/suites)")
    add_common_arguments(parser)
    parser.epilog = ("exit status: 0 loaded, 1 a file was rejected or the data-quality gate blocked a batch "
                     "(nothing of that batch was written), 2 bad input, 3 transient failure (safe to rerun)")
    return parser


def sized_for(config: LakeConfig, found: Discovery) -> LakeConfig:
    """The job's settings for what it found: a small load (``SMALL_LOAD_MB`` of files at most, a daily
    file) runs with the settings of a short job of small commits; ``--conf`` overrides them."""
    from ledgerlake.session import QUICK_JVM_OPTIONS, small_commit_conf

    if sum(f.size for f in found.files) > SMALL_LOAD_MB << 20:
        return config
    # Its time goes into JVM warm-up, Delta's logs and Spark's planning, not into the records.
    # The layout step after the load compacts the months it wrote, not Delta's auto compaction.
    small = {**small_commit_conf(auto_compact=False), "spark.driver.extraJavaOptions": QUICK_JVM_OPTIONS}
    return dataclasses.replace(config, spark_conf={**small, **config.spark_conf})


@exit_statuses("backfill")
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 a file rejected or a batch blocked, 2 bad input).

    Anything raised is exit status 3 (``exit_statuses``).
    """
    from expectations.gate import BatchGate
    from expectations.suite import SuiteError

    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        configure_logging(config.log_level)
        spec = get_source(args.source)
        # The suites are checked before any data is read: a broken suite file stops the job here.
        gate = BatchGate.load(spec, args.expectations)
        months = month_range(args.month_from, args.month_to)
        day = parse_iso_date(args.business_date, "--date") if args.business_date else None
        if day is not None:
            if months.bounded:
                raise InputError("--date cannot be combined with --from/--to")
            months = MonthRange((day.year, day.month), (day.year, day.month))
        if args.batch_mb is not None and args.batch_mb < 1:
            raise InputError("--batch-mb must be at least 1")
        found = discover(spec, args.input, months, day=day)
    except (ConfigError, InputError, UnknownSourceError, SuiteError) as exc:
        return fail("backfill", str(exc))

    from ledgerlake.lake import open_lake
    from ledgerlake.load.backfill import render_summary, run_backfill
    from ledgerlake.session import build_session

    config = sized_for(config, found)
    with timed(log, "start Spark"):
        spark = build_session(config, f"ledgerlake-backfill-{spec.name}")
    with timed(log, "open the lake"):
        lake = open_lake(spark, config.warehouse, create=True, register=False)
    batch_bytes = None if args.batch_mb is None else args.batch_mb << 20
    result = run_backfill(lake, spec, found, months, batch_bytes=batch_bytes, config=config, gate=gate)
    print(render_summary(result))
    if result.blocked is not None:
        return fail("backfill", result.blocked.message(), code=1)
    return result.exit_code



if __name__ == "__main__":
    sys.exit(main())
