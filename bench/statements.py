"""Statement benchmark: 12-month statements from the statement service while the stream writes, and over JDBC.

    .venv/bin/python bench/statements.py [--transactions 5000000] [--years 5] [--accounts 20000]
                                         [--clients 50] [--rate 120] [--minutes 2] [--jdbc-statements 40]

Builds (once; reused while the parameters match) a lake of --transactions generated
transactions over --years years ending today, in the layout the backfill leaves (each
month sorted by account), silver holding the whole history and the serving tier the
last --serving-months months. Then, as in production, three processes run side by side:

* ``ledgerlake stream`` applies a landing zone that a producer fills with one file of
  --events-per-second events a second (new postings of the current month);
* ``ledgerlake serve-statements`` (one API key per client, the default rate limit)
  answers --clients clients asking 12-month statements (6 months from silver, 6 from
  the serving tier) of random accounts for --minutes minutes, together offering --rate
  statements a second (each client waits a random time between its statements); then
  the same clients for --saturate-seconds without waiting, which shows the service's
  capacity;
* ``ledgerlake serve-sql`` answers --jdbc-statements of the same statements as SQL through
  beeline (beeline's own timings).

Prints p50/p95/p99 latency, statements/s and errors of each service phase, the delay
between a serving commit and the service reading it, and the JDBC p50/p95.
Targets on the 2-core machine: service p50 <= 100 ms, p99 <= 300 ms, >= 100 statements/s,
no error; JDBC p50 <= 1 s.
"""

from __future__ import annotations

import argparse
import calendar
import http.client
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
import threading
import time
import urllib.request
from dataclasses import dataclass, field
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


def statement_range(today: date) -> tuple[date, date]:
    """Twelve calendar months ending with today's month."""
    first = date(today.year - 1, today.month, 1) + timedelta(days=31)
    return date(first.year, first.month, 1), today


def account_id(index: int) -> str:
    """The account number ``history`` gives account ``index``."""
    return f"{(index * 7919 % 1_000_000_000 + 100_000_000):012d}"


def start_process(command: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    with log.open("w") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                start_new_session=True)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def wait_until(check, what: str, timeout: float, proc: subprocess.Popen | None = None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what}: the process exited with {proc.returncode}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what}: not within {timeout:.0f}s")


@dataclass
class Phase:
    """What the clients saw in one phase."""

    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    rows: int = 0

    def line(self) -> str:
        done = len(self.latencies)
        lat = self.latencies or [0.0]
        errors = sum(self.errors.values())
        return (f"{self.name:<22} {done:6d} statements in {self.seconds:5.0f}s = {done / self.seconds:6.1f}/s  "
                f"p50 {percentile(lat, 50) * 1000:6.1f} ms  p95 {percentile(lat, 95) * 1000:6.1f} ms  "
                f"p99 {percentile(lat, 99) * 1000:6.1f} ms  max {max(lat) * 1000:6.0f} ms  "
                f"errors {errors}{' ' + str(self.errors) if errors else ''}  rows/statement "
                f"{self.rows / max(1, done):.0f}")


def run_clients(port: int, keys: list[str], accounts: int, first: date, last: date, seconds: float,
                rate: float | None, seed: int, name: str) -> Phase:
    """len(keys) clients, each with its own key and connection; ``rate``: statements/s they offer together
    (exponential waits between a client's statements), None: each asks again as soon as it has its answer."""
    phase = Phase(name)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        rnd = random.Random(seed * 1000 + index)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, errors, rows = [], {}, 0
        next_at = time.monotonic() + (rnd.expovariate(rate / len(keys)) if rate else 0)
        while True:
            if rate:
                time.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() >= stop_at:
                break
            path = f"/accounts/{account_id(rnd.randrange(accounts))}/statement?from={first}&to={last}"
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers={"X-API-Key": keys[index]})
                answer = conn.getresponse()
                body = answer.read()
                status = answer.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                status, body = -1, b""
            mine.append(time.perf_counter() - started)
            if status != 200:
                errors[status] = errors.get(status, 0) + 1
            else:
                rows += body.count(b'"txn_id"')
            if rate:
                next_at += rnd.expovariate(rate / len(keys))
        with lock:
            phase.latencies += mine
            phase.rows += rows
            for code, n in errors.items():
                phase.errors[code] = phase.errors.get(code, 0) + n

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(keys))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.monotonic() - started
    return phase


