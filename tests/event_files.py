"""Hand-built events for the stream's rule tests, and helpers to apply them as micro-batches."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pyspark.sql import functions as F

from ledgerlake.lake import Lake
from ledgerlake.serving import ServingWindow, window_for
from warehouse.tables import SILVER_TRANSACTIONS

TODAY = date(2026, 11, 26)
WINDOW = window_for(TODAY, 6)          # 2026-06 .. 2026-11
APP_ID = "test-app"


def txn(n: int) -> str:
    return f"CB{n:018d}"


def posted(n: int, seq: int = 1, event_type: str = "TXN_POSTED", posted_at: str = "2026-10-05T10:00:00Z",
           amount: str = "10.00", event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    event = {
        "event_id": event_id or f"ev-{n}-{seq}",
        "event_type": event_type,
        "txn_id": txn(n),
        "sequence": seq,
        "account_no": "000000000042",
        "posted_at": posted_at,
        "value_date": posted_at[:10],
        "txn_code": "POS",
        "amount": amount,
        "currency": "EUR",
        "channel": "POS",
        "description": "Café Central",
        "balance_after": "100.00",
        "reversal_of": None,
        "emitted_at": "2026-10-05T10:00:01Z",
    }
    event.update(fields)
    return event


def cancelled(n: int, seq: int = 2, event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id or f"ev-{n}-{seq}-c", "event_type": "TXN_CANCELLED", "txn_id": txn(n),
            "sequence": seq, "emitted_at": "2026-10-06T10:00:00Z"}


def line(event: dict[str, Any] | str) -> str:
    return event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)


def files_frame(spark, files: dict[str, list[dict[str, Any] | str]], newline: str = "\n"):  # noqa: ANN001, ANN201
    """Landing files as the stream reads them: source_file, landed_at, content (bytes)."""
    rows = [(name, datetime(2026, 11, 26, 12, 0, i), (newline.join(line(e) for e in events) + newline).encode())
            for i, (name, events) in enumerate(files.items())]
    return spark.createDataFrame(rows, "source_file STRING, landed_at TIMESTAMP, content BINARY")


def apply(lake: Lake, batch_id: int, files: dict[str, list[dict[str, Any] | str]],
          window: ServingWindow = WINDOW, app_id: str = APP_ID):  # noqa: ANN201
    """Apply one micro-batch of landing files to the lake, as the stream's foreachBatch does."""
    from ledgerlake.load.microbatch import apply_batch

    return apply_batch(lake, files_frame(lake.spark, files), batch_id, app_id, window)


def rows(lake: Lake, table: str) -> dict[str, dict[str, Any]]:
    return {r["txn_id"]: r.asDict() for r in lake.read(table).collect()}


def state(lake: Lake) -> dict[str, dict[str, Any]]:
    from transforms.events import current_state

    return {r["txn_id"]: r.asDict() for r in lake.read("ops.stream_state").transform(current_state).collect()}


VOLATILE_COLUMNS = ("load_id", "ingested_at", "quarantined_at", "updated_at", "batch_id", "detected_at")
STREAM_TABLES = ("silver.transactions", "serving.transactions_recent", "ops.quarantine", "ops.parity")


def snapshot(lake: Lake) -> dict[str, list[tuple[str, ...]]]:
    """What the stream wrote, comparable across runs: sorted rows without run-specific columns.

    ops.stream_state is taken as it stands per txn_id, not as its log (how many versions
    the log holds depends on how the files fell into micro-batches).
    """
    from transforms.events import current_state

    out: dict[str, list[tuple[str, ...]]] = {}
    for name in STREAM_TABLES:
        df = lake.read(name)
        df = df.drop(*[c for c in VOLATILE_COLUMNS if c in df.columns])
        out[name] = sorted(tuple(str(v) for v in r) for r in df.collect())
    out["ops.stream_state"] = sorted(tuple(str(v) for v in r)
                                     for r in lake.read("ops.stream_state").transform(current_state).collect())
    return out


def versions(lake: Lake) -> dict[str, int]:
    return {t: lake.delta(t).history(1).first()["version"]
            for t in ("silver.transactions", "serving.transactions_recent", "ops.quarantine", "ops.parity",
                      "ops.stream_state")}


def write_landing(folder: Path, name: str, events: list[dict[str, Any] | str]) -> Path:
    from ledgerlake.samples.events import land_file

    return land_file(folder, name, [line(e) for e in events])


def batch_row(spark, n: int, amount: str, posting: str):  # noqa: ANN001, ANN201
    """A transaction loaded earlier from a core_banking batch file."""
    df = spark.createDataFrame(
        [(txn(n), "core_banking", "000000000042", date.fromisoformat(posting), "POS", Decimal(amount), "EUR", "POS",
          "CAFE CENTRAL", "CORE_TXN_20261005_000001.dat", 7)],
        "txn_id STRING, source_system STRING, account_id STRING, posting_date DATE, txn_code STRING, "
        "amount DECIMAL(18,2), currency STRING, channel STRING, description STRING, source_file STRING, record_no BIGINT",
    ).withColumns({
        "posted_at": F.to_timestamp(F.concat(F.col("posting_date").cast("string"), F.lit(" 10:00:00"))),
        "value_date": F.col("posting_date"), "balance_after": F.lit(None).cast("decimal(18,2)"),
        "reversal_of": F.lit(None).cast("string"), "record_hash": F.lit(123).cast("bigint"),
        "event_sequence": F.lit(None).cast("bigint"), "load_id": F.lit("backfill"),
        "ingested_at": F.current_timestamp(),
    })
    return df.select(*[c for c in SILVER_TRANSACTIONS.column_names() if c != "posting_month"])
