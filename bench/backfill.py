"""Backfill benchmark: the full validated backfill against a plain Spark copy of the same files.

    .venv/bin/python bench/backfill.py [--days 730] [--records-per-day 2000] [--s3]

Generates ~1.5M core_banking records over two years (once; reused while the
parameters match), then runs, each in its own process on an empty target:

* backfill -- the real job: parse, file gates, record rules, duplicates against
  silver, Delta commits to silver/quarantine/ledger;
* plain    -- spark.read.text of the same files, keep detail records, derive the
  posting month, write month-partitioned Parquet. No validation at all.

With ``--s3`` both run a second time with the files and the target on S3 (a moto server on
loopback, or the endpoint of the standard AWS settings with ``--s3-endpoint-from-env``), and
the figures are printed beside the local ones.

Prints records/s of both (timed inside the process, Spark start-up excluded), the
ratio, the peak resident memory and the CPU seconds of each process tree (Python + JVM),
and the backfill's phases (its timed() log lines) with the data-quality gate's share.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD_BACKFILL = """
import json, logging, re, sys, time
phases = {}
class Phases(logging.Handler):
    def emit(self, record):
        found = re.match(r"(.*) took ([0-9.]+)s$", record.getMessage())
        if found:
            what = re.sub(r"[0-9][0-9,]*", "N", found.group(1))
            phases[what] = round(phases.get(what, 0.0) + float(found.group(2)), 1)
logging.getLogger("ledgerlake").addHandler(Phases())
logging.getLogger("ledgerlake").setLevel(logging.INFO)
from ledgerlake.config import LakeConfig
from ledgerlake.session import build_session
from ledgerlake.lake import open_lake
from ledgerlake.load.discovery import discover, month_range
from ledgerlake.load.backfill import run_backfill
from transforms.legacy import get_source
data, lake_root = sys.argv[1], sys.argv[2]
spark = build_session(LakeConfig(warehouse=lake_root, object_store="://" in lake_root), "bench-backfill")
lake = open_lake(spark, lake_root, create=True)
spec = get_source("core_banking"); months = month_range(None, None)
t0 = time.monotonic()
found = discover(spec, data, months)
result = run_backfill(lake, spec, found, months)
seconds = time.monotonic() - t0
records = sum(f.records_in for f in result.files)
print(json.dumps({"seconds": seconds, "records": records, "files": len(result.files),
                  "silver_rows": lake.read("silver.transactions").count(), "phases": phases,
                  "dq_critical": sum(len(r.critical_failures) for r in result.dq_reports),
                  "dq_warnings": sum(len(r.failed_warnings) for r in result.dq_reports)}))
"""
# the gate's phases in the backfill's log (jobs/backfill.py): audit, results, report
GATE_PHASES = ("data-quality gate", "write ops.dq_results", "data-quality report")

CHILD_PLAIN = """
import json, sys, time
from pyspark.sql import functions as F
from ledgerlake.config import LakeConfig
from ledgerlake.session import build_session
data, out = sys.argv[1], sys.argv[2]
spark = build_session(LakeConfig(warehouse=out, object_store="://" in out), "bench-plain")
t0 = time.monotonic()
lines = spark.read.text(data + "/*.dat")
details = lines.where(F.substring("value", 1, 1) == "D").withColumn(
    "posting_month", F.concat_ws("-", F.substring("value", 34, 4), F.substring("value", 38, 2)))
