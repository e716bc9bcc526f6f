"""Every core_banking rule of the contract, each with its own small case."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.helpers import backfill, ledger, load_fresh, silver
from tests.legacy_files import core_detail, core_file, core_header, core_trailer


def txn(n: int) -> str:
    return f"CB{n:018d}"


# Record-level: each case breaks exactly one rule (or two, to check that the first listed wins).
RECORD_CASES = {
    "BAD_TXN_ID": core_detail(txn_id="CB12345ABC0000000000"),
    "BAD_ACCOUNT": core_detail(txn_id=txn(2), account="00001234567X"),
    "BAD_DATE_posting": core_detail(txn_id=txn(3), posting_date="20240230"),
    "BAD_DATE_value": core_detail(txn_id=txn(4), value_date="20241301"),
    "BAD_DATE_range": core_detail(txn_id=txn(5), posting_date="18991231", value_date="18991231"),
    "BAD_TIME": core_detail(txn_id=txn(6), posting_time="246000"),
    "BAD_CURRENCY": core_detail(txn_id=txn(7), currency="BTC"),
    "UNKNOWN_TXN_CODE": core_detail(txn_id=txn(8), code="XXX"),
    "BAD_REVERSAL_missing": core_detail(txn_id=txn(9), code="REV", reversal_of=""),
    "BAD_REVERSAL_extra": core_detail(txn_id=txn(10), code="DEP", reversal_of=txn(1)),
    "ORDER_account_before_date": core_detail(txn_id=txn(11), account="ABC", posting_date="20240230"),
    "ORDER_time_before_currency": core_detail(txn_id=txn(12), posting_time="999999", currency="BTC"),
}
EXPECTED_REASON = {
    "BAD_TXN_ID": "BAD_TXN_ID", "BAD_ACCOUNT": "BAD_ACCOUNT", "BAD_DATE_posting": "BAD_DATE",
    "BAD_DATE_value": "BAD_DATE", "BAD_DATE_range": "BAD_DATE", "BAD_TIME": "BAD_TIME",
    "BAD_CURRENCY": "BAD_CURRENCY", "UNKNOWN_TXN_CODE": "UNKNOWN_TXN_CODE",
    "BAD_REVERSAL_missing": "BAD_REVERSAL", "BAD_REVERSAL_extra": "BAD_REVERSAL",
    "ORDER_account_before_date": "BAD_ACCOUNT", "ORDER_time_before_currency": "BAD_TIME",
}
GOOD = [
    core_detail(txn_id=txn(100), amount="-123.45", balance="1000.00", description="Café Straße"),
    core_detail(txn_id=txn(101), code="REV", reversal_of=txn(100), amount="123.45"),
    core_detail(txn_id=txn(102), amount="0.00", posting_date="20240229", value_date="20240301",
                posting_time="235959"),
    core_detail(txn_id=txn(103), posting_date="20991231", value_date="19000101", posting_time="000000"),
]


@pytest.fixture(scope="module")
def record_lake(new_lake, tmp_path_factory):
    root = tmp_path_factory.mktemp("core_records")
    details = GOOD + list(RECORD_CASES.values())
    core_file(root / "in", details)
    lake, result = load_fresh(new_lake, root, "core_banking")
    quarantine = {r["record_no"]: r.asDict() for r in lake.read("ops.quarantine").collect()}
    return lake, result, quarantine


@pytest.mark.parametrize("case", list(RECORD_CASES))
def test_record_rule_quarantines_with_first_failing_reason(record_lake, case):
    _, _, quarantine = record_lake
    record_no = 2 + len(GOOD) + list(RECORD_CASES).index(case)   # header is record 1
    assert quarantine[record_no]["reason"] == EXPECTED_REASON[case]
    assert quarantine[record_no]["raw_record"] == RECORD_CASES[case]
    assert quarantine[record_no]["source_file"] == "CORE_TXN_20240301_000001.dat"


def test_valid_records_map_to_the_contract_columns(record_lake):
    lake, result, quarantine = record_lake
    rows = silver(lake)
    assert set(rows) == {txn(100), txn(101), txn(102), txn(103)}
    assert rows[txn(103)]["posted_at"].isoformat() == "2099-12-31T00:00:00"
    assert rows[txn(103)]["value_date"].isoformat() == "1900-01-01"
    first = rows[txn(100)]
    assert first["amount"] == Decimal("-123.45")
    assert first["balance_after"] == Decimal("1000.00")
    assert first["description"] == "Café Straße"
    assert first["txn_code"] == "DEP" and first["channel"] == "WEB" and first["currency"] == "EUR"
    assert first["account_id"] == "000000000001"
    assert first["reversal_of"] is None
    assert first["posted_at"].isoformat() == "2024-03-01T10:15:00"
    assert first["posting_month"] == "2024-03"
    assert first["source_file"] == "CORE_TXN_20240301_000001.dat" and first["record_no"] == 2
    assert rows[txn(101)]["reversal_of"] == txn(100)
    assert rows[txn(102)]["posting_date"].isoformat() == "2024-02-29"
    assert rows[txn(102)]["posting_month"] == "2024-02"
    assert rows[txn(102)]["posted_at"].isoformat() == "2024-02-29T23:59:59"
    entry = ledger(lake)["CORE_TXN_20240301_000001.dat"]
    assert (entry["records_in"], entry["records_accepted"], entry["records_quarantined"]) == (
        len(GOOD) + len(RECORD_CASES), len(GOOD), len(RECORD_CASES))
    assert len(quarantine) == len(RECORD_CASES)
    assert result.exit_code == 0


@pytest.mark.parametrize("amount,expected", [
    ("00000000001234E", "123.45"), ("00000000001234N", "-123.45"), ("000000000012345", "123.45"),
    ("00000000000000}", "0.00"), ("00000000000000{", "0.00"), ("99999999999999I", "9999999999999.99"),
    ("00000000000010R", "-1.09"),
])
def test_zoned_decimal_decoding(spark, amount, expected):
    from transforms.legacy.core_banking import zoned_value

    value = spark.createDataFrame([(amount,)], "a STRING").selectExpr(f"{zoned_value('a')} AS v").first()["v"]
    assert value == Decimal(expected)


@pytest.mark.parametrize("amount", ["0000000000123 E", "00000000001234S", "0000000000123E4", "               "])
def test_invalid_zoned_decimal_is_null(spark, amount):
    from transforms.legacy.core_banking import zoned_value

    value = spark.createDataFrame([(amount,)], "a STRING").selectExpr(f"{zoned_value('a')} AS v").first()["v"]
    assert value is None


def _file_cases(folder):
    good = [core_detail(txn_id=txn(200 + i), amount=f"-{i + 1}.50") for i in range(3)]
    cases = {}
    folder.mkdir(parents=True, exist_ok=True)
    cases["EMPTY_FILE"] = folder / "CORE_TXN_20240302_000001.dat"
    cases["EMPTY_FILE"].write_bytes(b"")
    short = [*good[:2], good[2][:199]]
    cases["MALFORMED_RECORD"] = core_file(folder, short, "20240302", "000002")
    bad_type = [*good[:2], "X" + good[2][1:]]
    cases["MALFORMED_RECORD_type"] = core_file(folder, bad_type, "20240302", "000003")
    cases["MALFORMED_RECORD_two_headers"] = core_file(folder, [core_header("20240302", "000004"), *good],
                                                      "20240302", "000004")
    path = core_file(folder, good, "20240302", "000005")
    path.write_bytes(path.read_bytes() + (core_detail(txn_id=txn(299)) + "\n").encode())
    cases["MALFORMED_RECORD_after_trailer"] = path
    cases["MISSING_HEADER"] = core_file(folder, good, "20240302", "000006", header=good[0])
    path = core_file(folder, good, "20240302", "000007")
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    cases["MISSING_TRAILER"] = path
    cases["BAD_HEADER"] = core_file(folder, good, "20240302", "000008", header=core_header(source="OLDSYS  "))
    cases["BAD_HEADER_date"] = core_file(folder, good, "20240302", "000009", header=core_header("20240231"))
    bad_amount = [*good[:2], core_detail(txn_id=txn(210), raw_amount="0000000000123 E")]
    cases["BAD_AMOUNT_FIELD"] = core_file(folder, bad_amount, "20240302", "000010",
                                          trailer=core_trailer(good[:2], count=3))
    cases["CONTROL_COUNT_MISMATCH"] = core_file(folder, good, "20240302", "000011",
                                                trailer=core_trailer(good, count=4))
    cases["CONTROL_TOTAL_MISMATCH"] = core_file(folder, good, "20240302", "000012",
                                                trailer=core_trailer(good, debit_delta=Decimal("0.01")))
    # Two problems at once: the earlier check in the contract's order names the file.
    cases["ORDER_header_before_trailer"] = core_file(folder, good[:2], "20240302", "000013", header=good[0],
                                                     trailer=good[1])
    cases["ORDER_amount_before_count"] = core_file(folder, bad_amount, "20240302", "000014",
                                                   trailer=core_trailer(good, count=9))
    return cases


FILE_EXPECTED = {
    "EMPTY_FILE": "EMPTY_FILE", "MALFORMED_RECORD": "MALFORMED_RECORD",
    "MALFORMED_RECORD_type": "MALFORMED_RECORD", "MALFORMED_RECORD_two_headers": "MALFORMED_RECORD",
    "MALFORMED_RECORD_after_trailer": "MALFORMED_RECORD", "MISSING_HEADER": "MISSING_HEADER",
    "MISSING_TRAILER": "MISSING_TRAILER", "BAD_HEADER": "BAD_HEADER", "BAD_HEADER_date": "BAD_HEADER",
    "BAD_AMOUNT_FIELD": "BAD_AMOUNT_FIELD", "CONTROL_COUNT_MISMATCH": "CONTROL_COUNT_MISMATCH",
    "CONTROL_TOTAL_MISMATCH": "CONTROL_TOTAL_MISMATCH", "ORDER_header_before_trailer": "MISSING_HEADER",
    "ORDER_amount_before_count": "BAD_AMOUNT_FIELD",
}


@pytest.fixture(scope="module")
def file_lake(new_lake, tmp_path_factory):
    root = tmp_path_factory.mktemp("core_files")
    cases = _file_cases(root / "in")
    lake, result = load_fresh(new_lake, root, "core_banking")
    return lake, result, cases


@pytest.mark.parametrize("case", list(FILE_EXPECTED))
def test_file_check_rejects_whole_file(file_lake, case):
    lake, result, cases = file_lake
    entry = ledger(lake)[cases[case].name]
    assert (entry["status"], entry["reason"]) == ("REJECTED", FILE_EXPECTED[case])
    assert cases[case].exists()  # never deleted


def test_rejected_files_publish_nothing(file_lake):
    lake, result, _ = file_lake
    assert lake.read("silver.transactions").count() == 0
    assert lake.read("ops.quarantine").count() == 0
    assert result.exit_code == 1


def test_crlf_and_missing_final_newline_are_accepted(lake, tmp_path):
    details = [core_detail(txn_id=txn(300)), core_detail(txn_id=txn(301), amount="-5.00")]
    core_file(tmp_path / "in", details, "20240303", "000001", newline="\r\n")
    path = core_file(tmp_path / "in", details[:1], "20240304", "000001")
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    result = backfill(lake, "core_banking", tmp_path / "in")
    assert result.exit_code == 0
    assert {e["status"] for e in ledger(lake).values()} == {"LOADED"}
    assert set(silver(lake)) == {txn(300), txn(301)}
