"""Never lose or duplicate a transaction: crashes mid-run, batches, month ranges and reruns."""

from __future__ import annotations

import pytest

from ledgerlake.samples.legacy import generate
from tests.helpers import backfill, ledger, table_snapshot

VOLATILE = ("load_id", "ingested_at", "processed_at", "quarantined_at")
TABLES = ("silver.transactions", "ops.quarantine", "ops.load_ledger")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("idem")
    manifest = generate(root / "core", source="core_banking", start="2024-01-28", days=8, records_per_day=25,
                        accounts=20, seed=3, record_errors=True, file_errors=("CONTROL_COUNT_MISMATCH",))
    return root / "core", manifest


BATCH_BYTES = 24_000      # four of the eight files per batch: two batches, so a crash can fall between them


@pytest.fixture(scope="module")
def clean(files, new_lake, tmp_path_factory):
    """The files loaded without a crash: the lake and the run's result."""
    lake = new_lake(tmp_path_factory.mktemp("clean") / "lake")
    return lake, backfill(lake, "core_banking", files[0], batch_bytes=BATCH_BYTES)


def snapshot(lake):
    return {t: table_snapshot(lake, t, VOLATILE) for t in TABLES}


def test_generated_files_load_as_their_manifest_says(clean, files):
    _, manifest = files
    lake, result = clean
    assert result.count("LOADED") + result.count("REJECTED") == len(manifest.files)
    got = ledger(lake)
    for f in manifest.files:
        entry = got[f.name]
        if f.rejected:
            assert (entry["status"], entry["reason"]) == ("REJECTED", f.rejected)
        else:
            assert (entry["records_in"], entry["records_accepted"], entry["records_quarantined"],
                    entry["rows_inserted"]) == (f.records_in, f.accepted, sum(f.quarantined.values()), f.new_rows)
    assert lake.read("silver.transactions").count() == manifest.silver_rows
    assert result.exit_code == 1


# In the second of two batches (every commit boundary of one batch: tests/test_crash_boundaries.py).
# record_results: after the silver commit, before the ledger row (the rerun records the rows that
# load inserted); record_files: after the ledger row, before the next batch.
@pytest.mark.parametrize("crash_in", ["record_results", "record_files"])
def test_crash_mid_run_then_rerun_equals_clean_run(spark, tmp_path, files, clean, monkeypatch, crash_in, new_lake):
    import expectations.gate
    from ledgerlake.load import sinks

    ledger_module = expectations.gate if crash_in == "record_results" else sinks
    folder, _ = files
    expected = snapshot(clean[0])

    crashed = new_lake(tmp_path / "crashed")
    real = getattr(ledger_module, crash_in)
    calls = {"n": 0}

    def crash_on_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            if crash_in == "record_files":
                real(*args, **kwargs)  # the data is committed, the process dies before the ledger
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(ledger_module, crash_in, crash_on_second_batch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        backfill(crashed, "core_banking", folder, batch_bytes=BATCH_BYTES)
    monkeypatch.setattr(ledger_module, crash_in, real)

    backfill(crashed, "core_banking", folder, batch_bytes=BATCH_BYTES)

    assert snapshot(crashed) == expected


def test_month_ranges_in_any_order_give_the_full_load(spark, tmp_path, files, clean, new_lake):

    folder, _ = files
    whole = clean[0]
    split = new_lake(tmp_path / "split")
    feb = backfill(split, "core_banking", folder, "2024-02", "2024-02")
    jan = backfill(split, "core_banking", folder, "2024-01", "2024-01")

    assert feb.out_of_range > 0 and jan.out_of_range > 0
    silver = lambda lake: table_snapshot(lake, "silver.transactions", VOLATILE)  # noqa: E731
    assert len(silver(split)) == len(silver(whole))
    assert {r[0] for r in silver(split)} == {r[0] for r in silver(whole)}
