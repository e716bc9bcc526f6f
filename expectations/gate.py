"""Publish gates: audit what is about to become visible, before the commit (write-audit-publish).

    gate = BatchGate.load(spec)                      # at job start: suites parsed and checked (SuiteError)
    report = gate.audit(lake, classified=..., files=..., existing=..., run_id=load_id, batch_id=...)
    record_results(lake, report)                     # ops.dq_results, blocked or not
    report.raise_if_blocked()                        # GateFailure: nothing of the batch is written
    ... write quarantine, silver, ledger ...
    write_report(lake, load_id, reports)             # once per run: <lake>/reports/dq/run_<load_id>.html

jobs/backfill.py load_batch follows exactly these steps; jobs/maintain.py audits the
serving tier with :func:`audit_serving` after its roll-off and optimize.

Metrics come from a few Spark aggregation passes (see :mod:`expectations.metrics`);
Great Expectations evaluates the suites over the resulting per-file and per-month frames.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expectations import gx_runtime
from expectations.metrics import (
    NEW_PREFIX,
    NO_MONTH,
    batch_pass,
    combine,
    duplicates_pass,
    metric_columns,
    table_pass,
)
from expectations.plan import PAIR_EQUAL, WINDOW_END, WINDOW_START, Expectation, plan_suite
from expectations.report import result_rows, write_report
from expectations.suite import (
    CRITICAL,
    LEGACY_BATCH,
    SERVING_SUITE,
    SILVER_SUITE,
    WARNING,
    SuiteFile,
    load_suite,
)
from ledgerlake.serving import window_for
from transforms.events import SOURCE_SYSTEM as STREAMED
from warehouse.tables import DQ_RESULTS, MONTH_EXPR, SERVING_TRANSACTIONS, SILVER_TRANSACTIONS

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from ledgerlake.lake import Lake
    from transforms.legacy.spec import SourceSpec

log = logging.getLogger("ledgerlake.dq")

TABLE_SUITES = {SILVER_TRANSACTIONS.name: SILVER_SUITE, SERVING_TRANSACTIONS.name: SERVING_SUITE}
# A batch's new row replaces the streamed version of its txn_id (the file is the book of record).
REPLACED_BY_BATCH = f"source_system = '{STREAMED}'"
MAX_LISTED_FAILURES = 5


class GateInputError(ValueError):
    """The data handed to a gate lacks what the suites need (a wiring defect, not a data problem)."""


@dataclass(frozen=True)
class FileFacts:
    """What the gate needs to know about one accepted file of a batch."""

    file_sha: str
    source_file: str
    business_date: date | None
    records_in: int

    @classmethod
    def of(cls, row: Mapping[str, Any] | Any) -> FileFacts:
        """From a backfill verdict row (file_sha, source_file, business_date, n_details) or alike."""
        get = row.__getitem__
        keys = row.keys() if isinstance(row, Mapping) else row.asDict().keys()
        records = get("records_in") if "records_in" in keys else get("n_details")
        return cls(get("file_sha"), get("source_file"), get("business_date"), int(records or 0))


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation's verdict for one file or one posting month."""

    suite: str
    expectation: str
    check: str
    expectation_type: str
    severity: str
    success: bool
    observed_value: str | None
    threshold: str
    details: str | None
    scope: str                 # file | month
    scope_value: str
    source_file: str | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.suite}.{self.expectation}"

    def describe(self) -> str:
        """One line for people: which expectation, where, what was observed against what bound."""
        where = f"{self.scope} {self.scope_value}"
        text = f"{self.qualified_name} ({self.severity}) failed for {where}: observed {self.observed_value}, " \
               f"expected {self.threshold}"
        return text + (f" ({self.details})" if self.details else "")


