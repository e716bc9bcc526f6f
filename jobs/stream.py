"""Stream job: apply the real-time ``events`` landing zone to silver and the serving tier, exactly once.

    ledgerlake stream --input PATH [--available-now] [--trigger-seconds 2]
    spark-submit jobs/stream.py --input PATH [--available-now] ...

Spark Structured Streaming over the landing zone's ``*.jsonl`` files, checkpointed
inside the lake. Each micro-batch is applied by ``ledgerlake.load.microbatch.apply_batch``:
bad lines to ops.quarantine, repeats dropped, the highest sequence per txn_id merged
into silver.transactions and, inside the serving window, serving.transactions_recent;
cancellations leave a tombstone in ops.stream_state. Every write is guarded by a Delta
transaction identifier, so a process killed at any point and restarted ends in exactly
the state of an uninterrupted run.

Without --available-now the stream runs until SIGTERM or Ctrl-C, which stop it after
the micro-batch in flight; with it, it processes every file present and exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __package__ in (None, ""):  # run as a script by spark-submit: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledgerlake.config import ConfigError, LakeConfig, add_common_arguments, config_from_args
from ledgerlake.console import configure_logging, fail

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from ledgerlake.lake import Lake
    from ledgerlake.load.microbatch import BatchStats

log = logging.getLogger("ledgerlake.stream")

DEFAULT_TRIGGER_SECONDS = 2.0
DEFAULT_MAX_FILES = 1000
CHECKPOINT_NAME = "_checkpoints/stream-events"
MARKER_NAME = "ledgerlake-checkpoint.json"
FILE_PATTERN = "*.jsonl"
STOP_GRACE_SECONDS = 120.0


def stream_spark_conf() -> dict[str, str]:
    """Session settings for many small commits; --conf overrides them.

    Delta rebuilds a table's snapshot after every commit, with 50 shuffle partitions by
    default: on a few cores that dominates a micro-batch, so match it to the machine.
    A micro-batch's cost is mostly fixed (planning, generated code, Delta's log), not per event.
    """
    partitions = str(min(8, max(2, os.cpu_count() or 2)))
    return {
        "spark.databricks.delta.snapshotPartitions": partitions,
        # A micro-batch's shuffles carry a few thousand rows: a partition per core, planned once.
        # Adaptive execution would re-plan after every shuffle stage, a Spark job each.
        "spark.sql.shuffle.partitions": partitions,
        "spark.sql.adaptive.enabled": "false",
        # Every micro-batch plans the same few dozen queries; keep all their generated classes
        # (the default keeps 100) so a batch does not compile them, and the JIT them, again.
        "spark.sql.codegen.cache.maxEntries": "2000",
        # Row projections interpreted, not generated. Every task that reads a Delta log or writes
        # a commit's files builds projections over Delta's nested action schema (add files, stats,
        # deletion vectors); generating their Java source costs more than a micro-batch's few
        # thousand rows ever take to evaluate. Whole-stage code generation is unaffected.
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        # Every micro-batch adds a small file to each table it writes (one per month). Unchecked,
        # they pile up all day and every lookup of ops.stream_state reads them all, so micro-batches
        # slow down as the day goes on. Delta compacts a table's small files right after the
        # commit that brings them to 50 (auto compaction, a separate commit).
        "spark.databricks.delta.autoCompact.enabled": "true",
        # PySpark records the Python call site of every Column function for error messages: several
        # JVM round trips and a stack walk per call, a few hundred calls per micro-batch. Errors
        # still name the failing operation; they lose only the Python line that built it.
        "spark.python.sql.dataFrameDebugging.enabled": "false",
    }


class StreamInputError(ValueError):
    """The landing zone or the checkpoint cannot be used; nothing was touched."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgerlake stream",
        description="Apply the real-time events landing zone (*.jsonl) to silver.transactions and "
                    "serving.transactions_recent in micro-batches, exactly once.",
        epilog="Runs until SIGTERM or Ctrl-C (the micro-batch in flight completes first); "
               "with --available-now, processes what is present and exits.",
    )
    parser.add_argument("--input", required=True, metavar="PATH",
                        help="landing directory (or s3a:// prefix) where *.jsonl event files appear")
    parser.add_argument("--available-now", action="store_true",
                        help="process every file present, in micro-batches, then exit")
    parser.add_argument("--trigger-seconds", type=float, default=DEFAULT_TRIGGER_SECONDS, metavar="S",
                        help=f"micro-batch interval of the long-running stream (default {DEFAULT_TRIGGER_SECONDS:g})")
    parser.add_argument("--max-files-per-trigger", type=int, default=DEFAULT_MAX_FILES, metavar="N",
                        help=f"at most N new files per micro-batch (default {DEFAULT_MAX_FILES})")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help=f"streaming checkpoint (default <lake>/{CHECKPOINT_NAME}); it belongs to one "
                             "landing zone and one lake")
    add_common_arguments(parser)
    return parser


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


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0 after a clean stop or a finished --available-now run, 1 on failure, 2 bad input."""
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        config = dataclasses.replace(config, spark_conf={**stream_spark_conf(), **config.spark_conf})
        configure_logging(config.log_level)
        if args.trigger_seconds <= 0:
            raise StreamInputError("--trigger-seconds must be greater than 0")
        if args.max_files_per_trigger < 1:
            raise StreamInputError("--max-files-per-trigger must be at least 1")
        landing = local_landing_path(args.input)
    except (ConfigError, StreamInputError) as exc:
        return fail("stream", str(exc))

    from ledgerlake.lake import open_lake
    from ledgerlake.session import build_session

    spark = build_session(config, "ledgerlake-stream")
    try:
        if landing is None:
            landing = remote_landing_path(spark, args.input)
        checkpoint = args.checkpoint or f"{config.warehouse}/{CHECKPOINT_NAME}"
        app_id = claim_checkpoint(spark, checkpoint, landing, config.warehouse)
    except StreamInputError as exc:
        return fail("stream", str(exc))
    lake = open_lake(spark, config.warehouse)
    summary = RunSummary()
    query = start_stream(lake, config, landing, checkpoint, app_id, summary,
                         available_now=args.available_now, trigger_seconds=args.trigger_seconds,
                         max_files=args.max_files_per_trigger)
    mode = "available-now" if args.available_now else f"every {args.trigger_seconds:g}s until stopped"
    log.info("streaming %s into %s (%s; checkpoint %s)", landing, config.warehouse, mode, checkpoint)
    error = run_until_stopped(query)
    print(summary.render())
    if error:
        return fail("stream", f"the stream failed: {error}", code=1)
    return 0


def local_landing_path(path: str) -> str | None:
    """The absolute landing directory for a local path (error if missing); None for a URI."""
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
    fs, path = _hadoop_fs(spark, uri)
    if not fs.exists(path):
        raise StreamInputError(f"input path does not exist: {uri}")
    return uri.rstrip("/")


def _hadoop_fs(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm  # noqa: SLF001 - Hadoop's FileSystem API, for local and object stores alike
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path  # noqa: SLF001


def claim_checkpoint(spark: SparkSession, checkpoint: str, landing: str, lake_root: str) -> str:
    """The checkpoint's application id, creating its marker on first use.

    The marker records the landing zone and the lake the checkpoint belongs to. A checkpoint
    of another landing zone or lake, or one without a marker that already holds streaming
    state, is refused: reusing it would skip or replay files silently.
    """
    fs, root = _hadoop_fs(spark, checkpoint)
    marker_path = _hadoop_fs(spark, f"{checkpoint.rstrip('/')}/{MARKER_NAME}")[1]
    if fs.exists(marker_path):
        stream = fs.open(marker_path)
        try:
            text = spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")  # noqa: SLF001
        finally:
            stream.close()
        try:
            marker = json.loads(text)
            owner_input, owner_lake, app_id = marker["input"], marker["lake"], marker["app_id"]
        except (ValueError, KeyError) as exc:
            raise StreamInputError(f"checkpoint {checkpoint} has an unreadable marker {MARKER_NAME}") from exc
        if owner_input != landing or owner_lake != lake_root:
            raise StreamInputError(
                f"checkpoint {checkpoint} belongs to input {owner_input} and lake {owner_lake}, "
                f"not input {landing} and lake {lake_root}; pass another --checkpoint"
            )
        return str(app_id)
    if fs.exists(root) and len(fs.listStatus(root)) > 0:
        raise StreamInputError(
            f"checkpoint {checkpoint} holds streaming state but no {MARKER_NAME}: it is not this stream's; "
            "pass another --checkpoint"
        )
    app_id = uuid.uuid4().hex
    marker = {"input": landing, "lake": lake_root, "app_id": app_id,
              "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    fs.mkdirs(root)
    out = fs.create(marker_path, False)
    try:
        out.write(bytearray(json.dumps(marker, indent=1).encode()))
    finally:
        out.close()
    log.info("new checkpoint %s for input %s (app id %s)", checkpoint, landing, app_id)
    return app_id


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
    from ledgerlake.lake import Lake
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


if __name__ == "__main__":
    sys.exit(main())
