"""Small helpers for the tests: run a backfill in-process and read back what it wrote."""

from __future__ import annotations

import socket
from pathlib import Path

from ledgerlake.lake import Lake
from ledgerlake.load.backfill import BackfillResult, run_backfill
from ledgerlake.load.discovery import discover, month_range
from transforms.legacy import get_source


def backfill(lake: Lake, source: str, path: Path | str, start: str | None = None,
             end: str | None = None, batch_bytes: int = 256 << 20) -> BackfillResult:
    spec = get_source(source)
    months = month_range(start, end)
    return run_backfill(lake, spec, discover(spec, str(path), months), months, batch_bytes=batch_bytes)


def load_fresh(new_lake, root: Path, source: str) -> tuple[Lake, BackfillResult]:  # noqa: ANN001
    """Backfill ``root/in`` into a new lake at ``root/lake`` (``new_lake``: the conftest fixture)."""
    lake = new_lake(root / "lake")
    return lake, backfill(lake, source, root / "in")


def ledger(lake: Lake) -> dict[str, dict]:
    return {r["source_file"]: r.asDict() for r in lake.read("ops.load_ledger").collect()}


def quarantine_counts(lake: Lake) -> dict[str, int]:
    rows = lake.read("ops.quarantine").groupBy("source_file", "reason").count().collect()
    return {f"{r['source_file']}|{r['reason']}": r["count"] for r in rows}


def silver(lake: Lake) -> dict[str, dict]:
    return {r["txn_id"]: r.asDict() for r in lake.read("silver.transactions").collect()}


def table_snapshot(lake: Lake, name: str, drop: tuple[str, ...] = ()) -> list[tuple]:
    """Sorted rows of a table without volatile columns: equal snapshots mean an unchanged table."""
    df = lake.read(name).drop(*drop)
    return sorted(tuple(str(v) for v in row) for row in df.collect())


def write_lines(path: Path, lines: list[str], encoding: str = "latin-1", newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def free_port() -> int:
    """A TCP port nothing listens on (yet) on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
