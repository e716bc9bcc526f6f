"""
### Micro-batch of real-time events

Every 5 minutes, `spark-submit jobs/stream.py --input <landing> --available-now`:
Structured Streaming processes every `*.jsonl` file that landed since the last run
(its checkpoint lives in the lake) and exits, so the serving tier is at most a few
minutes behind without a process running all day.

The alternative is the long-running stream (`ledgerlake stream --input <landing>`,
outside Airflow, seconds of latency). Run one or the other, never both: they share
the checkpoint. Set the landing path in the variable `ledgerlake_landing_events`;
while it is empty, runs are skipped.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from ledgerlake.orchestration.operator import STREAM_OUTLETS, LedgerlakeJob
from ledgerlake.orchestration.planning import DEFAULT_ARGS, EVENTS, landing_variable


@task
def events_landing() -> str:
    """The events landing path (variable ledgerlake_landing_events); skip the run when it is not set."""
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowSkipException

    landing = (Variable.get(landing_variable(EVENTS), default="") or "").strip()
    if not landing:
        raise AirflowSkipException(f"no events landing path (variable {landing_variable(EVENTS)} is empty)")
    return landing


@dag(
    dag_id="ledgerlake_microbatch",
    schedule=CronTriggerTimetable("*/5 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    description="Apply the events landing zone every few minutes (stream --available-now).",
    doc_md=__doc__,
    tags=["ledgerlake", "stream", "events"],
    default_args={**DEFAULT_ARGS, "retries": 1, "retry_delay": timedelta(minutes=1),
                  "execution_timeout": timedelta(minutes=25)},
)
def ledgerlake_microbatch():
    """Apply the events landing zone every few minutes (stream --available-now)."""
    LedgerlakeJob(
        task_id="stream",
        job="stream",
        application_args=["--input", events_landing(), "--available-now"],
        outlets=STREAM_OUTLETS,
    )


ledgerlake_microbatch()
