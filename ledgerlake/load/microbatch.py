"""One micro-batch of the event feed applied to the lake, exactly once; and the handoff to the batch.

``apply_batch`` is the stream's foreachBatch body (``jobs/stream.py``) and runs just
as well on a static DataFrame of landing files (tests, replays). Its order of writes
is what makes a replay after a crash exact:

1. decide, from ``ops.stream_state`` and silver's batch rows as they are *before* this
   micro-batch, what each txn_id's newest event does (``transforms.events.plan_changes``);
2. serving.transactions_recent and silver.transactions (at once, in two threads), then
   ops.quarantine, ops.parity: one Delta commit each, guarded by a transaction identifier
   (the checkpoint's app id, version = batch id), so a replayed batch skips the commits
   that already happened, whichever they were;
3. ops.stream_state last: until it commits, a replay sees the same state and so makes
   the same decisions.

A backfill may publish at any moment. One that commits after this micro-batch was planned
may carry some of its txn_ids: right after its own commits (step 2), the micro-batch looks
for batch rows of the txn_ids it wrote, removes its streamed versions of those and hands
them to the batch (parity, a BATCH state), as if it had seen the batch row when planning
(``_yield_to_batch``). A backfill that was judged before the micro-batch committed does the
same on its side (``handoff.remove_late_versions``), so whichever commits last cleans up.
The plan rests on two things only: the stream's own state, which no one else changes except
to mark txn_ids batch-owned, and "no batch row yet" for each txn_id. A concurrent batch
can falsify only the second, so a commit retried after a conflict keeps its plan, and the
look after the commit re-makes exactly that decision on the newest snapshot.

New txn_ids are blind appends. When streamed rows are replaced, moved or removed, the
commit is an overwrite whose ``replaceWhere`` names them (streamed rows of the changed
txn_ids in their posting months) and whose data is the batch's new versions: the plan has
already decided which versions win, so no join against the table is needed. Past
``MAX_LISTED_KEYS`` changed txn_ids it is a MERGE on the posting months instead. Either way
the cost follows what the batch changes, not the years of history in silver.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TypeVar

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.util import inheritable_thread_target

from ledgerlake.lake import Lake, idempotent_writes
from ledgerlake.load import sinks
from ledgerlake.serving import ServingWindow
from transforms.events import (
    BATCH,
    CANCEL,
    CANCELLED,
    SOURCE_SYSTEM,
    STALE,
    UPSERT,
    bad_events,
    current_state,
    dedupe_events,
    latest_per_txn,
    parse_events,
    plan_changes,
    split_lines,
    to_quarantine,
    to_silver_rows,
    to_state_rows,
    valid_events,
    with_posting_month,
)
from transforms.parity import cancelled_parity_rows, parity_rows
from warehouse.tables import SERVING_TRANSACTIONS, SILVER_TRANSACTIONS, STREAM_STATE

log = logging.getLogger(__name__)
T = TypeVar("T")

# Up to this many changed txn_ids are named in the overwrite's predicate (Delta skips files by
# statistics); past it, the change is a MERGE joined on txn_id within the posting months.
MAX_LISTED_KEYS = 2000
_ACTIONS = (UPSERT, CANCEL, STALE, BATCH)   # what the plan decides per txn_id


@contextmanager
def _phase(what: str, timings: dict[str, float]) -> Iterator[None]:
    """Time one step of a micro-batch (logged at DEBUG with the batch)."""
    started = time.monotonic()
    try:
        yield
    finally:
        timings[what] = time.monotonic() - started


@dataclass
class BatchStats:
    """What one micro-batch did, for the progress line and the run summary."""

    batch_id: int
    files: int = 0
    lines: int = 0
    quarantined: int = 0
    events: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    serving_upserts: int = 0
    oldest_landed: float | None = None      # epoch seconds of the batch's oldest / newest landing file
    newest_landed: float | None = None
    committed_at: float | None = None       # epoch seconds when the batch's last commit finished
    seconds: float = 0.0
    quarantine_details: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    spark_jobs: int = 0

    @property
    def applied(self) -> int:
        return self.actions.get(UPSERT, 0) + self.actions.get(CANCEL, 0)

    @property
    def state_changes(self) -> int:
        """txn_ids whose recorded state this batch moves on (ops.stream_state versions to append)."""
        return self.actions.get(UPSERT, 0) + self.actions.get(CANCEL, 0) + self.actions.get(BATCH, 0)

    @property
    def ignored(self) -> int:
        """Valid events that changed nothing: repeats, older versions, batch-owned txn_ids."""
        return self.events - self.applied

    @property
    def latency(self) -> float | None:
        """Seconds from the oldest file's landing to this batch's last commit."""
        if self.oldest_landed is None or self.committed_at is None:
            return None
        return self.committed_at - self.oldest_landed

    def line(self) -> str:
        lat = f"{self.latency:.1f}s" if self.latency is not None else "-"
        return (f"[stream] batch {self.batch_id}: files {self.files}  lines {self.lines:,}  "
                f"applied {self.applied:,} (cancelled {self.actions.get(CANCEL, 0):,}, "
                f"to serving {self.serving_upserts:,})  ignored {self.ignored:,} "
                f"(stale {self.actions.get(STALE, 0):,}, batch-owned {self.actions.get(BATCH, 0):,}, "
                f"repeats {self.events - sum(self.actions.values()):,})  "
                f"quarantined {self.quarantined:,}  latency {lat}  took {self.seconds:.1f}s")


def apply_batch(lake: Lake, files: DataFrame, batch_id: int, app_id: str, window: ServingWindow) -> BatchStats:
    """Apply one micro-batch of landing files (``source_file, landed_at, content``) to the lake."""
    started = time.monotonic()
    spark = lake.spark
    stats = BatchStats(batch_id)
    load_id = f"stream-{app_id}-{batch_id}"
    context = spark.sparkContext
    group = f"ledgerlake-stream-{app_id[:8]}-{batch_id}"
    context.setJobGroup(group, f"ledgerlake stream micro-batch {batch_id}")
    # What a micro-batch needs to know about its lines and its plan is observed on the jobs
    # that materialise them, rather than computed by jobs of its own.
    parsed, overview = _observed(
        files.transform(split_lines).transform(parse_events), f"ledgerlake-lines-{batch_id}",
        lines=F.count(F.lit(1)),
        bad=F.count_if(F.col("reason").isNotNull()),
        files=F.size(F.collect_set("source_file")),
        oldest=F.unix_micros(F.min("landed_at")),
        newest=F.unix_micros(F.max("landed_at")),
    )
    parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with _phase("parse", stats.timings):
            latest, latest_seen = _observed(
                parsed.transform(valid_events).transform(dedupe_events).transform(latest_per_txn)
                .transform(with_posting_month),
                f"ledgerlake-latest-{batch_id}", months=F.array_sort(F.collect_set("posting_month")))
            latest = latest.localCheckpoint()
            seen = overview.get
        stats.lines, stats.quarantined, stats.files = seen["lines"], seen["bad"], seen["files"]
        if seen["oldest"] is not None:
            stats.oldest_landed, stats.newest_landed = seen["oldest"] / 1e6, seen["newest"] / 1e6
        stats.events = stats.lines - stats.quarantined
        plan = None
        if stats.events:
            silver_before = int(lake.snapshot(SILVER_TRANSACTIONS.name).version())
            plan = _plan(lake, latest, latest_seen.get["months"], stats, load_id, window)
            wrote_silver = _write_transactions(lake, plan, stats, app_id, batch_id)
            plan = _yield_to_batch(lake, plan, stats, silver_before + int(wrote_silver))
        if stats.quarantined:
            with _phase("quarantine", stats.timings), idempotent_writes(spark, app_id, batch_id):
                bad = parsed.transform(bad_events)
                stats.quarantine_details = {
                    r["reason_detail"]: r["count"] for r in bad.groupBy("reason_detail").count().collect()
                }
                sinks.write_quarantine(lake, bad.transform(to_quarantine(load_id)))
        if plan is not None and stats.actions.get(BATCH):
            with _phase("parity", stats.timings), idempotent_writes(spark, app_id, batch_id):
                sinks.write_parity(lake, _stream_parity(lake, plan), "stream", load_id)
        if plan is not None and stats.state_changes:
            with _phase("state", stats.timings):
                sinks.append_state(lake, plan.rows.transform(to_state_rows(batch_id)), app_id, batch_id)
    finally:
        parsed.unpersist()
        stats.spark_jobs = len(context.statusTracker().getJobIdsForGroup(group))
        context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        context.setLocalProperty("spark.job.description", None)  # type: ignore[arg-type]
    stats.committed_at = time.time()
    stats.seconds = time.monotonic() - started
    log.debug("batch %d: %d Spark jobs; %s", batch_id, stats.spark_jobs,
              ", ".join(f"{k} {v:.2f}s" for k, v in stats.timings.items()))
    return stats


@dataclass
class BatchPlan:
    """What a micro-batch does to each txn_id, materialised once (``rows``), and what it touches."""

    rows: DataFrame                   # one row per txn_id: silver's columns + action, kind, serving_action, ...
    months: list[str]                 # posting months the batch's txn_ids live in (for batch-row lookups)
    changed_months: list[str]         # months holding streamed rows to replace, move or remove
    changed_keys: list[str] | None    # their txn_ids, when few enough to name in a predicate


def _plan(lake: Lake, latest: DataFrame, event_months: list[str], stats: BatchStats, load_id: str,
          window: ServingWindow) -> BatchPlan:
    """Decide per txn_id from its newest event (materialised) and the lake as it is before this micro-batch.

    ``event_months``: the posting months of those events. The two lookups (the stream's state,
    silver's batch rows in those months) are independent and mostly driver-side work, so they
    run at once; a month that only the state names is looked up in silver afterwards.
    """
    with _phase("plan", stats.timings):
        ids = latest.select("txn_id")
        # Both lookups are materialised without lineage: later steps must not re-read (or re-plan)
        # the Delta tables that this batch is about to change.
        found = _concurrently(lake.spark, {
            "state": _timed("plan.state", lambda: _state_lookup(lake, ids, stats.batch_id), stats.timings),
            "batch rows": _timed("plan.batch_rows",
                                 lambda: _batch_rows(lake, event_months, ids).localCheckpoint(), stats.timings),
        })
        (state, state_months), silver_batch_rows = found["state"], found["batch rows"]
        if others := sorted(set(state_months) - set(event_months)):
            silver_batch_rows = silver_batch_rows.unionByName(_batch_rows(lake, others, ids))
        months = sorted(set(event_months) | set(state_months))
        decided = latest.transform(plan_changes(state, silver_batch_rows))
        change = F.col("kind") == "change"
        with _phase("plan.rows", stats.timings):
            rows, planned = _observed(
                _change_rows(decided, load_id, window), f"ledgerlake-plan-{stats.batch_id}",
                **{action: F.count_if(F.col("action") == action) for action in _ACTIONS},
                serving_upserts=F.count_if(F.col("serving_action") == UPSERT),
                changed=F.count_if(change),
                changed_months=F.array_sort(F.collect_set(F.when(change, F.col("old_month")))),
                keys=F.slice(F.collect_list(F.when(change, F.col("txn_id"))), 1, MAX_LISTED_KEYS + 1),
            )
            rows = rows.localCheckpoint()
            summary = planned.get
        stats.actions = {action: summary[action] for action in _ACTIONS if summary[action]}
        stats.serving_upserts = summary["serving_upserts"]
        changed_months = list(summary["changed_months"])
        keys = None
        if changed_months and summary["changed"] <= MAX_LISTED_KEYS:
            keys = sorted(summary["keys"])
    return BatchPlan(rows, months, changed_months, keys)


def _write_transactions(lake: Lake, plan: BatchPlan, stats: BatchStats, app_id: str, batch_id: int) -> bool:
    """The serving tier and silver, at once: one commit each, skipped on a replay by its transaction identifier.

    True when silver was written to (one commit, or none on a replay).

    Only new txn_ids: blind appends. Streamed rows to replace, move or remove: an overwrite
    of exactly those rows (a MERGE when they are too many to name). The two commits are
    independent (different tables) and mostly driver-side Delta work, so they overlap well.
    """
    applied = plan.rows.where(F.col("action").isin(UPSERT, CANCEL))
    to_serving = applied.where((F.col("serving_action") == UPSERT) | F.col("old_month").isNotNull())
    writes: dict[str, Callable[[], None]] = {}
    settings: AbstractContextManager[None] = nullcontext()
    if plan.changed_months and plan.changed_keys is not None:
        change = sinks.Change(plan.changed_months, plan.changed_keys, app_id, batch_id)
        writes["serving"] = lambda: sinks.replace_transactions(
            lake, SERVING_TRANSACTIONS.name, to_serving.where(F.col("serving_action") == UPSERT), change)
        writes["silver"] = lambda: sinks.replace_transactions(
            lake, SILVER_TRANSACTIONS.name, applied.where(F.col("action") == UPSERT), change)
        settings = sinks.replace_settings(lake.spark)
    elif plan.changed_months:
        writes["serving"] = lambda: sinks.merge_transactions(lake, SERVING_TRANSACTIONS.name, to_serving,
                                                             plan.changed_months, "serving_action")
        writes["silver"] = lambda: sinks.merge_transactions(lake, SILVER_TRANSACTIONS.name, applied,
                                                            plan.changed_months, "action")
        # MERGE takes its transaction identifier from the session (one setting for both tables).
        settings = sinks.merge_settings(lake.spark, app_id, batch_id)
    elif stats.applied:
        if stats.serving_upserts:
            writes["serving"] = lambda: sinks.append_transactions(lake, SERVING_TRANSACTIONS.name, to_serving,
                                                                  app_id, batch_id)
        if stats.actions.get(UPSERT):
            writes["silver"] = lambda: sinks.append_transactions(
                lake, SILVER_TRANSACTIONS.name, applied.where(F.col("action") == UPSERT), app_id, batch_id)
    with settings:
        _concurrently(lake.spark, {what: _timed(what, write, stats.timings) for what, write in writes.items()})
    return "silver" in writes


def _yield_to_batch(lake: Lake, plan: BatchPlan, stats: BatchStats, expected_version: int) -> BatchPlan:
    """Hand over the txn_ids a batch file loaded while this micro-batch was planned and written.

    Looked for only when silver has a commit this micro-batch did not make (``expected_version``:
    silver's version at planning, plus this batch's own commit), or when the plan already
    names batch-owned txn_ids (a replay after a crash right after the commit). The streamed
    versions of txn_ids that now have a batch row leave silver and the serving tier, and the
    plan marks those txn_ids BATCH: parity and state are then written as for any batch-owned id.
    """
    if lake.snapshot(SILVER_TRANSACTIONS.name).version() <= expected_version and not stats.actions.get(BATCH):
        return plan
    with _phase("yield", stats.timings):
        ids = plan.rows.where(F.col("action").isin(UPSERT, BATCH)).select("txn_id")
        streamed = (lake.read(SILVER_TRANSACTIONS.name).where(F.col("source_system") == SOURCE_SYSTEM)
                    .join(F.broadcast(ids), "txn_id", "left_semi").select("txn_id"))
        owned = {r["txn_id"]: r["posting_month"] for r in _batch_rows(lake, plan.months, streamed).collect()}
        if not owned:
            return plan
        log.warning("batch %d: %d txn_id(s) were loaded from a batch file meanwhile: their streamed versions "
                    "are removed", stats.batch_id, len(owned))
        # Silver last: it is where a replay after a crash in between finds them again.
        for table in (SERVING_TRANSACTIONS.name, SILVER_TRANSACTIONS.name):
            sinks.remove_streamed(lake, table, sorted(owned))
        taken = lake.spark.createDataFrame(sorted(owned.items()), "txn_id STRING, taken_month STRING")
        rows = (plan.rows.join(F.broadcast(taken), "txn_id", "left")
                .withColumns({"action": F.when(F.col("taken_month").isNotNull(), F.lit(BATCH))
                              .otherwise(F.col("action")),
                              "batch_month": F.coalesce("taken_month", "batch_month")})
                .drop("taken_month").localCheckpoint())
        counts = {r["action"]: r["count"] for r in rows.groupBy("action").count().collect()}
        stats.actions = {action: counts[action] for action in _ACTIONS if counts.get(action)}
    return BatchPlan(rows, plan.months, plan.changed_months, plan.changed_keys)


def _timed(what: str, work: Callable[[], T], timings: dict[str, float]) -> Callable[[], T]:
    def timed() -> T:
        with _phase(what, timings):
            return work()
    return timed


def _concurrently(spark: SparkSession, work: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Run each callable in its own thread (Spark's job group and tags carried over); wait for all.

    Returns their results by name, or raises the first error once all have finished: no work is
    left running, so a failed batch is retried from a quiet lake.
    """
    if len(work) <= 1:
        return {what: fn() for what, fn in work.items()}
    with ThreadPoolExecutor(max_workers=len(work), thread_name_prefix="ledgerlake-batch") as pool:
        futures = {what: pool.submit(inheritable_thread_target(spark)(fn)) for what, fn in work.items()}
        wait(futures.values())
    return {what: future.result() for what, future in futures.items()}


def _stream_parity(lake: Lake, plan: BatchPlan) -> DataFrame:
    """Events for txn_ids a batch file loaded: what they would have changed, field by field."""
    owned = plan.rows.where(F.col("action") == BATCH)
    batch = _batch_rows(lake, plan.months, owned.select("txn_id"), full=True)
    return parity_rows(owned.where(F.col("event_type") != CANCELLED), batch).unionByName(
        cancelled_parity_rows(owned.where(F.col("event_type") == CANCELLED), batch))


def _change_rows(plan: DataFrame, load_id: str, window: ServingWindow) -> DataFrame:
    """Every planned txn_id as a silver-shaped row, with what to do in silver and in serving.

    ``kind`` is ``change`` when a streamed row exists that must be replaced, moved or removed
    (a MERGE) and ``new`` otherwise (a blind append would do). In serving, an UPSERT whose
    posting date is outside the window is a DELETE.
    """
    rows = plan.transform(to_silver_rows(load_id, keep=(
        "action", "old_month", "batch_month", "sequence", "event_id", "event_type")))
    in_window = (F.col("action") == UPSERT) & F.expr(window.sql_condition("posting_date"))
    return rows.withColumns({
        "serving_action": F.when(in_window, F.lit(UPSERT)).otherwise(F.lit("DELETE")),
        "kind": F.when(F.col("action").isin(UPSERT, CANCEL) & F.col("old_month").isNotNull(), F.lit("change"))
        .otherwise(F.lit("new")),
    })


def _state_lookup(lake: Lake, ids: DataFrame, batch_id: int) -> tuple[DataFrame, list[str]]:
    """The current stream state of these txn_ids (materialised), and the posting months it names."""
    state, seen = _observed(
        lake.read(STREAM_STATE.name).join(F.broadcast(ids), "txn_id", "left_semi").transform(current_state),
        f"ledgerlake-state-{batch_id}", months=F.array_sort(F.collect_set("posting_month")))
    return state.localCheckpoint(), seen.get["months"]


def _observed(df: DataFrame, name: str, **metrics: Column) -> tuple[DataFrame, Observation]:
    """``df`` with aggregate metrics observed on the first action that runs it (no job of their own)."""
    observation = Observation(name)
    return df.observe(observation, *(metric.alias(key) for key, metric in metrics.items())), observation


def _batch_rows(lake: Lake, months: list[str], ids: DataFrame, full: bool = False) -> DataFrame:
    """Silver rows of these txn_ids loaded from batch files, read from the given months only."""
    silver = lake.read(SILVER_TRANSACTIONS.name)
    if not months:
        return silver.limit(0) if full else silver.select("txn_id", "posting_month").limit(0)
    rows = (silver.where(F.col("posting_month").isin(months))
            .where(F.col("source_system") != SOURCE_SYSTEM)
            .join(F.broadcast(ids), "txn_id", "left_semi"))
    return rows if full else rows.select("txn_id", "posting_month")
