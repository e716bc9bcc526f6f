"""Terminal output shared by the commands: logging set-up, progress lines, tables."""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar, cast


def configure_logging(level: str = "INFO") -> None:
    """Readable log lines on stderr; Spark's own chatter stays at WARN."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "py4j.clientserver", "py4j.java_gateway", "botocore", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def timed(log: logging.Logger, what: str) -> Iterator[None]:
    """Log how long a step took (INFO), so slow phases of a job show in its log."""
    started = time.monotonic()
    yield
    log.info("%s took %.1fs", what, time.monotonic() - started)


# Exit statuses of every command, as the DAG tasks read them: 1 and 2 are final, 3 is retried.
DONE, REFUSED, BAD_INPUT, TRANSIENT = 0, 1, 2, 3


class BadInput(ValueError):
    """Input the command cannot work with (exit status 2): retrying would give the same answer."""


def fail(command: str, message: str, code: int = BAD_INPUT) -> int:
    """Print a one-line error for the user and return the exit status."""
    print(f"ledgerlake {command}: error: {message}", file=sys.stderr)
    return code


Main = TypeVar("Main", bound=Callable[..., int])


def exit_statuses(command: str) -> Callable[[Main], Main]:
    """Decorate a command's ``main`` so that every way out has its exit status.

    ``main`` returns 0 (done), 1 (data refused) or 2 (bad input) itself. Of what it raises,
    ``BadInput`` exits 2 and anything else 3 (transient: a conflict that outlived its retries,
    a lost executor, an I/O error), with the trace in the log and one line on stderr: the
    jobs are idempotent, so the scheduler retries them.
    """

    def decorate(main: Main) -> Main:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except BadInput as exc:
                return fail(command, str(exc))
            except Exception as exc:
                logging.getLogger(f"ledgerlake.{command}").error("failed", exc_info=True)
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                return fail(command, f"{type(exc).__name__}: {first} (transient failure: safe to retry)", TRANSIENT)

        return cast(Main, run)

    return decorate


class Progress:
    """Files done of total and records per second, one line per step on stderr."""

    def __init__(self, total_files: int, label: str = "backfill") -> None:
        self.total_files = total_files
        self.label = label
        self.files_done = 0
        self.records_done = 0
        self.started = time.monotonic()

    def advance(self, files: int, records: int, note: str = "") -> None:
        self.files_done += files
        self.records_done += records
        elapsed = max(time.monotonic() - self.started, 1e-6)
        pct = 100.0 * self.files_done / self.total_files if self.total_files else 100.0
        print(
            f"[{self.label}] files {self.files_done}/{self.total_files} ({pct:.0f}%)  "
            f"records {self.records_done:,}  {self.records_done / elapsed:,.0f} rec/s  "
            f"elapsed {elapsed:,.1f}s{('  ' + note) if note else ''}",
            file=sys.stderr,
            flush=True,
        )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain aligned text table (NULL for None)."""
    cells = [[("NULL" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)), line]
    out += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in cells]
    return "\n".join(out)
