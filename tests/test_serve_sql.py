"""`ledgerlake serve-sql` end to end: a real Thrift server process and the real beeline JDBC client."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from ledgerlake.extensions import spark_home
from ledgerlake.query.statement import SERVING, SILVER
from tests.helpers import free_port
from tests.lake_rows import txn, write_rows

BIN = Path(sys.executable).parent
RESULT = re.compile(r"^(?:null)*(-?\d+),(-?\d+\.\d+)\s*$")   # count,sum lines of beeline's csv2 output
COUNT_SUM = "SELECT count(*), sum(amount) FROM serving.transactions_recent;"


class Server:
    """A `ledgerlake serve-sql` child process and the lines it printed."""

    def __init__(self, warehouse: str, port: int, log_path: Path, *extra: str) -> None:
        self.port = port
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
               "LEDGERLAKE_DRIVER_MEMORY": "1g"}
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            [str(BIN / "ledgerlake"), "serve-sql", "--port", str(port), "--warehouse", warehouse,
             "--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=2", *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put(line)

    def wait_ready(self, timeout: float = 420) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if "jdbc:hive2:" in self.lines.get(timeout=1):     # the last line printed when ready
                    return
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
        raise AssertionError(f"serve-sql did not start: {''.join(self.stdout)}")


def beeline_command(port: int, script: Path, user: str = "tester", password: str | None = None) -> list[str]:
    login = ["-n", user, *(["-p", password] if password is not None else [])]
    return [str(spark_home() / "bin" / "beeline"), "-u", f"jdbc:hive2://127.0.0.1:{port}/default", *login,
            "--silent=true", "--outputformat=csv2", "--showHeader=false", "--force=true", "-f", str(script)]


def beeline(port: int, tmp_path: Path, *queries: str, user: str = "tester",
            password: str | None = None) -> subprocess.CompletedProcess:
    script = tmp_path / f"q{time.monotonic_ns()}.sql"
    script.write_text("\n".join(queries) + "\n")
    return subprocess.run(beeline_command(port, script, user, password), capture_output=True, text=True,
                          timeout=600, env={**os.environ, "SPARK_HOME": str(spark_home())})


def results(stdout: str) -> list[tuple[int, Decimal]]:
    return [(int(m[1]), Decimal(m[2])) for m in map(RESULT.match, stdout.splitlines()) if m]


@pytest.mark.parametrize("args,message", [
    (["--port", "0"], "--port must be 1-65535, got 0"),
    (["--port", "70000"], "--port must be 1-65535, got 70000"),
    (["--host", "203.0.113.250", "--password-file", __file__],
     "203.0.113.250:10000 is already in use (or not an address of this machine)"),
    (["--host", "0.0.0.0"], "--host 0.0.0.0 lets other machines connect: pass --password-file (users and hashed "
                            "passwords, see --hash-password)"),
    (["--password-file", "/nonexistent/passwords"], "--password-file /nonexistent/passwords is not a readable file"),
])
def test_bad_port_or_host_is_one_line_error(tmp_path, args, message):
    proc = subprocess.run([str(BIN / "ledgerlake"), "serve-sql", *args, "--warehouse", str(tmp_path / "lake")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"ledgerlake serve-sql: error: {message}"]
    assert not (tmp_path / "lake").exists()


def test_port_in_use_is_one_line_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([str(BIN / "ledgerlake"), "serve-sql", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"ledgerlake serve-sql: error: 127.0.0.1:{port} is already in use (or not an address of this machine)"]


@pytest.fixture(scope="module")
def served(spark, tmp_path_factory, new_lake):

    root = tmp_path_factory.mktemp("served")
    lake = new_lake(root / "lake")
    write_rows(lake, SILVER, [txn(f"S{i}", "000000000001", f"2023-0{1 + i % 9}-10 10:00:00", "-1.00")
                              for i in range(30)])
    write_rows(lake, SERVING, [txn(f"R{i}", "000000000002", "2024-06-10 10:00:00", "2.00") for i in range(10)])
    server = Server(lake.root, free_port(), root / "server.log")
    try:
        server.wait_ready()
        yield lake, server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        server.log.close()


@pytest.mark.slow
def test_tables_resolve_by_name_and_errors_go_to_the_client(served, tmp_path):
    lake, server = served
    assert f"jdbc:hive2://localhost:{server.port}/default" in "".join(server.stdout)

    proc = beeline(server.port, tmp_path,
                   "SELECT count(*), sum(amount) FROM silver.transactions;",
                   "SELECT no_such_column FROM silver.transactions;",
                   COUNT_SUM,
                   "SELECT count(*), 0.00 FROM ops.load_ledger;",
                   "SELECT count(*), 0.00 FROM ops.quarantine;")

    assert results(proc.stdout) == [(30, Decimal("-30.00")), (10, Decimal("20.00")), (0, Decimal("0.00")),
                                    (0, Decimal("0.00"))], proc.stderr[-2000:]
    # the failing query's error reached the client, and the queries after it were still answered
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "UNRESOLVED_COLUMN" in errors[0]


@pytest.mark.slow
def test_clients_may_query_but_never_change_the_lake(served, tmp_path):
    lake, server = served
    version = lake.version(SILVER)
    proc = beeline(server.port, tmp_path,
                   "DELETE FROM silver.transactions;",
                   "DROP TABLE serving.transactions_recent;",
                   "RESTORE TABLE silver.transactions TO VERSION AS OF 0;",
                   "SET spark.databricks.delta.retentionDurationCheck.enabled = false;",
                   "VACUUM silver.transactions RETAIN 0 HOURS;",
                   "SELECT * FROM text.`/etc/passwd`;",
                   "ADD JAR /tmp/anything.jar;",
                   "SELECT count(*), sum(amount) FROM silver.transactions;")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 7 and all("read-only lake:" in e for e in errors), proc.stderr[-3000:]
    assert "outside the lake" in errors[5] and "root:" not in proc.stdout      # not a line of the system file
    assert results(proc.stdout) == [(30, Decimal("-30.00"))]
    assert lake.version(SILVER) == version and lake.exists(SERVING)
    log = Path(server.log.name).read_text()
    assert "query by tester" in log and "DELETE FROM silver.transactions" in log


def test_hash_password_writes_a_line_the_server_can_check(ledgerlake_cli, monkeypatch):
    import base64
    import hashlib
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    proc = ledgerlake_cli("serve-sql", "--hash-password", "alice")
    assert proc.returncode == 0, proc.stderr
    user, stored = proc.stdout.strip().split(":", 1)
    scheme, iterations, salt, digest = stored.split("$")
    assert (user, scheme, int(iterations)) == ("alice", "pbkdf2_sha256", 600_000)
    assert hashlib.pbkdf2_hmac("sha256", b"s3cret", base64.b64decode(salt), int(iterations)) == base64.b64decode(digest)


@pytest.mark.slow
def test_a_password_file_admits_its_users_only(spark, new_lake, tmp_path):
    from ledgerlake.query.serve_sql import password_line

    lake = new_lake(tmp_path / "lake")
    passwords = tmp_path / "passwords"
    passwords.write_text(password_line("alice", "s3cret", iterations=1000) + "\n")
    server = Server(lake.root, free_port(), tmp_path / "server.log", "--password-file", str(passwords))
    try:
        server.wait_ready()
        ok = beeline(server.port, tmp_path, "SELECT count(*), 0.00 FROM ops.load_ledger;", user="alice",
                     password="s3cret")
        assert results(ok.stdout) == [(0, Decimal("0.00"))], ok.stderr[-2000:]
        for user, password in (("alice", "wrong"), ("mallory", "s3cret"), ("alice", None)):
            denied = beeline(server.port, tmp_path, "SELECT count(*), 0.00 FROM ops.load_ledger;", user=user,
                             password=password)
            assert results(denied.stdout) == [] and "Error" in denied.stderr, (user, denied.stdout)
    finally:
        server.proc.kill()
        server.proc.wait()
        server.log.close()


@pytest.mark.slow
def test_each_query_sees_the_latest_commit_while_batches_commit(served, tmp_path):
    lake, server = served
    base = results(beeline(server.port, tmp_path, COUNT_SUM).stdout)
    assert base == [(10, Decimal("20.00"))]

    batches = [[txn(f"B{b}-{i}", "000000000003", "2024-06-11 10:00:00", "1.00") for i in range(5)] for b in range(4)]
    states = [base[0]]
    for _ in batches:                                   # appends: count +5, sum +5.00 each
        states.append((states[-1][0] + 5, states[-1][1] + Decimal("5.00")))
    states.append((states[-1][0], states[-1][1] + Decimal("45.00")))   # MERGE: batch 0's amounts 1.00 -> 10.00

    def commit_batches() -> None:
        for rows in batches:
            write_rows(lake, SERVING, rows)
        update = lake.spark.createDataFrame([(f"B0-{i}",) for i in range(5)], "txn_id STRING")
        (lake.delta(SERVING).alias("t").merge(update.alias("s"), "t.txn_id = s.txn_id")
         .whenMatchedUpdate(set={"amount": "CAST(10.00 AS DECIMAL(18,2))"}).execute())

    script = tmp_path / "poll.sql"
    script.write_text("\n".join([COUNT_SUM] * 25) + "\n")
    client = subprocess.Popen(beeline_command(server.port, script), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "SPARK_HOME": str(spark_home())})
    observed: list[tuple[int, Decimal]] = []
    writer = threading.Thread(target=commit_batches)
    for line in client.stdout:
        observed += results(line)
        if observed and not writer.is_alive() and writer.ident is None:
            writer.start()                              # commit while the client keeps querying
    client.wait(timeout=600)
    writer.join(timeout=600)

    assert observed and all(state in states for state in observed), (observed, states)
    seen = [states.index(s) for s in observed]
    assert seen == sorted(seen)                         # never an older state after a newer one
    assert len(set(seen)) >= 2                          # the server answered while commits landed
    assert results(beeline(server.port, tmp_path, COUNT_SUM).stdout) == [states[-1]]


@pytest.mark.slow
def test_sigterm_stops_the_server_cleanly(served):
    _, server = served
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=120) == 0
    time.sleep(0.5)
    assert "ledgerlake serve-sql: stopped" in "".join(server.stdout)
