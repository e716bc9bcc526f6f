"""One account's transactions read straight from the Delta tables with delta-rs: no JVM on the request path.

``deltalake`` (delta-rs) reads the tables' logs and honours deletion vectors: a ``TierSnapshot``
is one table at one version, with its data files (posting month, ``account_id`` range from the
file statistics, row count) and the rows the deletion vectors drop. A lookup keeps only the
files of the asked months whose account range holds the account, then reads them one of two
ways, both on the snapshot:

* from ``FileCache``: data files are immutable, so a file decoded once (sorted by account, its
  row positions kept) answers every later lookup with a binary search and a slice, whatever
  commits come after; the snapshot's deletion vectors are applied to the slice;
* otherwise through delta-rs's own scan (DataFusion: partition pruning on the month, file and
  page statistics on ``account_id``, deletion vectors applied), and the month's files are queued
  for the cache.

A month is read one way or the other, never both, so no row is read twice.
``StatementReader`` keeps the newest snapshot of each tier, advanced by ``refresh`` (the
statement service calls it on a timer; ``ledgerlake statement`` reads once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from ledgerlake import objectstore
from ledgerlake.serving import month_of
from warehouse.tables import ALL_TABLES, SERVING_TRANSACTIONS, SILVER_TRANSACTIONS

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from deltalake import DeltaTable

log = logging.getLogger(__name__)

SILVER = SILVER_TRANSACTIONS.name
SERVING = SERVING_TRANSACTIONS.name
TIERS = (SILVER, SERVING)
# The lake contract's columns, in contract order: what a statement returns.
COLUMNS = ["txn_id", "source_system", "account_id", "posting_date", "posted_at", "value_date", "txn_code",
           "amount", "currency", "channel", "description", "balance_after", "reversal_of"]
# Few distinct values: decoded as dictionaries, which keeps cached files small.
_DICTIONARY_COLUMNS = ["source_system", "txn_code", "currency", "channel"]


class LakeNotFound(ValueError):
    """The warehouse holds no silver.transactions table."""


def table_uri(warehouse: str, table: str) -> str:
    """Where a table lives under the lake's root (as ``Lake.path`` places it, without a Spark session)."""
    return warehouse.rstrip("/") + "/" + ALL_TABLES[table].relative_path


def storage_options(warehouse: str) -> dict[str, str]:
    """delta-rs's settings for the lake's store: none on disk, the AWS configuration of this process on S3."""
    return objectstore.delta_rs_options() if objectstore.is_s3(warehouse) else {}


def _target_schema() -> pa.Schema:
    import pyarrow as pa

    money = pa.decimal128(18, 2)
    types = {"posting_date": pa.date32(), "value_date": pa.date32(), "posted_at": pa.timestamp("us", tz="UTC"),
             "amount": money, "balance_after": money}
    return pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])


