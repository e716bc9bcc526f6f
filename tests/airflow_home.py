"""A throwaway Airflow installation for the DAG tests: ``airflow dags test`` runs a DAG as the scheduler would.

Set up by ``ledgerlake.orchestration.airflow_setup`` exactly as ``make airflow`` does (SQLite
metadata DB, the project's dags folder, connection, pools, variables); each DAG run is a
subprocess with a lake of the test's own (LEDGERLAKE_WAREHOUSE).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ledgerlake.orchestration.airflow_setup import airflow_env

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


def install_airflow(root: Path) -> Airflow:
    """Set Airflow up under ``root`` twice (the second run must change nothing); daily landing paths under root."""
    config = root / "ledgerlake.toml"
    # The jobs of the DAG runs read a few rows: few partitions, and expressions interpreted rather than
    # compiled to Java for each new query (as in the test sessions; other tests run the jobs as configured).
    config.write_text('[spark.conf]\n"spark.sql.shuffle.partitions" = "2"\n"spark.default.parallelism" = "2"\n'
                      '"spark.sql.codegen.wholeStage" = "false"\n"spark.sql.codegen.factoryMode" = "NO_CODEGEN"\n')
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
