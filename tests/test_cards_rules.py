"""Every cards rule of the contract, each with its own small case."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.helpers import backfill, ledger, load_fresh, silver
from tests.legacy_files import CARDS_HEADER, card_line, cards_file


def ref(n: int) -> str:
    return f"CD{n:016d}"


RECORD_CASES = {
    "BAD_TXN_ID": (card_line(ref="CD12345"), "BAD_TXN_ID"),
    "BAD_ACCOUNT": (card_line(ref=ref(2), account="00012345678"), "BAD_ACCOUNT"),
    "BAD_DATE": (card_line(ref=ref(3), day="31/04/2023"), "BAD_DATE"),
    "BAD_DATE_format": (card_line(ref=ref(4), day="2024-03-01"), "BAD_DATE"),
    "BAD_TIME": (card_line(ref=ref(5), time="12:60:00"), "BAD_TIME"),
    "BAD_CURRENCY": (card_line(ref=ref(6), currency="BTC"), "BAD_CURRENCY"),
    "BAD_MCC": (card_line(ref=ref(7), mcc="54A1"), "BAD_MCC"),
    "BAD_TXN_ID_line_separator": (card_line(ref=ref(9) + "\u2028"), "BAD_TXN_ID"),
    "BAD_MCC_next_line": (card_line(ref=ref(10), mcc="5411\u0085"), "BAD_MCC"),
    "ORDER_date_before_mcc": (card_line(ref=ref(8), day="32/01/2024", mcc="X"), "BAD_DATE"),
}
GOOD = [
    card_line(ref=ref(100), merchant='Joe\'s "Best" Pizza', amount="-12.50"),
    card_line(ref=ref(101), merchant="PIPE|SHOP LTD", amount="7.25", day="29/02/2024"),
    card_line(ref=ref(102), merchant="  Müller & Söhne  ", amount="0.00"),
]


@pytest.fixture(scope="module")
def record_lake(new_lake, tmp_path_factory):
    root = tmp_path_factory.mktemp("cards_records")
    cards_file(root / "in", GOOD + [line for line, _ in RECORD_CASES.values()])
    lake, result = load_fresh(new_lake, root, "cards")
    quarantine = {r["record_no"]: r.asDict() for r in lake.read("ops.quarantine").collect()}
    return lake, result, quarantine


@pytest.mark.parametrize("case", list(RECORD_CASES))
def test_record_rule_quarantines_with_first_failing_reason(record_lake, case):
    _, _, quarantine = record_lake
    line_no = 2 + len(GOOD) + list(RECORD_CASES).index(case)   # the column header is line 1
    assert quarantine[line_no]["reason"] == RECORD_CASES[case][1]
    assert quarantine[line_no]["raw_record"] == RECORD_CASES[case][0]


def test_valid_lines_map_to_the_contract_columns(record_lake):
    lake, result, _ = record_lake
    rows = silver(lake)
    assert set(rows) == {ref(100), ref(101), ref(102)}
    pizza = rows[ref(100)]
    assert pizza["description"] == 'Joe\'s "Best" Pizza'
    assert pizza["amount"] == Decimal("-12.50")
    assert (pizza["txn_code"], pizza["channel"], pizza["source_system"]) == ("CARD", "POS", "cards")
    assert pizza["balance_after"] is None and pizza["reversal_of"] is None
    assert pizza["posted_at"].isoformat() == "2024-03-01T10:15:00"
    assert pizza["value_date"] == pizza["posting_date"]
    assert rows[ref(101)]["description"] == "PIPE|SHOP LTD"
    assert rows[ref(101)]["posting_month"] == "2024-02"
    assert rows[ref(102)]["description"] == "Müller & Söhne"
    entry = ledger(lake)["CARDS_20240301.csv"]
    assert (entry["records_in"], entry["records_accepted"], entry["records_quarantined"]) == (
        len(GOOD) + len(RECORD_CASES), len(GOOD), len(RECORD_CASES))
    assert result.exit_code == 0


def _file_cases(folder):
    good = [card_line(ref=ref(200 + i), amount=f"-{i + 1}.10") for i in range(3)]
    cases = {"BAD_FILE_NAME": cards_file(folder, good, name="CARDS_2024-13-45.csv")}
    (folder / "CARDS_20240302.csv").write_bytes(b"")
    cases["EMPTY_FILE"] = folder / "CARDS_20240302.csv"
    cases["BAD_COLUMN_HEADER"] = cards_file(folder, good, "20240303", header="REF|ACCT|DATE")
    path = cards_file(folder, good, "20240304")
    path.write_text("\n".join([CARDS_HEADER, *good]) + "\n", encoding="utf-8")
    cases["MISSING_TRAILER"] = path
    cases["MALFORMED_RECORD_fields"] = cards_file(folder, [*good, "CD0000000000000299|000000000001|x"], "20240305",
                                                  count=4)
    cases["MALFORMED_RECORD_quote"] = cards_file(
        folder, [*good, ref(298) + '|000000000001|01/03/2024|10:00:00|-1.00|EUR|"OPEN QUOTE|5411|AB12CD'],
        "20240306", count=4, net="-7.60")
    path = cards_file(folder, good, "20240307")
    path.write_text(path.read_text(encoding="utf-8") + good[0] + "\n", encoding="utf-8")
    cases["MALFORMED_RECORD_after_trailer"] = path
    cases["BAD_AMOUNT_FIELD"] = cards_file(folder, [*good, card_line(ref=ref(297), amount="12.5")], "20240308",
                                           count=4, net="-6.60")
    cases["CONTROL_COUNT_MISMATCH"] = cards_file(folder, good, "20240309", count=2)
    cases["CONTROL_TOTAL_MISMATCH"] = cards_file(folder, good, "20240310", net="-6.61")
    path = cards_file(folder, [*good, card_line(ref=ref(296), merchant="CAFÉ MÜNCHEN", amount="-1.00")], "20240312")
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))      # one merchant name in Latin-1
    cases["MALFORMED_RECORD_not_utf8"] = path
    cases["ORDER_header_before_trailer"] = cards_file(folder, good, "20240311", header="X",
                                                      trailer="not a trailer")
    return cases


FILE_EXPECTED = {
    "BAD_FILE_NAME": "BAD_FILE_NAME", "EMPTY_FILE": "EMPTY_FILE", "BAD_COLUMN_HEADER": "BAD_COLUMN_HEADER",
    "MISSING_TRAILER": "MISSING_TRAILER", "MALFORMED_RECORD_fields": "MALFORMED_RECORD",
    "MALFORMED_RECORD_quote": "MALFORMED_RECORD", "MALFORMED_RECORD_after_trailer": "MALFORMED_RECORD",
    "BAD_AMOUNT_FIELD": "BAD_AMOUNT_FIELD", "CONTROL_COUNT_MISMATCH": "CONTROL_COUNT_MISMATCH",
    "CONTROL_TOTAL_MISMATCH": "CONTROL_TOTAL_MISMATCH", "ORDER_header_before_trailer": "BAD_COLUMN_HEADER",
    "MALFORMED_RECORD_not_utf8": "MALFORMED_RECORD",
}


@pytest.fixture(scope="module")
def file_lake(new_lake, tmp_path_factory):
    root = tmp_path_factory.mktemp("cards_files")
    (root / "in").mkdir()
    cases = _file_cases(root / "in")
    lake, result = load_fresh(new_lake, root, "cards")
    return lake, result, cases


@pytest.mark.parametrize("case", list(FILE_EXPECTED))
def test_file_check_rejects_whole_file(file_lake, case):
    lake, _, cases = file_lake
    entry = ledger(lake)[cases[case].name]
    assert (entry["status"], entry["reason"]) == ("REJECTED", FILE_EXPECTED[case])
    assert cases[case].exists()


def test_a_file_that_is_not_utf8_names_the_line_and_byte(file_lake):
    lake, _, cases = file_lake
    data = cases["MALFORMED_RECORD_not_utf8"].read_bytes()
    entry = ledger(lake)[cases["MALFORMED_RECORD_not_utf8"].name]
    offset = data.index("É".encode("latin-1"))
    assert entry["reason_detail"] == f"not valid UTF-8 at line 5, byte offset {offset}"


def test_rejected_files_publish_nothing(file_lake):
    lake, result, _ = file_lake
    assert lake.read("silver.transactions").count() == 0
    assert lake.read("ops.quarantine").count() == 0
    assert result.exit_code == 1


def test_duplicates_within_and_across_files(lake, tmp_path):
    """The common duplicate rules: first identical copy wins, conflicting copies all go, re-sends are no-ops."""
    a = card_line(ref=ref(1), amount="-1.00")
    b = card_line(ref=ref(2), amount="-2.00")
    b_other_auth = card_line(ref=ref(2), amount="-2.00", auth="ZZZZZZ")   # differs only in AUTH_CODE
    c = card_line(ref=ref(3), amount="-3.00")
    cards_file(tmp_path / "in", [a, a, b, b_other_auth, c], "20240301")
    c_changed = card_line(ref=ref(3), amount="-3.50")
    cards_file(tmp_path / "in", [a, c_changed, card_line(ref=ref(4))], "20240302")

    result = backfill(lake, "cards", tmp_path / "in")

    rows = silver(lake)
    assert set(rows) == {ref(1), ref(3), ref(4)}
    assert rows[ref(3)]["amount"] == Decimal("-3.00")
    q = sorted((r["source_file"], r["record_no"], r["reason"]) for r in lake.read("ops.quarantine").collect())
    assert q == [
        ("CARDS_20240301.csv", 3, "DUPLICATE_TXN_ID"),   # identical later copy of a
        ("CARDS_20240301.csv", 4, "DUPLICATE_TXN_ID"),   # b and its conflicting copy: both
        ("CARDS_20240301.csv", 5, "DUPLICATE_TXN_ID"),
        ("CARDS_20240302.csv", 3, "DUPLICATE_TXN_ID"),   # c re-sent with a different amount
    ]
    day2 = ledger(lake)["CARDS_20240302.csv"]
    assert (day2["records_accepted"], day2["records_quarantined"], day2["rows_inserted"]) == (2, 1, 1)
    assert result.exit_code == 0


@pytest.mark.parametrize("broadcast_keys", [True, False], ids=["daily-file", "large-batch"])
def test_duplicates_against_earlier_runs(lake, tmp_path, monkeypatch, broadcast_keys):
    """A txn_id already in silver from an earlier run: identical is a no-op, different is quarantined.

    Whether the batch's keys are sent to silver's scan (a daily file) or joined with a shuffle.
    """
    from ledgerlake.load import backfill as loader

    monkeypatch.setattr(loader, "MAX_BROADCAST_KEYS", 10**9 if broadcast_keys else 0)
    first = card_line(ref=ref(10), amount="-10.00")
    cards_file(tmp_path / "day1", [first], "20240301")
    backfill(lake, "cards", tmp_path / "day1")
    cards_file(tmp_path / "day2", [first, card_line(ref=ref(11))], "20240302")
    cards_file(tmp_path / "day2", [card_line(ref=ref(10), amount="-10.00", mcc="1234")], "20240303")

    backfill(lake, "cards", tmp_path / "day2")

    resent = ledger(lake)["CARDS_20240302.csv"]
    assert (resent["records_accepted"], resent["records_quarantined"], resent["rows_inserted"]) == (2, 0, 1)
    changed = ledger(lake)["CARDS_20240303.csv"]
    assert (changed["records_accepted"], changed["records_quarantined"], changed["rows_inserted"]) == (0, 1, 0)
    assert silver(lake)[ref(10)]["record_no"] == 2 and silver(lake)[ref(10)]["source_file"] == "CARDS_20240301.csv"
    assert lake.read("silver.transactions").count() == 2
