"""The command-line contract end to end: ledgerlake backfill/sql/generate (spark-submit: tests/test_cluster.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.legacy_files import core_detail, core_file

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(args: list[str], warehouse: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEDGERLAKE_WAREHOUSE": str(warehouse), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "LEDGERLAKE_DRIVER_MEMORY": "1g"}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def ledgerlake(*args: str, warehouse: Path) -> subprocess.CompletedProcess:
    return run([str(BIN / "ledgerlake"), *args, "--conf", "spark.sql.shuffle.partitions=2",
                "--master", "local[2]"], warehouse)


@pytest.mark.parametrize("args,message", [
    (["--source", "core_banking", "--input", "/no/such/dir"], "input path does not exist: /no/such/dir"),
    (["--source", "mainframe_x", "--input", "."], "unknown source 'mainframe_x'"),
    (["--source", "core_banking", "--input", "{empty}"], "no core_banking files"),
    (["--source", "core_banking", "--input", "{data}", "--from", "2024-05", "--to", "2024-02"],
     "--from 2024-05 is after --to 2024-02"),
    (["--source", "core_banking", "--input", "{data}", "--from", "2024-13"], "--from must be a month YYYY-MM"),
    (["--source", "core_banking", "--input", "{unreadable}"], "cannot read"),
])
def test_bad_input_is_one_line_error_and_touches_nothing(tmp_path, args, message, ledgerlake_cli):
    (tmp_path / "empty").mkdir()
    core_file(tmp_path / "data", [core_detail()])
    (tmp_path / "unreadable").mkdir()
    (tmp_path / "unreadable" / "CORE_TXN_20240301_000001.dat").symlink_to(tmp_path / "gone.dat")
    args = [a.format(empty=tmp_path / "empty", data=tmp_path / "data", unreadable=tmp_path / "unreadable")
            for a in args]
    warehouse = tmp_path / "lake"

    proc = ledgerlake_cli("backfill", *args, "--warehouse", str(warehouse))

    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not warehouse.exists()


def test_help_lists_commands():
    proc = subprocess.run([str(BIN / "ledgerlake"), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "backfill" in proc.stdout and "sql" in proc.stdout and "generate" in proc.stdout
    proc = subprocess.run([str(BIN / "ledgerlake"), "backfill", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--from" in proc.stdout and "--warehouse" in proc.stdout


@pytest.mark.slow
def test_backfill_cli_end_to_end(tmp_path, ledgerlake_cli):
    data, warehouse = tmp_path / "data", tmp_path / "lake"
    gen = run([str(BIN / "ledgerlake"), "generate", "--source", "core_banking", "--out", str(data), "--days", "40",
                     "--start", "2024-01-20", "--records-per-day", "30", "--inject-errors",
                     "--file-errors", "CONTROL_TOTAL_MISMATCH", "--manifest", str(tmp_path / "manifest.json")],
              warehouse)
    assert gen.returncode == 0, gen.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())

    first = ledgerlake("backfill", "--source", "core_banking", "--input", str(data), warehouse=warehouse)
    assert first.returncode == 1, first.stderr       # the injected bad file is rejected, the rest load
    assert "1 rejected" in first.stdout and "CONTROL_TOTAL_MISMATCH" in first.stdout
    assert "files 41/41" in first.stderr              # progress on the terminal

    counts = ledgerlake_cli("sql", "SELECT status, count(*) AS n FROM ops.load_ledger GROUP BY status ORDER BY status",
                            "--format", "json", "--warehouse", str(warehouse))
    assert counts.returncode == 0, counts.stderr
    assert [json.loads(line) for line in counts.stdout.splitlines()] == [
        {"status": "LOADED", "n": 40}, {"status": "REJECTED", "n": 1}]
    rows = ledgerlake_cli("sql", "SELECT count(*) AS n FROM silver.transactions", "--format", "csv",
                          "--warehouse", str(warehouse))
    assert rows.stdout.splitlines() == ["n", str(manifest["summary"]["silver_rows"])]

    again = ledgerlake_cli("backfill", "--source", "core_banking", "--input", str(data), "--warehouse", str(warehouse))
    assert again.returncode == 1 and "0 loaded" in again.stdout and "41 skipped" in again.stdout
    rows_again = ledgerlake_cli("sql", "SELECT count(*) AS n FROM silver.transactions", "--format", "csv",
                                "--warehouse", str(warehouse))
    assert rows_again.stdout == rows.stdout

    bad_sql = ledgerlake_cli("sql", "SELECT nope FROM silver.transactions", "--warehouse", str(warehouse))
    assert bad_sql.returncode == 1
    assert bad_sql.stderr.strip().splitlines()[-1].startswith("ledgerlake sql: error: [UNRESOLVED_COLUMN")
