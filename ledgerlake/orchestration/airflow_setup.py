"""Airflow set-up for ledgerlake: Spark connection, a pool per legacy feed, variables; and ``make airflow``.

    python -m ledgerlake.orchestration.airflow_setup                  # migrate the metadata DB, create/update the objects
    python -m ledgerlake.orchestration.airflow_setup --standalone     # the same, then `airflow standalone` with the DAGs

Idempotent. The connection always follows the given Spark master. Pools and variables
are created when missing; an existing one changes only when its value is given
explicitly (flag or environment), so what operators changed in the UI survives a rerun.
Airflow's own settings come from the environment (AIRFLOW_HOME, AIRFLOW__*); without
them the local defaults of ``make airflow`` apply (``<repo>/.airflow``, SQLite).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ledgerlake.config import default_warehouse
from ledgerlake.console import fail
from ledgerlake.orchestration.planning import (
    BATCH_SOURCES,
    DEFAULT_DRIVER_MEMORY,
    DEFAULT_POOL_SLOTS,
    DEFAULT_VACUUM_RETAIN_HOURS,
    EVENTS,
    REPO_ROOT,
    SPARK_CONN_ID,
    VAR_DRIVER_MEMORY,
    VAR_VACUUM_RETAIN_HOURS,
    landing_variable,
    pool_name,
)

DEFAULT_HOME = REPO_ROOT / ".airflow"
DEFAULT_PORT = 8080
ADMIN = "admin"


class SetupError(ValueError):
    """A set-up value is malformed."""


@dataclass
class Settings:
    """What the set-up creates; None means keep what exists (or the default when creating)."""

    spark_master: str = "local[*]"
    pool_slots: dict[str, int] = field(default_factory=dict)
    landing: dict[str, str] = field(default_factory=dict)
    driver_memory: str | None = None
    vacuum_retain_hours: int | None = None


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in values:
        for part in filter(None, (p.strip() for p in item.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise SetupError(f"{flag} expects FEED=VALUE, got {part!r}")
            out[key.strip()] = value.strip()
    return out


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from flags, then the LEDGERLAKE_* environment."""
    env = os.environ
    slots_raw = _pairs([env.get("LEDGERLAKE_POOL_SLOTS", ""), *args.pool_slots], "--pool-slots")
    slots = {}
    for source, value in slots_raw.items():
        if source not in BATCH_SOURCES:
            raise SetupError(f"--pool-slots: unknown feed {source!r}; feeds: {', '.join(BATCH_SOURCES)}")
        if not value.isdigit() or int(value) < 1:
            raise SetupError(f"--pool-slots {source}: slots must be a whole number >= 1, got {value!r}")
        slots[source] = int(value)
    landing = {}
    for source in (*BATCH_SOURCES, EVENTS):
        if (value := env.get(f"LEDGERLAKE_LANDING_{source.upper()}")) is not None:
            landing[source] = value
    for source, value in _pairs(args.landing, "--landing").items():
        if source not in (*BATCH_SOURCES, EVENTS):
            raise SetupError(f"--landing: unknown feed {source!r}; feeds: {', '.join((*BATCH_SOURCES, EVENTS))}")
        landing[source] = value
    landing = {s: (str(Path(p).expanduser().resolve()) if p else "") for s, p in landing.items()}
    retain = args.vacuum_retain_hours
    if retain is not None and retain < DEFAULT_VACUUM_RETAIN_HOURS:
        raise SetupError(f"--vacuum-retain-hours must be at least {DEFAULT_VACUUM_RETAIN_HOURS} "
                         "(readers and time travel of the last week rely on those files)")
    return Settings(
        spark_master=args.spark_master or env.get("LEDGERLAKE_SPARK_MASTER") or "local[*]",
        pool_slots=slots,
        landing=landing,
        driver_memory=args.driver_memory,
        vacuum_retain_hours=retain,
    )


