"""Backfill benchmark: the validated backfill against a plain Spark copy of the same files, whole processes.

    .venv/bin/python bench/backfill.py [--years 2 [5 ...]] [--records-per-day 2000] [--s3]

For each history length it generates ``core_banking`` files (one per day, ``--records-per-day``
records each; 2 years = 730 files, ~1.46M records; generated once, reused), then runs, each as a
whole process (Python + JVM start included) on an empty target, one after the other:

* backfill -- ``ledgerlake backfill --source core_banking`` into a fresh lake: every contract
  rule, the data-quality gate, Delta commits to silver, quarantine, the serving tier and the ledger;
* plain    -- the same files read as text, decoded as ISO-8859-1, seven fields cut, written as
  month-partitioned Parquet; no validation at all;
* daily    -- one more day's file into the lake the backfill just filled: the nightly load.

It prints the records/s of each, the ratio backfill/plain, the peak resident memory and CPU
seconds of each process tree (memory as PSS: pages a JVM shares with a helper it forks count once),
and the backfill's phases (its "took" log lines).
With ``--s3`` the backfill and the plain job run again with files and target on S3 (a moto server
on loopback, or the standard AWS settings' endpoint with ``--s3-endpoint-from-env``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

START = date(2023, 1, 1)

PLAIN = """
import sys
from pyspark.sql import functions as F
from ledgerlake.config import LakeConfig
from ledgerlake.session import build_session
data, out = sys.argv[1], sys.argv[2]
spark = build_session(LakeConfig(warehouse=out, object_store="://" in out), "bench-plain")
text = F.decode(F.col("value").cast("binary"), "ISO-8859-1")
cut = lambda pos, length: F.substring(text, pos, length)
details = spark.read.text(data + "/*.dat").where(cut(1, 1) == "D").select(
    cut(2, 20).alias("txn_id"), cut(22, 12).alias("account_no"), cut(34, 8).alias("posting_date"),
    cut(56, 4).alias("txn_code"), cut(60, 15).alias("amount"), cut(75, 3).alias("currency"),
    cut(81, 40).alias("description"), F.concat_ws("-", cut(34, 4), cut(38, 2)).alias("posting_month"))
details.write.mode("overwrite").partitionBy("posting_month").parquet(out + "/plain")
"""

# the gate's phases in the backfill's log: audit, results, report
GATE_PHASES = ("data-quality gate", "write ops.dq_results", "data-quality report")


@dataclass
class Run:
    """One whole process: wall seconds, peak RSS (MiB) and CPU seconds of its tree, its stderr."""

    seconds: float
    peak_mib: float
    cpu: float
    log: str = ""
    phases: dict[str, float] = field(default_factory=dict)

    def rate(self, records: int) -> float:
        return records / self.seconds


def run_process(args: list[str]) -> Run:
    """Run a command to the end, sampling the memory (proportional set size) and CPU of its process tree."""
    import psutil

    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    parent = psutil.Process(proc.pid)
    peak = 0
    cpu: dict[int, float] = {}
    while proc.poll() is None:
        rss = 0
        with contextlib.suppress(psutil.Error):
            for p in [parent, *parent.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    # PSS: pages shared with another process of the tree counted once (a JVM forking a
                    # helper, chmod or df, would otherwise count twice for an instant)
                    rss += p.memory_full_info().pss
                    times = p.cpu_times()
                    cpu[p.pid] = times.user + times.system
        peak = max(peak, rss)
        time.sleep(0.5)
    out, err = proc.communicate()
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        sys.stderr.write(out[-2000:] + err[-4000:])
        raise SystemExit(f"{' '.join(args[:4])} failed with exit status {proc.returncode}")
    return Run(seconds, peak / 2**20, sum(cpu.values()), out + err, phases_of(err))


def phases_of(log: str) -> dict[str, float]:
    """Seconds per phase from the job's "<what> took <n>s" lines (numbers in <what> folded)."""
    phases: dict[str, float] = {}
    for what, seconds in re.findall(r"ledgerlake[\w.]*: (.*) took ([0-9.]+)s$", log, re.MULTILINE):
        what = re.sub(r"[0-9][0-9,]*", "N", what)
        phases[what] = round(phases.get(what, 0.0) + float(seconds), 1)
    return phases


def backfill(data: str, lake: str, batch_mb: int | None = None) -> Run:
    sized = ["--batch-mb", str(batch_mb)] if batch_mb else []
    return run_process([sys.executable, "-m", "ledgerlake.cli", "backfill", "--source", "core_banking",
                        "--input", data, "--warehouse", lake, "--log-level", "INFO", *sized])


def plain(data: str, out: str) -> Run:
    return run_process([sys.executable, "-c", PLAIN, data, out])


