"""One Spark session for the whole run (local[2], UI off, few shuffle partitions), a lake per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LEDGERLAKE_SHARED", REPO.parent / "shared"))
SAMPLES = SHARED / "contracts" / "samples"


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    from ledgerlake.config import LakeConfig
    from ledgerlake.session import build_session

    catalog_dir = tmp_path_factory.mktemp("catalog")
    config = LakeConfig(
        warehouse=str(catalog_dir),
        master="local[2]",
        spark_conf={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.databricks.delta.snapshotPartitions": "2",
            "spark.ui.enabled": "false",
            "spark.sql.adaptive.enabled": "true",
        },
    )
    session = build_session(config, "ledgerlake-tests")
    yield session
    session.stop()


@pytest.fixture
def lake(spark, tmp_path: Path):
    from ledgerlake.lake import open_lake

    return open_lake(spark, str(tmp_path / "lake"))


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SAMPLES.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"contract samples not found at {SAMPLES} (set LEDGERLAKE_SHARED)")
        pytest.skip(f"contract samples not found at {SAMPLES}")
    return SAMPLES