def airflow_env(home: Path | str | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Airflow processes running the project's DAGs (local set-up; AIRFLOW__* given win)."""
    env = dict(os.environ if base is None else base)
    home = Path(home or env.get("AIRFLOW_HOME") or DEFAULT_HOME)
    bin_dir = str(Path(sys.executable).parent)
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__API__PORT": str(DEFAULT_PORT),
        "LEDGERLAKE_WAREHOUSE": default_warehouse(),
        # spark-submit and the Python it starts come from this virtualenv.
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    env["AIRFLOW_HOME"] = str(home)
    if bin_dir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def airflow_command(env: dict[str, str]) -> str:
    """The airflow executable of this Python installation (or the first on the PATH)."""
    beside = Path(sys.executable).parent / "airflow"
    return str(beside) if beside.exists() else (shutil.which("airflow", path=env.get("PATH")) or "airflow")


def migrate(env: dict[str, str]) -> None:
    """Create or upgrade Airflow's metadata database."""
    proc = subprocess.run([airflow_command(env), "db", "migrate"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError("airflow db migrate failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1])


def apply(settings: Settings) -> list[str]:
    """Create or update the connection, pools and variables; returns what was done, one line each."""
    # The metadata-database models, as the airflow CLI uses them (this is administration, not task code).
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    done: list[str] = []
    with create_session() as session:
        conn = session.scalar(select(Connection).where(Connection.conn_id == SPARK_CONN_ID))
        extra = json.dumps({"spark-binary": "spark-submit"})
        if conn is None:
            session.add(Connection(conn_id=SPARK_CONN_ID, conn_type="spark", host=settings.spark_master,
                                   extra=extra, description="Spark for the ledgerlake jobs (spark-submit)"))
            done.append(f"connection {SPARK_CONN_ID}: created, master {settings.spark_master}")
        elif conn.host != settings.spark_master or conn.conn_type != "spark" or conn.port is not None:
            conn.conn_type, conn.host, conn.port = "spark", settings.spark_master, None
            conn.set_extra(extra)
            done.append(f"connection {SPARK_CONN_ID}: master set to {settings.spark_master}")

        for source in BATCH_SOURCES:
            name = pool_name(source)
            existing = session.scalar(select(Pool).where(Pool.pool == name))
            wanted = settings.pool_slots.get(source)
            if existing is None or (wanted is not None and existing.slots != wanted):
                slots = wanted or DEFAULT_POOL_SLOTS
                Pool.create_or_update_pool(name, slots, f"concurrent loads reading the {source} feed",
                                           include_deferred=False, session=session)
                done.append(f"pool {name}: {slots} slot(s)")

        variables = {landing_variable(s): settings.landing.get(s) for s in (*BATCH_SOURCES, EVENTS)}
        variables[VAR_DRIVER_MEMORY] = settings.driver_memory
        variables[VAR_VACUUM_RETAIN_HOURS] = (str(settings.vacuum_retain_hours)
                                              if settings.vacuum_retain_hours is not None else None)
        defaults = {VAR_DRIVER_MEMORY: DEFAULT_DRIVER_MEMORY,
                    VAR_VACUUM_RETAIN_HOURS: str(DEFAULT_VACUUM_RETAIN_HOURS)}
        existing = {v.key: v.val for v in session.scalars(select(Variable).where(Variable.key.in_(list(variables))))}
        for key, value in variables.items():
            if key in existing and (value is None or existing[key] == value):
                continue
            value = value if value is not None else defaults.get(key, "")
            Variable.set(key, value, session=session)
            done.append(f"variable {key} = {value!r}")
    return done


def admin_password(home: Path) -> str:
    """The local admin's password: kept in Airflow's own passwords file, generated once."""
    path = home / "simple_auth_manager_passwords.json.generated"
    passwords = json.loads(path.read_text()) if path.is_file() and path.read_text().strip() else {}
    if ADMIN not in passwords:
        passwords[ADMIN] = secrets.token_urlsafe(12)
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(passwords) + "\n")
        path.chmod(0o600)
    return passwords[ADMIN]


def standalone(env: dict[str, str]) -> int:
    """Run `airflow standalone` and print the UI address and login once it answers."""
    home = Path(env["AIRFLOW_HOME"])
    password = admin_password(home)
    port = env.get("AIRFLOW__API__PORT", str(DEFAULT_PORT))
    url = f"http://localhost:{port}"
    proc = subprocess.Popen([airflow_command(env), "standalone"], env=env)
    # A SIGTERM to this launcher stops Airflow too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGINT))
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2):
                    break
            except OSError:
                time.sleep(2)
        if proc.poll() is None:
            print(f"\n  ledgerlake Airflow is up:  {url}   login: {ADMIN} / {password}\n"
                  f"  DAGs from {env['AIRFLOW__CORE__DAGS_FOLDER']}, lake {env['LEDGERLAKE_WAREHOUSE']}\n"
                  "  Ctrl-C stops it.\n", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ledgerlake.orchestration.airflow_setup",
        description="Create the Airflow connection, pools and variables of the ledgerlake DAGs (idempotent).",
    )
    parser.add_argument("--home", metavar="DIR", help=f"AIRFLOW_HOME (env AIRFLOW_HOME; default {DEFAULT_HOME})")
    parser.add_argument("--spark-master", metavar="URL",
                        help="master of the Spark connection (env LEDGERLAKE_SPARK_MASTER; default local[*])")
    parser.add_argument("--pool-slots", action="append", default=[], metavar="FEED=N",
                        help=f"slots of a feed's pool, repeatable (env LEDGERLAKE_POOL_SLOTS=a=1,b=2; "
                             f"default {DEFAULT_POOL_SLOTS} on creation)")
    parser.add_argument("--landing", action="append", default=[], metavar="FEED=PATH",
                        help="landing path of a feed, repeatable (env LEDGERLAKE_LANDING_<FEED>); "
                             "empty: the feed is skipped by the scheduled DAGs")
    parser.add_argument("--driver-memory", metavar="SIZE",
                        help=f"spark.driver.memory of the jobs (default {DEFAULT_DRIVER_MEMORY} on creation)")
    parser.add_argument("--vacuum-retain-hours", type=int, metavar="H",
                        help=f"VACUUM retention, at least {DEFAULT_VACUUM_RETAIN_HOURS} (the default)")
    parser.add_argument("--standalone", action="store_true",
                        help="then run `airflow standalone` and print the UI address and login")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except SetupError as exc:
        return fail("airflow-setup", str(exc))
    env = airflow_env(args.home)
    # Airflow reads its configuration when first imported: the environment must be in place before.
    os.environ.update(env)
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")   # this process: only our own lines
    try:
        migrate(env)
        for line in apply(settings):
            print(f"airflow set-up: {line}")
    except SetupError as exc:
        return fail("airflow-setup", str(exc), code=1)
    print(f"airflow set-up: ready (AIRFLOW_HOME {env['AIRFLOW_HOME']})")
    if args.standalone:
        return standalone(env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
