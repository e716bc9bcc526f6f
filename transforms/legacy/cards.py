"""``cards``: card processor daily settlement file (pipe-delimited, UTF-8, trailer with net total)."""

from __future__ import annotations

import re
from datetime import date, datetime

from pyspark.sql import DataFrame

from transforms.legacy.formats import delimited_fields, split_records
from transforms.legacy.spec import (
    CURRENCIES,
    FileCheck,
    RecordRule,
    SourceSpec,
    parse_ddmmyyyy,
    sql_in,
    timestamp_at,
    valid_date,
)
from transforms.patterns import matches

COLUMN_HEADER = "CARD_TXN_REF|ACCOUNT_NO|TXN_DATE|TXN_TIME|AMOUNT|CURRENCY|MERCHANT_NAME|MCC|AUTH_CODE"
FIELDS = ["c_txn_ref", "c_account", "c_date", "c_time", "c_amount", "c_currency", "c_merchant",
          "c_mcc", "c_auth_code"]
# Whole-value patterns (anchored by transforms.patterns).
AMOUNT_FORMAT = "-?[0-9]+[.][0-9]{2}"
TRAILER_FORMAT = "TRL[|][0-9]+[|]-?[0-9]+[.][0-9]{2}"


split_file = split_records("UTF-8")


def parse_records(lines: DataFrame) -> DataFrame:
    """lines(file_sha, record_no, raw) -> the nine fields unquoted, trailer and detail flags."""
    return (
        lines.selectExpr("*", f"{matches('raw', TRAILER_FORMAT)} AS is_trailer")
        .transform(delimited_fields(FIELDS))
        .selectExpr(
            "*",
            "record_no > 1 AND NOT is_trailer AS is_detail",
            "try_cast(c_amount AS DECIMAL(18,2)) AS amount_value",
            f"{parse_ddmmyyyy('c_date')} AS txn_date_value",
        )
    )


FILE_STATS = {
    "n_rows": "count(1)",
    "n_records": "count(raw)",
    "header_line": "max(CASE WHEN record_no = 1 THEN raw END)",
    "first_trailer_no": "min(CASE WHEN is_trailer THEN record_no END)",
    "last_record_no": "max(record_no)",
    "n_bad_detail": "count_if(is_detail AND NOT well_formed)",
    "utf8_error": "max(utf8_error)",
    "n_bad_amount": f"count_if(is_detail AND well_formed AND NOT ({matches('c_amount', AMOUNT_FORMAT)} "
                    "AND amount_value IS NOT NULL))",
    "n_details": "count_if(is_detail)",
    "trl_count_raw": "max(CASE WHEN is_trailer THEN split(raw, '[|]')[1] END)",
    "trl_net_raw": "max(CASE WHEN is_trailer THEN split(raw, '[|]')[2] END)",
    "sum_amount": "coalesce(sum(CASE WHEN is_detail THEN amount_value END), 0)",
    "sum_debit": "coalesce(sum(CASE WHEN is_detail AND amount_value < 0 THEN -amount_value END), 0)",
    "sum_credit": "coalesce(sum(CASE WHEN is_detail AND amount_value > 0 THEN amount_value END), 0)",
}

_TRL_NET = "try_cast(trl_net_raw AS DECIMAL(20,2))"

