"""Data-quality gate benchmark: the gate's cost on a cached ~1M-record batch, against the backfill's.

    .venv/bin/python bench/dq_gate.py [--days 500] [--records-per-day 2000] [--run-backfill]

Generates core_banking files (once; reused while the parameters match), classifies them
as one batch exactly as the backfill does (tests/dq_helpers.py), caches the result, then
times, in one Spark process:

* audit (empty silver)      -- BatchGate.audit: the batch pass, the uniqueness pass, GX over
                               the per-file and per-month frames (first call: Spark code
                               generation; GX itself was warmed up in the background);
* audit again               -- the same, warm (a backfill's later batches);
* record_results            -- the results appended to ops.dq_results;
* write_report              -- the run's HTML page (from the reports) and the index;
* audit (months full)       -- the batch audited again after its rows were published, so
                               every touched month already holds its ~1M rows (worst case
                               of the touched-months pass; the gate blocks it: duplicates).

Each step shows wall time and CPU seconds (the Spark JVM's and this Python process's):
on a shared machine the CPU seconds are the stable measure. With --run-backfill the full
backfill of the same files runs first in a child process (as bench/backfill.py runs it),
for the denominator of the overhead, in both measures.
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

JVM_CPU = """
import psutil
_jvm = [p for p in psutil.Process().children(recursive=True) if "java" in p.name()]
_cpu = _jvm[0].cpu_times() if _jvm else None
print(json.dumps({"jvm_cpu": (_cpu.user + _cpu.system) if _cpu else None,
                  "python_cpu": sum(psutil.Process().cpu_times()[:2])}))
"""


class Clock:
    """Wall time and CPU seconds of the Spark JVM and of this process."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.jvm = None
        self.results: dict[str, dict[str, float]] = {}

    def attach_jvm(self) -> None:
        self.jvm = next(p for p in self.me.children(recursive=True) if "java" in p.name())

    def cpu(self) -> tuple[float, float]:
        jvm = sum(self.jvm.cpu_times()[:2]) if self.jvm else 0.0
        return jvm, sum(self.me.cpu_times()[:2])

    def time(self, label: str, fn):  # noqa: ANN001, ANN201
        jvm0, py0 = self.cpu()
        started = time.monotonic()
        value = fn()
        wall = time.monotonic() - started
        jvm1, py1 = self.cpu()
        self.results[label] = {"wall": round(wall, 2), "jvm_cpu": round(jvm1 - jvm0, 2),
                               "python_cpu": round(py1 - py0, 2)}
        r = self.results[label]
        print(f"  {label:<32} wall {r['wall']:8.2f} s   cpu: jvm {r['jvm_cpu']:7.2f} s  python {r['python_cpu']:6.2f} s",
              flush=True)
        return value


