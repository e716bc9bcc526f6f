"""``make demo``: generate a few years of legacy files, backfill them, and show what landed.

Uses the embedded defaults: local Spark and the lake in ``warehouse/lake`` (or
``LEDGERLAKE_WAREHOUSE``). Error cases of the contracts are injected on purpose,
so the summary shows rejected files and quarantined records next to the loaded ones.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from ledgerlake.config import add_common_arguments, config_from_args
from ledgerlake.console import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledgerlake demo", description=__doc__)
    parser.add_argument("--data", default="demo-data", help="where the generated legacy files go")
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--records-per-day", type=int, default=150)
    parser.add_argument("--accounts", type=int, default=500)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args)
    configure_logging(config.log_level)

    from pyspark.sql import functions as F

    from ledgerlake.lake import open_lake
    from ledgerlake.load.backfill import render_summary, run_backfill
    from ledgerlake.load.discovery import discover, month_range
    from ledgerlake.query.sql import print_result
    from ledgerlake.samples.legacy import generate
    from ledgerlake.session import build_session
    from transforms.legacy import get_source

    today = config.current_date()
    start = date(today.year - args.years, today.month, 1)
    days = (date(today.year, today.month, 1) - start).days
    data = Path(args.data)
    for source in ("core_banking", "cards"):
        manifest = generate(data / source, source=source, start=start, days=days, accounts=args.accounts,
                            records_per_day=args.records_per_day, seed=7, record_errors=True,
                            file_errors="all")
        print(f"generated {len(manifest.files)} {source} files ({manifest.total_records:,} records) "
              f"under {data / source}")

    spark = build_session(config, "ledgerlake-demo")
    lake = open_lake(spark, config.warehouse, create=True)
    everything = month_range(None, None)
    for source in ("core_banking", "cards"):
        spec = get_source(source)
        result = run_backfill(lake, spec, discover(spec, str(data / source), everything), everything,
                              config=config)
        print()
        print(render_summary(result))

    print(f"\nlake: {config.warehouse}")
    print("\nsilver.transactions by year:")
    print_result(spark.sql(
        "SELECT year(posting_date) AS year, source_system, count(*) AS transactions, sum(amount) AS net_amount "
        "FROM silver.transactions GROUP BY 1, 2 ORDER BY 1, 2"), "table")
    account = spark.sql(
        "SELECT account_id FROM silver.transactions GROUP BY account_id ORDER BY count(*) DESC, account_id LIMIT 1"
    ).first()["account_id"]
    first_day = date(today.year - 1, today.month, 1)
    print(f"\nstatement of account {account}, last 12 months (first 15 lines):")
    statement = (
        spark.table("silver.transactions")
        .where((F.col("account_id") == account) & (F.col("posting_date") >= first_day))
        .orderBy("posted_at", "txn_id")
        .select("posting_date", "posted_at", "txn_id", "txn_code", "description", "amount", "currency",
                "balance_after")
    )
    print_result(statement, "table", limit=15)
    print('\ntry: .venv/bin/ledgerlake sql "SELECT reason, count(*) FROM ops.quarantine GROUP BY reason"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
