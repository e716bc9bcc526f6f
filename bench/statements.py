"""Statement benchmark: 12-month statements on a 5-year, 5M-transaction lake, with and without the layout.

    .venv/bin/python bench/statement.py [--transactions 5000000] [--years 5] [--accounts 20000] [--queries 50]

Builds (once; reused while the parameters match) a lake whose silver tier holds the
whole history and whose serving tier holds the last --serving-months months, written
the way daily loads and micro-batches leave them: about one file per day, every file
spanning all accounts. A copy of it then gets the layout (ledgerlake.upkeep.layout:
OPTIMIZE ... ZORDER BY (account_id) of every month of both tiers).

Then, in one warm Spark session (as the statement command or the JDBC server keeps
it), runs 12-month statements for --queries random accounts against both lakes,
interleaved so that background load hits both alike, and prints p50, p95 and max
latency, files and bytes read per statement (from Spark's scan metrics), and the
ratio. --jdbc also times the same statements through `ledgerlake serve-sql` and beeline.
"""

from __future__ import annotations

import argparse
import calendar
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CURRENCIES = ["EUR"] * 16 + ["USD", "USD", "GBP", "CHF"]        # per account: mostly EUR
CODES = [("POS", "POS"), ("ATM", "ATM"), ("TRF", "ONLINE"), ("DD", "BATCH"), ("SAL", "BATCH"), ("FEE", "BATCH")]
MERCHANTS = ["SUPERMARKT NORD", "BAECKEREI", "TANKSTELLE 24", "APOTHEKE", "ONLINE SHOP", "RESTAURANT", "BAHN",
             "TELEKOM", "VERSICHERUNG", "MIETE", "STADTWERKE", "BUCHHANDLUNG"]


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered), math.ceil(pct / 100 * len(ordered))) - 1)]


def history(spark, n: int, first: date, last: date, accounts: int, seed: int):  # noqa: ANN001, ANN201
    """n realistic transactions between first and last (inclusive), deterministic by seed."""
    from pyspark.sql import functions as F

    days = (last - first).days + 1
    acct = F.floor(F.pow(F.rand(seed), 1.3) * accounts).cast("int")     # some accounts far busier than others
    code = (F.rand(seed + 1) * 100).cast("int")
    kind = F.when(code < 55, 0).when(code < 70, 1).when(code < 82, 2).when(code < 92, 3).when(code < 96, 4) \
        .otherwise(5)
    codes = F.array(*[F.lit(c) for c, _ in CODES])
    channels = F.array(*[F.lit(ch) for _, ch in CODES])
    merchants = F.array(*[F.lit(m) for m in MERCHANTS])
    currencies = F.array(*[F.lit(c) for c in CURRENCIES])
    posted = F.timestamp_seconds(F.lit(calendar.timegm(first.timetuple()))
                                 + (F.rand(seed + 2) * days * 86400).cast("long"))
    amount_abs = F.round(F.exp(F.rand(seed + 3) * 7) - 0.5, 2)             # 0.50 .. ~1100, mostly small
    return (spark.range(n).select(
        F.concat(F.lit("CB"), F.lpad(F.col("id").cast("string"), 18, "0")).alias("txn_id"),
        F.lit("core_banking").alias("source_system"),
        F.lpad((acct * 7919 % 1_000_000_000 + 100_000_000).cast("string"), 12, "0").alias("account_id"),
        posted.alias("posted_at"), kind.alias("kind"), amount_abs.alias("amount_abs"), acct.alias("acct"),
        F.col("id"),
    ).select(
        "txn_id", "source_system", "account_id",
        F.to_date("posted_at").alias("posting_date"),
        "posted_at",
        F.to_date("posted_at").alias("value_date"),
        F.element_at(codes, F.col("kind") + 1).alias("txn_code"),
        F.when(F.col("kind") == 4, F.col("amount_abs") * 3).otherwise(-F.col("amount_abs"))
        .cast("decimal(18,2)").alias("amount"),
        F.element_at(currencies, F.col("acct") % len(CURRENCIES) + 1).alias("currency"),
        F.element_at(channels, F.col("kind") + 1).alias("channel"),
        F.concat_ws(" ", F.element_at(merchants, (F.col("id") % len(MERCHANTS)).cast("int") + 1),
                    (F.col("id") % 9973).cast("string")).alias("description"),
        F.lit(None).cast("decimal(18,2)").alias("balance_after"),
        F.lit(None).cast("string").alias("reversal_of"),
        F.lit("bench").alias("source_file"),
        F.col("id").alias("record_no"),
        F.xxhash64("id").alias("record_hash"),
        F.lit(None).cast("bigint").alias("event_sequence"),
        F.lit("bench").alias("load_id"),
        F.current_timestamp().alias("ingested_at"),
    ))


