"""Landing zones and the lake on S3, served by moto's server on loopback: the contract samples load from an S3
prefix into a lake on S3 as they do from disk, events stream from an S3 landing prefix, statements and SQL read
the S3 lake, two processes commit to one table at once without losing a commit, and unusable buckets,
credentials or endpoints give one line and write nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerlake import objectstore
from ledgerlake.lake import Lake, _registered, open_lake
from tests.helpers import free_port, table_snapshot
from tests.s3_server import start_moto
from tests.test_samples import holds_expected
from tests.test_stream import matches_expected_events
from warehouse.tables import ALL_TABLES

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
VOLATILE = ("load_id", "ingested_at", "processed_at", "quarantined_at")
TABLES = ("silver.transactions", "ops.quarantine", "ops.load_ledger", "ops.dq_results")


@pytest.fixture(scope="module")
def s3(spark, tmp_path_factory) -> Iterator:
    """A moto S3 server with buckets ``landing`` (the contract samples under ``samples/``) and ``lake``;
    the test process's AWS configuration points at it."""
    server = start_moto(tmp_path_factory.mktemp("moto"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", server.endpoint)
        objectstore.configure(spark)
        client = objectstore.client()
        for bucket in ("landing", "lake"):
            client.create_bucket(Bucket=bucket)
        yield server
        # The session catalog's names point at the last lake on S3, which goes with the server: unregister them
        # (the data stays) while it still answers, so the module after this one opens its lakes as usual.
        for name in ALL_TABLES:
            spark.sql(f"DROP TABLE IF EXISTS {name}")
        _registered(spark).clear()
    server.stop()


@pytest.fixture(scope="module")
def landed(s3, samples) -> str:
    """The contract samples uploaded to s3://landing/samples/<feed>/..."""
    client = objectstore.client()
    for path in samples.rglob("*"):
        if path.is_file() and path.parent != samples:
            client.upload_file(str(path), "landing", f"samples/{path.relative_to(samples).as_posix()}")
    return "s3://landing/samples"


def s3_lake(spark, empty_lake: Path, name: str) -> Lake:  # noqa: ANN001
    """An empty lake at s3://lake/<name>: the run's template lake uploaded there."""
    client = objectstore.client()
    for path in empty_lake.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), "lake", f"{name}/{path.relative_to(empty_lake).as_posix()}")
    return open_lake(spark, f"s3a://lake/{name}")


@pytest.fixture(scope="module")
def loaded(spark, empty_lake, landed, samples) -> dict:
    """``loaded(feed)``: the lake s3://lake/<feed> after one backfill of the feed's samples from S3, and that run."""
    from ledgerlake import cli

    done: dict[str, tuple] = {}

    def load(source: str) -> tuple:
        if source not in done:
            lake = s3_lake(spark, empty_lake, source)
            code = cli.main(["backfill", "--source", source, "--input", f"{landed}/{source}",
                             "--warehouse", f"s3://lake/{source}"])
            done[source] = (lake, code)
        return done[source]

    return load


@pytest.mark.slow
@pytest.mark.parametrize("source", ["core_banking", "cards"])
def test_samples_on_s3_load_into_a_lake_on_s3_as_expected_and_a_rerun_changes_nothing(
        source, loaded, landed, samples, ledgerlake_cli):
    lake, code = loaded(source)
    assert code == 1                                   # the samples hold files the contract rejects
    holds_expected(lake, json.loads((samples / f"expected_{source}.json").read_text()))
    paths = {r["source_path"] for r in lake.read("ops.load_ledger").collect()}
    assert paths and all(p.startswith(f"s3a://landing/samples/{source}/") for p in paths)
    assert lake.spark.read.format("delta").load(f"s3a://lake/{source}/silver/transactions").count() > 0

    if source != "core_banking":
        return                                         # a rerun from S3 once is enough (test_samples: both)
    before = {t: table_snapshot(lake, t, VOLATILE) for t in TABLES}
    # the credentials are nowhere in the lake: not in a table, a report or a Spark setting
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    client = objectstore.client()
    reports = [client.get_object(Bucket="lake", Key=o["Key"])["Body"].read().decode("utf-8", "replace")
               for o in client.list_objects_v2(Bucket="lake", Prefix=f"{source}/reports/")["Contents"]]
    assert reports and secret not in json.dumps(before) + "".join(reports)
    assert secret not in json.dumps(dict(lake.spark.conf.getAll)) + lake.spark.sparkContext.getConf().toDebugString()
    versions = {t: lake.delta(t).history(1).first()["version"] for t in TABLES}
    again = ledgerlake_cli("backfill", "--source", source, "--input", f"{landed}/{source}",
                           "--warehouse", f"s3://lake/{source}")
    assert again.returncode == 1 and "0 loaded" in again.stdout, again.stderr[-2000:]
    assert {t: table_snapshot(lake, t, VOLATILE) for t in TABLES} == before
    assert {t: lake.delta(t).history(1).first()["version"] for t in TABLES} == versions


