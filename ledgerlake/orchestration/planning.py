"""Orchestration names and checks shared by the DAGs and the Airflow set-up: feeds, pools, variables, params.

Imports neither Airflow nor Spark: the set-up must configure Airflow's environment
before Airflow is first imported, and DAG files must parse fast. The feed
declarations (and with them PySpark) are imported inside the functions that
tasks call at run time.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ledgerlake.config import REPO_ROOT

log = logging.getLogger(__name__)


# The batch feeds of transforms.legacy.SOURCES (a test keeps the two equal); listed here so that
# parsing a DAG file does not import the feed declarations (and with them PySpark).
BATCH_SOURCES: tuple[str, ...] = ("core_banking", "core_banking_ebcdic", "cards")
EVENTS = "events"

SPARK_CONN_ID = "ledgerlake_spark"
OWNER = "data-platform"
DEFAULT_POOL_SLOTS = 1
DEFAULT_DRIVER_MEMORY = "2g"
DEFAULT_VACUUM_RETAIN_HOURS = 168
VAR_DRIVER_MEMORY = "ledgerlake_driver_memory"
VAR_VACUUM_RETAIN_HOURS = "ledgerlake_vacuum_retain_hours"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 3,          # exit status 3 (transient) and killed processes only: see LedgerlakeJob
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=6),
}

# Exit statuses of the ledgerlake jobs that a retry cannot change (see README, "Exit status").
FINAL_EXIT_CODES = {
    1: "the job found data it must not accept (a rejected file, a failed check or differences)",
    2: "bad input (arguments, paths or configuration)",
}


def pool_name(source: str) -> str:
    """The Airflow pool that caps how many loads read one legacy feed at once."""
    return f"ledgerlake_{source}"


def landing_variable(source: str) -> str:
    """The Airflow variable holding a feed's landing path (empty: the feed is not set up)."""
    return f"ledgerlake_landing_{source}"


def job_path(name: str) -> str:
    """Absolute path of a spark-submit entry point in jobs/."""
    return str(REPO_ROOT / "jobs" / f"{name}.py")


class ParamsError(ValueError):
    """A DAG run's params cannot be used; nothing was started."""


def probe_business_dates(source: str, input_path: str) -> list[tuple[str, date | None]]:
    """(path, business date) of every file of a feed under a path or S3 prefix, reading only each file's first bytes."""
    from ledgerlake.load.discovery import candidates
    from transforms.legacy import get_source

    spec = get_source(source)
    found = []
    for file in candidates(spec, input_path):
        try:
            head = file.head(max(spec.probe_bytes, 64))
        except OSError as exc:
            raise ParamsError(f"cannot read {file.path}: {exc.strerror or exc}") from exc
        found.append((file.path, spec.business_date(file.name, head)))
    return found


def _check_input(input_path: str, what: str) -> None:
    """A landing directory or S3 prefix that can be read, or a ParamsError."""
    from ledgerlake import objectstore

    if objectstore.is_s3(input_path):
        try:
            objectstore.check_prefix(input_path)
        except objectstore.ObjectStoreError as exc:
            raise ParamsError(str(exc)) from None
    elif not Path(input_path).expanduser().exists():
        raise ParamsError(f"{what} does not exist: {input_path}")


def plan_backfill(source: str | None, input_path: str | None, month_from: str | None,
                  month_to: str | None) -> list[list[str]]:
    """Check a backfill's params and plan one job per business month that has files: its arguments."""
    from ledgerlake.load.discovery import InputError, month_range
    from transforms.legacy import UnknownSourceError, get_source

    try:
        get_source(source or "")
        months = month_range(month_from or None, month_to or None)
    except (UnknownSourceError, InputError) as exc:
        raise ParamsError(str(exc).replace("--from", "'from'").replace("--to", "'to'")) from None
    if not input_path:
        raise ParamsError("param 'input' is required: the directory holding the feed's files")
    _check_input(input_path, "input path")
    if source not in BATCH_SOURCES:   # declared in transforms.legacy but given no load task
        raise ParamsError(f"source {source!r} has no load task; add it to BATCH_SOURCES in {__name__}")

    dated = probe_business_dates(source, input_path)
    per_month = Counter(f"{day:%Y-%m}" for _, day in dated if day is not None and months.contains(day))
    undated = [Path(p).name for p, day in dated if day is None]
    if undated:
        log.warning("%d file(s) without a business date are left alone (a backfill without from/to records "
                    "them as rejected): %s", len(undated), ", ".join(undated[:5]))
    if not per_month:
        raise ParamsError(f"no {source} files for {months} under {input_path}")
    for month, n in sorted(per_month.items()):
        log.info("%s: %d %s file(s)", month, n, source)
    return [["--source", source, "--input", input_path, "--from", month, "--to", month]
            for month in sorted(per_month)]


def parse_business_date(value: str) -> date:
    """The run's business date (YYYY-MM-DD), or a ParamsError."""
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ParamsError(f"business_date must be a date YYYY-MM-DD, got {value!r}") from None


def files_for_day(source: str, input_path: str, day: date) -> list[str]:
    """The feed's files under input_path whose business date is day."""
    _check_input(input_path, f"landing path of {source}")
    return [path for path, file_day in probe_business_dates(source, input_path) if file_day == day]
