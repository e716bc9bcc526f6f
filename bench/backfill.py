"""Backfill benchmark: the full validated backfill against a plain Spark copy of the same files.

    .venv/bin/python bench/backfill.py [--days 730] [--records-per-day 2000]

Generates ~1.5M core_banking records over two years (once; reused while the
parameters match), then runs, each in its own process on an empty target:

* backfill -- the real job: parse, file gates, record rules, duplicates against
  silver, Delta commits to silver/quarantine/ledger;
* plain    -- spark.read.text of the same files, keep detail records, derive the
  posting month, write month-partitioned Parquet. No validation at all.

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
spark = build_session(LakeConfig(warehouse=lake_root), "bench-backfill")
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
spark = build_session(LakeConfig(warehouse=out), "bench-plain")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--records-per-day", type=int, default=2000)
    parser.add_argument("--accounts", type=int, default=20000)
    parser.add_argument("--workdir", default=str(REPO / ".bench"))
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
    backfill, backfill_mem, backfill_cpu = run_child(CHILD_BACKFILL, str(data), str(work / "lake"))
    plain, plain_mem, plain_cpu = run_child(CHILD_PLAIN, str(data), str(work / "plain"))

    b_rate = backfill["records"] / backfill["seconds"]
    p_rate = plain["records"] / plain["seconds"]
    print(f"input: {backfill['files']} files, {backfill['records']:,} detail records, {size_mb:,.0f} MiB")
    print(f"backfill (validated, Delta): {backfill['seconds']:8.1f} s  {b_rate:12,.0f} rec/s  "
          f"peak RSS {backfill_mem:,.0f} MiB  CPU {backfill_cpu:,.0f} s  silver rows {backfill['silver_rows']:,}")
    print(f"plain    (text -> Parquet):  {plain['seconds']:8.1f} s  {p_rate:12,.0f} rec/s  "
          f"peak RSS {plain_mem:,.0f} MiB  CPU {plain_cpu:,.0f} s")
    print(f"ratio backfill/plain: {b_rate / p_rate:.2f}x")
    phases = backfill.get("phases", {})
    if phases:
        print("backfill phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
        gate = sum(v for k, v in phases.items() if k.startswith(GATE_PHASES))
        print(f"data-quality gate: {gate:.1f} s = {100 * gate / backfill['seconds']:.1f}% of the backfill "
              f"({backfill['dq_critical']} critical failure(s), {backfill['dq_warnings']} failed warning(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