details.write.mode("overwrite").partitionBy("posting_month").parquet(out + "/plain")
seconds = time.monotonic() - t0
records = spark.read.parquet(out + "/plain").count()
print(json.dumps({"seconds": seconds, "records": records}))
"""


def run_child(code: str, *args: str) -> tuple[dict, float, float]:
    """Run a child Python process; return its JSON result, the peak RSS (MiB) and CPU seconds of its process tree.

    CPU seconds (Python + JVM, start-up included) show the work done even when other
    processes compete for the cores and wall-clock figures drift.
    """
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    parent = psutil.Process(proc.pid)
    peak = 0
    cpu: dict[int, float] = {}
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            rss = 0
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    rss += p.memory_info().rss
                    times = p.cpu_times()
                    cpu[p.pid] = times.user + times.system
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.25)
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.stderr.write(err[-4000:])
        raise SystemExit(f"benchmark child failed with exit status {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), peak / 2**20, sum(cpu.values())


def compare(data: str, work: str) -> tuple:
    """The backfill and the plain job, each in its own process, on the files under ``data``."""
    backfill, backfill_mem, backfill_cpu = run_child(CHILD_BACKFILL, data, f"{work}/lake")
    plain, plain_mem, plain_cpu = run_child(CHILD_PLAIN, data, f"{work}/plain")
    return backfill, backfill_mem, backfill_cpu, plain, plain_mem, plain_cpu


@contextlib.contextmanager
def s3_copy(data: Path, work: Path, from_env: bool) -> Iterator[tuple[str, str]]:
    """The generated files uploaded to an S3 bucket; (landing prefix, target prefix) there."""
    import os

    from ledgerlake import objectstore
    from tests.s3_server import start_moto

    server = None
    if not from_env:
        server = start_moto(work)
        os.environ.update({"AWS_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_REGION": "us-east-1"})
    bucket = f"ledgerlake-bench-{os.getpid()}"
    client = objectstore.client()
    client.create_bucket(Bucket=bucket)
    t0 = time.monotonic()
    for path in sorted(data.glob("*.dat")):
        client.upload_file(str(path), bucket, f"landing/{path.name}")
    print(f"uploaded {data} to s3://{bucket}/landing ({time.monotonic() - t0:.1f}s)")
    try:
        yield f"s3://{bucket}/landing", f"s3a://{bucket}/target"
    finally:
        if server is not None:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--records-per-day", type=int, default=2000)
    parser.add_argument("--accounts", type=int, default=20000)
    parser.add_argument("--workdir", default=str(REPO / ".bench"))
    parser.add_argument("--s3", action="store_true", help="also run both with files and target on S3")
    parser.add_argument("--s3-endpoint-from-env", action="store_true",
                        help="with --s3: the S3 of the standard AWS settings, not a moto server on loopback")
    args = parser.parse_args(argv)

    from ledgerlake.samples.legacy import generate

    work = Path(args.workdir)
    data = work / f"core_{args.days}d_{args.records_per_day}"
    if not (data / "_SUCCESS").exists():
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.monotonic()
        manifest = generate(data, source="core_banking", start="2023-01-01", days=args.days,
                            accounts=args.accounts, records_per_day=args.records_per_day, seed=11)
        (data / "_SUCCESS").write_text(manifest.to_json())
        print(f"generated {manifest.total_records:,} records in {len(manifest.files)} files "
              f"({time.monotonic() - t0:.1f}s)")
    size_mb = sum(p.stat().st_size for p in data.glob("*.dat")) / 2**20

    for target in ("lake", "plain"):
        shutil.rmtree(work / target, ignore_errors=True)
    runs = {"local": compare(str(data), str(work))}
    if args.s3:
        with s3_copy(data, work, args.s3_endpoint_from_env) as (s3_data, s3_work):
            runs["S3"] = compare(s3_data, s3_work)

    for where, (backfill, backfill_mem, backfill_cpu, plain, plain_mem, plain_cpu) in runs.items():
        b_rate = backfill["records"] / backfill["seconds"]
        p_rate = plain["records"] / plain["seconds"]
        print(f"[{where}] input: {backfill['files']} files, {backfill['records']:,} detail records, {size_mb:,.0f} MiB")
        print(f"[{where}] backfill (validated, Delta): {backfill['seconds']:8.1f} s  {b_rate:12,.0f} rec/s  "
              f"peak RSS {backfill_mem:,.0f} MiB  CPU {backfill_cpu:,.0f} s  silver rows {backfill['silver_rows']:,}")
        print(f"[{where}] plain    (text -> Parquet):  {plain['seconds']:8.1f} s  {p_rate:12,.0f} rec/s  "
              f"peak RSS {plain_mem:,.0f} MiB  CPU {plain_cpu:,.0f} s")
        print(f"[{where}] ratio backfill/plain: {b_rate / p_rate:.2f}x")
        phases = backfill.get("phases", {})
        if phases:
            print(f"[{where}] backfill phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
            gate = sum(v for k, v in phases.items() if k.startswith(GATE_PHASES))
            print(f"[{where}] data-quality gate: {gate:.1f} s = {100 * gate / backfill['seconds']:.1f}% of the "
                  f"backfill ({backfill['dq_critical']} critical failure(s), {backfill['dq_warnings']} failed "
                  "warning(s))")
    if "S3" in runs:
        local, remote = runs["local"][0], runs["S3"][0]
        print(f"S3/local backfill time: {remote['seconds'] / local['seconds']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
