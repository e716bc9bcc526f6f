"""Terminal output shared by the commands: logging set-up, progress lines, tables."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager


def configure_logging(level: str = "INFO") -> None:
    """Readable log lines on stderr; Spark's own chatter stays at WARN."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "py4j.clientserver", "py4j.java_gateway"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def timed(log: logging.Logger, what: str) -> Iterator[None]:
    """Log how long a step took (INFO), so slow phases of a job show in its log."""
    started = time.monotonic()
    yield
    log.info("%s took %.1fs", what, time.monotonic() - started)


def fail(command: str, message: str, code: int = 2) -> int:
    """Print a one-line error for the user and return the exit status."""
    print(f"ledgerlake {command}: error: {message}", file=sys.stderr)
    return code


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
