"""Stream job: apply the real-time ``events`` landing zone to silver and the serving tier, exactly once.

    ledgerlake stream --input PATH [--available-now] [--trigger-seconds 2]
    spark-submit jobs/stream.py --input PATH [--available-now] ...

Spark Structured Streaming over the landing zone's ``*.jsonl`` files, checkpointed inside
the lake (``ledgerlake.load.stream``). Each micro-batch is applied exactly once by
``ledgerlake.load.microbatch.apply_batch``. Without --available-now the stream runs until
SIGTERM or Ctrl-C, which stop it after the micro-batch in flight; with it, it processes
every file present and exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script by spark-submit: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledgerlake.config import ConfigError, add_common_arguments, config_from_args
from ledgerlake.console import TRANSIENT, configure_logging, exit_statuses, fail
from ledgerlake.load.checkpoint import CHECKPOINT_NAME
from ledgerlake.load.stream import DEFAULT_MAX_FILES, DEFAULT_TRIGGER_SECONDS, StreamInputError, local_landing_path
from ledgerlake.session import small_commit_conf

log = logging.getLogger("ledgerlake.stream")


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


@exit_statuses("stream")
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0 after a clean stop or a finished --available-now run, 2 bad input, 3 failure."""
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        config = dataclasses.replace(config, spark_conf={**small_commit_conf(), **config.spark_conf})
        configure_logging(config.log_level)
        if args.trigger_seconds <= 0:
            raise StreamInputError("--trigger-seconds must be greater than 0")
        if args.max_files_per_trigger < 1:
            raise StreamInputError("--max-files-per-trigger must be at least 1")
        landing = local_landing_path(args.input)
    except (ConfigError, StreamInputError) as exc:
        return fail("stream", str(exc))

    from ledgerlake.lake import open_lake
    from ledgerlake.load.checkpoint import claim_checkpoint, default_checkpoint
    from ledgerlake.load.stream import RunSummary, remote_landing_path, run_until_stopped, start_stream
    from ledgerlake.session import build_session

    spark = build_session(config, "ledgerlake-stream")
    try:
        if landing is None:
            landing = remote_landing_path(spark, args.input)
        checkpoint = args.checkpoint or default_checkpoint(config.warehouse)
        app_id = claim_checkpoint(spark, checkpoint, landing, config.warehouse)
    except StreamInputError as exc:
        return fail("stream", str(exc))
    lake = open_lake(spark, config.warehouse, create=True)
    summary = RunSummary()
    query = start_stream(lake, config, landing, checkpoint, app_id, summary,
                         available_now=args.available_now, trigger_seconds=args.trigger_seconds,
                         max_files=args.max_files_per_trigger)
    mode = "available-now" if args.available_now else f"every {args.trigger_seconds:g}s until stopped"
    log.info("streaming %s into %s (%s; checkpoint %s)", landing, config.warehouse, mode, checkpoint)
    error = run_until_stopped(query)
    print(summary.render())
    if error:
        return fail("stream", f"the stream failed: {error} (transient failure: safe to retry)", code=TRANSIENT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
