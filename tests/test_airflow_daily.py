"""Airflow runs the daily batch DAG (``airflow dags test``) twice for one business date; the tables are checked."""

from __future__ import annotations

import pytest

from tests.airflow_home import CB, CD, mark_missing_jobs
from tests.helpers import table_snapshot
from tests.legacy_files import card_line, cards_file, core_detail, core_file

pytestmark = pytest.mark.slow


def test_daily_batch_loads_the_business_date_and_a_rerun_changes_nothing(airflow, new_lake):

    daily = airflow.root / "daily"
    core_file(daily / "core", [core_detail(txn_id=CB(11), posting_date="20240305", value_date="20240305"),
                               core_detail(txn_id=CB(12), posting_date="20240305", value_date="20240305",
                                           currency="XYZ")], "20240305")
    core_file(daily / "core", [core_detail(txn_id=CB(13), posting_date="20240306", value_date="20240306")],
              "20240306")                                                   # the next day: not this run's
    cards_file(daily / "cards", [card_line(ref=CD(1), day="05/03/2024")], "20240305")
    cards_file(daily / "cards", [card_line(ref=CD(2), day="04/03/2024")], "20240304")   # the day before
    warehouse = airflow.root / "daily-lake"
    lake = new_lake(warehouse)
    # A run with logical date 2024-03-06 has the data interval [03-05, 03-06): business date 2024-03-05.
    args = ("2024-03-06", *mark_missing_jobs())

    first = airflow.dags_test("ledgerlake_daily_batch", *args, warehouse=warehouse)

    assert first.returncode == 0, (first.stdout + first.stderr)[-5000:]
    states = airflow.task_states("ledgerlake_daily_batch")
    assert {task: s[0] for (task, _), s in states.items()} == {
        "wait_for_core_banking": "success", "wait_for_cards": "success", "wait_for_core_banking_ebcdic": "skipped",
        "load_core_banking": "success", "load_cards": "success", "load_core_banking_ebcdic": "skipped",
        "roll_off": "success"}
    assert "--date 2024-03-05" in first.stdout + first.stderr
    assert sorted(r["txn_id"] for r in lake.read("silver.transactions").collect()) == [CB(11), CD(1)]
    assert sorted(r["source_file"] for r in lake.read("ops.load_ledger").collect()) == [
        "CARDS_20240305.csv", "CORE_TXN_20240305_000001.dat"]
    assert [r["reason"] for r in lake.read("ops.quarantine").collect()] == ["BAD_CURRENCY"]
    tables = ["silver.transactions", "serving.transactions_recent", "ops.load_ledger", "ops.quarantine"]
    before = {name: (table_snapshot(lake, name), lake.delta(name).history(1).first()["version"]) for name in tables}

    second = airflow.dags_test("ledgerlake_daily_batch", *args, warehouse=warehouse)

    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-5000:]
    assert log.count("0 loaded, 0 rejected, 1 skipped") == 2             # both feeds: the file is known
    after = {name: (table_snapshot(lake, name), lake.delta(name).history(1).first()["version"]) for name in tables}
    assert after == before                                                # same rows, not even a new commit


