"""The stream: exactly-once writes, the sample landing zone, checkpoints, and the command line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from tests.event_files import TODAY, apply, cancelled, posted, rows, snapshot, txn, versions, write_landing

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def stream_available_now(lake, landing: Path, today: date = TODAY, max_files: int = 1000,
                         checkpoint: str | None = None):  # noqa: ANN001, ANN201
    """Run the streaming query in this process with --available-now semantics; returns its summary."""
    from ledgerlake.config import LakeConfig
    from ledgerlake.load.checkpoint import claim_checkpoint
    from ledgerlake.load.stream import RunSummary, start_stream

    checkpoint = checkpoint or f"{lake.root}/_checkpoints/stream-events"
    app_id = claim_checkpoint(lake.spark, checkpoint, str(landing), lake.root)
    summary = RunSummary()
    query = start_stream(lake, LakeConfig(warehouse=lake.root, today=today), str(landing), checkpoint, app_id,
                         summary, available_now=True, max_files=max_files)
    query.awaitTermination()
    assert query.exception() is None
    return summary


# ---- exactly once, in process ----------------------------------------------------------------------------

def test_delta_skips_a_merge_whose_txn_version_is_committed(lake):
    """The session settings txnAppId/txnVersion guard MERGE on this Delta version, not only appends."""
    from ledgerlake.lake import idempotent_writes

    spark = lake.spark
    table = lake.delta("ops.stream_state")
    source = spark.createDataFrame([("CB1", 1, "LIVE")], "txn_id STRING, sequence BIGINT, status STRING")

    def merge(status: str) -> None:
        table.alias("t").merge(source.selectExpr("txn_id", "sequence", f"'{status}' AS status").alias("s"),
                               "t.txn_id = s.txn_id").whenMatchedUpdate(set={"status": "s.status"}) \
            .whenNotMatchedInsert(values={"txn_id": "s.txn_id", "sequence": "s.sequence", "status": "s.status",
                                          "updated_at": "current_timestamp()"}).execute()

    with idempotent_writes(spark, "app", 7):
        merge("LIVE")
    version = table.history(1).first()["version"]
    with idempotent_writes(spark, "app", 7):
        merge("CANCELLED")                       # a replay of batch 7: skipped
    with idempotent_writes(spark, "app", 5):
        merge("CANCELLED")                       # an older batch: skipped too
    assert table.history(1).first()["version"] == version
    assert [r["status"] for r in lake.read("ops.stream_state").collect()] == ["LIVE"]
    with idempotent_writes(spark, "app", 8):
        merge("CANCELLED")
    assert [r["status"] for r in lake.read("ops.stream_state").collect()] == ["CANCELLED"]
    assert spark.conf.get("spark.databricks.delta.write.txnAppId", None) is None   # not left behind


FIRST = {"f-00000.jsonl": [posted(1), posted(2, posted_at="2026-07-01T10:00:00Z"), posted(3), "not json"]}
SECOND = {"f-00001.jsonl": [
    posted(1, seq=2, event_type="TXN_CORRECTED", amount="11.00", posted_at="2026-08-02T10:00:00Z"),
    cancelled(2), posted(4), posted(5, posted_at="2026-04-02T10:00:00Z")]}


def test_replaying_a_batch_changes_nothing(lake):
    apply(lake, 0, FIRST)
    apply(lake, 1, SECOND)
    before, tables = snapshot(lake), versions(lake)
    apply(lake, 1, SECOND)                         # the stream redoes a batch whose commit log entry was lost
    apply(lake, 0, FIRST)
    assert snapshot(lake) == before
    assert versions(lake) == tables                # not even an empty commit


@pytest.fixture(scope="module")
def replay_base(spark, tmp_path_factory, new_lake):
    """A lake after batch 0 (to copy), and a clean lake after batches 0 and 1."""
    import shutil

    from ledgerlake.lake import open_lake

    root = tmp_path_factory.mktemp("replay")
    after_first = new_lake(root / "after-first")
    apply(after_first, 0, FIRST)
    shutil.copytree(root / "after-first", root / "clean")
    clean = open_lake(spark, str(root / "clean"))
    apply(clean, 1, SECOND)
    return root / "after-first", snapshot(clean)


# The commits of a batch that replaces and moves streamed rows; every other commit boundary of a
# micro-batch (appends, yield, quarantine, parity, state): tests/test_crash_boundaries.py.
@pytest.mark.parametrize("crash_batch,crash_in,call,after_commit", [
    (1, "replace_transactions", 1, False),  # dies inside the serving overwrite, before its commit
    (1, "replace_transactions", 1, True),   # serving overwritten, dies before silver
    (1, "replace_transactions", 2, True),   # both overwritten, dies before quarantine and state
    (1, "merge_transactions", 1, True),     # too many changes to name: serving merged, dies before silver
    (1, "merge_transactions", 2, True),     # ... both merged, dies before quarantine and state
])
def test_crash_inside_a_batch_then_replay_equals_a_clean_run(spark, tmp_path, monkeypatch, replay_base, crash_batch,
                                                             crash_in, call, after_commit):
    import shutil

    from ledgerlake.lake import open_lake
    from ledgerlake.load import microbatch, sinks

    after_first, clean = replay_base
    if crash_in == "merge_transactions":
        monkeypatch.setattr(microbatch, "MAX_LISTED_KEYS", 0)   # the same batch, written by the MERGE fallback
    if crash_batch == 1:
        shutil.copytree(after_first, tmp_path / "crashed")
    crashed = open_lake(spark, str(tmp_path / "crashed"), create=True)
    batch = FIRST if crash_batch == 0 else SECOND
    real = getattr(sinks, crash_in)
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            if after_commit:
                real(*args, **kwargs)
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(sinks, crash_in, dying)
    with pytest.raises(RuntimeError, match="killed"):
        apply(crashed, crash_batch, batch)
    monkeypatch.setattr(sinks, crash_in, real)
    apply(crashed, crash_batch, batch)                     # the restarted stream replays the batch
    if crash_batch == 0:
        apply(crashed, 1, SECOND)
    assert snapshot(crashed) == clean


@pytest.mark.parametrize("max_keys,operation", [(2000, "WRITE"), (0, "MERGE")])
def test_changes_read_only_the_months_a_batch_touches(lake, monkeypatch, max_keys, operation):
    """A correction's commit must not read other months: make another month unreadable and apply one.

    Both ways of writing it: the overwrite naming the changed txn_ids, and the MERGE for
    batches with too many of them to name.
    """
    from ledgerlake.load import microbatch

    monkeypatch.setattr(microbatch, "MAX_LISTED_KEYS", max_keys)
    apply(lake, 0, {"g-00000.jsonl": [posted(1), posted(2, posted_at="2026-03-03T10:00:00Z"),
                                      posted(4, posted_at="2026-11-03T10:00:00Z")]})
    old_month = Path(lake.path("silver.transactions")) / "posting_month=2026-03"
    for name in ("silver.transactions", "serving.transactions_recent"):
        folder = Path(lake.path(name)) / "posting_month=2026-03"
        for f in folder.glob("*.parquet"):
            f.unlink()                                    # reading 2026-03 now fails
    assert old_month.is_dir()
    apply(lake, 1, {"g-00001.jsonl": [posted(1, seq=2, event_type="TXN_CORRECTED", amount="5.00",
                                             posted_at="2026-11-02T10:00:00Z"), posted(3), cancelled(4)]})
    for name in ("silver.transactions", "serving.transactions_recent"):
        history = lake.delta(name).history(1).first()
        assert history["operation"] == operation, name
        predicate = history["operationParameters"]["predicate"]
        assert "2026-10" in predicate and "2026-11" in predicate and "2026-03" not in predicate, name
        assert (txn(1) in predicate) == (operation == "WRITE"), name
        got = lake.read(name).where("posting_month >= '2026-06'").collect()
        assert {(r["txn_id"], r["amount"], r["posting_month"]) for r in got} == {
            (txn(1), Decimal("5.00"), "2026-11"), (txn(3), Decimal("10.00"), "2026-10")}, name


def test_a_change_never_touches_batch_rows_or_other_streamed_rows(lake):
    """The overwrite removes the changed txn_ids' streamed rows only: not a batch file's row, not a neighbour."""
    from tests.event_files import batch_row

    apply(lake, 0, {"k-00000.jsonl": [posted(1), posted(2), posted(3)]})
    batch = batch_row(lake.spark, 8, "9.99", "2026-10-05")
    for name in ("silver.transactions", "serving.transactions_recent"):
        batch.write.format("delta").mode("append").save(lake.path(name))
    apply(lake, 1, {"k-00001.jsonl": [posted(2, seq=2, event_type="TXN_CORRECTED", amount="2.50"), cancelled(3)]})
    for name in ("silver.transactions", "serving.transactions_recent"):
        got = {r["txn_id"]: (r["amount"], r["source_system"]) for r in lake.read(name).collect()}
        assert got == {txn(1): (Decimal("10.00"), "events"), txn(2): (Decimal("2.50"), "events"),
                       txn(8): (Decimal("9.99"), "core_banking")}, name


def test_a_batch_row_is_found_in_the_month_the_state_names(lake):
    """A correction that moves a txn_id to another month: silver is also searched in the month the state names.

    The window between a batch file's silver commit and its handoff mark: the state still
    says the row is streamed (in October), silver holds the batch's row there, and the event
    names November. The batch row must still win, with no streamed copy in November.
    """
    from tests.event_files import batch_row

    apply(lake, 0, {"m-00000.jsonl": [posted(1), posted(2)]})
    batch = batch_row(lake.spark, 1, "9.99", "2026-10-05")
    for name in ("silver.transactions", "serving.transactions_recent"):
        lake.delta(name).delete(f"txn_id = '{txn(1)}'")
        batch.write.format("delta").mode("append").save(lake.path(name))
    stats = apply(lake, 1, {"m-00001.jsonl": [posted(1, seq=2, event_type="TXN_CORRECTED", amount="3.00",
                                                     posted_at="2026-11-02T10:00:00Z")]})
    assert stats.actions == {"BATCH": 1}
    for name in ("silver.transactions", "serving.transactions_recent"):
        got = sorted((r["txn_id"], r["posting_month"], r["source_system"], r["amount"]) for r in lake.read(name).collect())
        assert got == [(txn(1), "2026-10", "core_banking", Decimal("9.99")),
                       (txn(2), "2026-10", "events", Decimal("10.00"))], name


def test_handoff_marks_streamed_txn_ids_as_batch_owned(lake):
    from ledgerlake.load.sinks import mark_batch_owned
    from tests.event_files import state

    apply(lake, 0, {"h-00000.jsonl": [posted(1), posted(2)]})
    batch_rows = lake.spark.createDataFrame([(txn(1), "2026-10"), (txn(9), "2026-10")],
                                            "txn_id STRING, posting_month STRING")
    mark_batch_owned(lake, batch_rows)
    mark_batch_owned(lake, batch_rows)               # idempotent: nothing new the second time
    current = state(lake)
    assert current[txn(1)]["status"] == "BATCH" and current[txn(2)]["status"] == "LIVE"
    assert txn(9) not in current                     # never streamed: nothing to record
    assert lake.read("ops.stream_state").where("status = 'BATCH'").count() == 1
    stats = apply(lake, 1, {"h-00001.jsonl": [posted(1, seq=2, event_type="TXN_CORRECTED", amount="7.00")]})
    assert stats.actions == {"BATCH": 1}
    assert rows(lake, "silver.transactions")[txn(1)]["amount"] == Decimal("10.00")


# ---- the streaming query ------------------------------------------------------------------------------------

def test_sample_landing_zone_matches_expected(lake, samples):
    summary = stream_available_now(lake, samples / "events", today=date(2026, 11, 26))

    assert summary.quarantined == matches_expected_events(lake, samples)
    before, tables = snapshot(lake), versions(lake)
    again = stream_available_now(lake, samples / "events", today=date(2026, 11, 26))
    assert again.batches == 0                      # every file is in the checkpoint already
    assert snapshot(lake) == before and versions(lake) == tables


def matches_expected_events(lake, samples: Path) -> int:  # noqa: ANN001
    """Assert the lake holds what ``expected_events.json`` says of the sample landing zone; its bad events."""
    expected = json.loads((samples / "expected_events.json").read_text())
    silver, serving = rows(lake, "silver.transactions"), rows(lake, "serving.transactions_recent")
    assert len(silver) == expected["silver_count"]
    assert str(sum(r["amount"] for r in silver.values())) == expected["silver_sum"]
    assert len(serving) == expected["serving_count"]
    assert str(sum(r["amount"] for r in serving.values())) == expected["serving_sum"]
    assert set(silver) == set(expected["rows"])
    for txn_id, want in expected["rows"].items():
        got = silver[txn_id]
        assert (got["account_id"], str(got["amount"]), got["currency"], got["posting_date"].isoformat()) == (
            want["account_id"], want["amount"], want["currency"], want["posting_date"]), txn_id
        assert (txn_id in serving) == want["serving"], txn_id
        if want["serving"]:
            assert {k: v for k, v in serving[txn_id].items() if k != "ingested_at"} == {
                k: v for k, v in got.items() if k != "ingested_at"}
    for txn_id in expected["cancelled"]:
        assert txn_id not in silver and txn_id not in serving
    assert all(r["posting_date"] >= date.fromisoformat(expected["window_start"]) for r in serving.values())
    quarantine = lake.read("ops.quarantine").collect()
    assert len(quarantine) == expected["bad_events"]
    assert {r["reason"] for r in quarantine} == {"BAD_EVENT"}
    assert all(r["raw_record"] is not None and r["source_file"].endswith(".jsonl") for r in quarantine)
    return len(quarantine)


def test_generated_zone_in_small_batches_matches_the_contract_outcome(lake, tmp_path):
    from ledgerlake.samples.events import generate_events

    landing = tmp_path / "landing"
    outcome, _ = generate_events(landing, files=8, events_per_file=30, seed=3)
    summary = stream_available_now(lake, landing, max_files=2)
    assert summary.batches == 4

    silver = rows(lake, "silver.transactions")
    assert set(silver) == set(outcome.rows)
    for txn_id, want in outcome.rows.items():
        got = silver[txn_id]
        assert (str(got["amount"]), got["posting_date"].isoformat(), got["posted_at"].isoformat(),
                got["event_sequence"], got["description"], got["reversal_of"]) == (
            want["amount"], want["posting_date"], want["posted_at"], want["event_sequence"], want["description"],
            want["reversal_of"]), txn_id
    from tests.event_files import WINDOW

    serving = rows(lake, "serving.transactions_recent")
    assert set(serving) == outcome.serving(WINDOW.first_day, WINDOW.last_day)
    assert not (set(silver) | set(serving)) & outcome.cancelled
    assert sorted((r["source_file"], r["record_no"]) for r in lake.read("ops.quarantine").collect()) == sorted(
        outcome.bad_lines)
    assert summary.lines == outcome.lines


# ---- checkpoints ----------------------------------------------------------------------------------------

def test_checkpoint_belongs_to_one_input_and_one_lake(spark, tmp_path):
    from ledgerlake.load.checkpoint import claim_checkpoint
    from ledgerlake.load.stream import StreamInputError

    checkpoint = str(tmp_path / "lake" / "_checkpoints" / "stream-events")
    app_id = claim_checkpoint(spark, checkpoint, "/landing/a", str(tmp_path / "lake"))
    assert claim_checkpoint(spark, checkpoint, "/landing/a", str(tmp_path / "lake")) == app_id
    with pytest.raises(StreamInputError, match="belongs to input /landing/a"):
        claim_checkpoint(spark, checkpoint, "/landing/b", str(tmp_path / "lake"))
    with pytest.raises(StreamInputError, match="belongs to input /landing/a and lake"):
        claim_checkpoint(spark, checkpoint, "/landing/a", str(tmp_path / "other-lake"))
    foreign = tmp_path / "foreign"
    (foreign / "offsets").mkdir(parents=True)
    (foreign / "metadata").write_text("{}")
    with pytest.raises(StreamInputError, match="holds streaming state but no ledgerlake-checkpoint.json"):
        claim_checkpoint(spark, str(foreign), "/landing/a", str(tmp_path / "lake"))


# ---- the command line -------------------------------------------------------------------------------------

def _env(warehouse: Path) -> dict[str, str]:
    return {**os.environ, "LEDGERLAKE_WAREHOUSE": str(warehouse), "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable, "LEDGERLAKE_DRIVER_MEMORY": "1g", "LEDGERLAKE_TODAY": "2026-11-26"}


SPARK_ARGS = ["--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=2"]


@pytest.mark.parametrize("args,message", [
    (["--input", "/no/such/landing"], "input path does not exist: /no/such/landing"),
    (["--input", "{file}"], "input must be the landing directory, not a file"),
    (["--input", "{dir}", "--trigger-seconds", "0"], "--trigger-seconds must be greater than 0"),
])
def test_bad_input_is_a_one_line_error(tmp_path, args, message, ledgerlake_cli):
    (tmp_path / "landing").mkdir()
    (tmp_path / "x.jsonl").write_text("{}\n")
    args = [a.format(file=tmp_path / "x.jsonl", dir=tmp_path / "landing") for a in args]
    proc = ledgerlake_cli("stream", *args, "--warehouse", str(tmp_path / "lake"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "lake").exists()


@pytest.mark.slow
@pytest.mark.slow
def test_long_running_stream_picks_up_new_files_and_stops_cleanly_on_sigterm(tmp_path):
    warehouse, landing = tmp_path / "lake", tmp_path / "landing"
    write_landing(landing, "e-00000.jsonl", [posted(1)])
    proc = subprocess.Popen([str(BIN / "ledgerlake"), "stream", "--input", str(landing), "--trigger-seconds", "1",
                             "--log-level", "DEBUG", *SPARK_ARGS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(warehouse), cwd=REPO, start_new_session=True)
    try:
        commits = warehouse / "_checkpoints" / "stream-events" / "commits"
        deadline = time.monotonic() + 600
        while not (commits / "0").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        write_landing(landing, "e-00001.jsonl", [posted(2), cancelled(1)])
        while not (commits / "1").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert (commits / "1").exists(), "the second file was not processed"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    assert "SIGTERM received" in err and "stream stopped" in err
    assert "2 micro-batch(es)" in out and "1 cancellations" in out
    # DEBUG: where each micro-batch's time went, in ledgerlake's phases and in Spark's trigger
    assert re.search(r"batch 0: \d+ Spark jobs; parse [0-9.]+s, plan", err), err[-3000:]
    assert re.search(r"trigger of batch 0: addBatch \d+ms", err), err[-3000:]
