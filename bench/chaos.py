"""Everything at once, killed at random: backfills, the stream and maintenance on one lake, then the invariants.

    .venv/bin/python bench/chaos.py [--minutes 10] [--seed 11] [--keep DIR]

For ``--minutes``, on one lake: two backfill slots start overlapping loads of one landing
zone (the whole zone, or one business date of it) again and again; the stream runs
resident while event files land (corrections, cancellations, bad lines, and events for
txn_ids that batch files also carry, so the two race for them); ``maintain --optimize``
and ``maintain --roll-off`` start now and then. Any process may be SIGKILLed at a random
moment (its whole process group: Python and its JVM) and is started again. Then a last
backfill and a last ``stream --available-now`` finish the work, unkilled.

The lake is then checked against what the inputs say, computed without the lake (the
generators' manifests): each txn_id once in silver and in the serving tier; exactly one
LOADED ledger row per file, whose counts add up to silver's batch rows; no record quarantined
twice and every bad record and line quarantined; the streamed rows are the event feed's
outcome; every txn_id both sides carry is the batch's, with a parity row for the field that
differs; every run that was not killed exited 0. It prints runs, kills, conflicts retried,
the stream's micro-batch time alone and under contention, and each invariant. Exit status 0
when every invariant holds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.stream_kill import committed_batches  # noqa: E402
from ledgerlake.samples.events import EventFactory, generate_events, land_file  # noqa: E402
from ledgerlake.samples.legacy import generate  # noqa: E402
from tests.legacy_files import core_detail, core_file  # noqa: E402

TODAY = date(2026, 11, 26)
START = date(2026, 10, 1)                  # business dates of the batch zone: inside the serving window
SHARED_IDS = [f"CB9{n:017d}" for n in range(1, 41)]  # txn_ids carried by batch files and by events
BATCH_AMOUNT = "12.34"                     # theirs in the batch files; the events say otherwise
STREAM_ALONE_SECONDS = 60.0                # the stream runs alone first: its baseline micro-batch time


@dataclass
class Proc:
    kind: str
    popen: subprocess.Popen
    log: Path
    started: float
    kill_at: float | None


@dataclass
class Tally:
    runs: Counter = field(default_factory=Counter)
    kills: Counter = field(default_factory=Counter)
    exits: list[tuple[str, int, str]] = field(default_factory=list)   # kind, status, log of unkilled runs
    alone_batches: int = 0            # micro-batches the stream committed before anything else started


def _env() -> dict[str, str]:
    return {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
            "LEDGERLAKE_DRIVER_MEMORY": "1g", "PYTHONPATH": str(REPO)}


def _cli(*args: str, lake: Path) -> list[str]:
    return [sys.executable, "-m", "ledgerlake.cli", *args, "--warehouse", str(lake), "--today", TODAY.isoformat(),
            "--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=2"]


def make_inputs(work: Path, days: int, seed: int) -> tuple[dict, list[str], list[list[str]]]:
    """The batch zone and the event files (not landed yet); what a correct lake must hold."""
    zone = work / "batch"
    manifest = generate(zone, source="core_banking", start=START, days=days, records_per_day=40, accounts=30,
                        seed=seed, record_errors=True)
    shared_days = {}
    for i, txn_id in enumerate(SHARED_IDS):
        day = START + timedelta(days=i % days)
        shared_days.setdefault(day, []).append(core_detail(
            txn_id, account="000000000042", posting_date=day.strftime("%Y%m%d"), value_date=day.strftime("%Y%m%d"),
            amount=BATCH_AMOUNT, code="POS", channel="POS"))
    for day, details in shared_days.items():
        core_file(zone, details, business_date=day.strftime("%Y%m%d"), seq="000099")
    outcome, contents = generate_events(Path(tempfile.gettempdir()), files=40, events_per_file=40, seed=seed,
                                        land=False)
    names = list(outcome.files)
    factory, rng = EventFactory(seed), random.Random(seed)
    for k in range(4):                       # the shared txn_ids' events, in four files spread over the run
        lines = []
        for i, txn_id in enumerate(SHARED_IDS[k::4]):
            day = START + timedelta(days=(k + 4 * i) % days)
            at = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
            lines.append(json.dumps(factory.posting(txn_id, 1, at)))
            lines.append(json.dumps(factory.posting(txn_id, 2, at, "TXN_CORRECTED")))
        slot = rng.randrange(len(names) + 1)
        names.insert(slot, f"events-shared-{k}.jsonl")
        contents.insert(slot, lines)
    expected = {
        "files": len(list(zone.iterdir())),
        "batch_rows": manifest.silver_rows + len(SHARED_IDS),
        "quarantined_records": manifest.total_quarantined,
        "bad_lines": len(outcome.bad_lines),
        "streamed": {t: (r["amount"], r["posting_date"]) for t, r in outcome.rows.items()},
        "days": sorted({f"{m[1]}-{m[2]}-{m[3]}" for p in zone.iterdir()
                        if (m := re.match(r"CORE_TXN_(\d{4})(\d{2})(\d{2})_", p.name))}),
    }
    return expected, names, contents


def start(kind: str, command: list[str], logs: Path, tally: Tally, rng: random.Random, kill_share: float,
          kill_within: tuple[float, float]) -> Proc:
    tally.runs[kind] += 1
    log = logs / f"{kind}-{tally.runs[kind]:03d}.log"
    with log.open("w") as out:
        popen = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=REPO,
                                 start_new_session=True)
    now = time.monotonic()
    kill_at = now + rng.uniform(*kill_within) if rng.random() < kill_share else None
    return Proc(kind, popen, log, now, kill_at)


def reap(procs: list[Proc], tally: Tally, say) -> list[Proc]:  # noqa: ANN001
    """Kill what is due, collect what ended; the processes still running."""
    running = []
    for p in procs:
        if p.popen.poll() is None and p.kill_at is not None and time.monotonic() >= p.kill_at:
            os.killpg(p.popen.pid, signal.SIGKILL)
            p.popen.wait()
            tally.kills[p.kind] += 1
            say(f"  SIGKILL {p.kind} after {time.monotonic() - p.started:.0f}s ({p.log.name})")
            continue
        if p.popen.poll() is None:
            running.append(p)
            continue
        tally.exits.append((p.kind, p.popen.returncode, p.log.name))
        say(f"  {p.kind} exited {p.popen.returncode} after {time.monotonic() - p.started:.0f}s ({p.log.name})")
    return running


def chaos(work: Path, expected: dict, names: list[str], contents: list[list[str]], minutes: float, seed: int,
          say=print) -> Tally:  # noqa: ANN001
    rng = random.Random(seed)
    lake, landing, logs = work / "lake", work / "landing", work / "logs"
    landing.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    stream_cmd = _cli("stream", "--input", str(landing), "--trigger-seconds", "2", "--max-files-per-trigger", "3",
                      lake=lake)
    began = time.monotonic()
    deadline = began + minutes * 60
    land_every = minutes * 60 / (len(names) + 1)
    next_land, landed = began, 0
    stream: Proc | None = None
    backfills: list[Proc] = []
    maintenance: list[Proc] = []
    next_maintain = began + STREAM_ALONE_SECONDS + 60
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_land and landed < len(names):
            land_file(landing, names[landed], contents[landed], mtime=time.time())
            landed += 1
            next_land = now + land_every
        if stream is None or stream.popen.poll() is not None or (stream.kill_at and now >= stream.kill_at):
            if stream is not None:
                reap([stream], tally, say)
            # the first run is left alone for a while (the baseline), then killed like the others
            wait = max(0.0, began + STREAM_ALONE_SECONDS - now)
            stream = start("stream", stream_cmd, logs, tally, rng, 1.0, (wait + 30, wait + 120))
        if now - began >= STREAM_ALONE_SECONDS:
            if not tally.runs["backfill"]:
                tally.alone_batches = committed_batches(lake)
            backfills = reap(backfills, tally, say)
            while len(backfills) < 2:
                scope = ["--date", rng.choice(expected["days"])] if rng.random() < 0.5 else []
                backfills.append(start("backfill", _cli("backfill", "--source", "core_banking", "--input",
                                                        str(work / "batch"), *scope, lake=lake),
                                       logs, tally, rng, 0.3, (10, 90)))
            maintenance = reap(maintenance, tally, say)
            if now >= next_maintain and not maintenance:
                task = rng.choice([["--optimize", "--months", "2026-10"], ["--roll-off"]])
                maintenance.append(start("maintain", _cli("maintain", *task, "--no-audit", lake=lake), logs, tally,
                                         rng, 0.3, (5, 60)))
                next_maintain = now + rng.uniform(60, 150)
        time.sleep(0.5)
    say("chaos over: waiting for the running loads and maintenance, then one last backfill and stream")
    for p in [*backfills, *maintenance]:
        p.kill_at = None
    if stream is not None:
        os.killpg(stream.popen.pid, signal.SIGKILL)
        stream.popen.wait()
        tally.kills["stream"] += 1
    while backfills or maintenance:
        backfills, maintenance = reap(backfills, tally, say), reap(maintenance, tally, say)
        time.sleep(1)
    for name, lines in zip(names[landed:], contents[landed:], strict=True):
        land_file(landing, name, lines)
    last = [start("backfill", _cli("backfill", "--source", "core_banking", "--input", str(work / "batch"), lake=lake),
                  logs, tally, rng, 0.0, (0, 0)),
            start("stream", _cli("stream", "--input", str(landing), "--available-now", lake=lake), logs, tally, rng,
                  0.0, (0, 0))]
    while last:
        last = reap(last, tally, say)
        time.sleep(1)
    return tally


def log_figures(logs: Path, alone_batches: int) -> dict:
    """Conflicts retried and re-judged batches, from every run's log; the stream's micro-batch times."""
    retried = rejudged = yielded = 0
    alone: list[float] = []
    busy: list[float] = []
    took = re.compile(r"\[stream\] batch (\d+): .* took ([0-9.]+)s")
    for log in sorted(logs.glob("*.log")):
        text = log.read_text(errors="replace")
        retried += text.count("concurrent commit, retry")
        rejudged += text.count("judging it again")
        yielded += len(re.findall(r"loaded from a batch file meanwhile|committed while the batch was judged", text))
        if log.name.startswith("stream-"):
            for batch, seconds in took.findall(text):
                (alone if log.name == "stream-001.log" and int(batch) < alone_batches else busy).append(float(seconds))

    def summary(values: list[float]) -> dict:
        if not values:
            return {"micro_batches": 0}
        values = sorted(values)
        nearest_rank = min(len(values), math.ceil(0.95 * len(values))) - 1
        return {"micro_batches": len(values), "median_s": round(statistics.median(values), 2),
                "p95_s": round(values[nearest_rank], 2)}

    return {"conflicts_retried": retried, "batches_judged_again": rejudged, "races_resolved": yielded,
            "stream_alone": summary(alone), "stream_under_contention": summary(busy)}


def check(spark, lake_root: Path, expected: dict, tally: Tally) -> dict[str, str]:  # noqa: ANN001
    """Each invariant -> "ok" or what is wrong."""
    from ledgerlake.lake import Lake

    lake = Lake(spark, str(lake_root))
    silver = lake.read("silver.transactions").select("txn_id", "source_system", "amount", "posting_date").collect()
    serving = [r["txn_id"] for r in lake.read("serving.transactions_recent").select("txn_id").collect()]
    ledger = lake.read("ops.load_ledger").collect()
    quarantine = lake.read("ops.quarantine").select("source_system", "source_sha256", "record_no").collect()
    parity = {(r["txn_id"], r["field"]) for r in lake.read("ops.parity").collect()}
    result = {}

    def verdict(name: str, problem: str | None) -> None:
        result[name] = problem or "ok"

    twice = [t for t, n in Counter(r["txn_id"] for r in silver).items() if n > 1]
    verdict("silver: each txn_id once", f"{len(twice)} twice, e.g. {twice[:3]}" if twice else None)
    twice = [t for t, n in Counter(serving).items() if n > 1]
    verdict("serving: each txn_id once", f"{len(twice)} twice, e.g. {twice[:3]}" if twice else None)
    loaded = Counter(r["sha256"] for r in ledger if r["status"] == "LOADED")
    other = Counter(r["status"] for r in ledger if r["status"] != "LOADED")
    verdict("ledger: one LOADED row per file",
            None if len(loaded) == expected["files"] and set(loaded.values()) == {1} and not other
            else f"{len(loaded)} files LOADED of {expected['files']}, counts {set(loaded.values())}, others {other}")
    batch_rows = [r for r in silver if r["source_system"] == "core_banking"]
    inserted = sum(r["rows_inserted"] for r in ledger if r["status"] == "LOADED")
    verdict("silver: the batch rows the files hold, counted by the ledger",
            None if len(batch_rows) == expected["batch_rows"] == inserted
            else f"{len(batch_rows)} batch rows, {expected['batch_rows']} expected, ledger says {inserted}")
    keys = Counter((r["source_system"], r["source_sha256"], r["record_no"]) for r in quarantine)
    verdict("quarantine: no record twice", None if set(keys.values()) <= {1} else "a record quarantined twice")
    by_source = Counter(r["source_system"] for r in quarantine)
    verdict("quarantine: every bad record and line",
            None if (by_source["core_banking"], by_source["events"]) == (expected["quarantined_records"],
                                                                         expected["bad_lines"])
            else f"{dict(by_source)}; expected core_banking {expected['quarantined_records']}, "
                 f"events {expected['bad_lines']}")
    streamed = {r["txn_id"]: (str(r["amount"]), r["posting_date"].isoformat())
                for r in silver if r["source_system"] == "events"}
    verdict("silver: the streamed rows are the event feed's outcome",
            None if streamed == expected["streamed"]
            else f"{len(set(streamed) ^ set(expected['streamed']))} txn_ids differ, "
                 f"{sum(1 for t in streamed if t in expected['streamed'] and streamed[t] != expected['streamed'][t])}"
                 " values differ")
    shared = {r["txn_id"]: r for r in batch_rows if r["txn_id"] in set(SHARED_IDS)}
    verdict("handoff: txn_ids of both sides are the batch's", None if len(shared) == len(SHARED_IDS)
            else f"{len(SHARED_IDS) - len(shared)} not the batch's")
    missing = [t for t in SHARED_IDS if (t, "amount") not in parity]
    verdict("parity: a row for every difference", f"{len(missing)} missing" if missing else None)
    bad_exits = [e for e in tally.exits if e[1] != 0]
    verdict("every run that was not killed exited 0", f"{bad_exits[:5]}" if bad_exits else None)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the chaos lasts (default 10)")
    parser.add_argument("--days", type=int, default=12, help="business days in the batch zone (default 12)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temporary one)")
    args = parser.parse_args(argv)

    from ledgerlake.config import LakeConfig
    from ledgerlake.session import build_session

    work = args.keep or Path(tempfile.mkdtemp(prefix="ledgerlake-chaos-"))
    expected, names, contents = make_inputs(work, args.days, args.seed)
    print(f"work dir {work}: {expected['files']} batch files ({expected['batch_rows']} rows), {len(names)} event "
          f"files, {args.minutes:g} minutes, seed {args.seed}")
    started = time.monotonic()
    tally = chaos(work, expected, names, contents, args.minutes, args.seed)
    spark = build_session(LakeConfig(warehouse=str(work), master="local[2]",
                                     spark_conf={"spark.sql.shuffle.partitions": "2"}), "chaos-check")
    invariants = check(spark, work / "lake", expected, tally)
    figures = {"seconds": round(time.monotonic() - started), "runs": dict(tally.runs), "kills": dict(tally.kills),
               "stream_batches_alone": tally.alone_batches, **log_figures(work / "logs", tally.alone_batches)}
    print(json.dumps(figures, indent=1))
    for name, state in invariants.items():
        print(f"{'ok  ' if state == 'ok' else 'FAIL'} {name}{'' if state == 'ok' else ': ' + state}")
    return 0 if all(v == "ok" for v in invariants.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
