"""How a legacy batch feed is declared: format, layout, file checks, record rules, mapping.

A new feed is a ``SourceSpec`` plus tests. Every check and rule is a Spark SQL
expression, so the same declaration drives the quarantine split and can be
read by data-quality tooling; nothing is evaluated row by row in Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

MIN_DATE = "DATE'1900-01-01'"
MAX_DATE = "DATE'2099-12-31'"

CURRENCIES = ("USD", "EUR", "GBP", "INR", "JPY", "CHF", "AUD", "CAD", "SGD", "HKD",
              "CNY", "AED", "SAR", "ZAR", "SEK", "NOK", "DKK", "NZD")


def sql_in(values: tuple[str, ...]) -> str:
    """A SQL IN-list of string literals."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


@dataclass(frozen=True)
class FileCheck:
    """A file-level check: ``fails`` is a SQL condition over the file's statistics."""

    reason: str
    fails: str
    detail: str = "NULL"        # SQL string expression explaining the failure


@dataclass(frozen=True)
class RecordRule:
    """A record-level rule: ``valid`` is a SQL condition over the parsed record (NULL fails)."""

    reason: str
    valid: str
    description: str = ""


DUPLICATE_TXN_ID = "DUPLICATE_TXN_ID"


@dataclass(frozen=True)
class SourceSpec:
    """Declaration of one legacy batch feed."""

    name: str                                   # source id on the command line
    source_system: str                          # value of silver.transactions.source_system
    file_pattern: re.Pattern[str]               # base names of the feed's files
    describe_files: str                         # for messages, e.g. CORE_TXN_YYYYMMDD_NNNNNN.dat
    business_date: Callable[[str, bytes], date | None]   # (base name, first bytes) -> business date
    order_key: Callable[[str, bytes], tuple]    # tie-break among files of one business date
    records: Callable[[DataFrame], DataFrame]   # files(file_sha, content) -> one row per physical record
    file_stats: dict[str, str]                  # statistic -> SQL aggregate over a file's records
    file_checks: list[FileCheck]                # in the contract's order; first failing rejects the file
    is_detail: str                              # SQL condition selecting detail records
    record_rules: list[RecordRule]              # in the contract's order, DUPLICATE_TXN_ID excluded
    mapping: dict[str, str]                     # canonical column -> SQL expression
    identity: str                               # SQL expression: hash of the record's full raw content
    control_totals: dict[str, str] = field(default_factory=dict)  # ledger column -> SQL over stats
    probe_bytes: int = 256                      # how much of a file discovery reads for its date

    @property
    def reasons(self) -> list[str]:
        """Record-level reasons in the contract's order, duplicates last."""
        return [r.reason for r in self.record_rules] + [DUPLICATE_TXN_ID]


def valid_date(expr: str) -> str:
    """SQL: a parsed DATE inside the contract's range (NULL stays NULL, i.e. invalid)."""
    return f"({expr} BETWEEN {MIN_DATE} AND {MAX_DATE})"


def parse_yyyymmdd(expr: str) -> str:
    """SQL: an 8-digit YYYYMMDD text as a DATE, NULL when not a calendar date."""
    return f"(CASE WHEN {expr} RLIKE '^[0-9]{{8}}$' THEN try_to_date({expr}, 'yyyyMMdd') END)"
