"""
### Lake maintenance (daily, 04:00 UTC, after the daily batch)

1. **roll_off**: rows that left the serving window move out of
   `serving.transactions_recent`, only after a check that silver holds every one
   of them unchanged (`jobs/maintain.py --roll-off`).
2. **optimize**: compaction and clustering by account of the recently written
   months of silver and of the serving tier (`--optimize`).
3. **vacuum**: removes files no table version needs any more, keeping the
   retention of the variable `ledgerlake_vacuum_retain_hours` (default 168 h; Delta
   refuses less), so running readers and time travel of the last week stay safe.

Each step is idempotent; a failed roll-off check changes nothing and fails the run.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, dag

from ledgerlake.orchestration.operator import SERVING, LedgerlakeJob
from ledgerlake.orchestration.planning import DEFAULT_ARGS, DEFAULT_VACUUM_RETAIN_HOURS, VAR_VACUUM_RETAIN_HOURS


@dag(
    dag_id="ledgerlake_maintenance",
    schedule=CronTriggerTimetable("0 4 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    description="Daily tier roll-off, compaction of recently written months, VACUUM.",
    doc_md=__doc__,
    tags=["ledgerlake", "maintenance"],
    default_args=DEFAULT_ARGS,
)
def ledgerlake_maintenance():
    """Daily tier roll-off, compaction of recently written months, VACUUM."""
    roll_off = LedgerlakeJob(
        task_id="roll_off",
        job="maintain",
        application_args=["--roll-off", "--today", "{{ ds }}"],
        outlets=[SERVING],
    )
    optimize = LedgerlakeJob(task_id="optimize", job="maintain", application_args=["--optimize", "--today", "{{ ds }}"])
    vacuum = LedgerlakeJob(
        task_id="vacuum",
        job="maintain",
        application_args=[
            "--vacuum", "--retain-hours",
            f"{{{{ var.value.get('{VAR_VACUUM_RETAIN_HOURS}', '{DEFAULT_VACUUM_RETAIN_HOURS}') }}}}",
        ],
    )
    roll_off >> optimize >> vacuum


ledgerlake_maintenance()