def build(args: argparse.Namespace, work: Path, today: date) -> tuple[Path, dict]:
    """The lake as the backfill leaves it (each month in account order), cached under work/."""
    from pyspark.sql import functions as F

    from ledgerlake.config import LakeConfig
    from ledgerlake.lake import open_lake
    from ledgerlake.load.sinks import ROWS_PER_FILE
    from ledgerlake.serving import window_for
    from ledgerlake.session import build_session

    root, marker = work / "lake", work / "_SUCCESS"
    key = {k: getattr(args, k) for k in ("transactions", "years", "accounts", "serving_months", "seed", "today")}
    if marker.exists() and json.loads(marker.read_text()).get("key") == key:
        return root, json.loads(marker.read_text())
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    spark = build_session(LakeConfig(warehouse=str(root)), "bench-statements-build")
    lake = open_lake(spark, str(root), create=True)
    first = date(today.year - args.years, today.month, 1) + timedelta(days=31)
    first = date(first.year, first.month, 1)
    window = window_for(today, args.serving_months).first_day
    data = history(spark, args.transactions, first, today, args.accounts, args.seed)

    t0 = time.monotonic()
    for table, rows in (("silver.transactions", data),
                        ("serving.transactions_recent", data.where(F.col("posting_date") >= window))):
        # the backfill's final layout: each month by one task, sorted by account (ledgerlake.load.sinks)
        month = F.date_format("posting_date", "yyyy-MM")
        (rows.repartition(month).sortWithinPartitions(month, "account_id", "posted_at", "txn_id")
         .write.format("delta").mode("append").option("maxRecordsPerFile", ROWS_PER_FILE)
         .save(lake.path(table)))
    written = time.monotonic() - t0
    print(f"built the lake: {args.transactions:,} transactions {first}..{today} in {written:.0f}s", flush=True)
    info = {"key": key, "first": first.isoformat(), "today": today.isoformat(), "write_s": written}
    marker.write_text(json.dumps(info))
    spark.stop()
    return root, info


