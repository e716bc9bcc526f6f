"""
### Reconciliation

`spark-submit jobs/reconcile.py` (the same as `ledgerlake reconcile`) checks:

* **control totals per file**: trailer count = accepted + quarantined records; the
  quarantine holds the file's quarantined records; silver holds its new rows; debit
  and credit totals match to the cent (silver plus quarantined records);
* **control totals per month** of business date, summed over the month's files;
* **one row per txn_id** in silver;
* **batch vs stream parity**: differences in `ops.parity` found since the last
  successful run (mark a failed run *success* to acknowledge its differences).

Runs daily and whenever `ops.load_ledger` changes. When anything does not reconcile
the task fails, without retrying, and its log shows a table of what differs.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag

from ledgerlake.orchestration.operator import LOAD_LEDGER, PARITY, QUARANTINE, SILVER, LedgerlakeJob
from ledgerlake.orchestration.planning import DEFAULT_ARGS


@dag(
    dag_id="ledgerlake_reconciliation",
    # Daily at 06:00 UTC, and as soon as a load updated ops.load_ledger (daily batch or backfill).
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"), assets=LOAD_LEDGER),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    description="Control totals, ledger vs silver, batch vs stream; fails loudly on any difference.",
    doc_md=__doc__,
    tags=["ledgerlake", "reconciliation", "controls"],
    default_args=DEFAULT_ARGS,
)
def ledgerlake_reconciliation():
    """Control totals, ledger vs silver, batch vs stream; fails loudly on any difference."""
    LedgerlakeJob(
        task_id="reconcile",
        job="reconcile",
        application_args=["--parity-since", "{{ prev_start_date_success or '1970-01-01T00:00:00+00:00' }}"],
        inlets=[SILVER, LOAD_LEDGER, QUARANTINE, PARITY],
    )


ledgerlake_reconciliation()