FILE_CHECKS = [
    FileCheck("BAD_FILE_NAME", "business_date IS NULL",
              "'the name is not CARDS_<YYYYMMDD>.csv with a valid date'"),
    FileCheck("EMPTY_FILE", "coalesce(n_records, 0) = 0", "'the file holds no lines'"),
    FileCheck("BAD_COLUMN_HEADER", f"coalesce(header_line != '{COLUMN_HEADER}', TRUE)",
              "format_string('line 1 is %s', left(header_line, 120))"),
    FileCheck("MISSING_TRAILER", "first_trailer_no IS NULL", "'no TRL line: truncated file'"),
    FileCheck(
        "MALFORMED_RECORD",
        "utf8_error IS NOT NULL OR coalesce(first_trailer_no < last_record_no, FALSE) OR n_bad_detail > 0",
        "CASE WHEN utf8_error IS NOT NULL THEN concat('not valid UTF-8 at ', utf8_error) ELSE "
        "format_string('%d line(s) without exactly 9 fields or with an unbalanced quote%s', n_bad_detail, "
        "CASE WHEN first_trailer_no < last_record_no THEN ', lines after the trailer' ELSE '' END) END",
    ),
    FileCheck("BAD_AMOUNT_FIELD", "n_bad_amount > 0",
              "format_string('%d detail line(s) with an AMOUNT not like -123.45', n_bad_amount)"),
    FileCheck(
        "CONTROL_COUNT_MISMATCH",
        "NOT coalesce(CAST(trl_count_raw AS BIGINT) = n_details, FALSE)",
        "format_string('trailer count %s, file has %d detail lines', trl_count_raw, n_details)",
    ),
    FileCheck(
        "CONTROL_TOTAL_MISMATCH",
        f"NOT coalesce({_TRL_NET} = sum_amount, FALSE)",
        "format_string('trailer net total %s, lines sum to %s', trl_net_raw, sum_amount)",
    ),
]

RECORD_RULES = [
    RecordRule("BAD_TXN_ID", matches("c_txn_ref", "CD[0-9]{16}"), "CARD_TXN_REF is CD followed by 16 digits"),
    RecordRule("BAD_ACCOUNT", matches("c_account", "[0-9]{12}"), "ACCOUNT_NO is 12 digits"),
    RecordRule("BAD_DATE", valid_date("txn_date_value"), "TXN_DATE is a DD/MM/YYYY date in 1900..2099"),
    RecordRule("BAD_TIME", matches("c_time", "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"),
               "TXN_TIME is a time of day HH:MM:SS"),
    RecordRule("BAD_CURRENCY", f"c_currency IN {sql_in(CURRENCIES)}", "CURRENCY is a supported ISO 4217 code"),
    RecordRule("BAD_MCC", matches("c_mcc", "[0-9]{4}"), "MCC is 4 digits"),
]

MAPPING = {
    "txn_id": "trim(c_txn_ref)",
    "source_system": "'cards'",
    "account_id": "c_account",
    "posting_date": "txn_date_value",
    "posted_at": timestamp_at("txn_date_value", "c_time", ":"),
    "value_date": "txn_date_value",
    "txn_code": "'CARD'",
    "amount": "amount_value",
    "currency": "c_currency",
    "channel": "'POS'",
    "description": "trim(c_merchant)",
    "balance_after": "CAST(NULL AS DECIMAL(18,2))",
    "reversal_of": "CAST(NULL AS STRING)",
}

_NAME = re.compile(r"^CARDS_(?P<date>\d{8})\.csv$")


def business_date(name: str, head: bytes) -> date | None:
    """The date in the file name (this feed has no header record)."""
    match = _NAME.match(name)
    if not match:
        return None
    try:
        return datetime.strptime(match["date"], "%Y%m%d").date()
    except ValueError:
        return None


SPEC = SourceSpec(
    name="cards",
    source_system="cards",
    file_pattern=re.compile(r"^CARDS_.*\.csv$", re.IGNORECASE),
    describe_files="CARDS_YYYYMMDD.csv",
    business_date=business_date,
    order_key=lambda name, head: (name,),
    split=split_file,
    parse=parse_records,
    file_stats=FILE_STATS,
    file_checks=FILE_CHECKS,
    is_detail="is_detail",
    record_rules=RECORD_RULES,
    mapping=MAPPING,
    # all nine fields, so a re-sent line differing only in MCC or AUTH_CODE is not identical
    identity="xxhash64(" + ", ".join(FIELDS) + ")",
    control_totals={
        "control_count": "try_cast(trl_count_raw AS BIGINT)",
        "control_debit_total": "sum_debit",
        "control_credit_total": "sum_credit",
        "control_net_total": _TRL_NET,
    },
    probe_bytes=0,
)
