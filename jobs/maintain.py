"""Maintenance job: serving-tier roll-off, OPTIMIZE/Z-ORDER and VACUUM (``ledgerlake.upkeep``).

    ledgerlake maintain --roll-off
    ledgerlake maintain --optimize [--months 2026-10,2026-11 | --days 2]
    ledgerlake maintain --vacuum [--retain-hours 168]
    spark-submit jobs/maintain.py --roll-off --optimize --vacuum

Actions run in that order when several are given; each is idempotent. After --roll-off or
--optimize the serving tier is audited with the serving_transactions data-quality suite
(results to ops.dq_results, the HTML report under <lake>/reports/dq/); a failed critical
expectation exits 1 (--no-audit skips the audit).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledgerlake.config import ConfigError, add_common_arguments, config_from_args
from ledgerlake.console import configure_logging, exit_statuses, fail, timed
from ledgerlake.load.discovery import InputError, parse_month
from ledgerlake.upkeep.optimize import DEFAULT_RECENT_DAYS
from ledgerlake.upkeep.vacuum import DEFAULT_RETAIN_HOURS, MIN_RETAIN_HOURS

log = logging.getLogger("ledgerlake.maintain")


class MaintainInputError(ValueError):
    """Bad flags; nothing was touched."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerlake maintain",
        description="Lake maintenance: serving-tier roll-off (parity-checked), OPTIMIZE/Z-ORDER by account, VACUUM.",
        epilog="example: ledgerlake maintain --roll-off --optimize --days 1 --vacuum",
    )
    parser.add_argument("--roll-off", action="store_true",
                        help="remove serving rows older than the serving window, after checking silver holds them")
    parser.add_argument("--optimize", action="store_true",
                        help="compact and Z-order (account_id) recent silver months and the serving tier")
    parser.add_argument("--months", metavar="YYYY-MM[,YYYY-MM...]",
                        help="silver months to optimize (default: those written in the last --days days)")
    parser.add_argument("--days", type=int, default=DEFAULT_RECENT_DAYS, metavar="N",
                        help=f"with --optimize and no --months: months written in the last N days "
                             f"(default {DEFAULT_RECENT_DAYS})")
    parser.add_argument("--vacuum", action="store_true", help="delete files no longer referenced by any table")
    parser.add_argument("--retain-hours", type=int, default=DEFAULT_RETAIN_HOURS, metavar="H",
                        help=f"with --vacuum: keep files needed by versions of the last H hours "
                             f"(default and minimum {DEFAULT_RETAIN_HOURS})")
    parser.add_argument("--no-audit", action="store_true",
                        help="skip the data-quality audit of the serving tier after --roll-off/--optimize")
    parser.add_argument("--expectations", metavar="DIR",
                        help="data-quality suites folder (env LEDGERLAKE_EXPECTATIONS; default: expectations/suites)")
    add_common_arguments(parser)
    return parser


def parse_months(text: str | None) -> list[str] | None:
    """--months as a sorted list of YYYY-MM, or None when not given."""
    if text is None:
        return None
    months = []
    for part in text.split(","):
        try:
            year, month = parse_month(part.strip(), "--months") or (0, 0)
        except InputError as exc:
            raise MaintainInputError(str(exc)) from None
        months.append(f"{year:04d}-{month:02d}")
    return sorted(set(months))


@exit_statuses("maintain")
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0 done, 1 roll-off check or serving audit failed, 2 bad input."""
    from expectations.gate import TableGate
    from expectations.suite import SuiteError

    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        configure_logging(config.log_level)
        if not (args.roll_off or args.optimize or args.vacuum):
            raise MaintainInputError("choose at least one action: --roll-off, --optimize, --vacuum")
        audit = (args.roll_off or args.optimize) and not args.no_audit
        # The suite is checked before anything is touched.
        gate = TableGate.load("serving.transactions_recent", args.expectations) if audit else None
        months = parse_months(args.months)
        if args.days < 1:
            raise MaintainInputError("--days must be at least 1")
        if args.retain_hours < MIN_RETAIN_HOURS:
            raise MaintainInputError(
                f"--retain-hours {args.retain_hours} is below {MIN_RETAIN_HOURS}: running streams, "
                "SQL clients and time travel may still read those files")
    except (ConfigError, MaintainInputError, SuiteError) as exc:
        return fail("maintain", str(exc))

    from ledgerlake.lake import open_lake
    from ledgerlake.serving import serving_window
    from ledgerlake.session import build_session, small_commit_conf
    from ledgerlake.upkeep.optimize import optimize
    from ledgerlake.upkeep.rolloff import RollOffCheckError, roll_off
    from ledgerlake.upkeep.vacuum import vacuum

    config = dataclasses.replace(config, spark_conf={**small_commit_conf(), **config.spark_conf})
    spark = build_session(config, "ledgerlake-maintain")
    lake = open_lake(spark, config.warehouse)
    if args.roll_off:
        try:
            result = roll_off(lake, serving_window(config))
        except RollOffCheckError as exc:
            return fail("maintain", f"roll-off refused, nothing changed: {exc}", code=1)
        print(result.render())
    if args.optimize:
        print(optimize(lake, months, args.days).render())
    if args.vacuum:
        print(vacuum(lake, args.retain_hours).render())
    if gate is not None:
        return audit_serving_tier(lake, gate, config)
    return 0


def audit_serving_tier(lake, gate, config) -> int:  # noqa: ANN001
    """The serving suite over the whole tier after maintenance: 1 on a critical failure."""
    from expectations.gate import audit_serving

    run_id = f"maintain-{uuid.uuid4().hex[:12]}"
    with timed(log, "data-quality audit of the serving tier"):
        audited = audit_serving(lake, gate, run_id=run_id, today=config.current_date(),
                                serving_months=config.serving_months)
    if audited is None:
        print("data quality: serving tier empty, nothing audited")
        return 0
    report, path = audited
    print(f"data quality: serving tier {len(report.results)} result(s), {len(report.critical_failures)} critical "
          f"failure(s), {len(report.failed_warnings)} warning(s) failed; report: {path}")
    for r in report.failed_warnings[:5]:
        print(f"  warning: {r.describe()}")
    if report.blocked:
        return fail("maintain", f"serving tier audit: {report.message()}", code=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
