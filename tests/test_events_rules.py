"""Every rule of contracts/events.md: line validation, repeats, order, corrections, cancellations, the window."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from tests.event_files import WINDOW, apply, batch_row, cancelled, files_frame, posted, rows, state, txn

# (case, line, expected detail: None when valid, else a fragment of reason_detail)
LINE_CASES = [
    ("valid posting", posted(1), None),
    ("valid cancellation needs only five fields", cancelled(2), None),
    ("cancellation ignores posting fields", dict(cancelled(3), amount="12,50"), None),
    ("offset timestamp", posted(4, posted_at="2026-07-01T01:30:00+02:00"), None),
    ("offset without colon", posted(5, posted_at="2026-07-01T01:30:00+0200"), None),
    ("fraction of a second", posted(6, posted_at="2026-07-01T01:30:00.250Z"), None),
    ("balance_after null", posted(7, balance_after=None), None),
    ("balance_after and reversal_of absent",
     {k: v for k, v in posted(8).items() if k not in ("balance_after", "reversal_of")}, None),
    ("reversal", posted(9, txn_code="REV", reversal_of=txn(1)), None),
    ("empty description", posted(10, description=""), None),
    ("unknown extra field", dict(posted(11), branch="BR01"), None),
    ("amount without decimals, negative", posted(12, amount="-12"), None),
    ("amount with one decimal", posted(13, amount="-12.5"), None),
    ("not JSON", '{"event_id": "broken', "not valid JSON"),
    ("empty line", "", "not valid JSON"),
    ("duplicate key", '{"event_id": "a", "event_id": "b"}', "not valid JSON"),
    ("JSON array", "[]", "not a JSON object"),
    ("JSON string", '"TXN_POSTED"', "not a JSON object"),
    ("missing event_type", {k: v for k, v in posted(20).items() if k != "event_type"}, "missing field event_type"),
    ("missing txn_id", {k: v for k, v in posted(21).items() if k != "txn_id"}, "missing field txn_id"),
    ("null event_id", dict(posted(22), event_id=None), "missing field event_id"),
    ("event_id not a string", dict(posted(23), event_id=7), "event_id must be a string"),
    ("empty event_id", dict(posted(24), event_id=" "), "event_id \" \" is empty"),
    ("unknown event_type", posted(25, event_type="TXN_DELETED"), "is not one of"),
    ("bad txn_id", dict(posted(26), txn_id="ZZ1"), 'txn_id "ZZ1" is not CB followed by 18 digits'),
    ("txn_id too short", dict(posted(27), txn_id="CB123"), "is not CB followed by 18 digits"),
    ("sequence 0", posted(28, seq=0), "sequence must be an integer >= 1, got 0"),
    ("sequence negative", posted(29, seq=-3), "sequence must be an integer >= 1"),
    ("sequence as text", dict(posted(30), sequence="2"), "sequence must be an integer >= 1"),
    ("sequence with a fraction", dict(posted(31), sequence=1.5), "sequence must be an integer >= 1"),
    ("sequence too large", dict(posted(32), sequence=10**20), "sequence must be an integer >= 1"),
    ("missing sequence", {k: v for k, v in posted(33).items() if k != "sequence"}, "missing field sequence"),
    ("short account", posted(34, account_no="12345678901"), "account_no \"12345678901\" is not 12 digits"),
    ("account as a number", posted(35, account_no=123456789012), "account_no must be a string"),
    ("missing account", {k: v for k, v in posted(36).items() if k != "account_no"}, "missing field account_no"),
    ("posted_at words", posted(37, posted_at="yesterday"), "posted_at \"yesterday\" is not an ISO-8601"),
    ("posted_at without zone", posted(38, posted_at="2026-07-31T06:09:56"), "is not an ISO-8601"),
    ("posted_at hour 24", posted(39, posted_at="2026-07-31T24:00:00Z"), "is not an ISO-8601"),
    ("posted_at date only", posted(40, posted_at="2026-07-31"), "is not an ISO-8601"),
    ("value_date not a calendar date", posted(41, value_date="2026-02-30"), "value_date \"2026-02-30\" is not a date"),
    ("value_date other format", posted(42, value_date="31/07/2026"), "is not a date"),
    ("unknown txn_code", posted(43, txn_code="XYZ"), "txn_code \"XYZ\" is not a known transaction code"),
    ("amount with a comma", posted(44, amount="12,50"), 'amount "12,50" is not a decimal with at most 2 decimals'),
    ("amount with 3 decimals", posted(45, amount="1.234"), "is not a decimal"),
    ("amount with a plus sign", posted(46, amount="+5.00"), "is not a decimal"),
    ("amount without integer part", posted(47, amount=".5"), "is not a decimal"),
    ("amount empty", posted(48, amount=""), "is not a decimal"),
    ("amount as a number", dict(posted(49), amount=12.5), "amount must be a string, got 12.5"),
    ("amount too large", posted(50, amount="12345678901234567.00"), "is not a decimal"),
    ("unknown currency", posted(51, currency="XXX"), 'currency "XXX" is not a supported currency'),
    ("missing channel", {k: v for k, v in posted(52).items() if k != "channel"}, "missing field channel"),
    ("missing description", {k: v for k, v in posted(53).items() if k != "description"}, "missing field description"),
    ("balance_after not a decimal", posted(54, balance_after="abc"), "balance_after \"abc\" is not a decimal"),
    ("balance_after as a number", posted(55, balance_after=5), "balance_after must be a string or null"),
    ("reversal_of on a non-REV", posted(56, reversal_of=txn(1)), "is set but txn_code is POS, not REV"),
    ("REV without reversal_of", posted(57, txn_code="REV"), "reversal_of must be set for a REV transaction"),
    ("missing emitted_at", {k: v for k, v in posted(58).items() if k != "emitted_at"}, "missing field emitted_at"),
    ("bad emitted_at", posted(59, emitted_at="now"), "emitted_at \"now\" is not an ISO-8601"),
    ("cancellation with a bad txn_id", dict(cancelled(60), txn_id="CB1"), "is not CB followed by 18 digits"),
    ("txn_id with a trailing line break", dict(posted(62), txn_id=txn(62) + "\n"), "is not CB followed by 18 digits"),
    ("account with a trailing line separator", posted(63, account_no="123456789012\u2028"), "is not 12 digits"),
    ("amount with a trailing carriage return", posted(64, amount="12.50\r"), "is not a decimal"),
    ("value_date with a trailing line break", posted(65, value_date="2026-07-01\n"), "is not a date"),
    ("cancellation without emitted_at", {k: v for k, v in cancelled(61).items() if k != "emitted_at"},
     "missing field emitted_at"),
]


@pytest.fixture(scope="module")
def parsed(spark):
    from transforms.events import parse_events, split_lines

    frame = files_frame(spark, {"cases.jsonl": [case[1] for case in LINE_CASES]}, newline="\r\n")
    result = frame.transform(split_lines).transform(parse_events).collect()
    return {r["record_no"]: r.asDict() for r in result}


@pytest.mark.parametrize("index", range(len(LINE_CASES)), ids=[c[0] for c in LINE_CASES])
def test_line_rule(parsed, index):
    _, _, expected = LINE_CASES[index]
    got = parsed[index + 1]                        # CRLF lines, numbered from 1, \r stripped
    if expected is None:
        assert got["reason"] is None, got["reason_detail"]
        assert got["reason_detail"] is None
    else:
        assert got["reason"] == "BAD_EVENT"
        assert expected in got["reason_detail"]
        assert got["event_id"] is None and got["amount"] is None   # nothing of a bad line is used


def test_lines_are_numbered_and_kept_raw(parsed):
    assert len(parsed) == len(LINE_CASES)                # no line dropped, none invented
    assert parsed[14]["raw"] == '{"event_id": "broken'
    assert not any(r["raw"].endswith("\r") for r in parsed.values())
    assert {r["source_file"] for r in parsed.values()} == {"cases.jsonl"}


def test_typed_fields_and_utc_posting_date(parsed):
    offset = parsed[4]
    assert offset["posted_at"].isoformat() == "2026-06-30T23:30:00"    # 01:30+02:00 is the previous UTC day
    assert offset["posting_date"] == date(2026, 6, 30)
    assert parsed[5]["posting_date"] == date(2026, 6, 30)
    assert parsed[13]["amount"] == Decimal("-12.50")
    assert parsed[7]["balance_after"] is None and parsed[1]["balance_after"] == Decimal("100.00")
    assert parsed[9]["reversal_of"] == txn(1) and parsed[1]["reversal_of"] is None
    assert parsed[2]["event_type"] == "TXN_CANCELLED" and parsed[2]["sequence"] == 2
    assert parsed[2]["account_id"] is None


def test_file_without_final_newline(spark):
    from transforms.events import split_lines

    frame = spark.createDataFrame([("a.jsonl", None, b'{"a": 1}\n{"b": 2}'), ("empty.jsonl", None, b"")],
                                  "source_file STRING, landed_at TIMESTAMP, content BINARY")
    got = sorted((r["source_file"], r["record_no"], r["raw"]) for r in frame.transform(split_lines).collect())
    assert got == [("a.jsonl", 1, '{"a": 1}'), ("a.jsonl", 2, '{"b": 2}')]


def test_lines_that_are_not_utf8_are_bad_events_shown_as_latin1(spark):
    import gzip
    import json

    from transforms.events import parse_events, split_lines

    good = json.dumps(posted(70)).encode()
    latin1 = json.dumps(posted(71, description="CAFÉ"), ensure_ascii=False).encode("latin-1")
    packed = gzip.compress(good + b"\n" + good + b"\n")
    frame = spark.createDataFrame(
        [("mixed.jsonl", None, good + b"\n" + latin1 + b"\r\n" + "{\"é\": 1}".encode() + b"\n"),
         ("packed.jsonl", None, packed)],
        "source_file STRING, landed_at TIMESTAMP, content BINARY")
    got = {(r["source_file"], r["record_no"]): r for r in frame.transform(split_lines).transform(parse_events).collect()}
    assert got["mixed.jsonl", 1]["reason"] is None and got["mixed.jsonl", 1]["utf8"] is True
    bad = got["mixed.jsonl", 2]
    assert (bad["reason"], bad["utf8"]) == ("BAD_EVENT", False)
    assert bad["reason_detail"].startswith("not valid UTF-8")
    assert bad["raw"] == latin1.decode("latin-1")               # every byte kept, one character each
    assert got["mixed.jsonl", 3]["raw"] == '{"é": 1}' and got["mixed.jsonl", 3]["utf8"] is True
    packed_lines = [r for key, r in got.items() if key[0] == "packed.jsonl"]
    assert packed_lines and all(r["reason"] == "BAD_EVENT" for r in packed_lines)
    assert len(packed_lines) == len(packed.removesuffix(b"\n").split(b"\n"))


# ---- semantics over several micro-batches ---------------------------------------------------------------

BATCHES = [
    {"a-00000.jsonl": [
        posted(1), posted(1),                                                  # a repeat in the same file
        posted(2, seq=2, event_type="TXN_CORRECTED", posted_at="2026-09-10T08:00:00Z", amount="20.00"),
        posted(3, posted_at="2026-08-01T09:00:00Z"), cancelled(3, seq=2),      # posted and voided at once
        posted(4, posted_at="2026-10-15T09:00:00Z"),                           # moves out of the window later
        posted(5, posted_at="2026-05-31T23:59:59Z"),                           # last second before the window
        posted(6, posted_at="2026-06-01T00:30:00+02:00"),                      # 2026-05-31 22:30 UTC: outside
        posted(7, posted_at="2026-06-01T00:00:00Z"),                           # first second of the window
        posted(8, posted_at="2026-11-30T23:59:59Z"),                           # last second of the window
        posted(9, posted_at="2026-12-01T00:00:00Z"),                           # after the current month
        posted(10, posted_at="2026-10-20T09:00:00Z"),                          # cancelled in the next batch
        posted(11, amount="99.99"),                                            # a batch file already has it
        posted(12, posted_at="2026-07-14T09:00:00Z"),                          # moves to another month later
        '{"event_id": "broken',
        posted(14, currency="XXX"),
    ]},
    {"a-00001.jsonl": [
        posted(1),                                                             # the repeat, one batch later
        posted(2, seq=1, posted_at="2026-09-01T08:00:00Z", amount="15.00"),    # the older version, late
        posted(3, posted_at="2026-08-01T09:00:00Z"),                           # older than the tombstone
        posted(4, seq=2, event_type="TXN_CORRECTED", posted_at="2026-05-20T09:00:00Z", amount="40.00"),
        cancelled(10, seq=2),
        posted(12, seq=2, event_type="TXN_CORRECTED", posted_at="2026-09-03T09:00:00Z", amount="12.00"),
        cancelled(13, seq=3),                                                  # a cancellation seen first
        cancelled(15, seq=2),                                                  # voided, then corrected
    ]},
    {"a-00002.jsonl": [
        posted(10, posted_at="2026-10-20T09:00:00Z"),                          # re-delivered after the cancel
        posted(13, seq=1), posted(13, seq=2, event_type="TXN_CORRECTED"),      # both older than its tombstone
        posted(15, seq=3, event_type="TXN_CORRECTED", amount="33.00"),         # higher than the cancellation
        posted(11, seq=2, event_type="TXN_CORRECTED", amount="98.00"),         # batch-owned, still
        posted(11, seq=2, event_type="TXN_CORRECTED", amount="98.00"),         # same event again
    ]},
]


@pytest.fixture(scope="module")
def scenario(spark, tmp_path_factory, new_lake):

    lake = new_lake(tmp_path_factory.mktemp("rules") / "lake")
    book = batch_row(spark, 11, "9.99", "2026-10-05")
    for table in ("silver.transactions", "serving.transactions_recent"):
        book.write.format("delta").mode("append").save(lake.path(table))
    stats = [apply(lake, i, batch) for i, batch in enumerate(BATCHES)]
    return lake, stats


def test_repeats_are_applied_once(scenario):
    lake, stats = scenario
    silver = rows(lake, "silver.transactions")
    assert silver[txn(1)]["event_sequence"] == 1 and silver[txn(1)]["amount"] == Decimal("10.00")
    assert lake.read("silver.transactions").groupBy("txn_id").count().where("count > 1").count() == 0
    assert stats[1].actions.get("STALE", 0) >= 1


def test_highest_sequence_wins_whatever_the_order(scenario):
    lake, _ = scenario
    row = rows(lake, "silver.transactions")[txn(2)]
    assert (row["event_sequence"], row["amount"], row["posting_date"]) == (2, Decimal("20.00"), date(2026, 9, 10))
    assert rows(lake, "serving.transactions_recent")[txn(2)]["amount"] == Decimal("20.00")


def test_cancellation_removes_and_a_late_older_event_does_not_bring_it_back(scenario):
    lake, _ = scenario
    silver, serving, st = rows(lake, "silver.transactions"), rows(lake, "serving.transactions_recent"), state(lake)
    for n in (3, 10, 13):
        assert txn(n) not in silver and txn(n) not in serving
        assert st[txn(n)]["status"] == "CANCELLED"
    assert st[txn(13)]["sequence"] == 3
    assert st[txn(10)]["posting_month"] is None


def test_a_version_newer_than_the_cancellation_exists(scenario):
    lake, _ = scenario
    row = rows(lake, "silver.transactions")[txn(15)]
    assert (row["event_sequence"], row["amount"]) == (3, Decimal("33.00"))
    assert state(lake)[txn(15)]["status"] == "LIVE"


def test_correction_moves_the_row_to_its_new_month(scenario):
    lake, _ = scenario
    silver, serving = rows(lake, "silver.transactions"), rows(lake, "serving.transactions_recent")
    assert silver[txn(12)]["posting_month"] == "2026-09" and serving[txn(12)]["posting_month"] == "2026-09"
    assert silver[txn(12)]["amount"] == Decimal("12.00")
    # out of the window: stays in silver (new month), leaves the serving tier
    assert silver[txn(4)]["posting_month"] == "2026-05" and silver[txn(4)]["amount"] == Decimal("40.00")
    assert txn(4) not in serving
    assert state(lake)[txn(4)]["posting_month"] == "2026-05"


def test_serving_window_boundaries(scenario):
    lake, _ = scenario
    silver, serving = rows(lake, "silver.transactions"), rows(lake, "serving.transactions_recent")
    for n in (5, 6, 7, 8, 9):
        assert txn(n) in silver
    assert silver[txn(6)]["posting_date"] == date(2026, 5, 31)
    assert {n for n in (5, 6, 7, 8, 9) if txn(n) in serving} == {7, 8}
    # the serving tier holds exactly silver's rows of the window
    in_window = {t for t, r in silver.items() if WINDOW.contains(r["posting_date"])}
    assert set(serving) == in_window


def test_batch_loaded_txn_is_not_changed_by_events_and_feeds_parity(scenario):
    lake, stats = scenario
    silver = rows(lake, "silver.transactions")
    assert silver[txn(11)]["source_system"] == "core_banking" and silver[txn(11)]["amount"] == Decimal("9.99")
    assert rows(lake, "serving.transactions_recent")[txn(11)]["amount"] == Decimal("9.99")
    assert state(lake)[txn(11)]["status"] == "BATCH"
    parity = sorted((r["field"], r["streamed_value"], r["batch_value"], r["streamed_sequence"], r["detected_by"])
                    for r in lake.read("ops.parity").collect())
    assert ("amount", "99.99", "9.99", 1, "stream") in parity
    assert ("amount", "98.00", "9.99", 2, "stream") in parity
    assert ("description", "Café Central", "CAFE CENTRAL", 1, "stream") in parity
    assert len(parity) == len(set(parity))          # the repeated event did not add rows twice
    assert {r[0] for r in parity} == {"amount", "description", "balance_after"}
    assert stats[0].actions["BATCH"] == 1


def test_bad_lines_are_quarantined_with_file_and_line(scenario):
    lake, stats = scenario
    got = sorted((r["source_system"], r["source_file"], r["record_no"], r["reason"], r["raw_record"][:20], r["txn_id"])
                 for r in lake.read("ops.quarantine").collect())
    assert got == [("events", "a-00000.jsonl", 15, "BAD_EVENT", '{"event_id": "broken', None),
                   ("events", "a-00000.jsonl", 16, "BAD_EVENT", '{"event_id": "ev-14-', txn(14))]
    assert stats[0].quarantined == 2 and txn(14) not in rows(lake, "silver.transactions")


def test_silver_rows_carry_the_event_lineage(scenario):
    lake, _ = scenario
    row = rows(lake, "silver.transactions")[txn(12)]
    assert (row["source_system"], row["source_file"], row["record_no"], row["record_hash"]) == (
        "events", "a-00001.jsonl", 6, None)
    assert row["posted_at"].isoformat() == "2026-09-03T09:00:00" and row["account_id"] == "000000000042"
