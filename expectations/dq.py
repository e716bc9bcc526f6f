"""``ledgerlake dq``: data-quality suites, reports and audits.

    ledgerlake dq report [--run-id ID]       HTML report of a run (default: the latest) and its failures
    ledgerlake dq suites [--source SOURCE]   check the suite files and list their expectations
    ledgerlake dq audit-serving              audit serving.transactions_recent now, record and report it
"""

from __future__ import annotations

import argparse
import sys
import uuid

from ledgerlake.config import ConfigError, add_common_arguments, config_from_args
from ledgerlake.console import configure_logging, exit_statuses, fail, render_table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerlake dq",
        description="Data-quality gates (Great Expectations suites in expectations/suites): "
                    "results in ops.dq_results, HTML reports under <lake>/reports/dq/.",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    report = sub.add_parser("report", help="write a run's HTML report and print its failed expectations",
                            description="Write the HTML report of a run (default: the latest run with results) "
                                        "under <lake>/reports/dq/, print its path and the failed expectations.")
    report.add_argument("--run-id", metavar="ID", help="the run (a backfill's load_id); default: the latest")
    add_common_arguments(report)

    suites = sub.add_parser("suites", help="check the suite files and list their expectations",
                            description="Parse and check every suite file (no Spark needed) and list the "
                                        "expectations with their severity and thresholds.")
    suites.add_argument("--source", metavar="SOURCE",
                        help="expand the record rules of this batch feed (default: the first feed)")
    suites.add_argument("--expectations", metavar="DIR",
                        help="suites folder (env LEDGERLAKE_EXPECTATIONS; default: expectations/suites)")

    serving = sub.add_parser("audit-serving", help="audit serving.transactions_recent, record and report it",
                             description="Run the serving_transactions suite over the whole serving tier, "
                                         "record the results in ops.dq_results and write the report. "
                                         "Exit status 1 when a critical expectation failed.")
    serving.add_argument("--expectations", metavar="DIR",
                         help="suites folder (env LEDGERLAKE_EXPECTATIONS; default: expectations/suites)")
    add_common_arguments(serving)
    return parser


@exit_statuses("dq")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "suites":
        return list_suites(args)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        return fail("dq", str(exc))
    configure_logging(config.log_level)
    if args.action == "report":
        return report(config, args.run_id)
    return audit_serving_now(config, args.expectations)


def list_suites(args: argparse.Namespace) -> int:
    """``dq suites``: every suite checked, its expectations listed."""
    from expectations.plan import plan_suite
    from expectations.suite import SUITE_TARGETS, SuiteError, load_suite
    from transforms.legacy import SOURCES, UnknownSourceError, get_source

    try:
        spec = get_source(args.source) if args.source else next(iter(SOURCES.values()))
        rows = []
        for name in SUITE_TARGETS:
            suite = load_suite(name, args.expectations)
            for e in plan_suite(suite, rules=spec.record_rules if suite.target == "batch" else None):
                rows.append((suite.name, e.name, e.severity, e.check, e.threshold))
    except (SuiteError, UnknownSourceError) as exc:
        return fail("dq", str(exc))
    print(f"suites for source {spec.name} ({len(rows)} expectations):")
    print(render_table(["suite", "expectation", "severity", "check", "expected"], rows))
    return 0


def report(config, run_id: str | None) -> int:  # noqa: ANN001
    """``dq report``: (re)write a run's HTML page and summarise its failures on the terminal."""
    from expectations.report import latest_run_id, load_run, report_dir, terminal_summary, write_report
    from ledgerlake.lake import open_lake
    from ledgerlake.session import build_session

    spark = build_session(config, "ledgerlake-dq-report")
    lake = open_lake(spark, config.warehouse)
    run_id = run_id or latest_run_id(lake)
    if run_id is None:
        print(f"no data-quality results in ops.dq_results of {config.warehouse} yet")
        return 0
    run = load_run(lake, run_id)
    if run is None:
        return fail("dq", f"no data-quality results for run {run_id!r} in ops.dq_results")
    path = write_report(lake, run_id)
    print(terminal_summary(run))
    print(f"report: {path}")
    print(f"all runs: {report_dir(lake)}/index.html")
    return 0


def audit_serving_now(config, suites_dir: str | None) -> int:  # noqa: ANN001
    """``dq audit-serving``: the serving suite over the whole tier; exit 1 on a critical failure."""
    from expectations.gate import TableGate, audit_serving
    from expectations.report import load_run, terminal_summary
    from expectations.suite import SuiteError
    from ledgerlake.lake import open_lake
    from ledgerlake.session import build_session

    try:
        gate = TableGate.load("serving.transactions_recent", suites_dir)   # a broken suite stops here
    except SuiteError as exc:
        return fail("dq", str(exc))
    spark = build_session(config, "ledgerlake-dq-audit-serving")
    lake = open_lake(spark, config.warehouse)
    run_id = f"audit-serving-{uuid.uuid4().hex[:12]}"
    audited = audit_serving(lake, gate, run_id=run_id, today=config.current_date(),
                            serving_months=config.serving_months)
    if audited is None:
        print("serving.transactions_recent is empty: nothing to audit")
        return 0
    report, path = audited
    run = load_run(lake, run_id)
    assert run is not None
    print(terminal_summary(run))
    print(f"report: {path}")
    return 1 if report.blocked else 0


if __name__ == "__main__":
    sys.exit(main())
