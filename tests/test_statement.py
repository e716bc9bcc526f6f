"""Statements: the right rows from the right tier, oldest first, totals, formats and bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ledgerlake.query.reader import StatementReader
from ledgerlake.query.statement import (
    COLUMNS,
    SERVING,
    SILVER,
    StatementError,
    check_account,
    plan_tiers,
    print_statement,
    read_statement,
)
from ledgerlake.serving import window_for
from tests.lake_rows import ACCOUNT, FIRST, LAST, MONTHS, TODAY, TWO_TIER_IDS, WINDOW

BIN = Path(sys.executable).parent


def serving_window_start(today: date, months: int) -> date:
    return window_for(today, months).first_day


def statement_rows(lake, account: str, start: date, end: date, window_start: date) -> list:  # noqa: ANN001
    return read_statement(StatementReader(lake.root).open(), account, start, end, window_start).rows


def test_serving_window_counts_back_calendar_months():
    assert serving_window_start(date(2024, 7, 15), 3) == date(2024, 5, 1)
    assert serving_window_start(date(2024, 7, 1), 1) == date(2024, 7, 1)
    assert serving_window_start(date(2024, 2, 29), 6) == date(2023, 9, 1)
    assert serving_window_start(date(2025, 1, 31), 13) == date(2024, 1, 1)


def test_tiers_split_at_the_window_start():
    split = plan_tiers(date(2024, 2, 10), date(2024, 7, 10), WINDOW)
    assert [(r.table, r.first_day, r.last_day) for r in split] == [
        (SILVER, date(2024, 2, 10), date(2024, 4, 30)), (SERVING, date(2024, 5, 1), date(2024, 7, 10))]
    assert [r.table for r in plan_tiers(date(2024, 5, 1), date(2024, 5, 1), WINDOW)] == [SERVING]
    assert [r.table for r in plan_tiers(date(2024, 4, 30), date(2024, 4, 30), WINDOW)] == [SILVER]
    assert [r.table for r in plan_tiers(date(2024, 6, 1), date(2024, 6, 2), WINDOW, serving_exists=False)] == [SILVER]


@pytest.mark.parametrize("account", ["12345678901", "1234567890123", "12345678901a", "", " 123456789012",
                                     "000123456789' OR '1'='1", "１２３４５６７８９０１２"])
def test_account_must_be_twelve_ascii_digits(account):
    with pytest.raises(StatementError, match="--account must be 12 digits"):
        check_account(account)


def _utc(value: object) -> object:
    """Times as naive UTC: the reader gives them with their zone, Spark's rows without."""
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) and value.tzinfo else value


def _rows(rows) -> list[tuple]:  # noqa: ANN001
    return [tuple(_utc(row[c]) for c in COLUMNS) for row in rows]


def test_statement_equals_the_rows_of_each_tier_across_the_boundary(two_tiers):
    lake = two_tiers
    got = _rows(statement_rows(lake, ACCOUNT, FIRST, LAST, WINDOW))

    silver = [r for r in _rows(lake.read(SILVER).collect())
              if r[2] == ACCOUNT and FIRST <= r[3] < WINDOW]
    serving = [r for r in _rows(lake.read(SERVING).collect())
               if r[2] == ACCOUNT and WINDOW <= r[3] <= LAST]
    assert got == sorted(silver + serving, key=lambda r: (r[4], r[0]))
    assert [r[0] for r in got] == TWO_TIER_IDS
    by_id = {r[0]: r for r in got}
    assert by_id["B-0615"][7] == Decimal("-6.50")      # the window's month came from serving
    assert by_id["B-0501"][10] == "first instant of the window"


def test_a_range_inside_one_tier_reads_only_that_tier(two_tiers):
    assert [r[0] for r in _rows(statement_rows(two_tiers, ACCOUNT, date(2024, 4, 1), date(2024, 4, 30), WINDOW))] \
        == ["S-0430"]
    assert [r[0] for r in _rows(statement_rows(two_tiers, ACCOUNT, date(2024, 5, 1), date(2024, 5, 31), WINDOW))] \
        == ["B-0501"]
    assert _rows(statement_rows(two_tiers, "000000000000", FIRST, LAST, WINDOW)) == []


