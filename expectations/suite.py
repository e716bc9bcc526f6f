"""Suite files: what each expectation checks, its severity and thresholds, validated at start-up.

A suite is a YAML file in ``expectations/suites/`` (versioned with the code). Each
expectation names a *check* from :data:`CHECKS` (the measurement the gate knows how to
compute in its aggregation passes), a severity (``critical`` blocks the publish,
``warning`` is recorded for a human look) and the check's parameters. Loading a suite
needs neither Spark nor Great Expectations, so a broken suite stops a job before any
data is read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from warehouse.tables import SERVING_TRANSACTIONS, SILVER_TRANSACTIONS, TXN_COLUMNS, TableDef

SUITES_DIR = Path(__file__).resolve().parent / "suites"
CRITICAL = "critical"
WARNING = "warning"
SEVERITIES = (CRITICAL, WARNING)

BATCH = "batch"   # target of the suite that audits a parsed legacy batch before its publish

# Columns a suite may name, per target: the classified records of a batch carry the
# contract's columns plus their lineage; the tables carry their own schema.
BATCH_COLUMNS = [name for name, _, _ in TXN_COLUMNS] + ["source_file", "record_no", "record_hash"]
TABLES: dict[str, TableDef] = {t.name: t for t in (SILVER_TRANSACTIONS, SERVING_TRANSACTIONS)}

# The suites the framework runs, by name; each file is <name>.yml in the suites folder.
LEGACY_BATCH = "legacy_batch"
SILVER_SUITE = "silver_transactions"
SERVING_SUITE = "serving_transactions"
SUITE_TARGETS = {LEGACY_BATCH: BATCH, SILVER_SUITE: SILVER_TRANSACTIONS.name,
                 SERVING_SUITE: SERVING_TRANSACTIONS.name}


class SuiteError(ValueError):
    """A suite file is missing, does not parse, or declares something the gate cannot check."""


@dataclass(frozen=True)
class Param:
    """A parameter of a check: its type, whether it must be given, and its default."""

    kind: str                  # column | columns | amount | days | share | factor
    required: bool = True
    default: Any = None


@dataclass(frozen=True)
class Check:
    """A measurement the gate computes and hands to Great Expectations."""

    name: str
    targets: frozenset[str]    # BATCH and/or "table"
    params: dict[str, Param]
    summary: str


_TABLE = "table"
CHECKS: dict[str, Check] = {c.name: c for c in (
    Check("reconciled", frozenset({BATCH}), {},
          "accepted + quarantined records equal the file's records in"),
    Check("verdict_consistent", frozenset({BATCH}), {},
          "accepted records have no reason, quarantined records have one"),
    Check("not_null", frozenset({BATCH, _TABLE}), {"columns": Param("columns")},
          "no NULL in the columns (accepted records / table rows)"),
    Check("max_abs", frozenset({BATCH, _TABLE}), {"column": Param("column"), "max": Param("amount")},
          "no absolute value above max"),
    Check("record_rules", frozenset({BATCH}), {},
          "no accepted record breaks a record rule of its feed (one expectation per rule)"),
    Check("days_from_business_date", frozenset({BATCH}), {"column": Param("column"), "max_days": Param("days")},
          "the date lies at most max_days from the file's business date"),
    Check("quarantine_share", frozenset({BATCH}), {"max_share": Param("share")},
          "at most this share of a file's records is quarantined"),
    Check("daily_volume", frozenset({BATCH}),
          {"max_factor": Param("factor"), "window_days": Param("days", False, 28),
           "min_history_days": Param("days", False, 5)},
          "a business day's records stay within max_factor of the source's recent daily average"),
    Check("unique", frozenset({_TABLE}), {"column": Param("column")},
          "no value occurs twice in the touched months (prospective state)"),
    Check("matches_partition", frozenset({_TABLE}), {"column": Param("column")},
          "the partition column equals its generation expression"),
    Check("serving_window", frozenset({_TABLE}), {"column": Param("column")},
          "the date lies in the serving window (the last N calendar months)"),
)}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_DECL_KEYS = {"name", "check", "severity", "description"}
_SUITE_KEYS = {"suite", "target", "description", "expectations"}


@dataclass(frozen=True)
class Declaration:
    """One expectation as written in a suite file (before expansion per column or rule)."""

    name: str
    check: str
    severity: str
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class SuiteFile:
    """A parsed, validated suite file."""

    name: str
    target: str                 # BATCH or a table name
    path: Path
    declarations: list[Declaration]
    description: str = ""

    @property
    def table(self) -> TableDef | None:
        return TABLES.get(self.target)


def default_suites_dir() -> Path:
    """The suites folder: LEDGERLAKE_EXPECTATIONS if set, else the one shipped in expectations/suites."""
    return Path(os.environ.get("LEDGERLAKE_EXPECTATIONS") or SUITES_DIR)


def load_suite(name: str, suites_dir: Path | str | None = None) -> SuiteFile:
    """Read and validate ``<suites_dir>/<name>.yml``; any problem is a SuiteError naming file and entry."""
    import yaml

    folder = Path(suites_dir) if suites_dir is not None else default_suites_dir()
    path = folder / f"{name}.yml"
    if not path.is_file():
        raise SuiteError(f"suite file not found: {path}")
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuiteError(f"{path}: not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read: {exc}") from None
    return parse_suite(doc, path, expected_name=name)


def _loader() -> type:
    """A YAML SafeLoader that reads decimal numbers exactly (9999999999999999.99 stays itself)."""
    import yaml

    class ExactLoader(yaml.SafeLoader):
        pass

    def exact(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | float:
        text = loader.construct_scalar(node).replace("_", "")
        try:
            return Decimal(text)
        except InvalidOperation:     # .inf, .nan
            return float(loader.construct_yaml_float(node))

    ExactLoader.add_constructor("tag:yaml.org,2002:float", exact)
    return ExactLoader


def parse_suite(doc: Any, path: Path, expected_name: str | None = None) -> SuiteFile:
    """Validate a parsed suite document."""
    if not isinstance(doc, dict):
        raise SuiteError(f"{path}: expected a mapping with keys {', '.join(sorted(_SUITE_KEYS))}")
    unknown = set(doc) - _SUITE_KEYS
    if unknown:
        raise SuiteError(f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                         f"allowed: {', '.join(sorted(_SUITE_KEYS))}")
    name = doc.get("suite")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SuiteError(f"{path}: 'suite' must be a lower-case name, got {name!r}")
    if expected_name is not None and name != expected_name:
        raise SuiteError(f"{path}: declares suite {name!r}, expected {expected_name!r}")
    target = doc.get("target")
    if target != BATCH and target not in TABLES:
        raise SuiteError(f"{path}: 'target' must be one of {', '.join([BATCH, *TABLES])}, got {target!r}")
    if expected_name in SUITE_TARGETS and target != SUITE_TARGETS[expected_name]:
        raise SuiteError(f"{path}: suite {name} must target {SUITE_TARGETS[expected_name]}, got {target!r}")
    entries = doc.get("expectations")
    if not isinstance(entries, list) or not entries:
        raise SuiteError(f"{path}: 'expectations' must be a non-empty list")
    columns = BATCH_COLUMNS if target == BATCH else TABLES[target].column_names()
    declarations: list[Declaration] = []
    for i, entry in enumerate(entries, start=1):
        decl = _parse_declaration(entry, f"{path}: expectation #{i}", target, columns)
        if any(d.name == decl.name for d in declarations):
            raise SuiteError(f"{path}: expectation name {decl.name!r} is used twice")
        declarations.append(decl)
    description = doc.get("description") or ""
    return SuiteFile(name, target, path, declarations, str(description).strip())


def _parse_declaration(entry: Any, where: str, target: str, columns: list[str]) -> Declaration:
    if not isinstance(entry, dict):
        raise SuiteError(f"{where}: expected a mapping with name, check, severity")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SuiteError(f"{where}: 'name' must be a lower-case name (letters, digits, _), got {name!r}")
    where = f"{where} ({name})"
    check_name = entry.get("check")
    check = CHECKS.get(check_name) if isinstance(check_name, str) else None
    if check is None:
        raise SuiteError(f"{where}: unknown check {check_name!r}; known checks: {', '.join(CHECKS)}")
    scope = BATCH if target == BATCH else _TABLE
    if scope not in check.targets:
        raise SuiteError(f"{where}: check {check.name!r} does not apply to target {target!r}")
    severity = entry.get("severity")
    if severity not in SEVERITIES:
        raise SuiteError(f"{where}: 'severity' must be {' or '.join(SEVERITIES)}, got {severity!r}")
    unknown = set(entry) - _DECL_KEYS - set(check.params)
    if unknown:
        allowed = sorted(_DECL_KEYS | set(check.params))
        raise SuiteError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} for check "
                         f"{check.name!r}; allowed: {', '.join(allowed)}")
    params = {key: _param(entry, key, spec, where, target, columns) for key, spec in check.params.items()}
    if "min_history_days" in params and params["min_history_days"] > params["window_days"]:
        raise SuiteError(f"{where}: min_history_days ({params['min_history_days']}) exceeds "
                         f"window_days ({params['window_days']})")
    if check.name == "matches_partition":
        table = TABLES[target]
        if params["column"] not in table.partitioned_by or params["column"] not in table.generated:
            raise SuiteError(f"{where}: column {params['column']!r} is not a generated partition column of {target}")
    description = entry.get("description") or check.summary
    return Declaration(name, check.name, severity, params, str(description).strip())


def _param(entry: dict, key: str, spec: Param, where: str, target: str, columns: list[str]) -> Any:
    if key not in entry:
        if spec.required:
            raise SuiteError(f"{where}: missing '{key}'")
        return spec.default
    value = entry[key]
    if spec.kind == "column":
        return _column(value, key, where, target, columns)
    if spec.kind == "columns":
        if not isinstance(value, list) or not value:
            raise SuiteError(f"{where}: '{key}' must be a non-empty list of column names")
        return [_column(v, key, where, target, columns) for v in value]
    if spec.kind == "amount":
        try:
            amount = Decimal(str(value)) if _number(value) else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or amount <= 0:
            raise SuiteError(f"{where}: '{key}' must be a positive amount, got {value!r}")
        return amount
    if spec.kind == "days":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 36_600:
            raise SuiteError(f"{where}: '{key}' must be a whole number of days (0..36600), got {value!r}")
        return value
    if spec.kind == "share":
        if not _number(value) or not 0 <= value <= 1:
            raise SuiteError(f"{where}: '{key}' must be a share between 0 and 1, got {value!r}")
        return float(value)
    if spec.kind == "factor":
        if not _number(value) or not 1 < float(value) < float("inf"):
            raise SuiteError(f"{where}: '{key}' must be a number above 1, got {value!r}")
        return float(value)
    raise AssertionError(f"unknown parameter kind {spec.kind}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _column(value: Any, key: str, where: str, target: str, columns: list[str]) -> str:
    if not isinstance(value, str) or value not in columns:
        what = "the classified records of a batch" if target == BATCH else target
        raise SuiteError(f"{where}: '{key}' names column {value!r}, which does not exist in {what}; "
                         f"columns: {', '.join(columns)}")
    return value
