"""How a backfill sizes itself: batches by Spark's memory, a daily load with the settings of a short job,
nothing read from a new lake's empty ledger."""

from __future__ import annotations

from datetime import date

from jobs.backfill import SMALL_LOAD_MB, sized_for
from ledgerlake.config import LakeConfig
from ledgerlake.load import backfill as loader
from ledgerlake.load.discovery import BatchFile, Discovery
from ledgerlake.session import QUICK_JVM_OPTIONS


def _found(*sizes: int) -> Discovery:
    files = [BatchFile(f"/in/f{i}", f"f{i}", size, f"{i:064d}", date(2024, 1, 1), (str(i),))
             for i, size in enumerate(sizes)]
    return Discovery(files, 0, [], [])


def test_a_daily_load_runs_as_a_short_job_and_conf_given_by_hand_wins():
    daily = sized_for(LakeConfig(spark_conf={"spark.sql.shuffle.partitions": "7"}), _found(400_000))
    assert daily.spark_conf["spark.driver.extraJavaOptions"] == QUICK_JVM_OPTIONS
    assert daily.spark_conf["spark.sql.adaptive.enabled"] == "false"
    assert daily.spark_conf["spark.databricks.delta.autoCompact.enabled"] == "false"   # the layout step compacts
    assert daily.spark_conf["spark.sql.shuffle.partitions"] == "7"
    history = LakeConfig()
    assert sized_for(history, _found(SMALL_LOAD_MB << 20, 1)) is history       # years of files: the defaults


def test_batches_are_sized_by_the_memory_spark_caches_in(spark):
    context = spark.sparkContext._jsc.sc()  # noqa: SLF001
    memory = sum(int(i.totalOnHeapStorageMemory()) for i in context.statusTracker().getExecutorInfos())
    expected = min(max(int(memory * loader.CACHE_SHARE), loader.MIN_BATCH_MB << 20), loader.MAX_BATCH_MB << 20)
    assert loader.memory_batch_bytes(spark) == expected
    assert loader.MIN_BATCH_MB << 20 <= expected <= loader.MAX_BATCH_MB << 20


def test_a_new_lakes_ledger_is_not_read(spark, tmp_path, new_lake, monkeypatch):
    from tests.helpers import backfill
    from tests.legacy_files import core_detail, core_file

    lake = new_lake(tmp_path / "lake")
    assert not lake.written("ops.load_ledger")
    monkeypatch.setattr(lake, "read", lambda name: (_ for _ in ()).throw(AssertionError(f"read {name}")))
    assert loader.known_files(lake, "core_banking", ["0" * 64]) == {}
    monkeypatch.undo()
    core_file(tmp_path / "in", [core_detail(txn_id=f"CB{i:018d}") for i in range(3)], "20240301")
    first = backfill(lake, "core_banking", tmp_path / "in")
    assert lake.written("ops.load_ledger")
    again = loader.known_files(lake, "core_banking", [first.files[0].sha256])
    assert [r["status"] for r in again.values()] == ["LOADED"]
