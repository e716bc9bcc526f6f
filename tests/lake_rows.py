"""Build transaction rows inline and write them straight into a tier, for serving and layout tests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from ledgerlake.lake import Lake
from ledgerlake.query.reader import SERVING, SILVER
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


ACCOUNT, OTHER = "000123456789", "000987654321"
# today 2024-07-15 with a 3-month window: May, June, July come from serving, April and older from silver
TODAY, MONTHS = date(2024, 7, 15), 3
WINDOW = date(2024, 5, 1)
FIRST, LAST = date(2024, 2, 10), date(2024, 7, 10)
# the statement of ACCOUNT from FIRST to LAST over write_two_tiers
TWO_TIER_IDS = ["S-0210", "S-0315a", "S-0315b", "S-0430", "B-0501", "B-0615", "R-0620", "R-0710"]


def write_two_tiers(lake: Lake) -> None:
    """Silver holds the full history; serving holds the window, with newer versions of some rows."""
    write_rows(lake, SILVER, [
        txn("S-0209", ACCOUNT, "2024-02-09 23:59:59", "-1.00", description="day before the range"),
        txn("S-0210", ACCOUNT, "2024-02-10 00:00:00", "-2.00", description="first day of the range"),
        txn("S-0315b", ACCOUNT, "2024-03-15 09:00:00", "5.00", "USD", description="same instant, txn_id decides"),
        txn("S-0315a", ACCOUNT, "2024-03-15 09:00:00", "-3.00", description="same instant, txn_id decides"),
        txn("S-0430", ACCOUNT, "2024-04-30 23:59:59", "-4.00", description="last silver day"),
        txn("B-0501", ACCOUNT, "2024-05-01 00:00:00", "-5.00", description="silver copy, not shown"),
        txn("B-0615", ACCOUNT, "2024-06-15 12:00:00", "-6.00", description="silver copy, not shown"),
        txn("X-0301", OTHER, "2024-03-01 10:00:00", "-7.00", description="other account"),
    ])
    write_rows(lake, SERVING, [
        txn("R-0430", ACCOUNT, "2024-04-30 12:00:00", "-40.00", description="not rolled off yet, not shown"),
        txn("B-0501", ACCOUNT, "2024-05-01 00:00:00", "-5.50", description="first instant of the window"),
        txn("B-0615", ACCOUNT, "2024-06-15 12:00:00", "-6.50", description="corrected by the stream"),
        txn("R-0620", ACCOUNT, "2024-06-20 08:00:00", "100.00", "USD", description="salary"),
        txn("R-0710", ACCOUNT, "2024-07-10 23:59:59", "-8.00", description="last day of the range"),
        txn("R-0711", ACCOUNT, "2024-07-11 00:00:00", "-9.00", description="after the range"),
        txn("X-0601", OTHER, "2024-06-01 10:00:00", "-10.00", description="other account"),
    ])
