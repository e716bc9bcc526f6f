"""Freshness benchmark: how long after an event file lands is it visible in serving.transactions_recent?

    .venv/bin/python bench/freshness.py [--rate 500] [--file-seconds 1] [--minutes 3] [--trigger-seconds 2]

A producer lands one file of ``rate * file-seconds`` events every ``file-seconds``
(new postings, ~2% corrections of recent transactions, ~1% repeats) while
``ledgerlake stream`` runs as a separate process, as in production. For every event,
latency = the commit time of the serving-tier commit that made it visible minus the
time its file landed. Both come from durable records rather than from polling:
the landing time is the file's modification time (write + rename), the file-to-batch
mapping is the stream's checkpoint (``sources/0``), and the commit time is the Delta
log of serving.transactions_recent (``commitInfo.timestamp`` of the commit carrying
the batch's transaction identifier).

Prints p50, p95, p99 and max latency, the sustained events/s, and the latency of
the first and last thirds of the run (a growing backlog shows as a rising trend).
Target on a 2-core machine: p50 <= 5 s, p99 <= 15 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ledgerlake.samples.events import EventFactory, land_file, render  # noqa: E402

CHECKPOINT = "_checkpoints/stream-events"


def file_batches(checkpoint: Path) -> dict[str, int]:
    """Landing file name -> micro-batch id, from the file source's log in the checkpoint."""
    mapping: dict[str, int] = {}
    folder = checkpoint / "sources" / "0"
    if not folder.is_dir():
        return mapping
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        for line in entry.read_text().splitlines()[1:]:          # first line: log format version
            if line.strip():
                record = json.loads(line)
                mapping[record["path"].rsplit("/", 1)[-1]] = int(record["batchId"])
    return mapping


def serving_commits(lake: Path) -> dict[int, float]:
    """Micro-batch id -> epoch seconds of the stream's commit to serving.transactions_recent in that batch.

    The stream's commits carry its transaction identifier: the application id of its
    checkpoint marker + ``-merge`` (MERGE) or + ``-append`` (append), version = batch id.
    """
    marker = json.loads((lake / CHECKPOINT / "ledgerlake-checkpoint.json").read_text())
    app_ids = {f"{marker['app_id']}-append", f"{marker['app_id']}-merge"}
    commits: dict[int, float] = {}
    for log_file in sorted((lake / "serving" / "transactions_recent" / "_delta_log").glob("*.json")):
        txn_version, timestamp = None, None
        for line in log_file.read_text().splitlines():
            action = json.loads(line)
            if "txn" in action and action["txn"]["appId"] in app_ids:
                txn_version = int(action["txn"]["version"])
            if "commitInfo" in action:
                timestamp = action["commitInfo"]["timestamp"] / 1000.0
        if txn_version is not None and timestamp is not None:
            commits[txn_version] = max(commits.get(txn_version, 0.0), timestamp)
    return commits


