"""The DAG files: they import cleanly and fast, follow the project's policies, and wire the jobs as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledgerlake.orchestration.airflow_setup import airflow_env
from ledgerlake.orchestration.planning import BATCH_SOURCES, SPARK_CONN_ID, pool_name

REPO = Path(__file__).resolve().parents[1]
DAG_IDS = ["ledgerlake_backfill", "ledgerlake_daily_batch", "ledgerlake_microbatch", "ledgerlake_maintenance",
           "ledgerlake_reconciliation"]
HEAVY = ("pyspark", "py4j", "pandas", "numpy", "pyarrow", "delta", "great_expectations", "boto3", "scipy")

# Loads the dags folder the way the dag-processor does and describes what it found, as JSON.
DESCRIBE = """
import json, sys, time
started = time.monotonic()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"seconds": time.monotonic() - started, "errors": {k: str(v) for k, v in bag.import_errors.items()},
       "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(","))), "dags": {}}
for dag in bag.dags.values():
    out["dags"][dag.dag_id] = {
        "file": dag.fileloc, "tags": sorted(dag.tags), "doc_md": dag.doc_md or "", "description": dag.description,
        "catchup": dag.catchup, "timetable": type(dag.timetable).__name__, "max_active_runs": dag.max_active_runs,
        "params": sorted(dag.params.keys()),
        "tasks": {t.task_id: {
            "owner": t.owner, "retries": t.retries, "pool": t.pool, "type": type(t).__name__,
            "mapped": type(t).__name__ == "MappedOperator",
            "operator": getattr(t, "operator_class", type(t)).__name__ if not isinstance(
                getattr(t, "operator_class", None), dict) else t.operator_class["task_type"],
            # a mapped task keeps only the arguments given to partial(); the class adds the defaults when it runs
            "job": getattr(t, "job", None) or getattr(t, "partial_kwargs", {}).get("job"),
            "conn_id": getattr(t, "_conn_id", None),
            "application": getattr(t, "application", None),
            "application_args": [str(a) for a in (getattr(t, "application_args", None) or [])],
            "outlets": sorted(a.name for a in (t.outlets or [])),
            "upstream": sorted(t.upstream_task_ids), "trigger_rule": str(t.trigger_rule),
        } for t in dag.tasks},
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory) -> dict:
    env = airflow_env(tmp_path_factory.mktemp("airflow_home"))
    proc = subprocess.run([sys.executable, "-c", DESCRIBE, str(REPO / "dags"), ",".join(HEAVY)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_dagbag_imports_every_dag_without_errors(dagbag):
    assert dagbag["errors"] == {}
    assert sorted(dagbag["dags"]) == sorted(DAG_IDS)


def test_dag_files_import_nothing_heavy(dagbag):
    # Parsing runs every 30 s in the dag-processor: Spark, pandas and friends belong in the jobs.
    assert dagbag["heavy"] == []


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_policy(dagbag, dag_id):
    dag = dagbag["dags"][dag_id]
    assert "ledgerlake" in dag["tags"] and len(dag["tags"]) >= 2
    assert dag["doc_md"].lstrip().startswith("###") and len(dag["doc_md"]) > 200, "a docstring shown in the UI"
    assert dag["description"]
    assert dag["catchup"] is False
    assert Path(dag["file"]).name == f"{dag_id}.py"
    for task_id, task in dag["tasks"].items():
        assert task["owner"] == "data-platform", task_id
        assert task["retries"] >= 1, task_id


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_spark_work_goes_through_spark_submit_of_a_job(dagbag, dag_id):
    spark_tasks = [t for t in dagbag["dags"][dag_id]["tasks"].values() if t["operator"] == "LedgerlakeJob"]
    assert spark_tasks
    for task in spark_tasks:
        assert task["job"] in {"backfill", "stream", "maintain", "reconcile"}
        if not task["mapped"]:
            assert task["conn_id"] == SPARK_CONN_ID
            assert task["application"] == str(REPO / "jobs" / f"{task['job']}.py")


def test_backfill_maps_one_load_per_month_in_the_feeds_pool(dagbag):
    dag = dagbag["dags"]["ledgerlake_backfill"]
    assert dag["timetable"] == "NullTimetable"                 # manual only
    assert dag["params"] == ["from", "input", "source", "to"]
    for source in BATCH_SOURCES:
        load = dag["tasks"][f"load_{source}"]
        assert load["mapped"] and load["pool"] == pool_name(source) and load["job"] == "backfill"
        assert load["upstream"] == ["plan", "select_feed"]
        assert load["outlets"] == ["ops.load_ledger", "ops.quarantine", "silver.transactions"]


def test_daily_batch_loads_every_feed_then_rolls_off(dagbag):
    dag = dagbag["dags"]["ledgerlake_daily_batch"]
    assert dag["timetable"] == "CronTriggerTimetable" and dag["max_active_runs"] == 1
    for source in BATCH_SOURCES:
        load = dag["tasks"][f"load_{source}"]
        assert load["pool"] == pool_name(source) and load["upstream"] == [f"wait_for_{source}"]
        assert "--date" in load["application_args"] and Path(load["application"]).name == "backfill.py"
    roll_off = dag["tasks"]["roll_off"]
    assert roll_off["upstream"] == sorted(f"load_{s}" for s in BATCH_SOURCES)
    assert roll_off["application_args"][0] == "--roll-off" and roll_off["outlets"] == ["serving.transactions_recent"]


def test_the_other_dags_call_the_documented_job_options(dagbag):
    stream = dagbag["dags"]["ledgerlake_microbatch"]["tasks"]["stream"]
    assert Path(stream["application"]).name == "stream.py" and "--available-now" in stream["application_args"]
    maintenance = dagbag["dags"]["ledgerlake_maintenance"]["tasks"]
    assert [maintenance[t]["application_args"][0] for t in ("roll_off", "optimize", "vacuum")] == [
        "--roll-off", "--optimize", "--vacuum"]
    assert maintenance["vacuum"]["upstream"] == ["optimize"] and maintenance["optimize"]["upstream"] == ["roll_off"]
    reconcile = dagbag["dags"]["ledgerlake_reconciliation"]
    assert reconcile["timetable"] == "AssetOrTimeSchedule"
    assert Path(reconcile["tasks"]["reconcile"]["application"]).name == "reconcile.py"


def test_the_dags_know_every_batch_feed():
    from transforms.legacy import SOURCES

    assert set(BATCH_SOURCES) == set(SOURCES)
