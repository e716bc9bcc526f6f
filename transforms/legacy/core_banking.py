"""``core_banking``: end-of-day fixed-width extract TXNEXT01 (ASCII, ISO-8859-1, LRECL 200)."""

from __future__ import annotations

import re
from datetime import date, datetime

from pyspark.sql import DataFrame

from transforms.legacy.formats import fixed_fields, split_records
from transforms.legacy.spec import (
    CURRENCIES,
    FileCheck,
    RecordRule,
    SourceSpec,
    parse_yyyymmdd,
    sql_in,
    timestamp_at,
    valid_date,
)
from transforms.patterns import matches

RECORD_LENGTH = 200
TXN_CODES = ("DEP", "WDL", "TRF", "FEE", "INT", "POS", "ATM", "CHQ", "REV")

# Copybook core_banking.cpy, positions 1-based: name -> (start, length).
DETAIL_FIELDS = {
    "rec_type": (1, 1),
    "f_txn_id": (2, 20),
    "f_account": (22, 12),
    "f_posting_date": (34, 8),
    "f_posting_time": (42, 6),
    "f_value_date": (48, 8),
    "f_txn_code": (56, 4),
    "f_amount": (60, 15),
    "f_currency": (75, 3),
    "f_channel": (78, 3),
    "f_description": (81, 40),
    "f_balance": (121, 15),
    "f_reversal_of": (136, 20),
    "f_branch": (156, 6),
}
HEADER_FIELDS = {"h_source_system": (2, 8), "h_business_date": (10, 8), "h_file_seq": (18, 6)}
TRAILER_FIELDS = {"t_record_count": (2, 9), "t_debit_total": (11, 17), "t_credit_total": (28, 17)}

_OVERPUNCH_CHARS = "{ABCDEFGHI}JKLMNOPQR"
_OVERPUNCH_DIGITS = "01234567890123456789"


def zoned_valid(expr: str) -> str:
    """SQL: PIC S9(13)V99 zoned decimal with trailing overpunch (or a plain last digit)."""
    return matches(expr, '[0-9]{14}[0-9{}A-R]')


def zoned_value(expr: str) -> str:
    """SQL: the signed DECIMAL(18,2) of a zoned decimal, NULL when malformed."""
    last = f"substr({expr}, 15, 1)"
    return (
        f"(CASE WHEN {zoned_valid(expr)} THEN CAST(concat("
        f"CASE WHEN {last} RLIKE '[}}J-R]' THEN '-' ELSE '' END, "
        f"substr({expr}, 1, 13), '.', substr({expr}, 14, 1), "
        f"translate({last}, '{_OVERPUNCH_CHARS}', '{_OVERPUNCH_DIGITS}')) AS DECIMAL(18,2)) END)"
    )


def unsigned_total(expr: str) -> str:
    """SQL: PIC 9(15)V99 unsigned display total as DECIMAL(20,2), NULL when malformed."""
    return (f"(CASE WHEN {matches(expr, '[0-9]{17}')} THEN "
            f"CAST(concat(substr({expr}, 1, 15), '.', substr({expr}, 16, 2)) AS DECIMAL(20,2)) END)")


split_file = split_records("ISO-8859-1")


def parse_records(records: DataFrame) -> DataFrame:
    """records(file_sha, record_no, raw) -> every field of the detail layout cut out and decoded."""
    return records.transform(fixed_fields(DETAIL_FIELDS)).selectExpr(
        "*",
        f"{RECORD_LENGTH} AS record_size",
        f"{zoned_value('f_amount')} AS amount_value",
        f"{zoned_value('f_balance')} AS balance_value",
        f"{parse_yyyymmdd('f_posting_date')} AS posting_date_value",
        f"{parse_yyyymmdd('f_value_date')} AS value_date_value",
    )


def _header_field(name: str) -> str:
    start, length = HEADER_FIELDS[name]
    return f"max(CASE WHEN record_no = 1 AND rec_type = 'H' THEN substr(raw, {start}, {length}) END)"


def _trailer_field(name: str) -> str:
    start, length = TRAILER_FIELDS[name]
    return f"max(CASE WHEN rec_type = 'T' THEN substr(raw, {start}, {length}) END)"


