"""Airflow itself runs the DAGs (``airflow dags test``) on tiny files, through spark-submit; the tables are checked.

One throwaway AIRFLOW_HOME and SQLite metadata DB for the module, set up by ``ledgerlake.orchestration.airflow_setup``
exactly as ``make airflow`` does; each DAG run is a subprocess with the project's dags folder and a
temporary lake (LEDGERLAKE_WAREHOUSE).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from ledgerlake.orchestration.airflow_setup import airflow_env
from tests.helpers import table_snapshot
from tests.legacy_files import card_line, cards_file, core_detail, core_file, core_trailer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CB = "CB0000000000000000{:02d}".format
CD = "CD00000000000000{:02d}".format


@dataclass
class Airflow:
    """A throwaway Airflow installation with the project's DAGs, connection, pools and variables."""

    root: Path
    env: dict[str, str]

    @property
    def db(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"]) / "airflow.db"

    def dags_test(self, dag_id: str, *args: str, warehouse: Path) -> subprocess.CompletedProcess:
        env = {**self.env, "LEDGERLAKE_WAREHOUSE": str(warehouse)}
        return subprocess.run([str(BIN / "airflow"), "dags", "test", dag_id, *args], capture_output=True,
                              text=True, env=env, cwd=self.root, timeout=1200)

    def task_states(self, dag_id: str) -> dict[tuple[str, int], tuple[str, str | None, int]]:
        """(task_id, map_index) -> (state, rendered map index, try number) of the DAG's latest run."""
        with sqlite3.connect(self.db) as db:
            (run_id,) = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                                   (dag_id,)).fetchone()
            rows = db.execute("SELECT task_id, map_index, state, rendered_map_index, try_number FROM task_instance "
                              "WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)).fetchall()
        return {(t, m): (s, r, n) for t, m, s, r, n in rows}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> Airflow:
    root = tmp_path_factory.mktemp("airflow")
    config = root / "ledgerlake.toml"
    config.write_text('[spark]\nconf = { "spark.sql.shuffle.partitions" = "2", "spark.default.parallelism" = "2" }\n')
    env = airflow_env(root / "home", base={**os.environ, "LEDGERLAKE_CONFIG": str(config),
                                           "LEDGERLAKE_WAREHOUSE": str(root / "unused-lake")})
    setup = [sys.executable, "-m", "ledgerlake.orchestration.airflow_setup", "--spark-master", "local[2]", "--driver-memory", "1g",
             "--landing", f"core_banking={root / 'daily' / 'core'}", "--landing", f"cards={root / 'daily' / 'cards'}"]
    first = subprocess.run(setup, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "connection ledgerlake_spark: created, master local[2]" in first.stdout
    assert "pool ledgerlake_cards: 1 slot(s)" in first.stdout
    # Idempotent: a second set-up with the same settings changes nothing.
    again = subprocess.run(setup, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and again.stdout.strip().splitlines() == [
        f"airflow set-up: ready (AIRFLOW_HOME {root / 'home'})"], again.stdout
    return Airflow(root, env)


def mark_missing_jobs() -> list[str]:
    """Tasks whose job has not landed in this checkout yet are marked successful instead of run."""
    return [] if (REPO / "jobs" / "maintain.py").exists() else ["--mark-success-pattern", "^roll_off$"]


def test_backfill_dag_loads_one_mapped_task_per_month(airflow, spark):
    from ledgerlake.lake import open_lake

    data = airflow.root / "backfill"
    core_file(data, [core_detail(txn_id=CB(n), posting_date="20240110", value_date="20240110") for n in (1, 2, 3)],
              "20240110")
    core_file(data, [core_detail(txn_id=CB(n), posting_date="20240205", value_date="20240205") for n in (4, 5)],
              "20240205")
    bad = [core_detail(txn_id=CB(6), posting_date="20240206", value_date="20240206", amount="-1.00")]
    core_file(data, bad, "20240206", trailer=core_trailer(bad, debit_delta=Decimal("0.01")))
    warehouse = airflow.root / "backfill-lake"
    conf = {"source": "core_banking", "input": str(data), "from": "2024-01", "to": "2024-02"}

    run = airflow.dags_test("ledgerlake_backfill", "-c", json.dumps(conf), warehouse=warehouse)

    log = run.stdout + run.stderr
    assert run.returncode != 0, log[-3000:]            # February holds a rejected file
    states = airflow.task_states("ledgerlake_backfill")
    assert states[("plan", -1)][0] == "success" and states[("select_feed", -1)][0] == "success"
    assert states[("load_core_banking", 0)][:2] == ("success", "2024-01")
    # the rejected file fails its month once, without a retry, after the month's good file loaded
    assert states[("load_core_banking", 1)] == ("failed", "2024-02", 1)
    assert states[("load_cards", -1)][0] == "skipped" and states[("load_core_banking_ebcdic", -1)][0] == "skipped"
    assert "CORE_TXN_20240206_000001.dat" in log and "CONTROL_TOTAL_MISMATCH" in log
    assert "ledgerlake backfill exited with status 1" in log and "not retried" in log

    lake = open_lake(spark, str(warehouse))
    assert sorted(r["txn_id"] for r in lake.read("silver.transactions").collect()) == [CB(n) for n in range(1, 6)]
    assert {r["source_file"]: r["status"] for r in lake.read("ops.load_ledger").collect()} == {
        "CORE_TXN_20240110_000001.dat": "LOADED", "CORE_TXN_20240205_000001.dat": "LOADED",
        "CORE_TXN_20240206_000001.dat": "REJECTED"}


def test_backfill_dag_checks_params_before_any_spark_work(airflow):
    warehouse = airflow.root / "never-created"
    conf = {"source": "core_banking", "input": "/no/such/landing", "from": "2024-01", "to": "2024-02"}

    run = airflow.dags_test("ledgerlake_backfill", "-c", json.dumps(conf), warehouse=warehouse)

    assert run.returncode != 0
    assert "invalid backfill params: input path does not exist: /no/such/landing" in run.stdout + run.stderr
    states = airflow.task_states("ledgerlake_backfill")
    assert states[("plan", -1)][0] == "failed"
    assert {s[0] for (task, _), s in states.items() if task.startswith("load_")} == {"upstream_failed"}
    assert not warehouse.exists()


def test_daily_batch_loads_the_business_date_and_a_rerun_changes_nothing(airflow, spark):
    from ledgerlake.lake import open_lake

    daily = airflow.root / "daily"
    core_file(daily / "core", [core_detail(txn_id=CB(11), posting_date="20240305", value_date="20240305"),
                               core_detail(txn_id=CB(12), posting_date="20240305", value_date="20240305",
                                           currency="XYZ")], "20240305")
    core_file(daily / "core", [core_detail(txn_id=CB(13), posting_date="20240306", value_date="20240306")],
              "20240306")                                                   # the next day: not this run's
    cards_file(daily / "cards", [card_line(ref=CD(1), day="05/03/2024")], "20240305")
    cards_file(daily / "cards", [card_line(ref=CD(2), day="04/03/2024")], "20240304")   # the day before
    warehouse = airflow.root / "daily-lake"
    # A run with logical date 2024-03-06 has the data interval [03-05, 03-06): business date 2024-03-05.
    args = ("2024-03-06", *mark_missing_jobs())

    first = airflow.dags_test("ledgerlake_daily_batch", *args, warehouse=warehouse)

    assert first.returncode == 0, (first.stdout + first.stderr)[-5000:]
    states = airflow.task_states("ledgerlake_daily_batch")
    assert {task: s[0] for (task, _), s in states.items()} == {
        "wait_for_core_banking": "success", "wait_for_cards": "success", "wait_for_core_banking_ebcdic": "skipped",
        "load_core_banking": "success", "load_cards": "success", "load_core_banking_ebcdic": "skipped",
        "roll_off": "success"}
    assert "--date 2024-03-05" in first.stdout + first.stderr
    lake = open_lake(spark, str(warehouse))
    assert sorted(r["txn_id"] for r in lake.read("silver.transactions").collect()) == [CB(11), CD(1)]
    assert sorted(r["source_file"] for r in lake.read("ops.load_ledger").collect()) == [
        "CARDS_20240305.csv", "CORE_TXN_20240305_000001.dat"]
    assert [r["reason"] for r in lake.read("ops.quarantine").collect()] == ["BAD_CURRENCY"]
    tables = ["silver.transactions", "serving.transactions_recent", "ops.load_ledger", "ops.quarantine"]
    before = {name: (table_snapshot(lake, name), lake.delta(name).history(1).first()["version"]) for name in tables}

    second = airflow.dags_test("ledgerlake_daily_batch", *args, warehouse=warehouse)

    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-5000:]
    assert log.count("0 loaded, 0 rejected, 1 skipped") == 2             # both feeds: the file is known
    after = {name: (table_snapshot(lake, name), lake.delta(name).history(1).first()["version"]) for name in tables}
    assert after == before                                                # same rows, not even a new commit


def test_reconciliation_dag_fails_loudly_on_a_difference(airflow, spark):
    from pyspark.sql import functions as F

    from ledgerlake.lake import open_lake
    from tests.helpers import backfill

    data = airflow.root / "reconcile"
    core_file(data, [core_detail(txn_id=CB(n), amount="-2.50") for n in (21, 22)], "20240301")
    warehouse = airflow.root / "reconcile-lake"
    lake = open_lake(spark, str(warehouse), create=True)
    assert backfill(lake, "core_banking", data).exit_code == 0
    lake.delta("silver.transactions").delete(F.col("txn_id") == CB(22))     # a row lost after the load

    run = airflow.dags_test("ledgerlake_reconciliation", "2024-03-02", warehouse=warehouse)

    log = run.stdout + run.stderr
    assert run.returncode != 0
    assert airflow.task_states("ledgerlake_reconciliation")[("reconcile", -1)] == ("failed", None, 1)
    assert "DIFFERENCES" in log and "ledgerlake reconcile exited with status 1" in log
    assert "new rows in silver" in log and "CORE_TXN_20240301_000001.dat" in log