def measure(args: argparse.Namespace, lakes: dict[str, Path], today: date) -> dict[str, list[dict]]:
    """Interleaved 12-month statements against every lake in one warm session."""
    from ledgerlake.config import LakeConfig
    from ledgerlake.lake import Lake
    from ledgerlake.query.statement import in_statement_order, statement_frame
    from ledgerlake.serving import window_for
    from ledgerlake.session import build_session
    from tests.scan_metrics import scan_metrics

    spark = build_session(LakeConfig(warehouse=str(next(iter(lakes.values())))), "bench-statement")
    opened = {name: Lake(spark, str(root)) for name, root in lakes.items()}
    window = window_for(today, args.serving_months).first_day
    start = date(today.year - 1, today.month, 1) + timedelta(days=31)
    start = date(start.year, start.month, 1)                                 # 12 calendar months
    rnd = random.Random(args.seed)
    sample = rnd.sample(range(args.accounts // 4), args.queries)            # active accounts
    ids = [f"{(a * 7919 % 1_000_000_000 + 100_000_000):012d}" for a in sample]
    for lake in opened.values():                                            # warm-up, not counted
        for account in ids[:3]:
            in_statement_order(statement_frame(lake, account, start, today, window).collect())
    runs: dict[str, list[dict]] = {name: [] for name in opened}
    for i, account in enumerate(ids):
        order = list(opened.items()) if i % 2 == 0 else list(reversed(opened.items()))
        for name, lake in order:
            t0 = time.perf_counter()
            df = statement_frame(lake, account, start, today, window)
            rows = in_statement_order(df.collect())
            seconds = time.perf_counter() - t0
            metrics = scan_metrics(df)
            runs[name].append({"seconds": seconds, "rows": len(rows), "files": metrics.files, "bytes": metrics.bytes})
    print(f"statements: {args.queries} accounts, {start}..{today} "
          f"(silver up to {window - timedelta(days=1)}, serving from {window})", flush=True)
    spark.stop()
    return runs


def measure_jdbc(args: argparse.Namespace, lake: Path, today: date) -> list[float]:
    """The same statements as SQL through `ledgerlake serve-sql` and beeline; beeline's own timings."""
    from ledgerlake.query.statement import COLUMNS
    from ledgerlake.serving import window_for
    from ledgerlake.session import spark_home

    port = 10000 + random.Random().randrange(20000)
    server = subprocess.Popen([sys.executable, "-m", "ledgerlake.cli", "serve-sql", "--port", str(port),
                               "--warehouse", str(lake)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, cwd=REPO)
    try:
        for line in server.stdout:
            if "serving lake" in line:
                break
        window = window_for(today, args.serving_months).first_day
        start = date(today.year - 1, today.month, 1) + timedelta(days=31)
        start = date(start.year, start.month, 1)
        rnd = random.Random(args.seed)
        ids = [f"{(a * 7919 % 1_000_000_000 + 100_000_000):012d}"
               for a in rnd.sample(range(args.accounts // 4), args.queries)]
        cols = ", ".join(COLUMNS)
        queries = [
            f"SELECT {cols} FROM silver.transactions WHERE account_id = '{a}' AND posting_date BETWEEN "
            f"DATE'{start}' AND DATE'{window - timedelta(days=1)}' UNION ALL SELECT {cols} FROM "
            f"serving.transactions_recent WHERE account_id = '{a}' AND posting_date BETWEEN DATE'{window}' AND "
            f"DATE'{today}' ORDER BY posting_date, posted_at, txn_id;" for a in ids[:3] + ids]
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write("\n".join(queries) + "\n")
        out = subprocess.run([str(spark_home() / "bin" / "beeline"), "-u", f"jdbc:hive2://127.0.0.1:{port}/default",
                              "-n", "bench", "--outputformat=csv2", "-f", f.name], capture_output=True, text=True,
                             env={**os.environ, "SPARK_HOME": str(spark_home())})
        timings = [float(t) for t in re.findall(r"rows? selected \(([\d.]+) seconds\)", out.stdout + out.stderr)]
        return timings[3:]                                                   # first three warm the server up
    finally:
        server.terminate()
        server.wait(timeout=120)


def summary(name: str, runs: list[dict]) -> str:
    secs = [r["seconds"] for r in runs]
    files = [r["files"] for r in runs]
    return (f"{name:<12} p50 {statistics.median(secs):6.3f}s  p95 {percentile(secs, 95):6.3f}s  "
            f"max {max(secs):6.3f}s  | files read per statement: mean {statistics.mean(files):6.1f}  "
            f"max {max(files):4d}  | MiB read: mean {statistics.mean(r['bytes'] for r in runs) / 2**20:6.1f}  "
            f"| rows: mean {statistics.mean(r['rows'] for r in runs):5.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=5_000_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--serving-months", type=int, default=6)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--today", default="2025-12-31", help="end of the history; the serving window ends here")
    parser.add_argument("--workdir", default=str(REPO / ".bench" / "statement"))
    parser.add_argument("--jdbc", action="store_true", help="also time the statements through serve-sql + beeline")
    args = parser.parse_args(argv)
    os.environ.setdefault("LEDGERLAKE_DRIVER_MEMORY", "6g")
    today = date.fromisoformat(args.today)

    raw, clustered, info = build(args, Path(args.workdir), today)
    print(f"data files (silver, serving): unclustered {info['files']['unclustered']}, "
          f"clustered {info['files']['clustered']}")
    runs = measure(args, {"clustered": clustered, "unclustered": raw}, today)
    print(summary("clustered", runs["clustered"]))
    print(summary("unclustered", runs["unclustered"]))
    c, u = runs["clustered"], runs["unclustered"]
    print(f"layout buys: {statistics.mean(r['files'] for r in u) / statistics.mean(r['files'] for r in c):.1f}x "
          f"fewer files, {statistics.median(r['seconds'] for r in u) / statistics.median(r['seconds'] for r in c):.1f}x"
          f" lower p50 latency")
    assert [r["rows"] for r in c] == [r["rows"] for r in u], "both layouts must return the same statements"
    if args.jdbc:
        timings = measure_jdbc(args, clustered, today)
        if timings:
            print(f"{'jdbc':<12} p50 {statistics.median(timings):6.3f}s  p95 {percentile(timings, 95):6.3f}s  "
                  f"max {max(timings):6.3f}s  (beeline's timings, clustered lake, {len(timings)} statements)")
        else:
            print("jdbc: beeline reported no timings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
