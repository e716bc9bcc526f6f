"""What the DAG files share: the lake's tables as Airflow Assets and the operator that runs a ledgerlake job."""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from ledgerlake.orchestration.planning import (
    DEFAULT_DRIVER_MEMORY,
    FINAL_EXIT_CODES,
    SPARK_CONN_ID,
    VAR_DRIVER_MEMORY,
    job_path,
)


def table_asset(table: str) -> Asset:
    """The Airflow Asset of a lake table: downstream DAGs can be scheduled on its updates."""
    schema, name = table.split(".")
    return Asset(name=table, uri=f"ledgerlake://lake/{schema}/{name}", group="ledgerlake")


SILVER = table_asset("silver.transactions")
SERVING = table_asset("serving.transactions_recent")
LOAD_LEDGER = table_asset("ops.load_ledger")
QUARANTINE = table_asset("ops.quarantine")
PARITY = table_asset("ops.parity")
BATCH_OUTLETS = [SILVER, LOAD_LEDGER, QUARANTINE]
STREAM_OUTLETS = [SILVER, SERVING, QUARANTINE, PARITY]


class LedgerlakeJob(SparkSubmitOperator):
    """spark-submit of a ledgerlake job through the project's Spark connection.

    Exit status 1 (data refused: a rejected file, a failed check) and 2 (bad input)
    fail the task at once: retrying would give the same answer. Status 3 (a transient
    failure: conflicts that outlived their retries, a lost executor, an I/O error) and
    a killed JVM are retried with backoff, which is safe because every job is idempotent.
    """

    def __init__(self, *, job: str, **kwargs: Any) -> None:
        kwargs.setdefault("application", job_path(job))
        kwargs.setdefault("conn_id", SPARK_CONN_ID)
        kwargs.setdefault("name", f"ledgerlake-{job}")
        kwargs.setdefault("conf", {
            "spark.driver.memory": f"{{{{ var.value.get('{VAR_DRIVER_MEMORY}', '{DEFAULT_DRIVER_MEMORY}') }}}}",
        })
        super().__init__(**kwargs)
        self.job = job

    def execute(self, context: Any) -> None:
        try:
            super().execute(context)
        except AirflowException as exc:
            code = job_exit_code(self._hook)
            if code in FINAL_EXIT_CODES:
                raise AirflowFailException(
                    f"ledgerlake {self.job} exited with status {code}: {FINAL_EXIT_CODES[code]}; "
                    "not retried. The job's report is in the log above."
                ) from exc
            raise


def job_exit_code(hook: object) -> int | None:
    """Exit status of the spark-submit process a SparkSubmitHook ran (None if it never started)."""
    process = getattr(hook, "_submit_sp", None)
    return getattr(process, "returncode", None)
