"""Exit statuses that tell the scheduler the truth: 2 for input no retry can fix, 3 for what a retry can."""

from __future__ import annotations

import pytest

from ledgerlake.console import BAD_INPUT, TRANSIENT, BadInput, exit_statuses
from tests.helpers import ledger, silver
from tests.legacy_files import core_detail, core_file

READ_ONLY = [
    ["reconcile"],
    ["sql", "SELECT count(*) FROM silver.transactions"],
    ["statement", "--account", "000000000001", "--from", "2024-01-01", "--to", "2024-12-31"],
    ["maintain", "--vacuum"],
    ["dq", "audit-serving"],
]


@pytest.mark.parametrize("command", READ_ONLY, ids=[c[0] for c in READ_ONLY])
def test_a_folder_without_a_lake_is_bad_input_and_stays_empty(tmp_path, command, ledgerlake_cli, monkeypatch):
    empty = tmp_path / "mount"
    empty.mkdir()                                        # an existing folder: an unmounted volume, a wrong path
    monkeypatch.setenv("LEDGERLAKE_WAREHOUSE", str(empty))
    proc = ledgerlake_cli(*command)
    assert proc.returncode == BAD_INPUT, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"ledgerlake {command[0]}: error: no lake at {empty}")
    assert list(empty.iterdir()) == []


def test_only_the_loads_create_a_lake_and_say_so(tmp_path, ledgerlake_cli, monkeypatch):
    core_file(tmp_path / "in", [core_detail()])
    monkeypatch.setenv("LEDGERLAKE_WAREHOUSE", str(tmp_path / "lake"))
    proc = ledgerlake_cli("backfill", "--source", "core_banking", "--input", str(tmp_path / "in"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0] == f"ledgerlake: no lake at {tmp_path / 'lake'}: creating a new one"
    again = ledgerlake_cli("backfill", "--source", "core_banking", "--input", str(tmp_path / "in"))
    assert again.returncode == 0 and "creating" not in again.stderr


def test_a_failure_a_retry_can_fix_exits_3_and_the_rerun_loads_once(tmp_path, new_lake, ledgerlake_cli, monkeypatch):
    from ledgerlake.load import sinks

    lake = new_lake(tmp_path / "lake")
    core_file(tmp_path / "in", [core_detail("CB000000000000000001"), core_detail("CB000000000000000002")])
    monkeypatch.setenv("LEDGERLAKE_WAREHOUSE", lake.root)
    write_silver = sinks.write_silver

    def conflicts_outlived_their_retries(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("[DELTA_CONCURRENT_APPEND] ConcurrentAppendException: files were added by a concurrent "
                           "update\nat org.apache.spark...")

    monkeypatch.setattr(sinks, "write_silver", conflicts_outlived_their_retries)
    failed = ledgerlake_cli("backfill", "--source", "core_banking", "--input", str(tmp_path / "in"))
    assert failed.returncode == TRANSIENT
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("ledgerlake backfill: error: RuntimeError: [DELTA_CONCURRENT_APPEND]")
    assert last.endswith("(transient failure: safe to retry)")
    assert ledger(lake) == {} and silver(lake) == {}

    monkeypatch.setattr(sinks, "write_silver", write_silver)
    rerun = ledgerlake_cli("backfill", "--source", "core_banking", "--input", str(tmp_path / "in"))
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(silver(lake)) == ["CB000000000000000001", "CB000000000000000002"]
    assert [e["status"] for e in ledger(lake).values()] == ["LOADED"]


def test_the_decorator_maps_what_main_raises():
    @exit_statuses("demo")
    def main(argv: list[str] | None = None) -> int:
        if argv == ["bad"]:
            raise BadInput("no such thing")
        if argv == ["boom"]:
            raise OSError("disk went away")
        return 1

    assert (main(["bad"]), main(["boom"]), main([])) == (BAD_INPUT, TRANSIENT, 1)
