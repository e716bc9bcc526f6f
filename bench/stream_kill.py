"""Exactly once across crashes: SIGKILL the running stream at random moments while files keep landing.

    .venv/bin/python bench/stream_kill.py [--kills 20] [--files 60] [--seed 7] [--keep DIR]

A producer lands generated event files (repeats, disorder, corrections, cancellations,
bad lines) at a steady pace. Meanwhile ``ledgerlake stream`` runs as its own process
group and is killed with SIGKILL -- Python and its JVM at once, no clean-up of any
kind -- at a random moment after it has committed a micro-batch, then restarted.
After the last kill and the last file, one ``--available-now`` run finishes the zone.

The lake must then equal, table by table, an uninterrupted run over the same files,
and the outcome computed independently from the contract (ledgerlake.samples.events).
Exit status 0 when it does. The CI test (tests/test_stream_kill.py) runs this with 3 kills.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ledgerlake.samples.events import EventsOutcome, generate_events, land_file  # noqa: E402

TODAY = date(2026, 11, 26)
CHECKPOINT = "_checkpoints/stream-events"


@dataclass
class KillRun:
    """What the crash run did."""

    kills: list[dict] = field(default_factory=list)    # per kill: seconds since start, batches committed before
    restarts: int = 0
    final_exit: int | None = None
    seconds: float = 0.0


def stream_command(landing: Path, lake: Path, available_now: bool = False, trigger: float = 1.0,
                   max_files: int = 3) -> list[str]:
    args = [sys.executable, "-m", "ledgerlake.cli", "stream", "--input", str(landing), "--warehouse", str(lake),
            "--today", TODAY.isoformat(), "--max-files-per-trigger", str(max_files),
            "--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=2"]
    return args + (["--available-now"] if available_now else ["--trigger-seconds", str(trigger)])


def committed_batches(lake: Path) -> int:
    commits = lake / CHECKPOINT / "commits"
    return len([p for p in commits.iterdir() if p.name.isdigit()]) if commits.is_dir() else 0


def _env() -> dict[str, str]:
    return {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
            "LEDGERLAKE_DRIVER_MEMORY": "1g", "PYTHONPATH": str(REPO)}


def produce(landing: Path, contents: list[list[str]], names: list[str], interval: float) -> threading.Thread:
    """Land files one by one in a background thread, each with its own increasing modification time."""

    def _land() -> None:
        for name, lines in zip(names, contents, strict=True):
            land_file(landing, name, lines, mtime=time.time())
            time.sleep(interval)

    thread = threading.Thread(target=_land, daemon=True)
    thread.start()
    return thread


def crash_run(work: Path, contents: list[list[str]], names: list[str], kills: int, seed: int,
              interval: float, say=print) -> KillRun:  # noqa: ANN001
    """Stream the zone while files land, SIGKILL-ing the stream ``kills`` times; finish with --available-now.

    The files land in ``kills + 1`` consecutive groups, one per run of the stream, so every
    run has new files arriving while it works (and is killed).
    """
    rng = random.Random(seed)
    landing, lake, logs = work / "landing", work / "lake", work / "logs"
    landing.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    run = KillRun()
    started = time.monotonic()
    size = -(-len(names) // (kills + 1))
    groups = [(names[i:i + size], contents[i:i + size]) for i in range(0, len(names), size)]
    for k in range(kills):
        before = committed_batches(lake)
        with (logs / f"run-{k:02d}.log").open("w") as out:
            proc = subprocess.Popen(stream_command(landing, lake), stdout=out, stderr=subprocess.STDOUT,
                                    env=_env(), cwd=REPO, start_new_session=True)
        group_names, group_contents = groups[k] if k < len(groups) else ([], [])
        producer = produce(landing, group_contents, group_names, interval)
        deadline = time.monotonic() + 900
        while committed_batches(lake) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if proc.poll() is not None or committed_batches(lake) <= before:
            os.killpg(proc.pid, signal.SIGKILL)
            raise RuntimeError(f"the stream committed nothing ({proc.returncode}); see {logs}/run-{k:02d}.log")
        delay = rng.uniform(0.0, 4.0)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)       # the stream's own process group: Python and its JVM
        proc.wait()
        producer.join()
        run.kills.append({"at": round(time.monotonic() - started, 1), "delay_after_commit": round(delay, 2),
                          "batches_committed": committed_batches(lake)})
        run.restarts += 1
        say(f"kill {k + 1}/{kills}: SIGKILL {delay:.1f}s after a commit, "
            f"{committed_batches(lake)} batch(es) committed, {sum(1 for _ in landing.glob('*.jsonl'))} file(s) landed")
    for group_names, group_contents in groups[kills:]:
        produce(landing, group_contents, group_names, 0.0).join()
    with (logs / "final.log").open("w") as out:
        final = subprocess.run(stream_command(landing, lake, available_now=True), stdout=out,
                               stderr=subprocess.STDOUT, env=_env(), cwd=REPO, timeout=900)
    run.final_exit = final.returncode
    run.seconds = time.monotonic() - started
    say(f"final --available-now run: exit {final.returncode}, {committed_batches(lake)} batch(es) in all")
    return run


def plan_zone(files: int, events_per_file: int, seed: int) -> tuple[EventsOutcome, list[list[str]]]:
    """The generated landing zone (not written): expected outcome and each file's lines."""
    return generate_events(Path(tempfile.gettempdir()), files=files, events_per_file=events_per_file, seed=seed,
                           land=False)


