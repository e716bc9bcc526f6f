"""Every lake table as code: schema, partitioning and properties in one place per table.

Tables live at ``<lake root>/<schema>/<table>`` and are registered by location in
each process's session catalog (no shared metastore needed), so ``silver.transactions``
resolves from every process, including several at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TXN_COLUMNS: list[tuple[str, str, bool]] = [
    # (name, Spark SQL type, nullable) -- the lake contract's columns, in contract order
    ("txn_id", "STRING", False),
    ("source_system", "STRING", False),
    ("account_id", "STRING", False),
    ("posting_date", "DATE", False),
    ("posted_at", "TIMESTAMP", True),
    ("value_date", "DATE", True),
    ("txn_code", "STRING", True),
    ("amount", "DECIMAL(18,2)", False),
    ("currency", "STRING", True),
    ("channel", "STRING", True),
    ("description", "STRING", True),
    ("balance_after", "DECIMAL(18,2)", True),
    ("reversal_of", "STRING", True),
]

LINEAGE_COLUMNS: list[tuple[str, str, bool]] = [
    ("source_file", "STRING", True),       # base name of the batch file or landing file
    ("record_no", "BIGINT", True),         # 1-based physical record / line number in it
    # 64-bit xxHash of the raw record (all nine fields for cards): tells an identical re-send from a
    # changed one with the same txn_id; a collision would need two versions of one txn_id (p ~ 2^-64).
    ("record_hash", "BIGINT", True),
    ("event_sequence", "BIGINT", True),    # sequence of the streamed version; null for batch rows
    ("load_id", "STRING", True),
    ("ingested_at", "TIMESTAMP", True),
]

CONTRACT_COLUMN_NAMES = [name for name, _, _ in TXN_COLUMNS]
MONTH_EXPR = "date_format(posting_date, 'yyyy-MM')"


@dataclass(frozen=True)
class TableDef:
    """A Delta table of the lake."""

    name: str                                   # qualified name users query, e.g. silver.transactions
    columns: list[tuple[str, str, bool]]
    partitioned_by: list[str] = field(default_factory=list)
    generated: dict[str, str] = field(default_factory=dict)   # column -> generation expression
    properties: dict[str, str] = field(default_factory=dict)
    comment: str = ""

    @property
    def schema_name(self) -> str:
        return self.name.split(".")[0]

    @property
    def relative_path(self) -> str:
        return self.name.replace(".", "/")

    def column_names(self) -> list[str]:
        return [name for name, _, _ in self.columns]


_TXN_PROPS = {
    # min/max statistics only where lookups filter: cheaper writes, same file skipping
    "delta.dataSkippingStatsColumns": "txn_id,source_system,account_id,posting_date,posted_at,source_file,load_id",
    # A MERGE that replaces a few rows marks them deleted instead of rewriting their whole file:
    # the stream's corrections would otherwise copy the month's streamed rows on every micro-batch.
    # OPTIMIZE (the backfill's layout, maintain --optimize) rewrites the marked files.
    "delta.enableDeletionVectors": "true",
}

SILVER_TRANSACTIONS = TableDef(
    name="silver.transactions",
    columns=TXN_COLUMNS + LINEAGE_COLUMNS + [("posting_month", "STRING", False)],
    partitioned_by=["posting_month"],
    generated={"posting_month": MONTH_EXPR},
    properties=_TXN_PROPS,
    comment="Every accepted transaction, full history, one row per txn_id; partitioned by posting month.",
)

SERVING_TRANSACTIONS = TableDef(
    name="serving.transactions_recent",
    columns=TXN_COLUMNS + LINEAGE_COLUMNS + [("posting_month", "STRING", False)],
    partitioned_by=["posting_month"],
    generated={"posting_month": MONTH_EXPR},
    properties=_TXN_PROPS,
    comment="Transactions of the most recent N calendar months, kept current by the stream.",
)

LOAD_LEDGER = TableDef(
    name="ops.load_ledger",
    columns=[
        ("load_id", "STRING", False),
        ("source_system", "STRING", False),
        ("source_file", "STRING", False),
        ("source_path", "STRING", True),
        ("sha256", "STRING", False),
        ("business_date", "DATE", True),
        ("status", "STRING", False),           # LOADED | REJECTED | SKIPPED
        ("reason", "STRING", True),            # reject reason code, null unless REJECTED
        ("reason_detail", "STRING", True),     # human-readable explanation of the reason
        ("records_in", "BIGINT", True),
        ("records_accepted", "BIGINT", True),
        ("records_quarantined", "BIGINT", True),
        ("rows_inserted", "BIGINT", True),     # accepted rows that were new to silver
        ("control_count", "BIGINT", True),
        ("control_debit_total", "DECIMAL(20,2)", True),
        ("control_credit_total", "DECIMAL(20,2)", True),
        ("control_net_total", "DECIMAL(20,2)", True),
        ("file_size", "BIGINT", True),
        ("processed_at", "TIMESTAMP", False),
    ],
    comment="One row per batch file processed: status, reason and record counts.",
)

QUARANTINE = TableDef(
    name="ops.quarantine",
    columns=[
        ("source_system", "STRING", False),
        ("source_file", "STRING", False),
        ("source_sha256", "STRING", True),
        ("record_no", "BIGINT", False),
        ("reason", "STRING", False),
        ("raw_record", "STRING", True),
        ("txn_id", "STRING", True),
        ("load_id", "STRING", True),
        ("quarantined_at", "TIMESTAMP", False),
    ],
    comment="Records that failed validation, with the first failing reason and their raw text.",
)

PARITY = TableDef(
    name="ops.parity",
    columns=[
        ("txn_id", "STRING", False),
        ("field", "STRING", False),            # contract column that differs, e.g. amount
        ("streamed_value", "STRING", True),    # as text; NULL when the streamed version has none
        ("batch_value", "STRING", True),       # as text, from the batch file (the book of record)
        ("streamed_sequence", "BIGINT", True),  # sequence of the streamed version compared
        ("batch_source_file", "STRING", True),
        ("detected_by", "STRING", False),      # stream (a late event) | backfill (the batch replaced it)
        ("load_id", "STRING", True),
        ("detected_at", "TIMESTAMP", False),
    ],
    comment="Batch-vs-stream differences: one row per txn_id and contract field that differ.",
)

STREAM_STATE = TableDef(
    name="ops.stream_state",
    columns=[
        ("txn_id", "STRING", False),
        ("sequence", "BIGINT", False),         # sequence of the event this version records
        # LIVE: the stream owns the row in silver (at posting_month); CANCELLED: a tombstone;
        # BATCH: a batch file loaded the txn_id, events no longer change it
        ("status", "STRING", False),
        ("posting_month", "STRING", True),     # where the row lives in silver; NULL for tombstones
        ("event_id", "STRING", True),
        ("event_type", "STRING", True),
        ("batch_id", "BIGINT", True),          # micro-batch that wrote this state
        ("updated_at", "TIMESTAMP", False),
    ],
    properties={"delta.dataSkippingStatsColumns": "txn_id,status,posting_month"},
    comment="Append-only log of streamed txn_id versions: the highest sequence per txn_id is its state "
            "(LIVE, CANCELLED = tombstone, BATCH = the batch file owns it).",
)

DQ_RESULTS = TableDef(
    name="ops.dq_results",
    columns=[
        ("run_id", "STRING", False),           # the job run (a backfill's load_id)
        ("batch_id", "STRING", True),          # the audited batch (a backfill's Delta transaction id)
        ("suite", "STRING", False),            # expectations/suites/<suite>.yml
        ("expectation", "STRING", False),      # e.g. required_not_null[txn_id], record_rule[BAD_CURRENCY]
        ("expectation_type", "STRING", True),  # the Great Expectations expectation that judged it
        ("severity", "STRING", False),         # critical | warning
        ("success", "BOOLEAN", False),
        ("observed_value", "STRING", True),
        ("threshold", "STRING", True),
        ("details", "STRING", True),           # example record, largest value, the counts behind a share
        ("source_system", "STRING", True),
        ("source_file", "STRING", True),       # set for file-level expectations
        ("scope", "STRING", False),            # file | month
        ("scope_value", "STRING", True),       # the file's base name or the posting month
        ("table_name", "STRING", True),        # the table the audited publish targets
        ("publish_blocked", "BOOLEAN", False), # the gate blocked this batch's publish
        ("checked_at", "TIMESTAMP", False),
    ],
    comment="Data-quality results: one row per expectation per file or month of every audited publish.",
)

ALL_TABLES: dict[str, TableDef] = {
    t.name: t for t in (SILVER_TRANSACTIONS, SERVING_TRANSACTIONS, LOAD_LEDGER, QUARANTINE, PARITY, STREAM_STATE,
                        DQ_RESULTS)
}
