"""Build transaction rows inline and write them straight into a tier, for serving and layout tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ledgerlake.lake import Lake
from warehouse.tables import SILVER_TRANSACTIONS

# every column but the generated posting_month, which Delta computes on write
WRITE_COLUMNS = [c for c in SILVER_TRANSACTIONS.columns if c[0] != "posting_month"]
WRITE_SCHEMA = ", ".join(f"{name} {typ}" for name, typ, _ in WRITE_COLUMNS)


def txn(txn_id: str, account: str, posted_at: str, amount: str, currency: str = "EUR",
        description: str = "", source_system: str = "core_banking") -> tuple:
    """One row with silver's columns; posted_at is 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    at = datetime.fromisoformat(posted_at).replace(tzinfo=UTC)
    values = {
        "txn_id": txn_id, "source_system": source_system, "account_id": account, "posting_date": at.date(),
        "posted_at": at, "value_date": at.date(), "txn_code": "POS" if Decimal(amount) < 0 else "DEP",
        "amount": Decimal(amount), "currency": currency, "channel": "BRANCH", "description": description,
        "balance_after": None, "reversal_of": None, "source_file": "test", "record_no": 1, "record_hash": 1,
        "event_sequence": None, "load_id": "test", "ingested_at": datetime(2024, 1, 1, tzinfo=UTC),
    }
    return tuple(values[name] for name, _, _ in WRITE_COLUMNS)


def write_rows(lake: Lake, table: str, rows: list[tuple]) -> None:
    """Append the rows to the table in one commit (one file per Spark partition)."""
    df = lake.spark.createDataFrame(rows, WRITE_SCHEMA)
    df.write.format("delta").mode("append").save(lake.path(table))
