"""
### Daily batch

For business date **D** (the start of the run's data interval: the 02:00 run on D+1
loads D; a manual run loads the day before its logical date, or **business_date**):

1. **wait_for_&lt;feed&gt;** waits (up to 6 h, rescheduling every 5 min) until D's files
   are in the feed's landing path (variable `ledgerlake_landing_<feed>`); a feed with
   no landing path is skipped. No file after 6 h fails the run: a missing
   end-of-day file needs a person.
2. **load_&lt;feed&gt;** runs `jobs/backfill.py --source <feed> --date D` in the pool
   `ledgerlake_<feed>`. A rejected file fails the task (file and reason in its log)
   after the day's other files loaded; it is not retried.
3. **roll_off** moves the serving tier's window (`jobs/maintain.py --roll-off`).

Rerunning a day (Clear) is a no-op: files already in `ops.load_ledger` are skipped.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, PokeReturnValue, dag, task

from ledgerlake.orchestration.operator import BATCH_OUTLETS, SERVING, LedgerlakeJob
from ledgerlake.orchestration.planning import (
    BATCH_SOURCES,
    DEFAULT_ARGS,
    ParamsError,
    files_for_day,
    landing_variable,
    parse_business_date,
    pool_name,
)

# The business date of a run: the start of its data interval (a scheduled run at 02:00 on D+1
# loads D), unless a manual run names one. Never the wall clock, so a rerun loads the same files.
BUSINESS_DATE = "{{ params.business_date or data_interval_start | ds }}"
WAIT_TIMEOUT = timedelta(hours=6)


@task.sensor(poke_interval=300, timeout=WAIT_TIMEOUT.total_seconds(), mode="reschedule")
def wait_for_files(source: str, business_date: str) -> PokeReturnValue:
    """Wait until the feed's files of the business date have landed; skip feeds with no landing path."""
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    landing = (Variable.get(landing_variable(source), default="") or "").strip()
    if not landing:
        raise AirflowSkipException(f"{source}: no landing path (variable {landing_variable(source)} is empty)")
    try:
        day = parse_business_date(business_date)
        files = files_for_day(source, landing, day)
    except ParamsError as exc:
        raise AirflowFailException(str(exc)) from None
    if files:
        print(f"{source}: {len(files)} file(s) of business date {day}: {', '.join(files)}")
    else:
        print(f"{source}: no file of business date {day} under {landing} yet")
    return PokeReturnValue(is_done=bool(files), xcom_value=landing)


@dag(
    dag_id="ledgerlake_daily_batch",
    # 02:00 UTC on D+1, data interval [D 02:00, D+1 02:00): the run loads business date D.
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC", interval=timedelta(days=1)),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    description="Each feed's end-of-day files of the run's business date, then the tier roll-off.",
    doc_md=__doc__,
    tags=["ledgerlake", "batch", "daily"],
    default_args=DEFAULT_ARGS,
    params={
        "business_date": Param(None, type=["null", "string"], title="Business date (YYYY-MM-DD)",
                               description="Manual runs only: the day to load. Empty: the day before "
                                           "the run's logical date (its data interval)."),
    },
)
def ledgerlake_daily_batch():
    """Each feed's end-of-day files of the run's business date, then the tier roll-off."""
    loads = []
    for source in BATCH_SOURCES:
        landing = wait_for_files.override(task_id=f"wait_for_{source}")(source=source, business_date=BUSINESS_DATE)
        loads.append(LedgerlakeJob(
            task_id=f"load_{source}",
            job="backfill",
            application_args=["--source", source, "--input", landing, "--date", BUSINESS_DATE],
            pool=pool_name(source),
            outlets=BATCH_OUTLETS,
        ))
    roll_off = LedgerlakeJob(
        task_id="roll_off",
        job="maintain",
        application_args=["--roll-off", "--today", "{{ data_interval_end | ds }}"],
        trigger_rule="none_failed_min_one_success",
        outlets=[SERVING],
    )
    loads >> roll_off


ledgerlake_daily_batch()
