"""The statement service: the same statements as ``ledgerlake statement`` and the tables, across tiers, the
window's start, a stream micro-batch and a roll-off; deletion vectors; errors; keys and rate limits."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date

import pytest
from fastapi.testclient import TestClient

from ledgerlake.query.reader import SERVING, SILVER, StatementReader
from ledgerlake.query.service import MAX_STATEMENT_DAYS, ApiKeys, RateLimiter, ServiceSettings, create_app, key_line
from ledgerlake.serving import window_for
from ledgerlake.upkeep.rolloff import roll_off
from tests.event_files import apply, posted, txn
from tests.lake_rows import ACCOUNT, FIRST, LAST, MONTHS, TODAY, TWO_TIER_IDS, write_rows
from tests.lake_rows import txn as row

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Today:
    """The service's clock, moved by the test."""

    def __init__(self, day: date) -> None:
        self.day = day

    def __call__(self) -> date:
        return self.day


def wait_cached(reader: StatementReader, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while reader.cache.stats()["queued"] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)                          # the file being decoded when the queue emptied


def service(root: str, today: Today | date = TODAY, months: int = MONTHS, cached: bool = True,
            keys: ApiKeys | None = None, rate: float = 0) -> tuple[TestClient, StatementReader]:
    reader = StatementReader(root, cache_bytes=(256 << 20) if cached else 0).open()
    if cached:
        reader.cache.start()
        reader.warm(120)
        wait_cached(reader)
    clock = today if isinstance(today, Today) else Today(today)
    settings = ServiceSettings(reader, today=clock, window_start=lambda day: window_for(day, months).first_day,
                               keys=keys or ApiKeys(), limiter=RateLimiter(rate))
    return TestClient(create_app(settings), raise_server_exceptions=False), reader


def get_statement(client: TestClient, account: str, first: date | str, last: date | str, **headers: str):  # noqa: ANN201
    return client.get(f"/accounts/{account}/statement", params={"from": str(first), "to": str(last)},
                      headers=headers)


def cli_statement(cli, root: str, account: str, first: date, last: date, today: date, months: int,  # noqa: ANN001
                  fmt: str) -> str:
    proc = cli("statement", "--account", account, "--from", str(first), "--to", str(last), "--format", fmt,
               "--warehouse", root, "--today", str(today), "--serving-months", str(months))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("cached", [True, False], ids=["from-cache", "from-files"])
