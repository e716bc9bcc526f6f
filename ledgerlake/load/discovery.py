"""Find a feed's files under a path or an S3 prefix, fingerprint them and pick those in the business-date range."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ledgerlake import objectstore
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


class Candidate:
    """A file of the feed, on local disk or in object storage, not yet read."""

    def __init__(self, path: str, name: str, local: Path | None = None, obj: objectstore.S3Object | None = None):
        self.path = path        # what Spark reads: an absolute local path or an s3a:// URI
        self.name = name
        self._local = local
        self._obj = obj

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes: enough for the business date (a ranged GET on S3)."""
        if self._obj is not None:
            return objectstore.read_head(self._obj, size)
        assert self._local is not None
        with self._local.open("rb") as fh:
            return fh.read(size)

    def fingerprint(self, head_size: int) -> tuple[str, bytes, int]:
        """SHA-256, first ``head_size`` bytes and size, streamed: never the whole file in memory."""
        if self._obj is not None:
            return objectstore.fingerprint(self._obj, head_size)
        assert self._local is not None
        digest = hashlib.sha256()
        head = b""
        size = 0
        with self._local.open("rb") as fh:
            while chunk := fh.read(4 << 20):
                if not head:
                    head = chunk[:head_size]
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), head, size


def candidates(spec: SourceSpec, input_path: str) -> list[Candidate]:
    """The feed's files under a directory (recursively), a single file, or an S3 prefix, in path order."""
    if objectstore.is_s3(input_path):
        return [Candidate(obj.uri, obj.name, obj=obj) for obj in objectstore.list_objects(input_path)
                if spec.file_pattern.match(obj.name)]
    root = Path(input_path).expanduser()
    if not root.exists():
        raise InputError(f"input path does not exist: {input_path}")
    if root.is_file():
        paths = [root] if spec.file_pattern.match(root.name) else []
    else:
        paths = sorted(Path(dirpath) / name for dirpath, _, names in os.walk(root) for name in names
                       if spec.file_pattern.match(name))
    return [Candidate(str(p.resolve()), p.name, local=p) for p in paths]


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
    listed = candidates(spec, input_path)
    if not listed:
        raise InputError(f"no {spec.name} files ({spec.describe_files}) under {input_path}")

    found: list[BatchFile] = []
    out_of_range = 0
    undated: list[str] = []
    head_bytes = max(spec.probe_bytes, 64)
    for file in listed:
        try:
            if months.bounded or day is not None:
                file_day = spec.business_date(file.name, file.head(head_bytes))
                if file_day is None:
                    undated.append(file.name)
                    continue
                if not months.contains(file_day) or (day is not None and file_day != day):
                    out_of_range += 1
                    continue
            sha, head, size = file.fingerprint(head_bytes)
        except OSError as exc:
            raise InputError(f"cannot read {file.path}: {exc.strerror or exc}") from exc
        file_day = spec.business_date(file.name, head)
        found.append(BatchFile(file.path, file.name, size, sha, file_day, spec.order_key(file.name, head)))

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