@dataclass
class GateReport:
    """Every expectation result of one audit, and whether the publish may go ahead."""

    run_id: str
    batch_id: str | None
    source_system: str | None
    table: str
    results: list[ExpectationResult] = field(default_factory=list)
    seconds: float = 0.0
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    units: dict[str, int] = field(default_factory=dict)      # files / months audited per suite
    # records per file_sha, posting month (None: no posting date), verdict and reason, from the batch pass
    verdict_counts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def critical_failures(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success and r.severity == CRITICAL]

    @property
    def failed_warnings(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success and r.severity == WARNING]

    @property
    def blocked(self) -> bool:
        """A critical expectation failed: nothing of the batch may become visible."""
        return bool(self.critical_failures)

    def message(self) -> str:
        """One line naming the failed critical expectations and their observed values."""
        failures = self.critical_failures
        if not failures:
            return f"data-quality gate passed ({len(self.failed_warnings)} warning(s))"
        listed = "; ".join(r.describe() for r in failures[:MAX_LISTED_FAILURES])
        more = f"; and {len(failures) - MAX_LISTED_FAILURES} more" if len(failures) > MAX_LISTED_FAILURES else ""
        batch = f" of batch {self.batch_id}" if self.batch_id else ""
        return f"publish{batch} to {self.table} blocked by {len(failures)} failed critical expectation(s): " \
               f"{listed}{more}"

    def raise_if_blocked(self) -> None:
        if self.blocked:
            raise GateFailure(self)

    def summary(self) -> str:
        """For the job log: what was audited and what failed."""
        units = ", ".join(f"{suite}: {n} {'file' if suite == LEGACY_BATCH else 'month'}(s)"
                          for suite, n in self.units.items())
        return (f"data-quality gate: {len(self.results)} result(s) [{units}] in {self.seconds:.1f}s; "
                f"{len(self.critical_failures)} critical failure(s), {len(self.failed_warnings)} warning(s)")


class GateFailure(RuntimeError):
    """A critical expectation failed; the message names it and the observed value."""

    def __init__(self, report: GateReport) -> None:
        super().__init__(report.message())
        self.report = report