def conform(table: pa.Table) -> pa.Table:
    """The statement's columns with one set of types, whichever way they were read (Spark writes INT96 times)."""
    import pyarrow as pa

    schema = _target_schema()
    columns = []
    for target in schema:
        column = table.column(target.name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = column.cast(pa.timestamp("us")).cast(target.type)     # the lake's times are UTC
        columns.append(column.cast(target.type))
    return pa.Table.from_arrays(columns, schema=schema)


@dataclass(frozen=True)
class DataFile:
    """One data file of a snapshot: where it is, its month, and the accounts its statistics say it holds."""

    uri: str
    month: str
    rows: int
    size: int
    first_account: str | None      # None: no statistics, the file may hold any account
    last_account: str | None

    def may_hold(self, account: str) -> bool:
        if self.first_account is None or self.last_account is None:
            return True
        return self.first_account <= account <= self.last_account


@dataclass(frozen=True)
class TierSnapshot:
    """One tier's table at one version: its files and the rows its deletion vectors remove."""

    table: str
    version: int
    delta: DeltaTable
    files: tuple[DataFile, ...]
    deleted: dict[str, np.ndarray]            # file URI -> keep mask by row position (files with a vector only)
    read_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def load(cls, table: str, uri: str, options: dict[str, str], version: int | None = None) -> TierSnapshot:
        import numpy as np
        import pyarrow as pa
        from deltalake import DeltaTable

        delta = DeltaTable(uri, version=version, storage_options=options or None)
        adds = pa.table(delta.get_add_actions(flatten=True))
        root = delta.table_uri.rstrip("/") + "/"
        names = set(adds.column_names)

        def column(name: str) -> list:
            return adds.column(name).to_pylist() if name in names else [None] * adds.num_rows

        files = tuple(sorted(
            (DataFile(_absolute(root, path), month or "", rows or 0, size or 0, first, last)
             for path, month, rows, size, first, last in zip(
                column("path"), column("partition.posting_month"), column("num_records"), column("size_bytes"),
                column("min.account_id"), column("max.account_id"), strict=True)),
            key=lambda f: (f.month, f.uri)))
        deleted = {}
        for batch in delta.deletion_vectors():
            vectors = pa.record_batch(batch)
            for path, keep in zip(vectors.column("filepath").to_pylist(),
                                  vectors.column("selection_vector").to_pylist(), strict=True):
                deleted[_absolute(root, path)] = np.asarray(keep, dtype=bool)
        return cls(table, delta.version(), delta, files, deleted)

    def candidates(self, account: str, first_month: str, last_month: str) -> list[DataFile]:
        """The files that may hold the account's rows of these months (partition values, then statistics)."""
        return [f for f in self.files if first_month <= f.month <= last_month and f.may_hold(account)]

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "files": len(self.files), "read_at": self.read_at.isoformat()}


def _absolute(root: str, path: str) -> str:
    """A file's URI: add actions give paths relative to the table, deletion vectors full URIs."""
    from urllib.parse import unquote

    if "://" in path:
        return unquote(path)
    return root + unquote(path)


@dataclass(frozen=True)
class DecodedFile:
    """A data file decoded once: rows sorted by account, with their row positions in the file."""

    rows: pa.Table
    accounts: np.ndarray
    positions: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.accounts.nbytes + self.positions.nbytes)

    def slice_of(self, account: str, keep: np.ndarray | None) -> pa.Table:
        """The account's rows, minus those the snapshot's deletion vector removes."""
        import numpy as np

        lo = int(np.searchsorted(self.accounts, account, "left"))
        hi = int(np.searchsorted(self.accounts, account, "right"))
        part = self.rows.slice(lo, hi - lo)
        if keep is None or hi == lo:
            return part
        positions = self.positions[lo:hi]
        inside = positions < len(keep)            # a vector may stop before the file's last rows: those are kept
        mask = ~inside | keep[np.minimum(positions, len(keep) - 1)]
        return part.filter(mask)


