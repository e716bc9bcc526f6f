"""The real-time stream: Structured Streaming over the events landing zone, one ``apply_batch`` per micro-batch.

The landing zone's ``*.jsonl`` files are read as whole files (``landing_files``); each
micro-batch is applied by ``ledgerlake.load.microbatch.apply_batch`` inside foreachBatch, and
the query is checkpointed (``ledgerlake.load.checkpoint``). SIGTERM or Ctrl-C stop it after
the micro-batch in flight (``run_until_stopped``).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledgerlake import objectstore
from ledgerlake.config import LakeConfig
from ledgerlake.lake import Lake, hadoop_fs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from ledgerlake.load.microbatch import BatchStats

log = logging.getLogger("ledgerlake.stream")

DEFAULT_TRIGGER_SECONDS = 2.0
DEFAULT_MAX_FILES = 1000
FILE_PATTERN = "*.jsonl"
STOP_GRACE_SECONDS = 120.0


class StreamInputError(ValueError):
    """The landing zone or the checkpoint cannot be used; nothing was touched."""


@dataclass
class RunSummary:
    """Totals over the micro-batches of this run."""

    batches: int = 0
    lines: int = 0
    applied: int = 0
    cancelled: int = 0
    ignored: int = 0
    quarantined: int = 0
    max_latency: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def add(self, stats: BatchStats) -> None:
        self.batches += 1
        self.lines += stats.lines
        self.applied += stats.applied
        self.cancelled += stats.actions.get("CANCEL", 0)
        self.ignored += stats.ignored
        self.quarantined += stats.quarantined
        if stats.latency is not None:
            self.max_latency = max(self.max_latency, stats.latency)

    def render(self) -> str:
        seconds = time.monotonic() - self.started
        return (f"stream: {self.batches} micro-batch(es) in {seconds:,.1f}s: {self.lines:,} lines, "
                f"{self.applied:,} applied ({self.cancelled:,} cancellations), {self.ignored:,} ignored "
                f"(repeats, older versions, batch-owned), {self.quarantined:,} quarantined as BAD_EVENT; "
                f"max latency {self.max_latency:.1f}s")


def local_landing_path(path: str) -> str | None:
    """The absolute landing directory for a local path (error if missing), the s3a:// URI of a readable
    S3 prefix; None for another URI (checked once Spark runs: ``remote_landing_path``)."""
    if objectstore.is_s3(path):
        objectstore.check_prefix(path)
        return objectstore.to_s3a(path).rstrip("/")
    if "://" in path and not path.startswith("file://"):
        return None
    local = Path(path.removeprefix("file://")).expanduser()
    if not local.exists():
        raise StreamInputError(f"input path does not exist: {path}")
    if not local.is_dir():
        raise StreamInputError(f"input must be the landing directory, not a file: {path}")
    return str(local.resolve())


def remote_landing_path(spark: SparkSession, uri: str) -> str:
    """A landing URI (s3a://...) that exists, checked through Hadoop's file system."""
    fs, path = hadoop_fs(spark, uri)
    if not fs.exists(path):
        raise StreamInputError(f"input path does not exist: {uri}")
    return uri.rstrip("/")


def landing_files(spark: SparkSession, landing: str, max_files: int) -> DataFrame:
    """The landing zone as a stream of whole files: ``source_file`` (base name), ``landed_at``, ``content``."""
    from pyspark.sql import functions as F

    return (
        spark.readStream.format("binaryFile")
        .schema("path STRING, modificationTime TIMESTAMP, length BIGINT, content BINARY")
        .option("pathGlobFilter", FILE_PATTERN)
        .option("maxFilesPerTrigger", max_files)
        .load(landing)
        .select(
            F.regexp_extract("path", "[^/]*$", 0).alias("source_file"),
            F.col("modificationTime").alias("landed_at"),
            "content",
        )
    )


def start_stream(lake: Lake, config: LakeConfig, landing: str, checkpoint: str, app_id: str,
                 summary: RunSummary, available_now: bool = False,
                 trigger_seconds: float = DEFAULT_TRIGGER_SECONDS, max_files: int = DEFAULT_MAX_FILES
                 ) -> StreamingQuery:
    """Start the streaming query whose foreachBatch applies each micro-batch to the lake."""
    from ledgerlake.load.microbatch import apply_batch
    from ledgerlake.serving import serving_window

    def foreach_batch(batch: DataFrame, batch_id: int) -> None:
        # The batch's own session: Delta's transaction settings must be set where the MERGE runs.
        batch_lake = Lake(batch.sparkSession, lake.root)
        stats = apply_batch(batch_lake, batch, batch_id, app_id, serving_window(config))
        summary.add(stats)
        if stats.lines:
            print(stats.line(), file=sys.stderr, flush=True)
            if stats.quarantine_details:
                log.warning("batch %d quarantined %d line(s) as BAD_EVENT: %s", batch_id, stats.quarantined,
                            "; ".join(f"{d} ({n})" for d, n in sorted(stats.quarantine_details.items())))

    if log.isEnabledFor(logging.DEBUG):
        lake.spark.streams.addListener(_progress_logger())
    writer = (landing_files(lake.spark, landing, max_files).writeStream
              .queryName(f"ledgerlake-stream-{app_id[:8]}")
              .option("checkpointLocation", checkpoint)
              .foreachBatch(foreach_batch))
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(
        processingTime=f"{int(trigger_seconds * 1000)} milliseconds")
    return writer.start()


def _progress_logger() -> Any:
    """A listener that logs where each trigger's time went (Spark's durationMs), for --log-level DEBUG."""
    from pyspark.sql.streaming import StreamingQueryListener

    class ProgressLog(StreamingQueryListener):
        def onQueryStarted(self, event: Any) -> None:
            pass

        def onQueryProgress(self, event: Any) -> None:
            progress = event.progress
            log.debug("trigger of batch %d: %s", progress.batchId,
                      ", ".join(f"{k} {v}ms" for k, v in sorted(progress.durationMs.items())))

        def onQueryIdle(self, event: Any) -> None:
            pass

        def onQueryTerminated(self, event: Any) -> None:
            pass

    return ProgressLog()


def run_until_stopped(query: StreamingQuery) -> str | None:
    """Wait for the query; SIGTERM/SIGINT stop it after the micro-batch in flight. Returns an error or None."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("%s received: stopping after the micro-batch in flight", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while query.isActive:
            if stop.is_set():
                _stop_between_batches(query)
                break
            query.awaitTermination(0.5)
    except KeyboardInterrupt:
        log.warning("second signal: stopping now (the interrupted micro-batch is redone at the next start)")
        query.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    exc = query.exception()
    if exc is not None:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    return None


def _stop_between_batches(query: StreamingQuery) -> None:
    """Let the micro-batch in flight finish (bounded wait), then stop the query."""
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.2)
    query.stop()
    log.info("stream stopped")


