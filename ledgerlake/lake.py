"""The lake: table locations, creation, catalog registration and safe Delta commits."""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ledgerlake.console import BadInput
from warehouse.tables import ALL_TABLES, SILVER_TRANSACTIONS, TableDef

if TYPE_CHECKING:
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
T = TypeVar("T")

# Delta's optimistic-concurrency conflicts: retried with backoff, never swallowed.
_CONFLICT_MARKERS = (
    "ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException", "MetadataChangedException", "ProtocolChangedException",
    "DELTA_CONCURRENT", "FileAlreadyExistsException",
)


def is_conflict(exc: BaseException) -> bool:
    """True for Delta's retryable write-write conflicts."""
    text = f"{type(exc).__name__} {exc}"
    return any(marker in text for marker in _CONFLICT_MARKERS)


# Delta's idempotent-write settings: a write whose (app id, version) the table has already
# committed is skipped. DataFrame writes take them as options, MERGE from the session.
TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
TXN_VERSION = "spark.databricks.delta.write.txnVersion"


@contextmanager
def session_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Session settings for the statements inside, restored afterwards."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def idempotent_writes(spark: SparkSession, app_id: str, version: int) -> AbstractContextManager[None]:
    """Delta commits inside are skipped when the table already holds (app_id, version)."""
    return session_settings(spark, {TXN_APP_ID: app_id, TXN_VERSION: str(version)})


def with_conflict_retry(action: Callable[[], T], what: str, attempts: int = 6) -> T:
    """Run a Delta commit, retrying optimistic-concurrency conflicts with jittered backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == attempts or not is_conflict(exc):
                raise
            delay = min(8.0, 0.25 * 2 ** attempt) * (0.5 + random.random())
            log.warning("%s: concurrent commit, retry %d/%d in %.1fs", what, attempt, attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


class LakeNotFound(BadInput):
    """The path holds no lake: a wrong --warehouse, an unmounted volume, a sub-folder."""


class Lake:
    """Tables of one lake root, addressed by name or path from any process."""

    def __init__(self, spark: SparkSession, root: str) -> None:
        self.spark = spark
        self.root = root.rstrip("/")

    def path(self, table: str | TableDef) -> str:
        table_def = ALL_TABLES[table] if isinstance(table, str) else table
        return f"{self.root}/{table_def.relative_path}"

    def ensure(self, names: list[str] | None = None, register: bool = True) -> Lake:
        """Create missing tables and (unless told not to) register all of them by location in this
        session's catalog."""
        missing = [name for name in names or list(ALL_TABLES) if not self._has_log(name)]
        if missing:
            # A new lake: its tables' first commits are independent, a few seconds saved on a few cores.
            with ThreadPoolExecutor(max_workers=min(4, len(missing)), thread_name_prefix="ledgerlake-create") as pool:
                list(pool.map(lambda n: with_conflict_retry(lambda: self._create(ALL_TABLES[n]), f"create {n}"),
                              missing))
        if register:
            self.register()
        return self

    def _has_log(self, name: str, version: int = 0) -> bool:
        """True when the table's Delta log has the commit of ``version``, or a checkpoint once log clean-up
        removed that: two existence checks, no snapshot read."""
        log_dir = f"{self.path(name)}/_delta_log"
        fs, commit = hadoop_fs(self.spark, f"{log_dir}/{version:020d}.json")
        return bool(fs.exists(commit) or fs.exists(hadoop_fs(self.spark, f"{log_dir}/_last_checkpoint")[1]))

    def written(self, name: str) -> bool:
        """True when the table had a commit after the one that created it (it may hold rows)."""
        return self._has_log(name, version=1)

    def _create(self, table: TableDef) -> None:
        from delta.tables import DeltaTable

        builder = DeltaTable.createIfNotExists(self.spark).location(self.path(table))
        for col_name, col_type, nullable in table.columns:
            kwargs = {"generatedAlwaysAs": table.generated[col_name]} if col_name in table.generated else {}
            builder = builder.addColumn(col_name, col_type, nullable=nullable, **kwargs)
        if table.partitioned_by:
            builder = builder.partitionedBy(*table.partitioned_by)
        for key, value in table.properties.items():
            builder = builder.property(key, value)
        if table.comment:
            builder = builder.comment(table.comment)
        builder.execute()

    def register(self) -> None:
        """Point the session catalog's names at this lake's table locations."""
        known = _registered(self.spark)
        for table in ALL_TABLES.values():
            location = self.path(table)
            if known.get(table.name) == location or not self.exists(table.name):
                continue
            self.spark.sql(f"CREATE DATABASE IF NOT EXISTS {table.schema_name}")
            current = self._registered_location(table.name)
            if current is not None and current.rstrip("/").removeprefix("file:") == location.removeprefix("file:"):
                known[table.name] = location
                continue
            if current is not None:
                # Another lake was registered under this name earlier in the session: re-point it.
                # The table is external, so dropping the name leaves the data in place.
                self.spark.sql(f"DROP TABLE IF EXISTS {table.name}")
            self.spark.sql(f"CREATE TABLE IF NOT EXISTS {table.name} USING DELTA LOCATION '{location}'")
            known[table.name] = location

    def _registered_location(self, name: str) -> str | None:
        """Where the session catalog's name points ("" if that location no longer holds a table)."""
        from pyspark.errors import AnalysisException

        try:
            if not self.spark.catalog.tableExists(name):
                return None
            rows = self.spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
        except AnalysisException:
            return ""     # registered at a location that no longer holds the table (a deleted lake)
        for row in rows:
            if row[0] == "Location":
                return str(row[1])
        return None

    def exists(self, name: str) -> bool:
        return self._has_log(name)

    def require(self) -> Lake:
        """This lake, or ``LakeNotFound`` when its root holds none."""
        if not self.exists(SILVER_TRANSACTIONS.name):
            raise LakeNotFound(f"no lake at {self.root} ({SILVER_TRANSACTIONS.name} is not there): check "
                               "--warehouse or LEDGERLAKE_WAREHOUSE; only backfill and stream create a lake")
        return self

    def read(self, name: str) -> DataFrame:
        return self.spark.read.format("delta").load(self.path(name))

    def delta(self, name: str) -> DeltaTable:
        from delta.tables import DeltaTable

        return DeltaTable.forPath(self.spark, self.path(name))

    def version(self, name: str) -> int:
        """The table's latest commit version, from the Delta log (no data scan)."""
        return int(self.delta(name).history(1).first()["version"])

    def snapshot(self, name: str) -> Any:
        """The table's latest Delta snapshot (a JVM object: its file list and transaction ids are not in
        Delta's Python API)."""
        jvm = self.spark.sparkContext._jvm  # noqa: SLF001 - the way delta-spark itself reaches the JVM
        none = jvm.scala.Option.empty()
        return self.delta(name)._jdt.deltaLog().update(False, none, none)  # noqa: SLF001

    def pin(self, name: str, app_id: str) -> Pin:
        """The table's latest version and, in the same snapshot, the last version ``app_id`` committed."""
        snapshot = self.snapshot(name)
        committed = snapshot.transactions().get(app_id)
        return Pin(name, int(snapshot.version()), app_id, int(committed.get()) if committed.isDefined() else 0)

    def committed_since(self, name: str, version: int, marker: str) -> int | None:
        """The version of the commit after ``version`` that carries ``marker`` as its user metadata, if any."""
        from pyspark.sql import functions as F

        newer = self.version(name) - version
        if newer <= 0:
            return None
        found = self.delta(name).history(newer).where(F.col("userMetadata") == marker).select("version").first()
        return None if found is None else int(found["version"])


