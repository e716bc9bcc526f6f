"""Hand-built legacy records for rule tests: each helper writes exactly what the contract describes."""

from __future__ import annotations

import csv
import re
from decimal import Decimal
from pathlib import Path

POSITIVE = "{ABCDEFGHI"
NEGATIVE = "}JKLMNOPQR"


def zoned(value: Decimal | str) -> str:
    """PIC S9(13)V99 with trailing overpunch."""
    value = Decimal(value)
    digits = f"{abs(value) * 100:015.0f}"
    table = NEGATIVE if value < 0 else POSITIVE
    return digits[:14] + table[int(digits[14])]


def unzoned(text: str) -> Decimal:
    last = text[-1]
    if last in NEGATIVE:
        sign, digit = -1, NEGATIVE.index(last)
    elif last in POSITIVE:
        sign, digit = 1, POSITIVE.index(last)
    else:
        sign, digit = 1, int(last)
    return sign * Decimal(int(text[:14] + str(digit))) / 100


def core_detail(txn_id: str = "CB000000000000000001", account: str = "000000000001", posting_date: str = "20240301",
                posting_time: str = "101500", value_date: str = "20240301", code: str = "DEP",
                amount: str | Decimal = "10.00", currency: str = "EUR", channel: str = "WEB",
                description: str = "TEST", balance: str | Decimal = "50.00", reversal_of: str = "",
                branch: str = "BR0001", raw_amount: str | None = None) -> str:
    record = (
        "D" + txn_id.ljust(20) + account.ljust(12) + posting_date + posting_time + value_date + code.ljust(4)
        + (raw_amount if raw_amount is not None else zoned(amount)) + currency + channel
        + description.ljust(40) + zoned(balance) + reversal_of.ljust(20) + branch.ljust(6)
    )
    return record.ljust(200)


def core_header(business_date: str = "20240301", seq: str = "000001", source: str = "COREBNK ") -> str:
    return ("H" + source + business_date + seq + business_date + "235959").ljust(200)


def core_trailer(details: list[str], count: int | None = None, debit_delta: Decimal = Decimal(0)) -> str:
    amounts = [unzoned(d[59:74]) for d in details if d[59:74].strip() and d[73] in POSITIVE + NEGATIVE + "0123456789"]
    debit = sum((-a for a in amounts if a < 0), Decimal(0)) + debit_delta
    credit = sum((a for a in amounts if a > 0), Decimal(0))
    n = len(details) if count is None else count
    return ("T" + f"{n:09d}" + f"{debit * 100:017.0f}" + f"{credit * 100:017.0f}").ljust(200)


def core_file(folder: Path, details: list[str], business_date: str = "20240301", seq: str = "000001",
              header: str | None = None, trailer: str | None = None, newline: str = "\n") -> Path:
    records = [header if header is not None else core_header(business_date, seq), *details,
               trailer if trailer is not None else core_trailer(details)]
    path = folder / f"CORE_TXN_{business_date}_{seq}.dat"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(newline.join(records).encode("latin-1") + newline.encode())
    return path


CARDS_HEADER = "CARD_TXN_REF|ACCOUNT_NO|TXN_DATE|TXN_TIME|AMOUNT|CURRENCY|MERCHANT_NAME|MCC|AUTH_CODE"


def card_line(ref: str = "CD0000000000000001", account: str = "000000000001", day: str = "01/03/2024",
              time: str = "10:15:00", amount: str = "-10.00", currency: str = "EUR",
              merchant: str = "SHOP", mcc: str = "5411", auth: str = "AB12CD") -> str:
    if "|" in merchant or '"' in merchant:
        merchant = '"' + merchant.replace('"', '""') + '"'
    return "|".join([ref, account, day, time, amount, currency, merchant, mcc, auth])


def cards_file(folder: Path, lines: list[str], business_date: str = "20240301", name: str | None = None,
               count: int | None = None, net: str | None = None, header: str = CARDS_HEADER,
               trailer: str | None = None) -> Path:
    fields = [next(csv.reader([line], delimiter="|")) for line in lines]
    amounts = [Decimal(f[4]) for f in fields if len(f) == 9 and re.fullmatch(r"-?\d+\.\d{2}", f[4])]
    if trailer is None:
        total = sum(amounts, Decimal(0))
        trailer = f"TRL|{len(lines) if count is None else count}|{net if net is not None else f'{total:.2f}'}"
    path = folder / (name or f"CARDS_{business_date}.csv")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines, trailer]) + "\n", encoding="utf-8")
    return path