class Freshness:
    """When the service first reports each serving version (polling /health), against when the commit appeared."""

    def __init__(self, port: int, lake: Path) -> None:
        self.url, self.lake = f"http://127.0.0.1:{port}/health", lake
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.stop.wait(0.05):
            try:
                version = get_json(self.url)["tables"]["serving.transactions_recent"]["version"]
            except OSError:
                continue
            self.seen.setdefault(version, time.time())

    def delays(self) -> list[float]:
        """Seconds from each commit's log file appearing (its modification time) to the service reporting it."""
        log = self.lake / "serving" / "transactions_recent" / "_delta_log"
        first = min(self.seen, default=0)               # served when the probe started: committed before it
        return [seen - (log / f"{version:020d}.json").stat().st_mtime
                for version, seen in self.seen.items() if version != first]


def measure_jdbc(args: argparse.Namespace, lake: Path, today: date, port: int) -> list[float]:
    """The same statements as SQL through ``ledgerlake serve-sql`` and beeline; beeline's own timings."""
    from ledgerlake.query.reader import COLUMNS
    from ledgerlake.serving import window_for
    from ledgerlake.session import spark_home

    window = window_for(today, args.serving_months).first_day
    first, last = statement_range(today)
    rnd = random.Random(args.seed + 1)
    ids = [account_id(rnd.randrange(args.accounts)) for _ in range(args.jdbc_statements + 3)]
    cols = ", ".join(COLUMNS)
    queries = [
        f"SELECT {cols} FROM silver.transactions WHERE account_id = '{a}' AND posting_date BETWEEN "
        f"DATE'{first}' AND DATE'{window - timedelta(days=1)}' UNION ALL SELECT {cols} FROM "
        f"serving.transactions_recent WHERE account_id = '{a}' AND posting_date BETWEEN DATE'{window}' AND "
        f"DATE'{last}' ORDER BY posting_date, posted_at, txn_id;" for a in ids]
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write("\n".join(queries) + "\n")
    out = subprocess.run([str(spark_home() / "bin" / "beeline"), "-u", f"jdbc:hive2://127.0.0.1:{port}/default",
                          "-n", "bench", "--outputformat=csv2", "-f", f.name], capture_output=True, text=True,
                         env={**os.environ, "SPARK_HOME": str(spark_home())})
    timings = [float(t) for t in re.findall(r"rows? selected \(([\d.]+) seconds\)", out.stdout + out.stderr)]
    return timings[3:]                                                       # the first three warm the server up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=5_000_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--serving-months", type=int, default=6)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=120.0, help="statements/s the clients offer together")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--saturate-seconds", type=float, default=30.0,
                        help="then the clients without waits, for this long (0: skip)")
    parser.add_argument("--events-per-second", type=int, default=200)
    parser.add_argument("--jdbc-statements", type=int, default=40, help="0: skip the JDBC part")
    parser.add_argument("--jdbc-conf", action="append", default=[], metavar="KEY=VALUE",
                        help="a Spark setting for serve-sql, repeatable")
    parser.add_argument("--cache-mb", type=int, help="the service's --cache-mb (default: its own default)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--today", default=date.today().isoformat(), help="end of the history (default today)")
    parser.add_argument("--workdir", default=str(REPO / ".bench" / "statements"))
    args = parser.parse_args(argv)
    os.environ.setdefault("LEDGERLAKE_DRIVER_MEMORY", "6g")
    today = date.fromisoformat(args.today)
    work = Path(args.workdir)
    lake, info = build(args, work, today)
    print(f"lake: {args.transactions:,} transactions {info['first']}..{info['today']}, {args.accounts:,} accounts",
          flush=True)

    from freshness import Producer, stop_process

    from ledgerlake.query.service import key_line, new_api_key

    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    landing = run / "landing"
    landing.mkdir(parents=True)
    keys = [new_api_key() for _ in range(args.clients)]
    (run / "keys").write_text("".join(key_line(f"client-{i}", k) + "\n" for i, k in enumerate(keys)))
    cli = [sys.executable, "-m", "ledgerlake.cli"]
    common = ["--warehouse", str(lake), "--today", str(today), "--serving-months", str(args.serving_months)]
    http_port, jdbc_port = 18000 + random.randrange(1000), 11000 + random.randrange(1000)
    checkpoint = run / "checkpoint"                      # a new stream each run, over the same lake
    stream = start_process([*cli, "stream", "--input", str(landing), "--checkpoint", str(checkpoint), *common],
                           run / "stream.log")
    service_args = ["--cache-mb", str(args.cache_mb)] if args.cache_mb is not None else []
    service = start_process([*cli, "serve-statements", "--port", str(http_port), "--api-keys-file", str(run / "keys"),
                             *service_args, *common], run / "service.log")
    jdbc_conf = [arg for setting in args.jdbc_conf for arg in ("--conf", setting)]
    jdbc = start_process([*cli, "serve-sql", "--port", str(jdbc_port), *jdbc_conf, *common], run / "serve-sql.log") \
        if args.jdbc_statements else None
    producer = Producer(landing, args.events_per_second, 1.0, args.seed)
    producer.next_txn = int(time.time()) * 100_000          # new txn_ids on every run: the stream applies them all
    feeding = threading.Event()

    def feed() -> None:
        index, prefix = 0, f"events-{int(time.time())}"          # names the stream's checkpoint has not seen
        while not feeding.is_set():
            producer.land(index, prefix)
            index += 1
            feeding.wait(1.0)

    feeder = threading.Thread(target=feed, daemon=True)
    try:
        health = f"http://127.0.0.1:{http_port}/health"
        wait_until(lambda: get_json(health)["cache"]["queued"] == 0, "the service's cache warm-up", 600, service)
        feeder.start()
        checkpoint_commits = checkpoint / "commits"
        wait_until(lambda: (checkpoint_commits / "0").exists(), "the stream's first micro-batch", 600, stream)
        if jdbc is not None:
            wait_until(lambda: "serving lake" in (run / "serve-sql.log").read_text(), "serve-sql", 600, jdbc)
        cache = get_json(health)["cache"]
        print(f"service up: {cache['files']} files decoded, {cache['bytes'] / 2**20:.0f} MiB; the stream is "
              f"applying {args.events_per_second} events/s", flush=True)
        first, last = statement_range(today)
        print(f"statements {first}..{last}: {args.clients} clients, random accounts of {args.accounts:,}", flush=True)
        if args.minutes:
            run_clients(http_port, keys, args.accounts, first, last, 10, args.rate, args.seed + 7, "warm-up")
        probe = Freshness(http_port, lake)              # at the offered rate; the saturation phase is capacity only
        probe.thread.start()
        phases = [] if not args.minutes else [run_clients(http_port, keys, args.accounts, first, last,
                                                          args.minutes * 60, args.rate, args.seed,
                                                          f"service, {args.rate:g}/s offered")]
        probe.stop.set()
        if args.saturate_seconds:
            phases.append(run_clients(http_port, keys, args.accounts, first, last, args.saturate_seconds, None,
                                      args.seed + 1, "service, no waits"))
        for phase in phases:
            print(phase.line(), flush=True)
        delays = probe.delays()
        if delays:
            print(f"serving commits read by the service after: p50 {percentile(delays, 50):.2f}s  "
                  f"p95 {percentile(delays, 95):.2f}s  max {max(delays):.2f}s ({len(delays)} commits at the offered "
                  f"rate; /health polled every 0.05 s)", flush=True)
        print(f"service cache: {get_json(health)['cache']}", flush=True)
        if jdbc is not None:
            timings = measure_jdbc(args, lake, today, jdbc_port)
            if timings:
                print(f"{'jdbc (beeline)':<22} {len(timings):6d} statements  p50 {statistics.median(timings):.3f}s  "
                      f"p95 {percentile(timings, 95):.3f}s  max {max(timings):.3f}s", flush=True)
            else:
                print("jdbc: beeline reported no timings; see serve-sql.log", flush=True)
        if stream.poll() is not None:
            raise SystemExit(f"the stream stopped during the run (exit {stream.returncode}); see {run / 'stream.log'}")
        commits = len(list(checkpoint_commits.iterdir()))
        print(f"the stream committed {commits} micro-batches meanwhile", flush=True)
    finally:
        feeding.set()
        for proc in (service, jdbc, stream):
            if proc is not None:
                stop_process(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