def compare(spark, clean_root: str, crashed_root: str) -> dict[str, str]:  # noqa: ANN001
    """Tables that differ between the two lakes (empty when identical)."""
    from ledgerlake.lake import Lake
    from tests.event_files import snapshot as stream_snapshot

    clean, crashed = stream_snapshot(Lake(spark, clean_root)), stream_snapshot(Lake(spark, crashed_root))
    return {name: f"{len(clean[name])} rows clean vs {len(crashed[name])} after kills"
            for name in clean if clean[name] != crashed[name]}


def check_outcome(spark, root: str, outcome: EventsOutcome) -> list[str]:  # noqa: ANN001
    """Differences between the lake and the outcome computed from the contract."""
    from ledgerlake.lake import Lake
    from ledgerlake.serving import window_for

    lake = Lake(spark, root)
    problems = []
    silver = {r["txn_id"]: r for r in lake.read("silver.transactions").collect()}
    if set(silver) != set(outcome.rows):
        problems.append(f"silver txn_ids: {len(set(silver) - set(outcome.rows))} unexpected, "
                        f"{len(set(outcome.rows) - set(silver))} missing")
    for txn_id, want in outcome.rows.items():
        got = silver.get(txn_id)
        if got is not None and (str(got["amount"]), got["posting_date"].isoformat(), got["event_sequence"]) != (
                want["amount"], want["posting_date"], want["event_sequence"]):
            problems.append(f"{txn_id}: {got['amount']} {got['posting_date']} seq {got['event_sequence']} "
                            f"!= {want['amount']} {want['posting_date']} seq {want['event_sequence']}")
    window = window_for(TODAY, 6)
    serving = {r["txn_id"] for r in lake.read("serving.transactions_recent").select("txn_id").collect()}
    if serving != outcome.serving(window.first_day, window.last_day):
        problems.append("serving membership differs from the window's rows")
    bad = sorted((r["source_file"], r["record_no"]) for r in lake.read("ops.quarantine").collect())
    if bad != sorted(outcome.bad_lines):
        problems.append(f"quarantine: {len(bad)} lines, expected {len(outcome.bad_lines)}")
    if set(silver) & outcome.cancelled:
        problems.append("cancelled transactions present")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--files", type=int, default=84, help="landing files (default 84: 4 per run of the stream)")
    parser.add_argument("--events-per-file", type=int, default=40)
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between two landings while the stream runs (default 1)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temporary one)")
    args = parser.parse_args(argv)

    from ledgerlake.config import LakeConfig
    from ledgerlake.session import build_session

    work = args.keep or Path(tempfile.mkdtemp(prefix="ledgerlake-kill-"))
    outcome, contents = plan_zone(args.files, args.events_per_file, args.seed)
    print(f"work dir {work}: {args.files} files, {outcome.lines} lines, {args.kills} kills, "
          f"a file every {args.interval:g}s while the stream runs, seed {args.seed}")
    run = crash_run(work / "crashed", contents, outcome.files, args.kills, args.seed, args.interval)

    for name, lines in zip(outcome.files, contents, strict=True):
        land_file(work / "clean" / "landing", name, lines)
    clean = subprocess.run(stream_command(work / "clean" / "landing", work / "clean" / "lake", available_now=True,
                                          max_files=1000),
                           capture_output=True, text=True, env=_env(), cwd=REPO, timeout=900)
    if clean.returncode != 0 or run.final_exit != 0:
        print(f"a run failed: clean exit {clean.returncode}, final exit {run.final_exit}\n{clean.stderr[-2000:]}")
        return 1
    spark = build_session(LakeConfig(warehouse=str(work), master="local[2]",
                                     spark_conf={"spark.sql.shuffle.partitions": "2",
                                                 "spark.databricks.delta.snapshotPartitions": "2"}), "kill-check")
    differences = compare(spark, str(work / "clean" / "lake"), str(work / "crashed" / "lake"))
    problems = check_outcome(spark, str(work / "crashed" / "lake"), outcome)
    print(json.dumps({"kills": len(run.kills), "seconds": round(run.seconds, 1), "kill_log": run.kills,
                      "tables_differing": differences, "outcome_problems": problems[:20]}, indent=1))
    ok = not differences and not problems
    print("identical to the uninterrupted run and to the contract's outcome" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
