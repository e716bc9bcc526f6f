"""Find a feed's files under a path, fingerprint them and pick those in the business-date range."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from transforms.legacy.spec import SourceSpec


class InputError(ValueError):
    """The input path or range cannot be used; nothing was touched."""


@dataclass(frozen=True, order=True)
class MonthRange:
    """Inclusive range of business months; None bounds are open."""

    start: tuple[int, int] | None = None
    end: tuple[int, int] | None = None

    @property
    def bounded(self) -> bool:
        return self.start is not None or self.end is not None

    def contains(self, day: date) -> bool:
        month = (day.year, day.month)
        return (self.start is None or month >= self.start) and (self.end is None or month <= self.end)

    def __str__(self) -> str:
        fmt = lambda m: f"{m[0]:04d}-{m[1]:02d}" if m else "…"  # noqa: E731
        return f"{fmt(self.start)} to {fmt(self.end)}" if self.bounded else "all months"


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(value: str | None, flag: str) -> tuple[int, int] | None:
    """A YYYY-MM flag value as (year, month)."""
    if value is None:
        return None
    match = _MONTH.match(value.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise InputError(f"{flag} must be a month YYYY-MM, got {value!r}")
    return int(match[1]), int(match[2])


def month_range(start: str | None, end: str | None) -> MonthRange:
    """The --from/--to range, refusing an inverted one."""
    rng = MonthRange(parse_month(start, "--from"), parse_month(end, "--to"))
    if rng.start and rng.end and rng.start > rng.end:
        raise InputError(f"--from {start} is after --to {end}")
    return rng


@dataclass(frozen=True)
class BatchFile:
    """One legacy file found on disk, fingerprinted."""

    path: str
    name: str
    size: int
    sha256: str
    business_date: date | None
    order: tuple

    @property
    def sort_key(self) -> tuple:
        return (self.business_date or date.max, self.order, self.name)


def _sha256_and_head(path: Path, head_bytes: int) -> tuple[str, bytes, int]:
    digest = hashlib.sha256()
    head = b""
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(4 << 20):
            if not head:
                head = chunk[:head_bytes]
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), head, size


@dataclass
class Discovery:
    """What a backfill found: files to consider, in load order, and what was set aside."""

    files: list[BatchFile]
    out_of_range: int
    undated_skipped: list[str]
    same_content: list[tuple[str, str]]     # (name, name of the earlier identical file)


def discover(spec: SourceSpec, input_path: str, months: MonthRange, day: date | None = None) -> Discovery:
    """All files of the feed under input_path whose business date is in range, in load order.

    ``day`` narrows the range to one business date (the daily batch). Every candidate in
    range is read once to fingerprint it (SHA-256), so an unreadable file is reported
    here, before any table is touched; files outside the range are only probed for their date.
    """
    root = Path(input_path).expanduser()
    if not root.exists():
        raise InputError(f"input path does not exist: {input_path}")
    if root.is_file():
        candidates = [root] if spec.file_pattern.match(root.name) else []
    else:
        candidates = sorted(
            Path(dirpath) / name
            for dirpath, _, names in os.walk(root)
            for name in names
            if spec.file_pattern.match(name)
        )
    if not candidates:
        raise InputError(f"no {spec.name} files ({spec.describe_files}) under {input_path}")

    found: list[BatchFile] = []
    out_of_range = 0
    undated: list[str] = []
    head_bytes = max(spec.probe_bytes, 64)
    for path in candidates:
        try:
            if months.bounded or day is not None:
                with path.open("rb") as fh:
                    file_day = spec.business_date(path.name, fh.read(head_bytes))
                if file_day is None:
                    undated.append(path.name)
                    continue
                if not months.contains(file_day) or (day is not None and file_day != day):
                    out_of_range += 1
                    continue
            sha, head, size = _sha256_and_head(path, head_bytes)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        file_day = spec.business_date(path.name, head)
        found.append(BatchFile(str(path.resolve()), path.name, size, sha, file_day,
                               spec.order_key(path.name, head)))

    found.sort(key=lambda f: f.sort_key)
    unique: list[BatchFile] = []
    seen: dict[str, str] = {}
    same_content: list[tuple[str, str]] = []
    for f in found:
        if f.sha256 in seen:
            same_content.append((f.name, seen[f.sha256]))
            continue
        seen[f.sha256] = f.name
        unique.append(f)
    return Discovery(unique, out_of_range, undated, same_content)
