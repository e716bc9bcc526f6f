"""Data-quality gate benchmark: the gate's cost on a cached ~1M-record batch, against the backfill's time.

    .venv/bin/python bench/dq_gate.py [--days 500] [--records-per-day 2000] [--backfill-seconds S | --run-backfill]

Generates core_banking files (once; reused while the parameters match), classifies them
as one batch exactly as the backfill does (tests/dq_helpers.py), caches the result, then
times, in one Spark process:

* audit (empty silver)   -- BatchGate.audit on the batch: the batch pass, the uniqueness
                            pass, GX over the per-file and per-month frames;
* audit (months full)    -- the same batch audited again after its rows were published,
                            so every touched month already holds ~1M rows (worst case for
                            the touched-months pass; the gate blocks it: duplicates);
* record + report        -- record_results to ops.dq_results and the HTML report.

The first audit also pays for the GX context (its import runs in the background while
Spark starts). With --run-backfill the full backfill of the same files runs in a child
process first (as bench/backfill.py does) to give the denominator of the overhead.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed(label: str, fn, results: dict):  # noqa: ANN001, ANN201
    started = time.monotonic()
    value = fn()
    results[label] = round(time.monotonic() - started, 2)
    print(f"  {label:<34} {results[label]:8.2f} s", flush=True)
    return value


def run_backfill(data: Path, lake_root: Path) -> float:
    from bench.backfill import CHILD_BACKFILL

    shutil.rmtree(lake_root, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-c", CHILD_BACKFILL, str(data), str(lake_root)], capture_output=True,
                          text=True, cwd=REPO)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit("backfill child failed")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=500)
    parser.add_argument("--records-per-day", type=int, default=2000)
    parser.add_argument("--workdir", default=str(REPO / ".bench"))
    parser.add_argument("--master", default=None, help="Spark master (default local[*])")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--backfill-seconds", type=float, help="backfill time to compare with")
    group.add_argument("--run-backfill", action="store_true", help="time the full backfill of the same files first")
    args = parser.parse_args(argv)

    from ledgerlake.generate import generate

    work = Path(args.workdir)
    data = work / f"core_{args.days}d_{args.records_per_day}"
    if not (data / "_SUCCESS").exists():
        shutil.rmtree(data, ignore_errors=True)
        manifest = generate(data, source="core_banking", start="2023-01-01", days=args.days, accounts=20000,
                            records_per_day=args.records_per_day, seed=11)
        (data / "_SUCCESS").write_text(manifest.to_json())
    results: dict[str, float] = {}
    if args.run_backfill:
        print("backfill of the same files (child process) ...", flush=True)
        results["backfill"] = round(run_backfill(data, work / "dq_backfill_lake"), 2)
        print(f"  backfill                           {results['backfill']:8.2f} s")
    elif args.backfill_seconds:
        results["backfill"] = args.backfill_seconds

    from expectations.gate import BatchGate, record_results
    from expectations.report import write_report
    from ledgerlake.config import LakeConfig
    from ledgerlake.lake import open_lake
    from ledgerlake.ledger import write_silver
    from ledgerlake.session import build_session
    from tests.dq_helpers import classify
    from transforms.legacy import get_source

    gate = timed("load suites (start-up)", lambda: BatchGate.load(get_source("core_banking")), results)
    lake_root = work / "dq_lake"
    shutil.rmtree(lake_root, ignore_errors=True)
    spark = build_session(LakeConfig(warehouse=str(lake_root), master=args.master), "bench-dq-gate")
    lake = open_lake(spark, str(lake_root))

    batch = timed("classify + cache (not the gate)", lambda: classify(lake, "core_banking", data), results)
    n = batch.classified.count()
    files = len(batch.verdicts)
    print(f"  batch: {n:,} classified records in {files} files", flush=True)

    report = timed("audit (empty silver)", lambda: gate.audit(
        lake, classified=batch.classified, files=batch.verdicts, existing=None, run_id="bench-1",
        batch_id=batch.batch_id), results)
    print(f"    {report.summary()}")
    report = timed("audit again (warm GX)", lambda: gate.audit(
        lake, classified=batch.classified, files=batch.verdicts, existing=None, run_id="bench-1",
        batch_id=batch.batch_id), results)
    rows = timed("record_results", lambda: record_results(lake, report), results)
    print(f"    {rows:,} rows in ops.dq_results")
    path = timed("write_report", lambda: write_report(lake, "bench-1", [report]), results)
    print(f"    {path}")

    from pyspark.sql import functions as F

    write_silver(lake, batch.classified.where(F.col("verdict") == "NEW"), "bench", app_id="bench-dq")
    existing = lake.read("silver.transactions")
    blocked = timed("audit (months full, blocked)", lambda: gate.audit(
        lake, classified=batch.classified, files=batch.verdicts, existing=existing, run_id="bench-2",
        batch_id=batch.batch_id), results)
    print(f"    blocked={blocked.blocked}: {len(blocked.critical_failures)} critical failure(s)")

    gate_total = results["audit again (warm GX)"] + results["record_results"]
    print(json.dumps({"records": n, "files": files, **results}))
    if "backfill" in results:
        print(f"gate (audit + record) {gate_total:.1f} s = {100 * gate_total / results['backfill']:.1f}% "
              f"of the backfill's {results['backfill']:.1f} s; first audit incl. GX start "
              f"{100 * (results['audit (empty silver)'] + results['record_results']) / results['backfill']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