def decode(file: DataFile) -> DecodedFile:
    """Read a whole data file and sort it by account (the file's own order for rows of one account)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if objectstore.is_s3(file.uri):
        source: Any = pa.BufferReader(objectstore.read_object(file.uri))
    else:
        source = file.uri.removeprefix("file://")
    table = pq.read_table(source, columns=COLUMNS, read_dictionary=_DICTIONARY_COLUMNS)
    positions = np.arange(table.num_rows, dtype=np.int64)
    order = pc.sort_indices(table, sort_keys=[("account_id", "ascending")])
    table = table.take(order)
    positions = positions[order.to_numpy()]
    accounts = table.column("account_id").to_numpy(zero_copy_only=False).astype(str)
    return DecodedFile(table, accounts, positions)


class FileCache:
    """Decoded data files within a byte budget, least recently used out first, filled by a background thread.

    Files never change once written, so an entry is never stale: a commit only changes which files a
    snapshot lists (``retain`` drops the ones no snapshot lists any more) and their deletion vectors,
    which the snapshot carries.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self._entries: OrderedDict[str, DecodedFile] = OrderedDict()
        self._size = 0
        self._queue: OrderedDict[str, DataFile] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self.loads = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.budget > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._fill, name="statement-file-cache", daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify_all()

    def get(self, uri: str) -> DecodedFile | None:
        with self._lock:
            entry = self._entries.get(uri)
            if entry is not None:
                self._entries.move_to_end(uri)
            return entry

    def want(self, files: Iterable[DataFile]) -> None:
        """Queue files for decoding (the most recently asked first)."""
        if self.budget <= 0:
            return
        with self._lock:
            for f in files:
                if f.uri not in self._entries and f.size <= self.budget:
                    self._queue[f.uri] = f
                    self._queue.move_to_end(f.uri, last=False)
            self._wake.notify()

    def retain(self, live: set[str]) -> None:
        """Forget files no snapshot lists any more (rewritten by OPTIMIZE, rolled off, vacuumed)."""
        with self._lock:
            for uri in [u for u in self._entries if u not in live]:
                self._size -= self._entries.pop(uri).nbytes
            for uri in [u for u in self._queue if u not in live]:
                del self._queue[uri]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"files": len(self._entries), "bytes": self._size, "budget_bytes": self.budget,
                    "queued": len(self._queue), "decoded": self.loads}

    def _fill(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                uri, file = self._queue.popitem(last=False)
            try:
                decoded = decode(file)
            except Exception as exc:  # noqa: BLE001 - a file that cannot be cached is read by the scan instead
                log.warning("could not cache %s: %s", file.uri, exc)
                continue
            with self._lock:
                if decoded.nbytes > self.budget or uri in self._entries:
                    continue
                while self._size + decoded.nbytes > self.budget and self._entries:
                    self._size -= self._entries.popitem(last=False)[1].nbytes
                self._entries[uri] = decoded
                self._size += decoded.nbytes
                self.loads += 1


@dataclass(frozen=True)
class TierRead:
    """One tier and the posting dates a statement reads from it."""

    table: str
    first_day: date
    last_day: date

    def describe(self) -> str:
        return f"{self.first_day:%Y-%m}..{self.last_day:%Y-%m} from {self.table}"


def plan_tiers(start: date, end: date, window_start: date, serving_exists: bool = True) -> list[TierRead]:
    """Split [start, end] into the part before the serving window (silver) and the part inside it (serving)."""
    from datetime import timedelta

    if not serving_exists:
        return [TierRead(SILVER, start, end)]
    reads = []
    if start < window_start:
        reads.append(TierRead(SILVER, start, min(end, window_start - timedelta(days=1))))
    if end >= window_start:
        reads.append(TierRead(SERVING, max(start, window_start), end))
    return reads


@dataclass(frozen=True)
class Lookup:
    """An account's rows in a date range, and the snapshots they were read from."""

    transactions: pa.Table
    reads: list[TierRead]
    versions: dict[str, int]


class StatementReader:
    """The newest snapshot of each tier, and account lookups on them (thread-safe)."""

    def __init__(self, warehouse: str, cache_bytes: int = 0) -> None:
        self.warehouse = warehouse
        self.options = storage_options(warehouse)
        self.cache = FileCache(cache_bytes)
        self._snapshots: dict[str, TierSnapshot] = {}
        self._watchers: dict[str, DeltaTable] = {}
        self._refresh_lock = threading.Lock()
        self._warm_months = 0

    def open(self) -> StatementReader:
        """Read the tiers' current versions; LakeNotFound when there is no silver table."""
        from deltalake import DeltaTable

        if not DeltaTable.is_deltatable(table_uri(self.warehouse, SILVER), self.options or None):
            raise LakeNotFound(f"no lake at {self.warehouse} (no {SILVER} table there)")
        self.refresh()
        return self

    def snapshots(self) -> dict[str, TierSnapshot]:
        """The current snapshot of each tier (a statement reads all of its months from these)."""
        return dict(self._snapshots)

    def refresh(self) -> list[str]:
        """Advance every tier to its newest commit; returns the tiers that moved."""
        from deltalake import DeltaTable

        moved = []
        with self._refresh_lock:
            for table in TIERS:
                uri = table_uri(self.warehouse, table)
                watcher = self._watchers.get(table)
                if watcher is None:
                    if not DeltaTable.is_deltatable(uri, self.options or None):
                        continue
                    watcher = self._watchers[table] = DeltaTable(uri, storage_options=self.options or None)
                else:
                    watcher.update_incremental()
                current = self._snapshots.get(table)
                if current is None or watcher.version() != current.version:
                    snapshot = TierSnapshot.load(table, uri, self.options, watcher.version())
                    self._snapshots = {**self._snapshots, table: snapshot}
                    moved.append(table)
            if moved:
                self.cache.retain({f.uri for s in self._snapshots.values() for f in s.files})
        if moved and self._warm_months:
            self.warm(self._warm_months)             # the new commits' files, decoded before they are asked for
        return moved

    def warm(self, months: int) -> None:
        """Queue the serving tier's files and silver's newest ``months`` months for the cache (and, from now on,
        the files new commits add to those months)."""
        self._warm_months = months
        snapshots = self.snapshots()
        wanted: list[DataFile] = []
        for table in (SERVING, SILVER):
            snapshot = snapshots.get(table)
            if snapshot is None:
                continue
            recent = sorted({f.month for f in snapshot.files}, reverse=True)[:months]
            wanted += [f for f in snapshot.files if f.month in recent]
        self.cache.want(reversed(wanted))

    def lookup(self, account: str, start: date, end: date, window_start: date,
               cached_only: bool = False) -> Lookup | None:
        """The account's rows in [start, end] (unordered), each month from the tier that holds it.

        ``cached_only``: None instead of reading any file that is not in the cache (an event loop
        answers from memory and leaves the reads to a worker thread).
        """
        import pyarrow as pa

        snapshots = self.snapshots()
        reads = plan_tiers(start, end, window_start, serving_exists=SERVING in snapshots)
        parts = []
        for read in reads:
            part = self._read_tier(snapshots[read.table], account, read.first_day, read.last_day, cached_only)
            if part is None:
                return None
            parts.append(part)
        rows = pa.concat_tables(parts) if parts else _target_schema().empty_table()
        return Lookup(rows, reads, {read.table: snapshots[read.table].version for read in reads})

    def _read_tier(self, snapshot: TierSnapshot, account: str, first_day: date, last_day: date,
                   cached_only: bool) -> pa.Table | None:
        import pyarrow as pa
        import pyarrow.compute as pc

        files = snapshot.candidates(account, month_of(first_day), month_of(last_day))
        by_month: dict[str, list[DataFile]] = {}
        for f in files:
            by_month.setdefault(f.month, []).append(f)
        parts, cold = [], []
        for month, month_files in by_month.items():
            decoded = [self.cache.get(f.uri) for f in month_files]
            if all(d is not None for d in decoded):
                parts += [d.slice_of(account, snapshot.deleted.get(f.uri))
                          for f, d in zip(month_files, decoded, strict=True) if d is not None]
            else:
                cold.append(month)
                self.cache.want(month_files)
        if cold and cached_only:
            return None
        if parts:
            parts = [conform(pa.concat_tables(parts, promote_options="permissive"))]
        if cold:
            parts.append(conform(_scan(snapshot, account, cold)))
        if not parts:
            return _target_schema().empty_table()
        table = pa.concat_tables(parts)
        dates = table.column("posting_date")
        return table.filter(pc.and_(pc.greater_equal(dates, pa.scalar(first_day)),
                                    pc.less_equal(dates, pa.scalar(last_day))))


def _scan(snapshot: TierSnapshot, account: str, months: list[str]) -> pa.Table:
    """delta-rs's scan of the account's rows in these months (the account is 12 checked digits, months YYYY-MM)."""
    import pyarrow as pa

    in_months = ", ".join(f"'{m}'" for m in sorted(months))
    predicate = f"account_id = '{account}' AND posting_month IN ({in_months})"
    return pa.table(snapshot.delta.scan(columns=COLUMNS, predicate=predicate).read_all())


def watch(reader: StatementReader, every: float, stop: threading.Event) -> threading.Thread:
    """Refresh the reader's snapshots every ``every`` seconds until ``stop`` is set (a daemon thread)."""

    def loop() -> None:
        while not stop.wait(every):
            started = time.monotonic()
            try:
                moved = reader.refresh()
            except Exception as exc:  # noqa: BLE001 - the last snapshots keep serving; the next tick tries again
                log.warning("could not read the newest commits: %s", exc)
                continue
            if moved:
                log.debug("advanced %s in %.0f ms", ", ".join(moved), (time.monotonic() - started) * 1000)

    thread = threading.Thread(target=loop, name="statement-snapshots", daemon=True)
    thread.start()
    return thread