def stop_process(proc: subprocess.Popen, timeout: float = 120) -> None:
    """SIGTERM, then SIGKILL to the process group after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Producer:
    """Files of new postings, with a few corrections and repeats, landed at a steady pace."""

    def __init__(self, landing: Path, rate: int, file_seconds: float, seed: int) -> None:
        self.landing, self.per_file, self.file_seconds = landing, max(1, round(rate * file_seconds)), file_seconds
        self.factory = EventFactory(seed)
        self.next_txn = 0
        self.recent: list[dict] = []
        self.landed: list[tuple[str, float, int]] = []     # (file, landed at, events)

    def events(self) -> list[str]:
        rng, now = self.factory.rng, datetime.now(UTC)
        lines = []
        for _ in range(self.per_file):
            roll = rng.random()
            if roll < 0.02 and self.recent:
                base = rng.choice(self.recent)
                if base["sequence"] == 1:
                    lines.append(render(self.factory.posting(base["txn_id"], 2, now - timedelta(seconds=5),
                                                             "TXN_CORRECTED")))
                    continue
            if roll < 0.03 and self.recent:
                lines.append(render(rng.choice(self.recent)))                 # at-least-once delivery
                continue
            event = self.factory.posting(f"CB{900_000_000_000_000_000 + self.next_txn:018d}", 1, now)
            self.next_txn += 1
            self.recent = (self.recent + [event])[-1000:]
            lines.append(render(event))
        return lines

    def land(self, index: int, prefix: str = "events") -> None:
        name = f"{prefix}-{index:06d}.jsonl"
        lines = self.events()
        path = land_file(self.landing, name, lines)
        self.landed.append((name, path.stat().st_mtime, len(lines)))

    def run(self, seconds: float, prefix: str = "events") -> None:
        start = time.monotonic()
        index = 0
        while time.monotonic() - start < seconds:
            self.land(index, prefix)
            index += 1
            time.sleep(max(0.0, start + index * self.file_seconds - time.monotonic()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=500, help="events per second (default 500)")
    parser.add_argument("--file-seconds", type=float, default=1.0, help="one landing file every S seconds (default 1)")
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the measured production runs (default 3)")
    parser.add_argument("--warmup-seconds", type=float, default=60.0,
                        help="production at the same rate before measuring, not counted (default 60): a long-running "
                             "stream's JVM has compiled its hot code; a freshly started one spends a core on it")
    parser.add_argument("--trigger-seconds", type=float, default=2.0, help="the stream's trigger (default 2)")
    parser.add_argument("--master", default="local[*]", help="Spark master of the stream (default local[*])")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="extra Spark setting for the stream, repeatable")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temporary one)")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="ledgerlake-freshness-"))
    landing, lake = work / "landing", work / "lake"
    landing.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    command = [sys.executable, "-m", "ledgerlake.cli", "stream", "--input", str(landing), "--warehouse", str(lake),
               "--trigger-seconds", str(args.trigger_seconds), "--master", args.master]
    for setting in args.conf:
        command += ["--conf", setting]
    log_path = work / "stream.log"
    producer = Producer(landing, args.rate, args.file_seconds, args.seed)
    print(f"work dir {work}; load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                start_new_session=True)
    try:
        # warm-up: one file through the whole path, so JVM start-up is not counted
        land_file(landing, "events-warmup.jsonl", producer.events())
        commits = lake / CHECKPOINT / "commits"
        deadline = time.monotonic() + 600
        while not (commits / "0").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                print(f"the stream did not start; see {log_path}")
                return 1
            time.sleep(0.2)
        if args.warmup_seconds > 0:
            print(f"stream started; warming up for {args.warmup_seconds:g}s at the same rate (not counted)", flush=True)
            producer.run(args.warmup_seconds, prefix="warmup")
            producer.landed.clear()
        print(f"measuring: {producer.per_file} events every {args.file_seconds:g}s "
              f"for {args.minutes:g} min", flush=True)
        loads = []
        started = time.time()
        producer_seconds = args.minutes * 60
        producer.run(producer_seconds)
        loads.append(os.getloadavg()[0])
        last = producer.landed[-1][0]
        deadline = time.monotonic() + 300
        while True:                                      # drain: wait until the last file's batch committed
            batch = file_batches(lake / CHECKPOINT).get(last)
            if batch is not None and (commits / str(batch)).exists():
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                print("the stream did not catch up within 5 minutes after the producer stopped")
                break
            time.sleep(0.5)
    finally:
        stop_process(proc, timeout=180)

    batches, visible = file_batches(lake / CHECKPOINT), serving_commits(lake)
    latencies: list[float] = []
    per_file: list[tuple[float, float]] = []                   # (landed at, latency)
    missing = 0
    for name, landed_at, n in producer.landed:
        batch = batches.get(name)
        if batch is None or batch not in visible:
            missing += n
            continue
        latency = visible[batch] - landed_at
        latencies += [latency] * n
        per_file.append((landed_at, latency))
    if not latencies:
        print(f"no event became visible; see {log_path}")
        return 1
    events = sum(n for _, _, n in producer.landed)
    last_visible = max(visible[batches[name]] for name, _, _ in producer.landed if batches.get(name) in visible)
    third = max(1, len(per_file) // 3)
    first_third = statistics.median(lat for _, lat in per_file[:third])
    last_third = statistics.median(lat for _, lat in per_file[-third:])
    used = sorted({batches[n] for n, _, _ in producer.landed if n in batches})
    result = {
        "events": events, "files": len(producer.landed), "micro_batches": len(used),
        "events_not_visible": missing,
        "latency_s": {"p50": round(percentile(latencies, 50), 2), "p95": round(percentile(latencies, 95), 2),
                      "p99": round(percentile(latencies, 99), 2), "max": round(max(latencies), 2)},
        "offered_events_per_s": round(events / producer_seconds, 1),
        "sustained_events_per_s": round(events / (last_visible - producer.landed[0][1]), 1),
        "median_latency_first_third_s": round(first_third, 2),
        "median_latency_last_third_s": round(last_third, 2),
        "load_average_end": round(loads[0], 1) if loads else None,
        "wall_seconds": round(time.time() - started, 1),
    }
    print(json.dumps(result, indent=1))
    lat = result["latency_s"]
    trend = "no growing backlog" if last_third <= first_third * 1.5 + 2 else "BACKLOG GROWING"
    print(f"freshness: p50 {lat['p50']}s  p95 {lat['p95']}s  p99 {lat['p99']}s  max {lat['max']}s  "
          f"sustained {result['sustained_events_per_s']} events/s of {result['offered_events_per_s']} offered; "
          f"{trend} (median {first_third:.1f}s first third, {last_third:.1f}s last third)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