def test_service_answers_what_the_statement_command_prints(two_tiers, ledgerlake_cli, cached):
    client, reader = service(two_tiers.root, cached=cached)
    answer = get_statement(client, ACCOUNT, FIRST, LAST)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    doc = answer.json()
    assert [t["txn_id"] for t in doc["transactions"]] == TWO_TIER_IDS
    assert [(r["table"], r["from"], r["to"]) for r in doc["read"]] == [
        (SILVER, "2024-02-10", "2024-04-30"), (SERVING, "2024-05-01", "2024-07-10")]
    assert {r["table"]: r["version"] for r in doc["read"]} == {t: s.version for t, s in reader.snapshots().items()}
    assert doc["totals"] == [
        {"currency": "EUR", "transactions": 6, "debits": -29.0, "credits": 0.0, "net": -29.0},
        {"currency": "USD", "transactions": 2, "debits": 0.0, "credits": 105.0, "net": 105.0}]
    assert '"amount":-5.50,' in answer.text                       # exact decimals, as stored

    lines = cli_statement(ledgerlake_cli, two_tiers.root, ACCOUNT, FIRST, LAST, TODAY, MONTHS, "json")
    assert [json.loads(line) for line in lines.splitlines()] == doc["transactions"]
    csv = get_statement(client, ACCOUNT, FIRST, LAST, accept="text/csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text == cli_statement(ledgerlake_cli, two_tiers.root, ACCOUNT, FIRST, LAST, TODAY, MONTHS, "csv")
    if cached:
        assert reader.cache.stats()["files"] >= 2


def _table_ids(lake, table: str, account: str, first: date, last: date) -> set[str]:  # noqa: ANN001
    return {r["txn_id"] for r in lake.read(table).collect()
            if r["account_id"] == account and first <= r["posting_date"] <= last}


def _refreshed(reader: StatementReader) -> None:
    reader.refresh()
    wait_cached(reader)


def test_service_follows_a_stream_batch_and_a_roll_off(lake, ledgerlake_cli):
    """Account 000000000042 over 2026-03..2026-11 with today 2026-11-26 and 6 months served (2026-06..11)."""
    account, first, last = "000000000042", date(2026, 3, 1), date(2026, 11, 30)
    write_rows(lake, SILVER, [row("S-0401", account, "2026-04-01 09:00:00", "-1.00"),
                              row("S-0615", account, "2026-06-15 09:00:00", "-2.00")])
    write_rows(lake, SERVING, [row("S-0615", account, "2026-06-15 09:00:00", "-2.00")])
    today = Today(date(2026, 11, 26))
    client, reader = service(lake.root, today, months=6)

    def ids() -> list[str]:
        answer = get_statement(client, account, first, last)
        assert answer.status_code == 200, answer.text
        got = [t["txn_id"] for t in answer.json()["transactions"]]
        cli = cli_statement(ledgerlake_cli, lake.root, account, first, last, today.day, 6, "csv")
        assert got == [line.split(",")[0] for line in cli.splitlines()[1:]]
        window = window_for(today.day, 6).first_day
        tables = (_table_ids(lake, SILVER, account, first, date.fromordinal(window.toordinal() - 1))
                  | _table_ids(lake, SERVING, account, window, last))
        assert sorted(got) == sorted(tables) and len(got) == len(set(got))
        return got

    assert ids() == ["S-0401", "S-0615"]
    before = reader.snapshots()[SERVING].version
    # a micro-batch: one transaction in October, one in June (the window's first month)
    apply(lake, 0, {"events-1.jsonl": [posted(1, posted_at="2026-10-05T10:00:00Z"),
                                       posted(2, posted_at="2026-06-02T08:00:00Z")]})
    _refreshed(reader)
    assert reader.snapshots()[SERVING].version > before
    assert ids() == ["S-0401", txn(2), "S-0615", txn(1)]

    # the month turns: June leaves the window and is read from silver, before and after the roll-off removes it
    today.day = date(2026, 12, 2)
    assert ids() == ["S-0401", txn(2), "S-0615", txn(1)]
    roll_off(lake, window_for(today.day, 6))
    _refreshed(reader)
    assert not _table_ids(lake, SERVING, account, first, date(2026, 6, 30))
    assert ids() == ["S-0401", txn(2), "S-0615", txn(1)]


def test_rows_removed_by_deletion_vectors_never_appear(two_tiers):
    client, reader = service(two_tiers.root)               # decoded before the deletes
    assert [t["txn_id"] for t in get_statement(client, ACCOUNT, FIRST, LAST).json()["transactions"]] == TWO_TIER_IDS
    for table, gone in ((SILVER, "S-0315a"), (SERVING, "R-0620")):
        two_tiers.spark.sql(f"DELETE FROM delta.`{two_tiers.path(table)}` WHERE txn_id = '{gone}'")
    reader.refresh()
    snapshots = reader.snapshots()
    assert snapshots[SILVER].deleted and snapshots[SERVING].deleted      # the deletes wrote deletion vectors
    expected = [i for i in TWO_TIER_IDS if i not in ("S-0315a", "R-0620")]
    assert [t["txn_id"] for t in get_statement(client, ACCOUNT, FIRST, LAST).json()["transactions"]] == expected
    fresh, _ = service(two_tiers.root, cached=False)
    assert [t["txn_id"] for t in get_statement(fresh, ACCOUNT, FIRST, LAST).json()["transactions"]] == expected


@pytest.mark.parametrize("account,first,last,message", [
    ("12345678901", "2024-01-01", "2024-02-01", "account_id must be 12 digits, got '12345678901'"),
    ("00012345678x", "2024-01-01", "2024-02-01", "account_id must be 12 digits"),
    ("000123456789' OR '1'='1", "2024-01-01", "2024-02-01", "account_id must be 12 digits"),
    ("１２３４５６７８９０１２", "2024-01-01", "2024-02-01", "account_id must be 12 digits"),
    (ACCOUNT, "2024-02-30", "2024-03-01", "from must be a date YYYY-MM-DD, got '2024-02-30'"),
    (ACCOUNT, "2024-01-01", "01/02/2024", "to must be a date YYYY-MM-DD"),
    (ACCOUNT, "2024-05-01", "2024-04-30", "from 2024-05-01 is after to 2024-04-30"),
    (ACCOUNT, "1990-01-01", "2024-12-31", f"from..to spans more than {MAX_STATEMENT_DAYS} days"),
    (ACCOUNT, "2024-01-01", None, "to: Field required"),
])
def test_bad_requests_get_422_with_a_message(lake, account, first, last, message):
    client, _ = service(lake.root, cached=False)
    params = {"from": first} | ({"to": last} if last else {})
    answer = client.get(f"/accounts/{account}/statement", params=params)
    assert answer.status_code == 422
    assert answer.json() == {"error": {"status": 422, "message": answer.json()["error"]["message"]}}
    assert message in answer.json()["error"]["message"]
    assert "Traceback" not in answer.text


def test_keys_are_checked_and_each_key_is_rate_limited(lake):
    keys = ApiKeys.parse(key_line("branch-app", "k-one") + "\n" + key_line("web", "k-two"), "test")
    client, _ = service(lake.root, cached=False, keys=keys, rate=1)
    assert get_statement(client, ACCOUNT, FIRST, LAST).status_code == 401
    assert get_statement(client, ACCOUNT, FIRST, LAST, **{"x-api-key": "k-three"}).status_code == 401
    statuses = [get_statement(client, ACCOUNT, FIRST, LAST, **{"x-api-key": "k-one"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]                       # a burst of 2 at 1 a second
    limited = get_statement(client, ACCOUNT, FIRST, LAST, authorization="Bearer k-one")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "rate limit" in limited.json()["error"]["message"]
    assert get_statement(client, ACCOUNT, FIRST, LAST, authorization="Bearer k-two").status_code == 200


def test_an_unexpected_failure_is_a_json_500_without_a_trace(lake, monkeypatch):
    client, reader = service(lake.root, cached=False)

    def broken(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("disk on fire at /secret/path")

    monkeypatch.setattr(reader, "lookup", broken)
    answer = get_statement(client, ACCOUNT, FIRST, LAST)
    assert answer.status_code == 500
    assert answer.json() == {"error": {"status": 500, "message": "internal error; see the service's log"}}
    assert "secret" not in answer.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(url: str, key: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
            return answer.status, json.loads(body) if answer.headers.get_content_type() == "application/json" else {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_the_server_needs_keys_off_loopback_and_sees_new_commits(two_tiers, tmp_path):
    command = [sys.executable, "-m", "ledgerlake.cli", "serve-statements", "--warehouse", two_tiers.root,
               "--today", str(TODAY), "--serving-months", str(MONTHS), "--host", "0.0.0.0"]
    refused = subprocess.run([*command, "--port", str(_free_port())], capture_output=True, text=True, cwd=REPO,
                             timeout=120)
    assert refused.returncode == 2
    assert "--host 0.0.0.0 lets other machines connect: configure API keys" in refused.stderr

    made = subprocess.run([*command[:4], "--new-api-key", "teller"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    key = made.stdout.split("not stored): ")[1].split()[0]
    (tmp_path / "keys").write_text(made.stdout.split("LEDGERLAKE_API_KEYS: ")[1])
    port = _free_port()
    server = subprocess.Popen([*command, "--port", str(port), "--api-keys-file", str(tmp_path / "keys"),
                               "--refresh-seconds", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, cwd=REPO)
    try:
        assert "serve-statements: serving lake" in server.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/accounts/{ACCOUNT}/statement?from={FIRST}&to={LAST}"
        status, body = _http(url)
        assert status == 401 and body["error"]["message"].startswith("an API key is required")
        status, body = _http(url, key)
        assert status == 200 and [t["txn_id"] for t in body["transactions"]] == TWO_TIER_IDS
        assert _http(f"{base}/health")[1]["tables"][SERVING]["version"] == 1

        write_rows(two_tiers, SERVING, [row("R-0709", ACCOUNT, "2024-07-09 10:00:00", "-1.00")])
        deadline = time.monotonic() + 30
        while _http(f"{base}/health")[1]["tables"][SERVING]["version"] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        status, body = _http(url, key)
        assert [t["txn_id"] for t in body["transactions"]][-2:] == ["R-0709", "R-0710"]
        with urllib.request.urlopen(f"{base}/docs", timeout=10) as docs:
            assert docs.status == 200 and b"swagger" in docs.read().lower()
        spec = _http(f"{base}/openapi.json")[1]
        assert "/accounts/{account_id}/statement" in spec["paths"]
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0


def test_idle_rate_limit_buckets_are_forgotten(monkeypatch):
    import ledgerlake.query.service as service_module

    monkeypatch.setattr(service_module, "MAX_BUCKETS", 3)
    limiter = RateLimiter(100, burst=1)                     # a bucket is full again 10 ms after its last use
    assert [limiter.allow(f"client-{i}") for i in range(5)] == [0.0] * 5
    assert limiter.allow("client-0") > 0                   # its token is spent
    time.sleep(0.05)
    assert limiter.allow("client-9") == 0.0
    assert set(limiter._buckets) == {"client-9"}            # the idle ones were dropped: memory stays bounded