@dataclass(frozen=True)
class Pin:
    """A decision's snapshot of a table: its version, and the last version of a writer's sequence ``app_id``.

    A writer that decides on the pinned snapshot commits with Delta's transaction identifier
    (``app_id``, ``sequence + 1``): Delta refuses a second commit of that pair, so of two
    writers that decided on the same sequence number only the first commits, and the other
    must decide again on the newer snapshot.
    """

    table: str
    version: int
    app_id: str
    sequence: int


def _registered(spark: SparkSession) -> dict[str, str]:
    """Table name -> location this process registered in the session's catalog (skips re-checking it)."""
    if not hasattr(spark, "_ledgerlake_registered"):
        spark._ledgerlake_registered = {}  # type: ignore[attr-defined]
    return spark._ledgerlake_registered  # type: ignore[attr-defined]


def open_lake(spark: SparkSession, root: str, create: bool = False, register: bool = True) -> Lake:
    """The lake at root, its tables registered by name (and any table a newer version added, created).

    Only the loads pass ``create``: they make a new lake where none is, and say so on stderr.
    Every other command gets ``LakeNotFound`` (exit status 2) rather than an empty lake.
    ``register=False`` leaves the session catalog alone: a job that addresses every table by
    its path saves a log read per table.
    """
    lake = Lake(spark, root)
    if create and not lake.exists(SILVER_TRANSACTIONS.name):
        print(f"ledgerlake: no lake at {root}: creating a new one", file=sys.stderr, flush=True)
    else:
        lake.require()
    return lake.ensure(register=register)


def hadoop_fs(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    """Hadoop's FileSystem and Path for a URI: one API for local disks and object stores alike."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path  # noqa: SLF001
