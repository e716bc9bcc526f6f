"""One Spark session for the whole run (local[2], UI off, few shuffle partitions), a lake per test."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledgerlake.session import QUICK_JVM_OPTIONS

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LEDGERLAKE_SHARED", REPO.parent / "shared"))
SAMPLES = SHARED / "contracts" / "samples"

# Test files that take longest (``make test`` prints the slowest tests), started first: with a file
# per worker at a time, a long file started last would run alone at the end. Others keep their order.
LONGEST_FIRST = ("test_airflow_daily", "test_stream_kill", "test_airflow_backfill", "test_cli", "test_stream",
                 "test_idempotency", "test_core_banking_rules", "test_events_rules", "test_serve_sql")


# JVMs the tests start as processes (spark-submit, the CLI, the stream, Airflow's tasks) live a minute or two:
# they run with the options of a short job (ledgerlake.session.QUICK_JVM_OPTIONS), a third less CPU than
# HotSpot's defaults, and CPU is what a test run on two cores waits for. The test processes' own sessions
# keep the defaults.
os.environ["SPARK_SUBMIT_OPTS"] = f"{os.environ.get('SPARK_SUBMIT_OPTS', '')} {QUICK_JVM_OPTIONS}".strip()
# Object storage in tests is a moto server on loopback (tests/test_object_store.py), never AWS: fixed test
# credentials, set before the test session's JVM starts (the s3a connector reads them from its environment),
# and an endpoint nothing listens on until a test points it at its server.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(_name, None)
os.environ.update({"AWS_ACCESS_KEY_ID": "ledgerlake-test", "AWS_SECRET_ACCESS_KEY": "ledgerlake-test-secret",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                   "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
# Python code some tests run inside Spark's tasks needs the project's interpreter, not the first python3 on PATH.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = Path(str(item.fspath)).stem
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)    # stable: the order within a file, and of the other files, stays


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    from ledgerlake.config import LakeConfig
    from ledgerlake.session import build_session

    catalog_dir = tmp_path_factory.mktemp("catalog")
    config = LakeConfig(
        warehouse=str(catalog_dir),
        master="local[2]",
        object_store=True,
        spark_conf={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.databricks.delta.snapshotPartitions": "2",
            "spark.ui.enabled": "false",
            "spark.sql.adaptive.enabled": "true",
            "spark.driver.memory": "2g",     # tiny data; leaves room for a third test process
            # a test's data is a few rows: generating and compiling code for each new query costs more
            # than interpreting it (jobs and the stream, started as processes, keep their own settings)
            "spark.sql.codegen.wholeStage": "false",
            "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        },
    )
    child_options = os.environ.pop("SPARK_SUBMIT_OPTS")
    try:
        session = build_session(config, "ledgerlake-tests")
    finally:
        os.environ["SPARK_SUBMIT_OPTS"] = child_options
    yield session
    session.stop()


@pytest.fixture(scope="session")
def empty_lake(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake whose tables were created once for the run (by the first test process that needs it):
    tests start from copies of it."""
    import fcntl

    from ledgerlake.lake import open_lake

    if "PYTEST_XDIST_WORKER" not in os.environ:
        root = tmp_path_factory.mktemp("template") / "lake"
        open_lake(spark, str(root), create=True)
        return root
    run_dir = tmp_path_factory.getbasetemp().parent          # this run's folder, shared by its workers
    root = run_dir / "template-lake"
    with (run_dir / "template-lake.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not root.exists():
            partial = run_dir / f"template-lake.{os.getpid()}"
            open_lake(spark, str(partial), create=True)
            partial.rename(root)
    return root


@pytest.fixture(scope="session")
def new_lake(spark, empty_lake: Path):
    """``new_lake(path)``: an empty lake at path, as ``open_lake`` creates it (a copy of the template)."""
    from ledgerlake.lake import open_lake

    def _new(path: Path | str):
        shutil.copytree(empty_lake, path)
        return open_lake(spark, str(path))

    return _new


@pytest.fixture
def lake(new_lake, tmp_path: Path):
    return new_lake(tmp_path / "lake")


@pytest.fixture
def two_tiers(lake):
    """A lake with ``tests.lake_rows.write_two_tiers``: statements across the serving window's start."""
    from tests.lake_rows import write_two_tiers

    write_two_tiers(lake)
    return lake


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory):
    """A throwaway Airflow installation for the module's DAG runs (``tests.airflow_home``)."""
    from tests.airflow_home import install_airflow

    return install_airflow(tmp_path_factory.mktemp("airflow"))


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SAMPLES.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"contract samples not found at {SAMPLES} (set LEDGERLAKE_SHARED)")
        pytest.skip(f"contract samples not found at {SAMPLES}")
    return SAMPLES


@dataclass
class CliRun:
    """What a ``ledgerlake`` command returned and printed."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def ledgerlake_cli(spark, capsys: pytest.CaptureFixture[str]):
    """``ledgerlake_cli(*args)``: run a ``ledgerlake`` command in this process, on the test session's Spark.

    For tests about what a command does and prints, not about the process: no JVM to start.
    Log lines stay out of the captured output (pytest holds the logging), so ``stderr`` holds
    what the command prints for the user. Settings a command applies to the session are undone.
    """
    from ledgerlake import cli

    def run(*args: str) -> CliRun:
        conf = dict(spark.conf.getAll)
        capsys.readouterr()
        try:
            code = cli.main(list(args))
        except SystemExit as exc:       # argparse errors
            code = exc.code if isinstance(exc.code, int) else 2
        finally:
            _restore_conf(spark, conf)
        out = capsys.readouterr()
        return CliRun(code, out.out, out.err)

    return run


def _restore_conf(spark, conf: dict[str, str]) -> None:  # noqa: ANN001
    for key, value in dict(spark.conf.getAll).items():
        if conf.get(key) == value:
            continue
        try:
            if key in conf:
                spark.conf.set(key, conf[key])
            else:
                spark.conf.unset(key)
        except Exception:  # noqa: BLE001 - static settings cannot change after start: nothing to undo
            pass
