"""Exactly once across crashes: the stream SIGKILLed at random moments while files land ends as a clean run."""

from __future__ import annotations

import pytest

from ledgerlake.samples.events import land_file


@pytest.mark.slow
def test_sigkill_at_random_moments_then_restart_equals_an_uninterrupted_run(spark, tmp_path, new_lake):
    from bench.stream_kill import check_outcome, crash_run, plan_zone
    from ledgerlake.lake import Lake
    from tests.event_files import snapshot as stream_snapshot
    from tests.test_stream import stream_available_now

    outcome, contents = plan_zone(files=16, events_per_file=30, seed=5)
    new_lake(tmp_path / "crashed" / "lake")          # the stream's first run finds the tables in place
    run = crash_run(tmp_path / "crashed", contents, outcome.files, kills=3, seed=5, interval=1.0)
    assert run.final_exit == 0
    assert len(run.kills) == 3

    for name, lines in zip(outcome.files, contents, strict=True):
        land_file(tmp_path / "clean" / "landing", name, lines)
    clean = new_lake(tmp_path / "clean" / "lake")
    stream_available_now(clean, tmp_path / "clean" / "landing", max_files=1000)   # one uninterrupted run

    crashed_root = str(tmp_path / "crashed" / "lake")
    assert stream_snapshot(Lake(spark, crashed_root)) == stream_snapshot(clean)
    assert check_outcome(spark, crashed_root, outcome) == []
