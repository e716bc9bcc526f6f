"""What the DAGs check and plan before any Spark work, the set-up's settings, and the job operator's exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

import pytest

from ledgerlake.orchestration.airflow_setup import SetupError, airflow_env, build_parser, settings_from_args
from ledgerlake.orchestration.planning import ParamsError, files_for_day, parse_business_date, plan_backfill
from tests.legacy_files import card_line, cards_file, core_detail, core_file


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    core = tmp_path / "core"
    core_file(core, [core_detail()], "20240115")
    core_file(core, [core_detail()], "20240115", seq="000002")
    core_file(core / "2024" / "03", [core_detail()], "20240302")      # searched recursively
    (core / "CORE_TXN_garbage_000001.dat").write_text("not a header\n")  # no business date
    cards_file(tmp_path / "cards", [card_line()], "20240302")
    return tmp_path


def test_plan_lists_one_job_per_month_with_files(landing):
    core = str(landing / "core")
    assert plan_backfill("core_banking", core, None, None) == [
        ["--source", "core_banking", "--input", core, "--from", "2024-01", "--to", "2024-01"],
        ["--source", "core_banking", "--input", core, "--from", "2024-03", "--to", "2024-03"],
    ]
    assert [job[-1] for job in plan_backfill("core_banking", core, "2024-02", "2024-12")] == ["2024-03"]
    assert [job[-1] for job in plan_backfill("core_banking", core, None, "2024-01")] == ["2024-01"]


@pytest.mark.parametrize("source,input_path,start,end,message", [
    ("mainframe_x", "{core}", None, None, "unknown source 'mainframe_x'; known batch sources: cards, core_banking"),
    (None, "{core}", None, None, "unknown source ''"),
    ("core_banking", "{core}", "2024-13", None, "'from' must be a month YYYY-MM, got '2024-13'"),
    ("core_banking", "{core}", "2024-01", "24-02", "'to' must be a month YYYY-MM, got '24-02'"),
    ("core_banking", "{core}", "2024-05", "2024-02", "'from' 2024-05 is after 'to' 2024-02"),
    ("core_banking", None, None, None, "param 'input' is required"),
    ("core_banking", "", None, None, "param 'input' is required"),
    ("core_banking", "/no/such/dir", None, None, "input path does not exist: /no/such/dir"),
    ("cards", "{core}", None, None, "no cards files for all months under"),
    ("core_banking", "{core}", "2025-01", "2025-12", "no core_banking files for 2025-01 to 2025-12 under"),
])
def test_bad_params_are_refused_with_the_reason(landing, source, input_path, start, end, message):
    path = input_path.format(core=landing / "core") if input_path else input_path
    with pytest.raises(ParamsError) as err:
        plan_backfill(source, path, start, end)
    assert message in str(err.value)


def test_files_of_one_business_date(landing):
    core = str(landing / "core")
    assert [Path(p).name for p in files_for_day("core_banking", core, date(2024, 1, 15))] == [
        "CORE_TXN_20240115_000001.dat", "CORE_TXN_20240115_000002.dat"]
    assert files_for_day("core_banking", core, date(2024, 1, 16)) == []
    with pytest.raises(ParamsError, match="landing path of cards does not exist"):
        files_for_day("cards", str(landing / "nowhere"), date(2024, 1, 16))


@pytest.mark.parametrize("value,expected", [("2024-03-05", date(2024, 3, 5)), (" 2024-03-05 ", date(2024, 3, 5))])
def test_business_date(value, expected):
    assert parse_business_date(value) == expected


@pytest.mark.parametrize("value", ["2024-13-01", "05/03/2024", "", "None"])
def test_bad_business_date(value):
    with pytest.raises(ParamsError, match="business_date must be a date YYYY-MM-DD"):
        parse_business_date(value)


def setup_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_setup_settings_from_flags_and_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LEDGERLAKE_POOL_SLOTS", "core_banking=3, cards=2")
    monkeypatch.setenv("LEDGERLAKE_LANDING_EVENTS", str(tmp_path / "events"))
    settings = settings_from_args(setup_args("--pool-slots", "cards=4", "--landing", f"cards={tmp_path}/c",
                                             "--spark-master", "spark://m:7077"))
    assert settings.pool_slots == {"core_banking": 3, "cards": 4}         # the flag wins over the environment
    assert settings.landing == {"events": str(tmp_path / "events"), "cards": str(tmp_path / "c")}
    assert settings.spark_master == "spark://m:7077"
    assert settings.driver_memory is None and settings.vacuum_retain_hours is None   # keep what exists


@pytest.mark.parametrize("argv,message", [
    (["--pool-slots", "mainframe=2"], "unknown feed 'mainframe'"),
    (["--pool-slots", "cards=0"], "slots must be a whole number >= 1"),
    (["--pool-slots", "cards"], "expects FEED=VALUE"),
    (["--landing", "nope=/x"], "unknown feed 'nope'"),
    (["--vacuum-retain-hours", "24"], "must be at least 168"),
])
def test_setup_refuses_bad_settings(monkeypatch, argv, message):
    monkeypatch.delenv("LEDGERLAKE_POOL_SLOTS", raising=False)
    with pytest.raises(SetupError, match=message):
        settings_from_args(setup_args(*argv))


def test_airflow_env_points_at_the_projects_dags_and_virtualenv(tmp_path):
    env = airflow_env(tmp_path, base={"PATH": "/usr/bin", "AIRFLOW__CORE__LOAD_EXAMPLES": "True"})
    repo = Path(__file__).resolve().parents[1]
    assert env["AIRFLOW_HOME"] == str(tmp_path)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(repo / "dags")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "True"                  # what the caller set wins
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)   # spark-submit of the venv
    assert (Path(env["PATH"].split(os.pathsep)[0]) / "spark-submit").exists()


@pytest.mark.slow
def test_job_operator_fails_final_exit_codes_without_retry(tmp_path, monkeypatch):
    """Exit 1 and 2 of a job mean data or input problems: AirflowFailException (no retry); others retry."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIRFLOW_CONN_LEDGERLAKE_SPARK", '{"conn_type": "spark", "host": "local[1]"}')
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from ledgerlake.orchestration.operator import LedgerlakeJob

    job = tmp_path / "job.py"
    job.write_text("import sys\nprint('report of the job')\nsys.exit(int(sys.argv[1]))\n")

    def run(code: int) -> LedgerlakeJob:
        op = LedgerlakeJob(task_id=f"exit_{code}", job="reconcile", application=str(job),
                           application_args=[str(code)], conf={})
        op.execute({})
        return op

    assert run(0).application == str(job)
    with pytest.raises(AirflowFailException, match="ledgerlake reconcile exited with status 1: .*not retried"):
        run(1)
    with pytest.raises(AirflowFailException, match="status 2: bad input"):
        run(2)
    with pytest.raises(AirflowException) as err:
        run(3)
    assert not isinstance(err.value, AirflowFailException) and "Error code is: 3" in str(err.value)
