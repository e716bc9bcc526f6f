"""
### Backfill a legacy feed

Loads every file of one batch feed under **input** whose business date falls in
**from**..**to** into `silver.transactions`: one `spark-submit jobs/backfill.py`
per business month (a mapped task, labelled with its month), exactly what
`ledgerlake backfill --source S --input P --from M --to M` does by hand.

* **plan** checks the params before any Spark work (unknown feed, bad or inverted
  months, missing input) and lists the months that have files.
* **select_feed** follows the chosen feed's **load_&lt;feed&gt;** task only; it runs in
  the pool `ledgerlake_<feed>`, whose slots cap how many months read that feed at
  once (Admin > Pools; default 1, so months load in business-date order).
* A month whose files include a rejected one fails (file and reason in its log)
  after its other files loaded; it is not retried: fix and re-send the file, then
  clear the task. Reruns are no-ops for files already loaded.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from ledgerlake.orchestration.operator import BATCH_OUTLETS, LedgerlakeJob
from ledgerlake.orchestration.planning import BATCH_SOURCES, DEFAULT_ARGS, ParamsError, plan_backfill, pool_name


@dag(
    dag_id="ledgerlake_backfill",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    description="Load a legacy feed's history, one spark-submit per business month.",
    doc_md=__doc__,
    tags=["ledgerlake", "backfill", "batch"],
    default_args=DEFAULT_ARGS,
    params={
        "source": Param("core_banking", type="string", title="Legacy feed",
                        description="Which batch feed to load.", examples=list(BATCH_SOURCES)),
        "input": Param(None, type=["null", "string"], title="Input path",
                       description="Directory holding the feed's files (searched recursively)."),
        "from": Param(None, type=["null", "string"], title="First month (YYYY-MM)",
                      description="First business month to load; empty: the first month with files."),
        "to": Param(None, type=["null", "string"], title="Last month (YYYY-MM)",
                    description="Last business month to load; empty: the last month with files."),
    },
)
def ledgerlake_backfill():
    """Load a legacy feed's history, one spark-submit per business month."""

    @task
    def plan(params: dict | None = None) -> list[list[str]]:
        """Validate the params and list one job (its arguments) per month that has files."""
        from airflow.sdk.exceptions import AirflowFailException

        params = params or {}
        try:
            return plan_backfill(params.get("source"), params.get("input"), params.get("from"), params.get("to"))
        except ParamsError as exc:
            raise AirflowFailException(f"invalid backfill params: {exc}") from None

    @task.branch
    def select_feed(params: dict | None = None) -> str:
        """Follow the chosen feed's load task only (each feed has its own pool)."""
        return f"load_{(params or {})['source']}"

    months = plan()
    feed = select_feed()
    months >> feed
    for source in BATCH_SOURCES:
        feed >> LedgerlakeJob.partial(
            task_id=f"load_{source}",
            job="backfill",
            pool=pool_name(source),
            outlets=BATCH_OUTLETS,
            map_index_template="{{ task.application_args[-1] }}",
        ).expand(application_args=months)

ledgerlake_backfill()