def build_file_stats(record_length: str, trailer_debit: str, trailer_credit: str) -> dict[str, str]:
    """File statistics of the TXNEXT01 layout; the variants differ in record length and trailer encoding.

    ``record_length`` is a SQL expression of one record's length; ``trailer_debit`` and
    ``trailer_credit`` SQL expressions of the trailer's totals (DECIMAL, NULL when malformed).
    """
    return {
        "n_rows": "count(1)",
        "n_records": "count(raw)",
        "n_bad_length": f"count_if({record_length} != record_size)",
        "record_size": "max(record_size)",
        "n_bad_type": "count_if(rec_type NOT IN ('H', 'D', 'T'))",
        "n_headers": "count_if(rec_type = 'H')",
        "n_trailers": "count_if(rec_type = 'T')",
        "first_type": "min_by(rec_type, record_no)",
        "last_type": "max_by(rec_type, record_no)",
        "first_trailer_no": "min(CASE WHEN rec_type = 'T' THEN record_no END)",
        "last_record_no": "max(record_no)",
        "hdr_source_system": _header_field("h_source_system"),
        "hdr_business_date": _header_field("h_business_date"),
        "n_bad_amount": "count_if(rec_type = 'D' AND (amount_value IS NULL OR balance_value IS NULL))",
        "n_details": "count_if(rec_type = 'D')",
        "trl_record_count": _trailer_field("t_record_count"),
        "trl_debit": f"max(CASE WHEN rec_type = 'T' THEN {trailer_debit} END)",
        "trl_credit": f"max(CASE WHEN rec_type = 'T' THEN {trailer_credit} END)",
        "sum_debit": "coalesce(sum(CASE WHEN rec_type = 'D' AND amount_value < 0 THEN -amount_value END), 0)",
        "sum_credit": "coalesce(sum(CASE WHEN rec_type = 'D' AND amount_value > 0 THEN amount_value END), 0)",
    }


FILE_STATS = build_file_stats(
    "length(raw)",
    unsigned_total(f"substr(raw, {TRAILER_FIELDS['t_debit_total'][0]}, {TRAILER_FIELDS['t_debit_total'][1]})"),
    unsigned_total(f"substr(raw, {TRAILER_FIELDS['t_credit_total'][0]}, {TRAILER_FIELDS['t_credit_total'][1]})"),
)

FILE_CHECKS = [
    FileCheck("EMPTY_FILE", "coalesce(n_records, 0) = 0", "'the file holds no records'"),
    FileCheck(
        "MALFORMED_RECORD",
        "n_bad_length > 0 OR n_bad_type > 0 OR n_headers > 1 OR n_trailers > 1 "
        "OR coalesce(first_trailer_no < last_record_no, FALSE)",
        "format_string('%d record(s) not %d long, %d of unknown type, %d headers, %d trailers%s', "
        "n_bad_length, record_size, n_bad_type, n_headers, n_trailers, "
        "CASE WHEN first_trailer_no < last_record_no THEN ', records after the trailer' ELSE '' END)",
    ),
    FileCheck("MISSING_HEADER", "first_type != 'H'", "format_string('first record is type %s', first_type)"),
    FileCheck("MISSING_TRAILER", "last_type != 'T'",
              "format_string('last record is type %s: truncated file', last_type)"),
    FileCheck(
        "BAD_HEADER",
        f"coalesce(hdr_source_system != 'COREBNK ', TRUE) OR NOT coalesce({valid_date(parse_yyyymmdd('hdr_business_date'))}, FALSE)",
        "format_string('header source %s, business date %s', hdr_source_system, hdr_business_date)",
    ),
    FileCheck("BAD_AMOUNT_FIELD", "n_bad_amount > 0",
              "format_string('%d detail record(s) with an invalid AMOUNT or BALANCE-AFTER', n_bad_amount)"),
    FileCheck(
        "CONTROL_COUNT_MISMATCH",
        f"NOT coalesce({matches('trl_record_count', '[0-9]{9}')} AND CAST(trl_record_count AS BIGINT) = n_details, FALSE)",
        "format_string('trailer count %s, file has %d detail records', trl_record_count, n_details)",
    ),
    FileCheck(
        "CONTROL_TOTAL_MISMATCH",
        "NOT coalesce(trl_debit = sum_debit AND trl_credit = sum_credit, FALSE)",
        "format_string('trailer debit %s credit %s, records sum to debit %s credit %s', "
        "trl_debit, trl_credit, sum_debit, sum_credit)",
    ),
]