@pytest.mark.slow
def test_statement_and_sql_read_the_lake_on_s3(loaded, samples, ledgerlake_cli):
    lake, _ = loaded("core_banking")
    expected = json.loads((samples / "expected_core_banking.json").read_text())
    account = sorted(r["account_id"] for r in expected["rows"].values())[0]
    mine = sorted((r["posting_date"], txn) for txn, r in expected["rows"].items() if r["account_id"] == account)

    statement = ledgerlake_cli("statement", "--account", account, "--from", "2024-01-01", "--to", "2024-12-31",
                               "--format", "csv", "--warehouse", lake.root)
    assert statement.returncode == 0, statement.stderr[-2000:]
    assert sorted(line.split(",")[0] for line in statement.stdout.splitlines()[1:]) == sorted(t for _, t in mine)

    count = ledgerlake_cli("sql", "SELECT count(*) AS n FROM silver.transactions", "--format", "csv",
                           "--warehouse", "s3://lake/core_banking")
    assert count.returncode == 0, count.stderr[-2000:]
    assert count.stdout.splitlines() == ["n", str(expected["silver_count"])]


@pytest.mark.slow
def test_events_stream_from_an_s3_landing_prefix_into_the_lake_on_s3(spark, empty_lake, landed, samples,
                                                                      ledgerlake_cli):
    lake = s3_lake(spark, empty_lake, "events")
    run = ledgerlake_cli("stream", "--input", f"{landed}/events", "--available-now", "--warehouse", "s3://lake/events",
                         "--today", "2026-11-26")
    assert run.returncode == 0, run.stderr[-3000:]
    matches_expected_events(lake, samples)
    checkpoint = objectstore.client().list_objects_v2(Bucket="lake", Prefix="events/_checkpoints/", MaxKeys=1)
    assert checkpoint.get("KeyCount", 0) == 1          # the stream's checkpoint lives in the lake on S3


def test_a_commit_file_is_created_once_whoever_races_for_it(spark, s3):
    from py4j.protocol import Py4JJavaError

    jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()  # noqa: SLF001 - Delta's LogStore API is Java only
    store = jvm.ledgerlake.spark.S3ConditionalLogStore(conf)
    commit = jvm.org.apache.hadoop.fs.Path("s3a://lake/exclusive/_delta_log/00000000000000000000.json")
    store.write(commit, jvm.java.util.List.of("first").iterator(), False, conf)
    refused_before = s3.refused_puts()
    with pytest.raises(Py4JJavaError) as refused:
        store.write(commit, jvm.java.util.List.of("second").iterator(), False, conf)
    assert refused.value.java_exception.getClass().getName() == "java.nio.file.FileAlreadyExistsException"
    # S3 itself refused the second PUT (If-None-Match: *), atomically: no check-then-write on the client side
    assert s3.refused_puts() == refused_before + 1
    body = objectstore.client().get_object(Bucket="lake", Key="exclusive/_delta_log/00000000000000000000.json")
    assert body["Body"].read() == b"first\n"


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ledgerlake.config import LakeConfig
    from ledgerlake.session import build_session
    table, name, commits, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    spark = build_session(LakeConfig(warehouse="s3a://lake/x", master="local[1]", object_store=True,
                                     spark_conf={"spark.sql.shuffle.partitions": "1"}), "writer-" + name)
    def append(path, i):
        spark.createDataFrame([(name, i)], "writer STRING, n INT").write.format("delta").mode("append").save(path)
    append(table + "-warm-up-" + name, 0)                 # a warm JVM: its commits come as fast as the other's
    Path(f"{start}.{name}").touch()
    while not start.exists():
        time.sleep(0.05)
    for i in range(commits):
        append(table, i)
