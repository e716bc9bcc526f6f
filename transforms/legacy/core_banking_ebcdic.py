"""``core_banking_ebcdic``: the TXNEXT01 extract as the mainframe writes it.

EBCDIC code page 037, RECFM=FB LRECL=160 (records concatenated, no separators),
AMOUNT and BALANCE-AFTER packed decimal (COMP-3). Same records, rules and mapping
as ``core_banking``; only the physical decoding differs. Records are cut from the
file's bytes and decoded field by field in Spark SQL.
"""

from __future__ import annotations

import re
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.legacy import core_banking
from transforms.legacy.spec import SourceSpec, parse_yyyymmdd
from transforms.patterns import matches

RECORD_LENGTH = 160
CODEPAGE = "cp037"   # needs spark.sql.legacy.javaCharsets=true (set by the session factory)

# Copybook core_banking_ebcdic.cpy: name -> (1-based byte offset, length); text fields only.
DETAIL_TEXT_FIELDS = {
    "rec_type": (1, 1),
    "f_txn_id": (2, 20),
    "f_account": (22, 12),
    "f_posting_date": (34, 8),
    "f_posting_time": (42, 6),
    "f_value_date": (48, 8),
    "f_txn_code": (56, 4),
    "f_currency": (68, 3),
    "f_channel": (71, 3),
    "f_description": (74, 40),
    "f_reversal_of": (122, 20),
    "f_branch": (142, 6),
}
AMOUNT = (60, 8)          # PIC S9(13)V99 COMP-3
BALANCE = (114, 8)        # PIC S9(13)V99 COMP-3
DEBIT_TOTAL = (11, 9)     # PIC 9(15)V99 COMP-3
CREDIT_TOTAL = (20, 9)    # PIC 9(15)V99 COMP-3


def packed_decimal(expr: str, n_bytes: int, signed: bool = True) -> str:
    """SQL: a COMP-3 field (BINARY) with two implied decimals as DECIMAL, NULL when malformed.

    Each byte holds two digit nibbles; the last nibble is the sign: C or F positive,
    D negative (unsigned fields: C or F only).
    """
    digits = 2 * n_bytes - 1
    nibbles = f"hex({expr})"
    signs = "[CDF]" if signed else "[CF]"
    precision = 18 if signed else 20
    return (
        f"(CASE WHEN {matches(nibbles, f'[0-9]{{{digits}}}{signs}')} THEN CAST(concat("
        f"CASE WHEN substr({nibbles}, {digits + 1}, 1) = 'D' THEN '-' ELSE '' END, "
        f"substr({nibbles}, 1, {digits - 2}), '.', substr({nibbles}, {digits - 1}, 2)) "
        f"AS DECIMAL({precision},2)) END)"
    )


def _bytes(start_length: tuple[int, int]) -> str:
    return f"substring(record_bytes, {start_length[0]}, {start_length[1]})"


def split_file(files: DataFrame) -> DataFrame:
    """files(file_sha, content) -> (file_sha, record_no, raw, record_bytes): fixed 160-byte records.

    A short last record (file size not a multiple of 160) is kept short, so the
    MALFORMED_RECORD check sees it. ``raw`` is the record decoded from code page 037.
    """
    n_records = F.expr(f"CAST(ceil(octet_length(content) / {RECORD_LENGTH}) AS INT)")
    positions = F.when(n_records > 0, F.sequence(F.lit(0), n_records - 1))
    exploded = files.select("file_sha", "content", F.explode_outer(positions).alias("i"))
    record = F.expr(f"substring(content, i * {RECORD_LENGTH} + 1, {RECORD_LENGTH})")
    return exploded.select(
        "file_sha",
        (F.col("i") + 1).cast("bigint").alias("record_no"),
        F.decode(record, CODEPAGE).alias("raw"),
        record.alias("record_bytes"),
    )


def from_quarantine(records: DataFrame) -> DataFrame:
    """Quarantined records -> their bytes again: ops.quarantine keeps the record decoded from cp037."""
    return records.withColumn("record_bytes", F.encode("raw", CODEPAGE))


def parse_records(records: DataFrame) -> DataFrame:
    """Records -> the same columns as the ASCII variant, so its rules and mapping apply unchanged."""
    text = {name: F.expr(f"decode({_bytes(pos)}, '{CODEPAGE}')") for name, pos in DETAIL_TEXT_FIELDS.items()}
    return records.withColumns(text).selectExpr(
        "*",
        f"{RECORD_LENGTH} AS record_size",
        f"{packed_decimal(_bytes(AMOUNT), AMOUNT[1])} AS amount_value",
        f"{packed_decimal(_bytes(BALANCE), BALANCE[1])} AS balance_value",
        f"{parse_yyyymmdd('f_posting_date')} AS posting_date_value",
        f"{parse_yyyymmdd('f_value_date')} AS value_date_value",
    )


FILE_STATS = core_banking.build_file_stats(
    "octet_length(record_bytes)",
    packed_decimal(_bytes(DEBIT_TOTAL), DEBIT_TOTAL[1], signed=False),
    packed_decimal(_bytes(CREDIT_TOTAL), CREDIT_TOTAL[1], signed=False),
)


def _ascii_head(head: bytes) -> bytes:
    return head[:23].decode(CODEPAGE, errors="replace").encode("latin-1", errors="replace")


def business_date(name: str, head: bytes) -> date | None:
    """The header's BUSINESS-DATE (decoded from EBCDIC), else the date in the file name."""
    return core_banking.business_date(re.sub(r"\.ebc$", ".dat", name, flags=re.IGNORECASE), _ascii_head(head))


def order_key(name: str, head: bytes) -> tuple:
    return core_banking.order_key(re.sub(r"\.ebc$", ".dat", name, flags=re.IGNORECASE), _ascii_head(head))


SPEC = SourceSpec(
    name="core_banking_ebcdic",
    source_system="core_banking",   # the same system as the ASCII extract
    file_pattern=re.compile(r"^CORE_TXN_.*\.ebc$", re.IGNORECASE),
    describe_files="CORE_TXN_YYYYMMDD_NNNNNN.ebc",
    business_date=business_date,
    order_key=order_key,
    split=split_file,
    parse=parse_records,
    from_quarantine=from_quarantine,
    file_stats=FILE_STATS,
    file_checks=core_banking.FILE_CHECKS,
    is_detail="rec_type = 'D'",
    record_rules=core_banking.RECORD_RULES,
    mapping=core_banking.MAPPING,
    identity=core_banking.IDENTITY,
    control_totals=core_banking.CONTROL_TOTALS,
)