def run_backfill(data: Path, lake_root: Path) -> dict[str, float]:
    """The real backfill (bench/backfill.py's child) in its own process; its wall time and CPU seconds."""
    from bench.backfill import CHILD_BACKFILL

    shutil.rmtree(lake_root, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-c", CHILD_BACKFILL + JVM_CPU, str(data), str(lake_root)],
                          capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit("backfill child failed")
    lines = [json.loads(line) for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    result, cpu = lines[-2], lines[-1]
    # the child's CPU includes Spark's start-up (tens of seconds of JVM class loading and JIT); kept as reported
    return {"wall": round(result["seconds"], 2), "jvm_cpu": round(cpu["jvm_cpu"] or 0.0, 2),
            "python_cpu": round(cpu["python_cpu"], 2), "records": result["records"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=500)
    parser.add_argument("--records-per-day", type=int, default=2000)
    parser.add_argument("--workdir", default=str(REPO / ".bench"))
    parser.add_argument("--master", default=None, help="Spark master (default local[*])")
    parser.add_argument("--run-backfill", action="store_true", help="time the full backfill of the same files first")
    args = parser.parse_args(argv)

    from ledgerlake.samples.legacy import generate

    work = Path(args.workdir)
    data = work / f"core_{args.days}d_{args.records_per_day}"
    if not (data / "_SUCCESS").exists():
        shutil.rmtree(data, ignore_errors=True)
        manifest = generate(data, source="core_banking", start="2023-01-01", days=args.days, accounts=20000,
                            records_per_day=args.records_per_day, seed=11)
        (data / "_SUCCESS").write_text(manifest.to_json())
    backfill = None
    if args.run_backfill:
        print("backfill of the same files (child process) ...", flush=True)
        backfill = run_backfill(data, work / "dq_backfill_lake")
        print(f"  backfill: {backfill['records']:,} records, wall {backfill['wall']:.1f} s, "
              f"cpu: jvm {backfill['jvm_cpu']:.1f} s (incl. Spark start-up) python {backfill['python_cpu']:.1f} s")

    clock = Clock()
    from expectations.gate import BatchGate, record_results
    from expectations.report import write_report
    from ledgerlake.config import LakeConfig
    from ledgerlake.lake import open_lake
    from ledgerlake.load.sinks import publisher, write_silver
    from ledgerlake.session import build_session
    from tests.dq_helpers import classify
    from transforms.legacy import get_source
    from transforms.publish import to_silver_rows

    gate = clock.time("load suites (start-up)", lambda: BatchGate.load(get_source("core_banking")))
    lake_root = work / "dq_lake"
    shutil.rmtree(lake_root, ignore_errors=True)
    spark = build_session(LakeConfig(warehouse=str(lake_root), master=args.master), "bench-dq-gate")
    clock.attach_jvm()
    lake = open_lake(spark, str(lake_root), create=True)

    batch = clock.time("classify + cache (not the gate)", lambda: classify(lake, "core_banking", data))
    n = batch.classified.count()
    print(f"  batch: {n:,} classified records in {len(batch.verdicts)} files", flush=True)

    def audit(run_id: str, existing=None):  # noqa: ANN001, ANN202
        return gate.audit(lake, classified=batch.classified, files=batch.verdicts, existing=existing,
                          run_id=run_id, batch_id=batch.batch_id)

    report = clock.time("audit (empty silver)", lambda: audit("bench-1"))
    print(f"    {report.summary()}")
    report = clock.time("audit again", lambda: audit("bench-1"))
    rows = clock.time("record_results", lambda: record_results(lake, report))
    print(f"    {rows:,} rows in ops.dq_results")
    path = clock.time("write_report", lambda: write_report(lake, "bench-1", [report]))
    print(f"    {path}")

    from pyspark.sql import functions as F

    write_silver(lake, batch.classified.where(F.col("verdict") == "NEW")
                 .withColumn("event_sequence", F.lit(None).cast("bigint")).transform(to_silver_rows("bench")),
                 lake.pin("silver.transactions", publisher("core_banking")), "bench-dq")
    existing = lake.read("silver.transactions")
    blocked = clock.time("audit (months full, blocked)", lambda: audit("bench-2", existing))
    print(f"    blocked={blocked.blocked}: {len(blocked.critical_failures)} critical failure(s)")

    r = clock.results
    gate_first = {k: r["audit (empty silver)"][k] + r["record_results"][k] for k in ("wall", "jvm_cpu", "python_cpu")}
    gate_warm = {k: r["audit again"][k] + r["record_results"][k] for k in ("wall", "jvm_cpu", "python_cpu")}
    print(json.dumps({"records": n, "files": len(batch.verdicts), "backfill": backfill, **r}))
    print(f"gate per batch (audit + record): first {gate_first['wall']:.1f} s wall / "
          f"{gate_first['jvm_cpu'] + gate_first['python_cpu']:.1f} cpu-s, warm {gate_warm['wall']:.1f} s wall / "
          f"{gate_warm['jvm_cpu'] + gate_warm['python_cpu']:.1f} cpu-s; classification of the batch "
          f"{r['classify + cache (not the gate)']['wall']:.1f} s wall / "
          f"{r['classify + cache (not the gate)']['jvm_cpu'] + r['classify + cache (not the gate)']['python_cpu']:.1f}"
          f" cpu-s")
    if backfill:
        scale = backfill["records"] / n     # the gate's cost grows with the records
        for label, g in (("first", gate_first), ("warm", gate_warm)):
            wall = 100 * g["wall"] * scale / backfill["wall"]
            cpu = 100 * (g["jvm_cpu"] + g["python_cpu"]) * scale / (backfill["jvm_cpu"] + backfill["python_cpu"])
            print(f"gate ({label}) scaled to the backfill's {backfill['records']:,} records: {wall:.1f}% of its "
                  f"wall time, {cpu:.1f}% of its CPU seconds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