def test_formats_csv_json_and_table_with_totals(two_tiers):
    out = io.StringIO()
    assert print_statement(StatementReader(two_tiers.root).open(), ACCOUNT, FIRST, LAST, WINDOW, "json", out) == 8
    objects = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [o["txn_id"] for o in objects][:2] == ["S-0210", "S-0315a"]
    assert objects[0]["amount"] == -2.0 and objects[0]["posted_at"].startswith("2024-02-10T00:00:00")
    assert objects[0]["account_id"] == ACCOUNT

    out = io.StringIO()
    print_statement(StatementReader(two_tiers.root).open(), ACCOUNT, FIRST, LAST, WINDOW, "csv", out)
    lines = out.getvalue().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 9
    assert lines[1].startswith("S-0210,core_banking,000123456789,2024-02-10,2024-02-10 00:00:00,")

    out = io.StringIO()
    print_statement(StatementReader(two_tiers.root).open(), ACCOUNT, FIRST, LAST, WINDOW, "table", out)
    text = out.getvalue()
    assert "Statement of account 000123456789, 2024-02-10 to 2024-07-10" in text
    assert "2024-02..2024-04 from silver.transactions; 2024-05..2024-07 from serving.transactions_recent" in text
    totals_table = text.split("currency | transactions")[1].splitlines()[2:]
    totals = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:]] for line in totals_table}
    # EUR: -2 -3 -4 -5.50 -6.50 -8 = -29.00; USD: +5 +100
    assert totals == {"EUR": ["6", "-29.00", "0.00", "-29.00"], "USD": ["2", "0.00", "105.00", "105.00"]}


@pytest.mark.parametrize("args,message", [
    (["--account", "12345", "--from", "2024-01-01", "--to", "2024-02-01"], "--account must be 12 digits, got '12345'"),
    (["--account", "00012345678x", "--from", "2024-01-01", "--to", "2024-02-01"], "--account must be 12 digits"),
    (["--account", ACCOUNT, "--from", "2024-02-30", "--to", "2024-03-01"],
     "--from must be a date YYYY-MM-DD, got '2024-02-30'"),
    (["--account", ACCOUNT, "--from", "2024-01-01", "--to", "01/02/2024"], "--to must be a date YYYY-MM-DD"),
    (["--account", ACCOUNT, "--from", "2024-05-01", "--to", "2024-04-30"], "--from 2024-05-01 is after --to 2024-04-30"),
])
def test_bad_input_is_one_line_error(tmp_path, args, message, ledgerlake_cli):
    proc = ledgerlake_cli("statement", *args, "--warehouse", str(tmp_path / "lake"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ledgerlake statement: error: ") and message in lines[0], \
        proc.stderr
    assert not (tmp_path / "lake").exists()


def test_a_statement_starts_no_jvm(two_tiers, tmp_path):
    """The command reads with delta-rs: it works where no Java can be found."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "SPARK_HOME")}
    env["PATH"] = str(tmp_path)                                     # no java on the path either
    proc = subprocess.run([str(BIN / "ledgerlake"), "statement", "--account", ACCOUNT, "--from", str(FIRST),
                           "--to", str(LAST), "--format", "csv", "--warehouse", two_tiers.root, "--today", str(TODAY),
                           "--serving-months", str(MONTHS)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [line.split(",")[0] for line in proc.stdout.splitlines()[1:]] == TWO_TIER_IDS


@pytest.mark.slow
def test_statement_cli_end_to_end(two_tiers, tmp_path, ledgerlake_cli):
    env_args = ["--today", TODAY.isoformat(), "--serving-months", str(MONTHS), "--conf", "spark.sql.shuffle.partitions=1"]
    proc = ledgerlake_cli("statement", "--account", ACCOUNT, "--from", FIRST.isoformat(), "--to", LAST.isoformat(),
                          "--format", "csv", "--warehouse", two_tiers.root, *env_args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids = [line.split(",")[0] for line in proc.stdout.splitlines()[1:]]
    assert ids == TWO_TIER_IDS

    missing = ledgerlake_cli("statement", "--account", ACCOUNT, "--from", "2024-01-01", "--to", "2024-02-01",
                             "--warehouse", str(tmp_path / "nowhere"), *env_args)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("ledgerlake statement: error: no lake at ")
    assert not (tmp_path / "nowhere" / "silver").exists()