class TableGate:
    """The suite of one table, audited on its prospective state (or on the whole table)."""

    def __init__(self, suite: SuiteFile, expectations: list[Expectation]) -> None:
        self.suite = suite
        self.expectations = expectations

    @classmethod
    def load(cls, table: str = SILVER_TRANSACTIONS.name, suites_dir: Path | str | None = None) -> TableGate:
        """Parse and check the table's suite (a SuiteError names what is wrong); starts loading GX."""
        if table not in TABLE_SUITES:
            raise ValueError(f"no suite for table {table!r}; tables with suites: {', '.join(TABLE_SUITES)}")
        suite = load_suite(TABLE_SUITES[table], suites_dir)
        gate = cls(suite, plan_suite(suite))
        gx_runtime.preload()
        return gate

    @property
    def table(self) -> str:
        return self.suite.target

    def resolved(self, today: date | None = None, serving_months: int | None = None) -> list[Expectation]:
        """The expectations with the serving window filled in (needed only by serving_window checks)."""
        out = []
        for e in self.expectations:
            if e.breaks and WINDOW_START in e.breaks:
                if today is None or serving_months is None:
                    raise ValueError(f"{e.qualified_name} needs today and serving_months")
                window = window_for(today, serving_months)
                start, end = window.first_day, window.last_day
                e = replace(e, breaks=e.breaks.replace(WINDOW_START, f"DATE'{start}'")
                            .replace(WINDOW_END, f"DATE'{end}'"),
                            threshold=f"0 rows outside {start} .. {end}")
            out.append(e)
        return out

    def audit(self, lake: Lake, *, rows: DataFrame | None = None, existing: DataFrame | None = None,
              run_id: str, batch_id: str | None = None, replaces: str | None = None,
              today: date | None = None, serving_months: int | None = None,
              source_system: str | None = None) -> GateReport:
        """Audit the table as it would be after publishing ``rows`` (canonical columns).

        ``existing``: the table as read before the commit (pinned version); only the
        months ``rows`` touch are read. Without ``rows``, the whole of ``existing`` is
        audited. ``replaces``: SQL condition on existing rows that a new row with the same
        txn_id supersedes: ``"TRUE"`` for an upsert (the stream's MERGE), None for an append.
        Superseded rows are left out of the uniqueness check; the other checks still count
        them (they are visible until the commit, and were audited when written).
        """
        from pyspark.sql import functions as F

        started = time.monotonic()
        checks = self.resolved(today, serving_months)
        report = GateReport(run_id, batch_id, source_system, self.table)
        new_month = new_keys = None
        if rows is not None:
            if "posting_month" not in rows.columns:
                rows = rows.withColumn("posting_month", F.expr(MONTH_EXPR))
            _require(rows, _table_columns(checks), "rows")
            new_month = table_pass(rows, [e for e in checks if e.counted])
            new_keys = rows
        frame = self._month_frame(checks, new_month, new_keys, existing, replaces)
        report.results.extend(self._judge(checks, frame))
        report.units[self.suite.name] = len(frame)
        report.seconds = time.monotonic() - started
        log.info("%s", report.summary())
        return report

    def _month_frame(self, checks: list[Expectation], new_month: pd.DataFrame | None, new_rows: DataFrame | None,
                     existing: DataFrame | None, replaces: str | None) -> pd.DataFrame:
        """Per posting month: counted metrics over new and old rows, and duplicate counts."""
        import pandas as pd
        from pyspark.sql import functions as F

        counted = [e for e in checks if e.counted]
        frames = [] if new_month is None else [new_month]
        old = None
        if existing is not None:
            old = existing
            if new_rows is not None:
                touched = [m for m in (new_month["month"].tolist() if new_month is not None else []) if m != NO_MONTH]
                old = old.where(F.col("posting_month").isin(touched))
            _require(old, _table_columns(checks), "existing")
            frames.append(table_pass(old, counted))
        frame = combine(frames, "month", {"rows": "sum", **metric_columns(counted)})
        for e in checks:
            if e.check != "unique":
                continue
            column = e.reads[0]
            month = F.coalesce(F.col("posting_month"), F.lit(NO_MONTH)).alias("month")
            replaceable = F.expr(f"coalesce({replaces}, FALSE)") if replaces else F.lit(False)
            dups = duplicates_pass(
                None if new_rows is None else new_rows.select(column, month),
                None if old is None else old.select(column, month, replaceable.alias("replaceable")), column,
            ).rename(columns={"duplicates": e.metric, "duplicates__example": f"{e.metric}__example"})
            frame = frame.merge(dups, on="month", how="left") if not dups.empty else frame.assign(
                **{e.metric: 0, f"{e.metric}__example": None})
            frame[e.metric] = pd.to_numeric(frame[e.metric], errors="coerce").fillna(0).astype("int64")
        return frame

    def _judge(self, checks: list[Expectation], frame: pd.DataFrame) -> list[ExpectationResult]:
        """GX evaluates the month frame; one result per expectation per month."""
        if frame.empty:
            return []
        frame = _numeric(frame, [e.metric for e in checks])
        outcomes = gx_runtime.validator().validate(self.suite.name, checks, frame, key="month")
        results = []
        for e in checks:
            outcome = outcomes[e.name]
            for row in frame.to_dict("records"):
                month = str(row["month"])
                failed = month in outcome.unexpected_keys or (not outcome.success and not outcome.unexpected_keys)
                observed, details = _observed(e, row, "txn_id")
                results.append(ExpectationResult(
                    self.suite.name, e.name, e.check, outcome.gx_type, e.severity, not failed, observed,
                    e.threshold, details, "month", month))
        return results


