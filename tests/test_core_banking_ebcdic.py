"""The mainframe variant: packed decimals, fixed 160-byte records, same rules as the ASCII extract."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.helpers import backfill, ledger, silver


def packed(value: Decimal | str, n_bytes: int = 8, unsigned: bool = False) -> bytes:
    value = Decimal(value)
    digits = f"{abs(value) * 100:0{2 * n_bytes - 1}.0f}"
    sign = "F" if unsigned else ("D" if value < 0 else "C")
    return bytes.fromhex(digits + sign)


def text(s: str, n: int) -> bytes:
    return s.ljust(n).encode("cp037")


def header(day: str = "20240301") -> bytes:
    return (text("H", 1) + text("COREBNK ", 8) + text(day, 8) + text("000001", 6) + text(day + "235959", 14)
            + text("", 123))


def detail(txn: str, amount: str, currency: str = "EUR", code: str = "DEP", raw_amount: bytes | None = None) -> bytes:
    return (text("D", 1) + text(txn, 20) + text("000000000001", 12) + text("20240301", 8) + text("101500", 6)
            + text("20240301", 8) + text(code, 4) + (raw_amount or packed(amount)) + text(currency, 3)
            + text("WEB", 3) + text("Café", 40) + packed("10.00") + text("", 20) + text("BR0001", 6) + text("", 13))


def trailer(count: int, debit: str, credit: str) -> bytes:
    return text("T", 1) + text(f"{count:09d}", 9) + packed(debit, 9, True) + packed(credit, 9, True) + text("", 132)


@pytest.mark.parametrize("raw,expected", [
    ("00000000000012345C", None), ("000000000012345C", "123.45"), ("000000000012345D", "-123.45"),
    ("000000000000000F", "0.00"), ("99999999999999 9C", None), ("000000000012345A", None),
])
def test_packed_decimal_decoding(spark, raw, expected):
    from transforms.legacy.core_banking_ebcdic import packed_decimal

    if " " in raw or len(raw) % 2:
        value_bytes = raw.encode()
    else:
        value_bytes = bytes.fromhex(raw)
    df = spark.createDataFrame([(bytearray(value_bytes),)], "b BINARY")
    value = df.selectExpr(f"{packed_decimal('b', 8)} AS v").first()["v"]
    assert value == (Decimal(expected) if expected else None)


def test_ebcdic_file_loads_and_checks_apply(lake, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    good = [detail("CB000000000000000001", "-12.50"), detail("CB000000000000000002", "7.25", currency="XYZ")]
    (folder / "CORE_TXN_20240301_000001.ebc").write_bytes(header() + b"".join(good) + trailer(2, "12.50", "7.25"))
    # no separators: a file whose size is not a multiple of 160 has a short record
    (folder / "CORE_TXN_20240301_000002.ebc").write_bytes(header() + good[0][:100] + trailer(1, "12.50", "0"))
    bad_amount = detail("CB000000000000000003", "1", raw_amount=b"\x00\x00\x00\x00\x00\x00\x12\x3a")
    (folder / "CORE_TXN_20240301_000003.ebc").write_bytes(header() + bad_amount + trailer(1, "0", "1"))
    (folder / "CORE_TXN_20240301_000004.ebc").write_bytes(header() + good[0] + trailer(1, "12.51", "0"))

    result = backfill(lake, "core_banking_ebcdic", folder)

    got = ledger(lake)
    assert got["CORE_TXN_20240301_000001.ebc"]["status"] == "LOADED"
    assert got["CORE_TXN_20240301_000002.ebc"]["reason"] == "MALFORMED_RECORD"
    assert got["CORE_TXN_20240301_000003.ebc"]["reason"] == "BAD_AMOUNT_FIELD"
    assert got["CORE_TXN_20240301_000004.ebc"]["reason"] == "CONTROL_TOTAL_MISMATCH"
    rows = silver(lake)
    assert set(rows) == {"CB000000000000000001"}
    row = rows["CB000000000000000001"]
    assert (row["amount"], row["balance_after"], row["description"], row["source_system"]) == (
        Decimal("-12.50"), Decimal("10.00"), "Café", "core_banking")
    q = [(r["record_no"], r["reason"]) for r in lake.read("ops.quarantine").collect()]
    assert q == [(3, "BAD_CURRENCY")]
    assert result.exit_code == 1


def test_ebcdic_resend_of_an_ascii_loaded_record_is_the_same_record(lake, tmp_path):
    from tests.legacy_files import core_detail, core_file

    ascii_record = core_detail(txn_id="CB000000000000000001", amount="-12.50", description="Café", balance="10.00")
    core_file(tmp_path / "ascii", [ascii_record])
    backfill(lake, "core_banking", tmp_path / "ascii")
    folder = tmp_path / "ebcdic"
    folder.mkdir()
    same = detail("CB000000000000000001", "-12.50")
    changed = detail("CB000000000000000001", "-12.51")
    (folder / "CORE_TXN_20240302_000001.ebc").write_bytes(header("20240302") + same + trailer(1, "12.50", "0"))
    (folder / "CORE_TXN_20240303_000001.ebc").write_bytes(header("20240303") + changed + trailer(1, "12.51", "0"))

    backfill(lake, "core_banking_ebcdic", folder)

    got = ledger(lake)
    assert (got["CORE_TXN_20240302_000001.ebc"]["records_accepted"],
            got["CORE_TXN_20240302_000001.ebc"]["rows_inserted"]) == (1, 0)
    assert got["CORE_TXN_20240303_000001.ebc"]["records_quarantined"] == 1
    assert silver(lake)["CB000000000000000001"]["source_file"] == "CORE_TXN_20240301_000001.dat"