RECORD_RULES = [
    RecordRule("BAD_TXN_ID", matches("f_txn_id", "CB[0-9]{18}"), "TXN-ID is CB followed by 18 digits"),
    RecordRule("BAD_ACCOUNT", matches("f_account", "[0-9]{12}"), "ACCOUNT-NO is 12 digits"),
    RecordRule("BAD_DATE", f"{valid_date('posting_date_value')} AND {valid_date('value_date_value')}",
               "POSTING-DATE and VALUE-DATE are calendar dates in 1900..2099"),
    RecordRule("BAD_TIME", matches("f_posting_time", "([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]"),
               "POSTING-TIME is a time of day HHMMSS"),
    RecordRule("BAD_CURRENCY", f"f_currency IN {sql_in(CURRENCIES)}", "CURRENCY is a supported ISO 4217 code"),
    RecordRule("UNKNOWN_TXN_CODE", f"trim(f_txn_code) IN {sql_in(TXN_CODES)}", "TXN-CODE is a known code"),
    RecordRule(
        "BAD_REVERSAL",
        "CASE WHEN trim(f_txn_code) = 'REV' THEN trim(f_reversal_of) != '' ELSE trim(f_reversal_of) = '' END",
        "REVERSAL-OF is set exactly for REV transactions",
    ),
]

MAPPING = {
    "txn_id": "trim(f_txn_id)",
    "source_system": "'core_banking'",
    "account_id": "f_account",
    "posting_date": "posting_date_value",
    "posted_at": timestamp_at("posting_date_value", "f_posting_time"),
    "value_date": "value_date_value",
    "txn_code": "trim(f_txn_code)",
    "amount": "amount_value",
    "currency": "f_currency",
    "channel": "f_channel",
    "description": "rtrim(f_description)",
    "balance_after": "balance_value",
    "reversal_of": "nullif(trim(f_reversal_of), '')",
}

# Two records are identical when every field is (the filler aside), whichever variant carried them,
# so an EBCDIC re-send of an ASCII-loaded transaction is recognised as the same record.
IDENTITY = ("xxhash64(f_txn_id, f_account, f_posting_date, f_posting_time, f_value_date, f_txn_code, "
            "amount_value, f_currency, f_channel, f_description, balance_value, f_reversal_of, f_branch)")

CONTROL_TOTALS = {
    "control_count": "try_cast(trl_record_count AS BIGINT)",
    "control_debit_total": "trl_debit",
    "control_credit_total": "trl_credit",
    "control_net_total": "trl_credit - trl_debit",
}

_NAME = re.compile(r"^CORE_TXN_(?P<date>\d{8})_(?P<seq>\d{6})\.dat$")


def _yyyymmdd(text: str) -> date | None:
    try:
        return datetime.strptime(text, "%Y%m%d").date() if re.fullmatch(r"\d{8}", text) else None
    except ValueError:
        return None


def business_date(name: str, head: bytes) -> date | None:
    """The header's BUSINESS-DATE (authoritative), else the date in the file name."""
    if head[:9] == b"HCOREBNK ":
        header_date = _yyyymmdd(head[9:17].decode("latin-1"))
        if header_date:
            return header_date
    match = _NAME.match(name)
    return _yyyymmdd(match["date"]) if match else None


def order_key(name: str, head: bytes) -> tuple:
    """Files of one business date load in FILE-SEQ-NO order."""
    seq = head[17:23].decode("latin-1") if head[:1] == b"H" else ""
    match = _NAME.match(name)
    return (seq if seq.isdigit() else (match["seq"] if match else "999999"), name)


SPEC = SourceSpec(
    name="core_banking",
    source_system="core_banking",
    file_pattern=re.compile(r"^CORE_TXN_.*\.dat$", re.IGNORECASE),
    describe_files="CORE_TXN_YYYYMMDD_NNNNNN.dat",
    business_date=business_date,
    order_key=order_key,
    split=split_file,
    parse=parse_records,
    file_stats=FILE_STATS,
    file_checks=FILE_CHECKS,
    is_detail="rec_type = 'D'",
    record_rules=RECORD_RULES,
    mapping=MAPPING,
    identity=IDENTITY,
    control_totals=CONTROL_TOTALS,
)