class BatchGate:
    """The gate of a legacy batch: its own suite per file, and the target table's suite per month."""

    def __init__(self, spec: SourceSpec, suite: SuiteFile, expectations: list[Expectation], table: TableGate) -> None:
        self.spec = spec
        self.suite = suite
        self.expectations = expectations
        self.table_gate = table
        self._parsed_columns: list[str] | None = None
        self._split_columns: list[str] = []
        self._ledger_volumes: dict[date, int] | None = None   # records in per business date, read once per run
        self._audited: dict[str, tuple[date, int]] = {}        # file_sha -> (business date, records in)

    @classmethod
    def load(cls, spec: SourceSpec, suites_dir: Path | str | None = None) -> BatchGate:
        """Parse and check the suites at job start (SuiteError before any data is read); starts loading GX."""
        suite = load_suite(LEGACY_BATCH, suites_dir)
        expectations = plan_suite(suite, rules=spec.record_rules)
        table = TableGate.load(SILVER_TRANSACTIONS.name, suites_dir)
        return cls(spec, suite, expectations, table)

    def audit(self, lake: Lake, *, classified: DataFrame, files: Iterable[Any] | Mapping[str, Any],
              existing: DataFrame | None, run_id: str, batch_id: str | None = None) -> GateReport:
        """Audit a batch before its publish.

        ``classified``: the accepted files' detail records with the canonical columns,
        ``file_sha``, ``record_no``, ``reason`` and ``verdict`` (NEW, NOOP, QUARANTINED);
        cache it, the gate reads it once (plus the NEW rows' keys once). ``files``: the
        backfill's verdict rows (or :class:`FileFacts`), rejected files are ignored.
        ``existing``: silver.transactions as read before the commit, or None when empty.
        """
        from pyspark.sql import functions as F

        started = time.monotonic()
        facts = _accepted_facts(files)
        report = GateReport(run_id, batch_id, self.spec.source_system, SILVER_TRANSACTIONS.name)
        if not facts:
            return report
        classified = self._with_rule_columns(classified)
        table_checks = self.table_gate.resolved()
        counted = [e for e in self.expectations if e.counted]
        _require(classified, {"file_sha", "record_no", "txn_id", "verdict", "reason", "posting_date"}
                 | _batch_columns(counted) | (_table_columns(table_checks) - {"posting_month"}), "classified")
        spark = lake.spark
        business_dates = spark.createDataFrame([(f.file_sha, f.business_date) for f in facts],
                                               "file_sha STRING, business_date DATE")
        parts, verdicts = batch_pass(classified, business_dates, counted, [e for e in table_checks if e.counted])
        report.verdict_counts = [
            {"file_sha": r["file_sha"], "month": None if r["month"] == NO_MONTH else r["month"],
             "verdict": r["verdict"], "reason": r["reason"] if isinstance(r["reason"], str) else None,
             "count": int(r["count"])}
            for r in verdicts.to_dict("records")]
        t_pass = time.monotonic()

        new_cols = {c: c[len(NEW_PREFIX):] for c in parts.columns if c.startswith(NEW_PREFIX)}
        new_month = parts.loc[parts[NEW_PREFIX + "rows"] > 0, ["month", *new_cols]].rename(columns=new_cols)
        new_month = combine([new_month], "month", {
            "rows": "sum", **metric_columns([e for e in table_checks if e.counted])})
        new_rows = classified.where(F.col("verdict") == "NEW")
        if "posting_month" not in new_rows.columns:
            new_rows = new_rows.withColumn("posting_month", F.expr(MONTH_EXPR))
        # The table's Spark passes run while GX judges the files (Python): they overlap.
        with ThreadPoolExecutor(1, thread_name_prefix="dq-table") as pool:
            months = pool.submit(self.table_gate._month_frame, table_checks, new_month, new_rows, existing,
                                 REPLACED_BY_BATCH)
            file_frame = self._file_frame(lake, parts, facts, counted)
            report.results.extend(self._judge(file_frame))
            report.units[self.suite.name] = len(file_frame)
            month_frame = months.result()
        t_files = time.monotonic()
        report.results.extend(self.table_gate._judge(table_checks, month_frame))
        report.units[self.table_gate.suite.name] = len(month_frame)
        report.seconds = time.monotonic() - started
        log.info("%s (batch pass %.1fs, files and table passes %.1fs, GX on months %.1fs)", report.summary(),
                 t_pass - started, t_files - t_pass, time.monotonic() - t_files)
        return report

    def _with_rule_columns(self, classified: DataFrame) -> DataFrame:
        """Classified records with the parsed fields the record rules read.

        A field the mapping publishes unchanged (``account_id`` = ``f_account``) is read from
        the published column, so the rules judge what is published; the others are parsed
        again from the raw record when the cache dropped them (keep them in the cache, see
        :func:`rule_columns`, to save that).
        """
        from pyspark.sql import functions as F

        if self._parsed_columns is None:
            files = classified.sparkSession.createDataFrame([], "file_sha STRING, content BINARY")
            split = self.spec.split(files)
            self._split_columns = split.columns
            self._parsed_columns = [c for c in self.spec.parse(split).columns if c not in split.columns]
        needed = rule_columns(self.spec, self._parsed_columns)
        published = {expr: column for column, expr in self.spec.mapping.items() if expr in needed}
        missing = [c for c in needed if c not in classified.columns and c not in published]
        if missing:
            absent = [c for c in self._split_columns if c not in classified.columns]
            if absent:
                raise GateInputError(f"classified records lack {', '.join(missing)} (read by the record rules) and "
                                     f"{', '.join(absent)} to parse them from; columns: {', '.join(classified.columns)}")
            log.info("re-parsing %s from the raw records for the record rules", ", ".join(missing))
            classified = classified.drop(*[c for c in self._parsed_columns if c in classified.columns]) \
                .transform(self.spec.parse)
        return classified.withColumns({p: F.col(c) for p, c in published.items()})

    def _file_frame(self, lake: Lake, parts: pd.DataFrame, facts: list[FileFacts],
                    counted: list[Expectation]) -> pd.DataFrame:
        """Per file: counts, counted metrics, quarantine share and daily volume."""
        import pandas as pd

        how = {"records_classified": "sum", "accepted": "sum", "quarantined": "sum", **metric_columns(counted)}
        per_file = combine([parts], "file_sha", how)
        known = pd.DataFrame([{"file_sha": f.file_sha, "source_file": f.source_file,
                               "business_date": f.business_date, "records_in": f.records_in} for f in facts])
        frame = known.merge(per_file, on="file_sha", how="outer")
        unknown = frame["source_file"].isna()
        # records of a file the batch does not list: a wiring defect, shown (and failing) as its own unit
        frame.loc[unknown, "source_file"] = "(unlisted file " + frame.loc[unknown, "file_sha"].astype(str) + ")"
        frame.loc[unknown, "records_in"] = 0
        for column, fn in how.items():
            if fn == "sum":
                frame[column] = frame[column].fillna(0).astype("int64")
        frame["records_in"] = frame["records_in"].astype("int64")
        frame["quarantine_share"] = [q / n if n else 0.0 for q, n in zip(frame["quarantined"], frame["records_in"],
                                                                          strict=True)]
        volume = next((e for e in self.expectations if e.check == "daily_volume"), None)
        if volume is not None:
            window, needed = int(volume.param("window_days")), int(volume.param("min_history_days"))
            if self._ledger_volumes is None:
                self._ledger_volumes = _ledger_volumes(lake, self.spec.source_system)
            # files audited earlier in this run count too: the ledger was read before they were written
            self._audited.update({f.file_sha: (f.business_date, f.records_in) for f in facts if f.business_date})
            volumes = dict(self._ledger_volumes)
            for day, n in self._audited.values():
                volumes[day] = volumes.get(day, 0) + n
            frame = _with_daily_volume(frame, volumes, window, needed)
        return frame.sort_values(["business_date", "source_file"], na_position="last").reset_index(drop=True)

    def _judge(self, frame: pd.DataFrame) -> list[ExpectationResult]:
        """GX evaluates the per-file frame; one result per expectation per file."""
        metrics = [e.metric for e in self.expectations] + ["records_in"]
        frame = _numeric(frame, metrics)
        outcomes = gx_runtime.validator().validate(self.suite.name, self.expectations, frame, key="file_sha")
        results = []
        for e in self.expectations:
            outcome = outcomes[e.name]
            for row in frame.to_dict("records"):
                failed = row["file_sha"] in outcome.unexpected_keys or (
                    not outcome.success and not outcome.unexpected_keys)
                observed, details = _observed(e, row, "record")
                results.append(ExpectationResult(
                    self.suite.name, e.name, e.check, outcome.gx_type, e.severity, not failed, observed,
                    e.threshold, details, "file", str(row["source_file"]), str(row["source_file"])))
        return results


