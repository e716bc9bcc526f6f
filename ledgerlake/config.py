"""Typed configuration shared by every command and job.

Precedence, highest first: command-line flags, environment variables, the
TOML file named by ``--config``/``LEDGERLAKE_CONFIG``, built-in defaults.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ledgerlake import objectstore

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SERVING_MONTHS = 6


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


def default_warehouse() -> str:
    """The embedded lake inside the repository's ``warehouse/`` folder."""
    return str(REPO_ROOT / "warehouse" / "lake")


@dataclass(frozen=True)
class LakeConfig:
    """Where the lake lives and how Spark is started."""

    warehouse: str = field(default_factory=default_warehouse)
    serving_months: int = DEFAULT_SERVING_MONTHS
    master: str | None = None
    spark_conf: dict[str, str] = field(default_factory=dict)
    today: date | None = None
    log_level: str = "INFO"
    object_store: bool = False      # the lake or the input is on S3: Spark gets the s3a connector

    def current_date(self) -> date:
        """Today as the jobs see it: injectable for tests and replays."""
        return self.today or date.today()


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every ledgerlake command accepts."""
    group = parser.add_argument_group("lake and engine")
    group.add_argument("--warehouse", metavar="PATH",
                       help="lake root (env LEDGERLAKE_WAREHOUSE; default: <repo>/warehouse/lake)")
    group.add_argument("--serving-months", type=int, metavar="N",
                       help=f"months in the serving tier (env LEDGERLAKE_SERVING_MONTHS; default {DEFAULT_SERVING_MONTHS})")
    group.add_argument("--master", metavar="URL",
                       help="Spark master (env LEDGERLAKE_SPARK_MASTER; default local[*])")
    group.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                       help="extra Spark setting, repeatable")
    group.add_argument("--config", metavar="FILE",
                       help="TOML file with [lake] and [spark] sections (env LEDGERLAKE_CONFIG)")
    group.add_argument("--today", metavar="YYYY-MM-DD",
                       help="pin the current date (env LEDGERLAKE_TODAY); for tests and replays")
    group.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING (default INFO)")


def _parse_conf_pairs(pairs: list[str]) -> dict[str, str]:
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conf expects KEY=VALUE, got {pair!r}")
        conf[key.strip()] = value.strip()
    return conf


def _read_file(path: str | None) -> dict:
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _positive_int(value: object, name: str) -> int:
    try:
        number = int(str(value))
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from exc
    if number < 1:
        raise ConfigError(f"{name} must be at least 1, got {number}")
    return number


def parse_iso_date(value: str, name: str) -> date:
    """A YYYY-MM-DD date, or a ConfigError naming the flag."""
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from exc


def config_from_args(args: argparse.Namespace) -> LakeConfig:
    """Build the configuration from parsed flags, the environment and the config file."""
    env = os.environ
    file_conf = _read_file(getattr(args, "config", None) or env.get("LEDGERLAKE_CONFIG"))
    lake_section = file_conf.get("lake", {})
    spark_section = file_conf.get("spark", {})

    warehouse = (getattr(args, "warehouse", None) or env.get("LEDGERLAKE_WAREHOUSE")
                 or lake_section.get("warehouse") or default_warehouse())
    months_raw = (getattr(args, "serving_months", None) or env.get("LEDGERLAKE_SERVING_MONTHS")
                  or lake_section.get("serving_months") or DEFAULT_SERVING_MONTHS)
    master = (getattr(args, "master", None) or env.get("LEDGERLAKE_SPARK_MASTER")
              or spark_section.get("master"))
    spark_conf = {str(k): str(v) for k, v in spark_section.get("conf", {}).items()}
    spark_conf.update(_parse_conf_pairs(getattr(args, "conf", None) or []))
    today_raw = getattr(args, "today", None) or env.get("LEDGERLAKE_TODAY") or lake_section.get("today")
    today = parse_iso_date(str(today_raw), "--today") if today_raw else None
    log_level = (getattr(args, "log_level", None) or env.get("LEDGERLAKE_LOG_LEVEL") or "INFO").upper()

    if "://" not in warehouse:
        warehouse = str(Path(warehouse).expanduser().resolve())
    warehouse = objectstore.to_s3a(warehouse)      # s3:// spelt as Spark and Delta read it
    object_store = any(objectstore.is_s3(str(uri or "")) for uri in (warehouse, getattr(args, "input", None)))
    return LakeConfig(
        warehouse=warehouse.rstrip("/"),
        serving_months=_positive_int(months_raw, "--serving-months"),
        master=master,
        spark_conf=spark_conf,
        today=today,
        log_level=log_level,
        object_store=object_store,
    )