""")


@pytest.mark.slow
def test_two_processes_appending_to_one_table_on_s3_at_once_lose_no_commit(spark, s3, tmp_path):
    table, commits = "s3a://lake/race/t", 8
    spark.createDataFrame([("seed", 0)], "writer STRING, n INT").write.format("delta").save(table)
    start = tmp_path / "go"
    other = subprocess.Popen([sys.executable, "-c", WRITER, table, "other", str(commits), str(start)],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while not Path(f"{start}.other").exists():
        assert other.poll() is None and time.monotonic() < deadline, other.communicate()[0][-3000:]
        time.sleep(0.1)
    refused_before = s3.refused_puts()
    start.touch()
    mine = 0
    while mine < commits or other.poll() is None:        # this process commits for as long as the other does
        spark.createDataFrame([("tests", mine)], "writer STRING, n INT").write.format("delta").mode("append") \
            .save(table)
        mine += 1
    output, _ = other.communicate(timeout=300)
    assert other.returncode == 0, output[-3000:]

    rows = spark.read.format("delta").load(table).groupBy("writer").count().collect()
    assert {r["writer"]: r["count"] for r in rows} == {"seed": 1, "tests": mine, "other": commits}
    history = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").collect()
    assert sorted(r["version"] for r in history) == list(range(mine + commits + 1))
    # commits that lost a race for a version were refused by S3 and made again on the next (each one a
    # 412 in the server's log); how many races there were depends on timing, so it is only reported
    print(f"{mine + commits} commits of two processes, {s3.refused_puts() - refused_before} refused by S3 and retried")


def _one_line(run, command: str) -> str:  # noqa: ANN001
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ledgerlake {command}: error: "), run.stderr
    return lines[0]


def test_a_missing_bucket_or_a_down_endpoint_is_one_line_and_writes_nothing(s3, landed, ledgerlake_cli,
                                                                              monkeypatch):
    before = objectstore.client().list_objects_v2(Bucket="lake").get("KeyCount", 0)
    run = ledgerlake_cli("backfill", "--source", "cards", "--input", "s3://no-such-bucket/cards",
                         "--warehouse", "s3://lake/never")
    assert run.returncode == 2
    assert "bucket does not exist: s3://no-such-bucket/cards" in _one_line(run, "backfill")
    run = ledgerlake_cli("backfill", "--source", "cards", "--input", f"{landed}/cards",
                         "--warehouse", "s3://no-such-bucket/lake")
    assert run.returncode == 2 and "bucket does not exist: s3a://no-such-bucket/lake" in _one_line(run, "backfill")
    run = ledgerlake_cli("stream", "--input", "s3://no-such-bucket/events", "--available-now",
                         "--warehouse", "s3://lake/never")
    assert run.returncode == 2 and "bucket does not exist: s3://no-such-bucket/events" in _one_line(run, "stream")
    assert objectstore.client().list_objects_v2(Bucket="lake").get("KeyCount", 0) == before

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")     # nothing listens there
    run = ledgerlake_cli("backfill", "--source", "cards", "--input", f"{landed}/cards", "--warehouse", "s3://lake/x")
    assert run.returncode == 3
    line = _one_line(run, "backfill")
    assert "S3 endpoint unreachable for s3://landing/samples/cards" in line and "safe to retry" in line


def test_refused_credentials_and_a_denied_prefix_are_one_line_naming_the_uri_never_the_secret(
        tmp_path, ledgerlake_cli, monkeypatch):
    import boto3

    # a second server that checks credentials and IAM policies once its first four calls set it up
    server = start_moto(tmp_path, INITIAL_NO_AUTH_ACTION_COUNT="4")
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        admin = {"region_name": "us-east-1", "endpoint_url": server.endpoint}
        boto3.client("s3", **admin).create_bucket(Bucket="vault")
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="loader")
        iam.put_user_policy(UserName="loader", PolicyName="landing-only", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*",
                           "Resource": ["arn:aws:s3:::landing", "arn:aws:s3:::landing/*"]}]}))
        key = iam.create_access_key(UserName="loader")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        objectstore.client().create_bucket(Bucket="landing")

        denied = ledgerlake_cli("backfill", "--source", "cards", "--input", "s3://vault/cards",
                                "--warehouse", "s3://landing/lake")
        assert denied.returncode == 2 and "access denied to s3://vault/cards" in _one_line(denied, "backfill")

        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-of-this-key")
        refused = ledgerlake_cli("backfill", "--source", "cards", "--input", "s3://landing/cards",
                                 "--warehouse", "s3://landing/lake")
        assert refused.returncode == 2
        line = _one_line(refused, "backfill")
        assert "refused the credentials for s3://landing/cards" in line
        for secret in (key["SecretAccessKey"], "not-the-secret-of-this-key"):
            assert secret not in refused.stderr + refused.stdout + denied.stderr + denied.stdout
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        assert objectstore.client().list_objects_v2(Bucket="landing").get("KeyCount", 0) == 0   # nothing written
    finally:
        server.stop()


def test_an_object_replaced_after_listing_is_not_read_as_the_listed_file(s3):
    from ledgerlake.load.discovery import candidates
    from transforms.legacy import get_source

    client = objectstore.client()
    client.put_object(Bucket="landing", Key="replaced/CARDS_20240301.csv", Body=b"listed version\n")
    (listed,) = candidates(get_source("cards"), "s3://landing/replaced/")
    client.put_object(Bucket="landing", Key="replaced/CARDS_20240301.csv", Body=b"another version\n")
    for read in (lambda: listed.head(8), lambda: listed.fingerprint(8)):
        with pytest.raises(objectstore.ObjectStoreError, match="CARDS_20240301.csv changed while it was being read"):
            read()