def rule_columns(spec: SourceSpec, columns: list[str]) -> list[str]:
    """The columns (of ``columns``) that the feed's record rules read: what a cache should keep for the gate."""
    import re

    text = " ".join(r.valid for r in spec.record_rules)
    return [c for c in columns if re.search(rf"\b{re.escape(c)}\b", text)]


def gate_columns(spec: SourceSpec, columns: list[str]) -> list[str]:
    """The parsed fields (of ``columns``) a job should keep in its cache for the gate.

    Those the record rules read, except fields the mapping publishes unchanged (the gate
    reads the published column instead); with them cached the gate never re-parses.
    """
    published = set(spec.mapping.values())
    return [c for c in rule_columns(spec, columns) if c not in published]


def audit_serving(lake: Lake, gate: TableGate, *, run_id: str, today: date,
                  serving_months: int) -> tuple[GateReport, str | None] | None:
    """Audit the whole serving tier (after maintenance, or on demand with ``ledgerlake dq audit-serving``).

    The results go to ops.dq_results and the run's HTML report (whose path comes back with
    the report); None when the tier is empty.
    """
    report = gate.audit(lake, existing=lake.read(SERVING_TRANSACTIONS.name), run_id=run_id, today=today,
                        serving_months=serving_months)
    if not report.results:
        return None
    record_results(lake, report)
    return report, write_report(lake, run_id, [report])