def generated(work: Path, days: int, per_day: int, start: date = START, tag: str = "core") -> tuple[Path, int]:
    """The benchmark's files (generated once per parameters) and their number of detail records."""
    from ledgerlake.samples.legacy import generate

    data = work / f"{tag}_{start:%Y%m%d}_{days}d_{per_day}"
    done = data / "_SUCCESS"
    if not done.exists():
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.monotonic()
        manifest = generate(data, source="core_banking", start=start, days=days, accounts=20_000,
                            records_per_day=per_day, seed=11 + days)
        done.write_text(json.dumps({"records": manifest.total_records}))
        print(f"generated {manifest.total_records:,} records in {len(manifest.files)} files "
              f"({time.monotonic() - t0:.1f}s)", flush=True)
    return data, json.loads(done.read_text())["records"]


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
    print(f"uploaded {data} to s3://{bucket}/landing ({time.monotonic() - t0:.1f}s)", flush=True)
    try:
        yield f"s3://{bucket}/landing", f"s3a://{bucket}/target"
    finally:
        if server is not None:
            server.stop()


def report(label: str, records: int, files: int, size_mib: float, full: Run, copy: Run) -> None:
    b_rate, p_rate = full.rate(records), copy.rate(records)
    print(f"[{label}] input: {files} files, {records:,} detail records, {size_mib:,.0f} MiB")
    print(f"[{label}] backfill (validated, Delta): {full.seconds:7.1f} s  {b_rate:9,.0f} rec/s  "
          f"peak RSS (PSS) {full.peak_mib:6,.0f} MiB  CPU {full.cpu:5,.0f} s")
    print(f"[{label}] plain (text -> Parquet):     {copy.seconds:7.1f} s  {p_rate:9,.0f} rec/s  "
          f"peak RSS (PSS) {copy.peak_mib:6,.0f} MiB  CPU {copy.cpu:5,.0f} s")
    print(f"[{label}] ratio backfill/plain: {b_rate / p_rate:.2f}x")
    if full.phases:
        print(f"[{label}] backfill phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in full.phases.items()))
        gate = sum(v for k, v in full.phases.items() if k.startswith(GATE_PHASES))
        print(f"[{label}] data-quality gate: {gate:.1f} s = {100 * gate / full.seconds:.1f}% of the backfill")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=int, nargs="+", default=[2], metavar="N",
                        help="history lengths to run, one after the other (default 2; e.g. --years 2 5)")
    parser.add_argument("--days", type=int, help="history length in days instead of --years (a quick run)")
    parser.add_argument("--records-per-day", type=int, default=2000)
    parser.add_argument("--workdir", default=str(REPO / ".bench"))
    parser.add_argument("--batch-mb", type=int, help="the backfill's --batch-mb (default: sized by memory)")
    parser.add_argument("--no-daily", action="store_true", help="skip the daily load after each backfill")
    parser.add_argument("--s3", action="store_true", help="also run backfill and plain with files and target on S3")
    parser.add_argument("--s3-endpoint-from-env", action="store_true",
                        help="with --s3: the S3 of the standard AWS settings, not a moto server on loopback")
    args = parser.parse_args(argv)

    work = Path(args.workdir)
    lengths = [args.days] if args.days else [round(365 * y) for y in args.years]
    summary = []
    for days in lengths:
        label = f"{days / 365:.0f}y" if days % 365 == 0 else f"{days}d"
        data, records = generated(work, days, args.records_per_day)
        files = len(list(data.glob("*.dat")))
        size_mib = sum(p.stat().st_size for p in data.glob("*.dat")) / 2**20
        for target in ("lake", "plain"):
            shutil.rmtree(work / target, ignore_errors=True)
        print(f"[{label}] backfill ...", flush=True)
        full = backfill(str(data), str(work / "lake"), args.batch_mb)
        print(f"[{label}] plain job ...", flush=True)
        copy = plain(str(data), str(work / "plain"))
        report(label, records, files, size_mib, full, copy)
        summary.append((label, full.peak_mib))
        if not args.no_daily:
            day, day_records = generated(work, 1, args.records_per_day, START + timedelta(days=days), tag="daily")
            daily = backfill(str(day), str(work / "lake"))
            loaded = re.search(r"(\d+) loaded", daily.log)
            print(f"[{label}] daily load ({day_records:,} records into the {label} lake, "
                  f"{loaded.group(1) if loaded else '?'} file loaded): {daily.seconds:.1f} s  "
                  f"peak RSS (PSS) {daily.peak_mib:,.0f} MiB  CPU {daily.cpu:,.0f} s")
            print(f"[{label}] daily phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in daily.phases.items()))
        if args.s3:
            with s3_copy(data, work, args.s3_endpoint_from_env) as (s3_data, s3_work):
                s3_full = backfill(s3_data, f"{s3_work}/lake", args.batch_mb)
                s3_copy_run = plain(s3_data, f"{s3_work}/plain")
            report(f"{label} S3", records, files, size_mib, s3_full, s3_copy_run)
            print(f"[{label}] S3/local backfill time: {s3_full.seconds / full.seconds:.2f}x")
    if len(summary) > 1:
        print("peak RSS of the backfill by history: " + ", ".join(f"{k} {v:,.0f} MiB" for k, v in summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
