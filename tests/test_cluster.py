"""Jobs on a Spark standalone cluster: `ledgerlake cluster` starts a master and a worker on loopback, and
spark-submit runs the backfill and the stream there, executors in JVMs of their own, with the tables of local mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledgerlake.lake import open_lake
from tests.helpers import backfill, free_port, table_snapshot
from tests.legacy_files import core_detail, core_file
from tests.test_stream import matches_expected_events

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VOLATILE = ("load_id", "ingested_at", "processed_at", "quarantined_at")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A master and a worker (2 cores, 2 GiB) on free loopback ports; the master's URL and the jobs' environment."""
    folder = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "LEDGERLAKE_CLUSTER_DIR": str(folder), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "LEDGERLAKE_DRIVER_MEMORY": "1g",
           "LEDGERLAKE_TODAY": "2026-11-26"}
    command = [str(BIN / "ledgerlake"), "cluster"]
    started = subprocess.run([*command, "start", "--port", str(free_port()), "--webui-port", str(free_port()),
                              "--worker-webui-port", str(free_port()), "--cores", "2", "--memory", "2g"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert started.returncode == 0, started.stderr + (folder / "master.log").read_text()
    url = started.stdout.split("master ")[1].split(",")[0]
    assert url.startswith("spark://127.0.0.1:")
    assert (folder / "secret").stat().st_mode & 0o077 == 0          # the RPC secret: its owner's only
    try:
        yield url, env, folder
    finally:
        stopped = subprocess.run([*command, "stop"], capture_output=True, text=True, env=env, timeout=120)
        assert stopped.returncode == 0, stopped.stderr


def submit(cluster, job: str, *args: str, warehouse: Path) -> subprocess.CompletedProcess:  # noqa: ANN001
    url, env, _ = cluster
    return subprocess.run([str(BIN / "spark-submit"), "--master", url, f"jobs/{job}.py", *args],
                          capture_output=True, text=True, env={**env, "LEDGERLAKE_WAREHOUSE": str(warehouse)},
                          timeout=900, cwd=REPO)


def test_status_shows_the_worker_and_the_secret_is_in_no_command_line_or_log(cluster):
    url, env, folder = cluster
    status = subprocess.run([str(BIN / "ledgerlake"), "cluster", "status"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert status.returncode == 0 and f"master {url}" in status.stdout and "workers alive 1" in status.stdout
    secret = (folder / "secret").read_text().strip()
    for role in ("master", "worker"):
        pid = (folder / f"{role}.pid").read_text()
        assert secret not in Path(f"/proc/{pid}/cmdline").read_text()
        assert secret not in (folder / f"{role}.log").read_text()


def test_backfill_through_spark_submit_on_the_cluster_gives_the_tables_of_local_mode(cluster, tmp_path, new_lake,
                                                                                      spark):
    data, warehouse = tmp_path / "data", tmp_path / "lake"
    core_file(data, [core_detail(txn_id=f"CB{n:018d}") for n in range(1, 6)], "20240301")
    core_file(data, [core_detail(txn_id=f"CB{n:018d}") for n in (6, 7)] + [core_detail("CB12345ABC0000000000")],
              "20240302")
    core_file(data, [core_detail(txn_id=f"CB{n:018d}") for n in range(8, 10)], "20240401")

    proc = submit(cluster, "backfill", "--source", "core_banking", "--input", str(data),
                  "--from", "2024-03", "--to", "2024-03", warehouse=warehouse)

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 loaded, 0 rejected" in proc.stdout
    assert "1 file(s) outside the month range" in proc.stdout
    on_cluster = open_lake(spark, str(warehouse))
    local = new_lake(tmp_path / "local")
    backfill(local, "core_banking", data, "2024-03", "2024-03")
    for table in ("silver.transactions", "ops.quarantine", "ops.load_ledger"):
        assert table_snapshot(on_cluster, table, VOLATILE) == table_snapshot(local, table, VOLATILE), table
    assert on_cluster.read("silver.transactions").count() == 7


def test_stream_on_the_cluster_matches_the_contract_and_a_local_rerun_changes_nothing(cluster, tmp_path, samples,
                                                                                       ledgerlake_cli, spark):
    warehouse = tmp_path / "lake"
    first = submit(cluster, "stream", "--input", str(samples / "events"), "--available-now", warehouse=warehouse)
    assert first.returncode == 0, first.stderr[-3000:]
    output = first.stdout + first.stderr        # spark-submit passes the driver's stderr on to its stdout
    assert "[stream] batch 0: files 2  lines 84" in output          # progress per micro-batch
    assert "quarantined 10" in output and "BAD_EVENT" in output
    matches_expected_events(open_lake(spark, str(warehouse)), samples)

    log_dirs = {t: sorted((warehouse / t.replace(".", "/") / "_delta_log").glob("*.json"))
                for t in ("silver.transactions", "serving.transactions_recent", "ops.quarantine")}
    _, env, _ = cluster
    rerun = subprocess.run([str(BIN / "ledgerlake"), "stream", "--input", str(samples / "events"), "--available-now",
                            "--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=2"],
                           capture_output=True, text=True, env={**env, "LEDGERLAKE_WAREHOUSE": str(warehouse)},
                           timeout=900, cwd=REPO)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "0 micro-batch(es)" in rerun.stdout
    assert {t: sorted((warehouse / t.replace(".", "/") / "_delta_log").glob("*.json")) for t in log_dirs} == log_dirs

    other = ledgerlake_cli("stream", "--input", str(tmp_path), "--available-now", "--warehouse", str(warehouse))
    assert other.returncode == 2
    assert "belongs to input" in other.stderr and "pass another --checkpoint" in other.stderr