def record_results(lake: Lake, *reports: GateReport) -> int:
    """Append the reports' results to ops.dq_results in one commit; returns the number of rows."""
    from ledgerlake.lake import with_conflict_retry

    columns = DQ_RESULTS.column_names()
    rows = [tuple(row[c] for c in columns) for report in reports for row in result_rows(report)]
    if not rows:
        return 0
    schema = ", ".join(f"{name} {typ}" for name, typ, _ in DQ_RESULTS.columns)
    data = lake.spark.createDataFrame(rows, schema)
    with_conflict_retry(lambda: data.write.format("delta").mode("append").save(lake.path(DQ_RESULTS)),
                        "write ops.dq_results")
    return len(rows)


def _accepted_facts(files: Iterable[Any] | Mapping[str, Any]) -> list[FileFacts]:
    items = files.values() if isinstance(files, Mapping) else files
    facts = []
    for item in items:
        if isinstance(item, FileFacts):
            facts.append(item)
            continue
        keys = item.keys() if isinstance(item, Mapping) else item.asDict().keys()
        if "reason" in keys and item["reason"] is not None:
            continue     # rejected whole: none of its records is in the batch
        facts.append(FileFacts.of(item))
    return facts


def _require(df: DataFrame, columns: set[str], what: str) -> None:
    missing = sorted(set(columns) - set(df.columns))
    if missing:
        raise GateInputError(f"{what} lacks column(s) {', '.join(missing)} that the suites read; "
                             f"present: {', '.join(df.columns)}")


