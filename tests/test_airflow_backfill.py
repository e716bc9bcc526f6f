"""Airflow runs the backfill and reconciliation DAGs (``airflow dags test``) on tiny files; the tables are checked."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.airflow_home import CB
from tests.legacy_files import core_detail, core_file, core_trailer

pytestmark = pytest.mark.slow


def test_backfill_dag_loads_one_mapped_task_per_month(airflow, new_lake):

    data = airflow.root / "backfill"
    core_file(data, [core_detail(txn_id=CB(n), posting_date="20240110", value_date="20240110") for n in (1, 2, 3)],
              "20240110")
    core_file(data, [core_detail(txn_id=CB(n), posting_date="20240205", value_date="20240205") for n in (4, 5)],
              "20240205")
    bad = [core_detail(txn_id=CB(6), posting_date="20240206", value_date="20240206", amount="-1.00")]
    core_file(data, bad, "20240206", trailer=core_trailer(bad, debit_delta=Decimal("0.01")))
    warehouse = airflow.root / "backfill-lake"
    lake = new_lake(warehouse)
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


def test_reconciliation_dag_fails_loudly_on_a_difference(airflow, new_lake):
    from pyspark.sql import functions as F

    from tests.helpers import backfill

    data = airflow.root / "reconcile"
    core_file(data, [core_detail(txn_id=CB(n), amount="-2.50") for n in (21, 22)], "20240301")
    warehouse = airflow.root / "reconcile-lake"
    lake = new_lake(warehouse)
    assert backfill(lake, "core_banking", data).exit_code == 0
    lake.delta("silver.transactions").delete(F.col("txn_id") == CB(22))     # a row lost after the load

    run = airflow.dags_test("ledgerlake_reconciliation", "2024-03-02", warehouse=warehouse)

    log = run.stdout + run.stderr
    assert run.returncode != 0
    assert airflow.task_states("ledgerlake_reconciliation")[("reconcile", -1)] == ("failed", None, 1)
    assert "DIFFERENCES" in log and "ledgerlake reconcile exited with status 1" in log
    assert "new rows in silver" in log and "CORE_TXN_20240301_000001.dat" in log