def _batch_columns(checks: list[Expectation]) -> set[str]:
    return {c for e in checks for c in e.reads}


def _table_columns(checks: list[Expectation]) -> set[str]:
    return {"txn_id", "posting_month"} | _batch_columns(checks)


def _numeric(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Metric columns as numbers (all-NULL columns too) so GX compares them numerically."""
    import pandas as pd

    frame = frame.copy()
    for c in columns:
        if c in frame.columns:
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    return frame


def _observed(e: Expectation, row: dict, example_kind: str) -> tuple[str | None, str | None]:
    """The observed value and a short explanation of one expectation on one file or month."""
    if e.gx_type == PAIR_EQUAL:
        return (str(int(row["records_classified"])),
                f"accepted {int(row['accepted'])} + quarantined {int(row['quarantined'])}; "
                f"records in {int(row['records_in'])}")
    if e.check == "quarantine_share":
        return (f"{row['quarantine_share']:.4f}",
                f"{int(row['quarantined'])} of {int(row['records_in'])} records quarantined")
    if e.check == "daily_volume":
        return _volume_observed(row)
    value = row.get(e.metric)
    if value is None or value != value:
        return None, None
    count = int(value)
    if not count:
        return "0", None
    details = []
    example = row.get(f"{e.metric}__example")
    if example is not None and example == example:
        details.append(f"first at record {int(example)}" if example_kind == "record" else f"e.g. txn_id {example}")
    largest = row.get(f"{e.metric}__max")
    if largest is not None and largest == largest:
        shown = f"{largest:,.2f}" if e.check == "max_abs" else f"{largest:,.0f}"
        details.append(f"{e.value_label} {shown}")
    return str(count), "; ".join(details) or None


def _volume_observed(row: dict) -> tuple[str | None, str | None]:
    ratio = row.get("volume_ratio")
    day = row.get("business_date")
    if ratio is None or ratio != ratio:
        return None, (f"not evaluated: {int(row.get('history_days') or 0)} day(s) with files in the window "
                      f"before {day}, {int(row.get('history_needed') or 0)} needed")
    return (f"{ratio:.2f}", f"{int(row['day_volume']):,} records on {day} vs {row['recent_average']:,.1f}/day "
                            f"over {int(row['history_days'])} earlier day(s)")


def _ledger_volumes(lake: Lake, source_system: str) -> dict[date, int]:
    """Records in per business date of the source's files loaded so far (ops.load_ledger, one row per file)."""
    from pyspark.sql import functions as F

    rows = (lake.read("ops.load_ledger")
            .where((F.col("source_system") == source_system) & (F.col("status") == "LOADED")
                   & F.col("business_date").isNotNull())
            .groupBy("business_date").agg(F.sum("records_in").alias("n")).collect())
    return {r["business_date"]: int(r["n"] or 0) for r in rows}


def _with_daily_volume(frame: pd.DataFrame, volumes: dict[date, int], window_days: int,
                       min_history_days: int) -> pd.DataFrame:
    """Adds day_volume, recent_average and volume_ratio per file, from the records in per business date."""
    out = []
    for day in frame["business_date"]:
        if day is None or day != day:
            out.append((None, None, None, 0))
            continue
        earlier = [volumes[d] for d in volumes if day - timedelta(days=window_days) <= d < day and volumes[d] > 0]
        average = sum(earlier) / len(earlier) if earlier else None
        enough = len(earlier) >= min_history_days and average
        out.append((volumes[day], average, volumes[day] / average if enough else None, len(earlier)))
    frame = frame.copy()
    frame["day_volume"] = [o[0] for o in out]
    frame["recent_average"] = [o[1] for o in out]
    frame["volume_ratio"] = [o[2] for o in out]
    frame["history_days"] = [o[3] for o in out]
    frame["history_needed"] = min_history_days
    return frame
