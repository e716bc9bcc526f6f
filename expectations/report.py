"""Data-quality reports built from ops.dq_results: an HTML page per run, an index, a terminal summary.

Pages live under ``<lake>/reports/dq/``: ``run_<run_id>.html`` for each run, ``index.html``
listing the runs (newest first) and ``latest.html``, a copy of the newest run's page.
"""

from __future__ import annotations

import html
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ledgerlake.console import render_table

if TYPE_CHECKING:
    from expectations.gate import GateReport
    from ledgerlake.lake import Lake

log = logging.getLogger("ledgerlake.dq")

REPORTS_DIR = "reports/dq"
INDEX_DATA = "runs.json"
MAX_FAILURE_ROWS = 2000     # failing results listed one by one on a run's page
MAX_INDEX_RUNS = 500


@dataclass
class ExpectationSummary:
    """One expectation of a run, over every file or month it was checked on."""

    suite: str
    expectation: str
    severity: str
    expectation_type: str
    threshold: str
    checked: int = 0
    failed: int = 0
    first_failure: dict | None = None

    @property
    def success(self) -> bool:
        return self.failed == 0


@dataclass
class RunSummary:
    """Every result of one run, grouped per expectation."""

    run_id: str
    rows: list[dict]
    expectations: list[ExpectationSummary]

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.rows if not r["success"]]

    @property
    def blocked_batches(self) -> list[str]:
        return sorted({str(r["batch_id"]) for r in self.rows if r["publish_blocked"]})

    @property
    def checked_from(self) -> Any:
        return min(r["checked_at"] for r in self.rows)

    @property
    def checked_to(self) -> Any:
        return max(r["checked_at"] for r in self.rows)

    def failed(self, severity: str) -> list[ExpectationSummary]:
        return [e for e in self.expectations if e.failed and e.severity == severity]


def report_dir(lake: Lake) -> str:
    return f"{lake.root}/{REPORTS_DIR}"


def latest_run_id(lake: Lake) -> str | None:
    """The run with the most recent results, or None when ops.dq_results is empty."""
    from pyspark.sql import functions as F

    row = (lake.read("ops.dq_results").groupBy("run_id").agg(F.max("checked_at").alias("at"))
           .orderBy(F.col("at").desc()).limit(1).collect())
    return row[0]["run_id"] if row else None


def load_run(lake: Lake, run_id: str) -> RunSummary | None:
    """The results of one run, or None if it recorded none."""
    from pyspark.sql import functions as F

    table = lake.read("ops.dq_results").where(F.col("run_id") == run_id)
    # timestamps as text in the session's zone (UTC): collect() would shift them to the local zone
    table = table.withColumn("checked_at", F.date_format("checked_at", "yyyy-MM-dd HH:mm:ss.SSSSSS"))
    rows = [r.asDict() for r in table.collect()]
    return summarize(run_id, rows) if rows else None


def summarize(run_id: str, rows: list[dict]) -> RunSummary:
    """Group a run's result rows (ops.dq_results columns) per expectation, failures first."""
    for r in rows:
        r["checked_at"] = _utc(r["checked_at"])
    order = {"critical": 0, "warning": 1}
    rows.sort(key=lambda r: (r["checked_at"], r["suite"], r["expectation"], r["scope_value"] or ""))
    summaries: dict[tuple, ExpectationSummary] = {}
    for r in rows:
        key = (r["suite"], r["expectation"])
        s = summaries.setdefault(key, ExpectationSummary(r["suite"], r["expectation"], r["severity"],
                                                         r["expectation_type"] or "", r["threshold"] or ""))
        s.checked += 1
        if not r["success"]:
            s.failed += 1
            s.first_failure = s.first_failure or r
    ordered = sorted(summaries.values(), key=lambda s: (s.success, order.get(s.severity, 9), s.suite, s.expectation))
    return RunSummary(run_id, rows, ordered)


def _utc(value: Any) -> datetime:
    """A naive UTC datetime from ISO text or an aware datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def terminal_summary(run: RunSummary) -> str:
    """What failed in a run, for the terminal."""
    critical, warnings = run.failed("critical"), run.failed("warning")
    lines = [
        f"data-quality run {run.run_id} ({run.checked_from:%Y-%m-%d %H:%M:%S} .. {run.checked_to:%H:%M:%S} UTC): "
        f"{len(run.expectations)} expectation(s), {len(run.rows):,} result(s); "
        f"{len(critical)} critical and {len(warnings)} warning expectation(s) failed",
    ]
    if run.blocked_batches:
        lines.append(f"  publish BLOCKED for {len(run.blocked_batches)} batch(es): {', '.join(run.blocked_batches)}")
    failed = critical + warnings
    if failed:
        lines.append(render_table(
            ["severity", "expectation", "failed", "of", "first failure", "observed", "expected", "details"],
            [(s.severity, f"{s.suite}.{s.expectation}", s.failed, s.checked,
              (s.first_failure or {}).get("scope_value"), (s.first_failure or {}).get("observed_value"),
              s.threshold, _short((s.first_failure or {}).get("details"), 60)) for s in failed],
        ))
    else:
        lines.append("  every expectation passed")
    return "\n".join(lines)


def _short(text: str | None, width: int) -> str | None:
    if text is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"


def write_report(lake: Lake, run_id: str | None = None, reports: list[GateReport] | None = None) -> str | None:
    """Write the HTML page of a run and refresh the index; returns the page's path (None: no results).

    With ``reports`` (every gate report of the run, as the job holds them) the page is
    built from them; otherwise from ops.dq_results (default run: the latest).
    """
    if reports:
        run_id = run_id or reports[0].run_id
        rows = [row for report in reports if report.run_id == run_id for row in result_rows(report)]
        run = summarize(run_id, rows) if rows else None
    else:
        run_id = run_id or latest_run_id(lake)
        run = load_run(lake, run_id) if run_id else None
    if run is None or run_id is None:
        return None
    folder = report_dir(lake)
    page = f"{folder}/run_{_safe(run_id)}.html"
    text = render_run(run)
    _write_text(lake, page, text)
    # The job refreshes the index from its sidecar (no query); dq report rebuilds it from the table.
    runs = _merged_index(_read_index(lake), run) if reports else _index_rows(lake)
    _write_text(lake, f"{folder}/{INDEX_DATA}", json.dumps(runs, indent=1))
    _write_text(lake, f"{folder}/index.html", render_index(runs))
    if runs and runs[0]["run_id"] == run_id:
        _write_text(lake, f"{folder}/latest.html", text)
    log.info("data-quality report: %s", page)
    return page


def _index_entry(run: RunSummary) -> dict:
    """A run's line of the index, as _index_rows computes it from the table."""
    rows = run.rows
    return {
        "run_id": run.run_id, "last": f"{run.checked_to:%Y-%m-%d %H:%M:%S}", "results": len(rows),
        "critical_failed": sum(1 for r in rows if not r["success"] and r["severity"] == "critical"),
        "warnings_failed": sum(1 for r in rows if not r["success"] and r["severity"] == "warning"),
        "blocked_batches": len({r["batch_id"] for r in rows if r["publish_blocked"]}),
        "sources": ", ".join(sorted({r["source_system"] for r in rows if r["source_system"]})),
        "tables": ", ".join(sorted({r["table_name"] for r in rows if r["table_name"]})),
    }


def _merged_index(runs: list[dict], run: RunSummary) -> list[dict]:
    merged = [r for r in runs if r.get("run_id") != run.run_id] + [_index_entry(run)]
    return sorted(merged, key=lambda r: r["last"], reverse=True)[:MAX_INDEX_RUNS]


def _read_index(lake: Lake) -> list[dict]:
    """The index's data as last written (empty when missing or unreadable: dq report rebuilds it)."""
    text = _read_text(lake, f"{report_dir(lake)}/{INDEX_DATA}")
    try:
        runs = json.loads(text) if text else []
    except ValueError:
        return []
    return runs if isinstance(runs, list) else []


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


def _index_rows(lake: Lake) -> list[dict]:
    from pyspark.sql import functions as F

    failed = ~F.col("success")
    rows = (lake.read("ops.dq_results").groupBy("run_id").agg(
        F.date_format(F.max("checked_at"), "yyyy-MM-dd HH:mm:ss").alias("last"), F.count(F.lit(1)).alias("results"),
        F.count_if(failed & (F.col("severity") == "critical")).alias("critical_failed"),
        F.count_if(failed & (F.col("severity") == "warning")).alias("warnings_failed"),
        F.count_distinct(F.when(F.col("publish_blocked"), F.col("batch_id"))).alias("blocked_batches"),
        F.concat_ws(", ", F.array_sort(F.collect_set("source_system"))).alias("sources"),
        F.concat_ws(", ", F.array_sort(F.collect_set("table_name"))).alias("tables"),
    ).orderBy(F.col("last").desc()).limit(MAX_INDEX_RUNS).collect())
    return [r.asDict() for r in rows]


_STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em; color: #1f2328; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr.critical td.status { background: #ffebe9; color: #cf222e; font-weight: 600; }
tr.warning td.status { background: #fff8c5; color: #9a6700; font-weight: 600; }
tr.ok td.status { background: #dafbe1; color: #1a7f37; }
.banner { padding: 0.8em 1em; border-radius: 6px; font-weight: 600; display: inline-block; }
.banner.blocked { background: #ffebe9; color: #cf222e; } .banner.passed { background: #dafbe1; color: #1a7f37; }
.banner.warned { background: #fff8c5; color: #9a6700; }
.muted { color: #656d76; font-size: 0.85em; }
"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _table(headers: list[str], rows: list[tuple[str, list[Any]]]) -> str:
    """rows: (css class, cells); the first cell is the status cell."""
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"]
    for css, cells in rows:
        tds = [f"<td class=\"status\">{html.escape(str(cells[0]))}</td>"]
        tds += [f"<td>{'' if c is None else html.escape(str(c))}</td>" for c in cells[1:]]
        out.append(f"<tr class=\"{css}\">" + "".join(tds) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def render_run(run: RunSummary) -> str:
    """The HTML page of one run."""
    critical, warnings = run.failed("critical"), run.failed("warning")
    if run.blocked_batches:
        banner = (f"<div class=\"banner blocked\">Publish BLOCKED for {len(run.blocked_batches)} batch(es): "
                  f"{len(critical)} critical expectation(s) failed</div>")
    elif warnings:
        banner = f"<div class=\"banner warned\">Passed with {len(warnings)} warning expectation(s) failed</div>"
    else:
        banner = "<div class=\"banner passed\">Every expectation passed</div>"
    sources = sorted({str(r["source_system"]) for r in run.rows if r["source_system"]})
    tables = sorted({str(r["table_name"]) for r in run.rows if r["table_name"]})
    batches = sorted({str(r["batch_id"]) for r in run.rows if r["batch_id"]})
    head = (f"<h1>ledgerlake data quality &mdash; run {html.escape(run.run_id)}</h1>\n{banner}\n"
            f"<p class=\"muted\">checked {run.checked_from:%Y-%m-%d %H:%M:%S} .. {run.checked_to:%Y-%m-%d %H:%M:%S} UTC"
            f" &middot; sources: {html.escape(', '.join(sources) or '-')} &middot; tables: "
            f"{html.escape(', '.join(tables) or '-')} &middot; {len(batches)} batch(es) &middot; "
            f"{len(run.rows):,} results &middot; <a href=\"index.html\">all runs</a></p>")

    def status(s: ExpectationSummary) -> tuple[str, str]:
        if s.success:
            return "ok", "passed"
        return s.severity, "FAILED" if s.severity == "critical" else "warning"

    summary_rows = []
    for s in run.expectations:
        css, label = status(s)
        first = s.first_failure or {}
        summary_rows.append((css, [label, s.suite, s.expectation, s.severity, f"{s.failed} of {s.checked}",
                                   s.threshold, first.get("scope_value"), first.get("observed_value"),
                                   first.get("details"), s.expectation_type]))
    summary = _table(["status", "suite", "expectation", "severity", "failed", "expected", "first failure",
                      "observed", "details", "Great Expectations type"], summary_rows)

    failures = run.failures
    failure_rows = [(r["severity"], [r["severity"], r["suite"], r["expectation"], r["scope"], r["scope_value"],
                                     r["observed_value"], r["threshold"], r["details"], r["batch_id"]])
                    for r in failures[:MAX_FAILURE_ROWS]]
    more = (f"<p class=\"muted\">{len(failures) - MAX_FAILURE_ROWS:,} more failing results: query ops.dq_results "
            f"WHERE run_id = '{html.escape(run.run_id)}' AND NOT success</p>") if len(failures) > MAX_FAILURE_ROWS \
        else ""
    details = (_table(["severity", "suite", "expectation", "scope", "file / month", "observed", "expected",
                       "details", "batch"], failure_rows) + more) if failures else "<p>None.</p>"

    by_unit: dict[str, int] = defaultdict(int)
    for r in run.rows:
        by_unit[f"{r['scope']}"] += 1
    checked = ", ".join(f"{n:,} {scope} results" for scope, n in sorted(by_unit.items()))
    body = (f"{head}\n<h2>Expectations</h2>\n{summary}\n<h2>Failed results</h2>\n{details}\n"
            f"<p class=\"muted\">{checked}. Every result is in ops.dq_results "
            f"(<code>ledgerlake sql \"SELECT * FROM ops.dq_results WHERE run_id = '{html.escape(run.run_id)}'\"</code>)."
            f"</p>")
    return _page(f"ledgerlake data quality - {run.run_id}", body)


def render_index(runs: list[dict]) -> str:
    """The list of runs, newest first."""
    rows = []
    for r in runs:
        css = "critical" if r["blocked_batches"] else ("warning" if r["warnings_failed"] else "ok")
        label = "BLOCKED" if r["blocked_batches"] else ("warnings" if r["warnings_failed"] else "passed")
        link = f"<a href=\"run_{_safe(r['run_id'])}.html\">{html.escape(r['run_id'])}</a>"
        rows.append((css, label, link, r))
    table = ["<table><tr><th>status</th><th>run</th><th>checked (UTC)</th><th>sources</th><th>tables</th>"
             "<th>results</th><th>critical failed</th><th>warnings failed</th><th>blocked batches</th></tr>"]
    for css, label, link, r in rows:
        table.append(f"<tr class=\"{css}\"><td class=\"status\">{label}</td><td>{link}</td>"
                     f"<td>{r['last']}</td><td>{html.escape(r['sources'] or '')}</td>"
                     f"<td>{html.escape(r['tables'] or '')}</td><td>{r['results']:,}</td>"
                     f"<td>{r['critical_failed']:,}</td><td>{r['warnings_failed']:,}</td>"
                     f"<td>{r['blocked_batches']}</td></tr>")
    table.append("</table>")
    return _page("ledgerlake data quality - runs",
                 "<h1>ledgerlake data quality &mdash; runs</h1>\n<p class=\"muted\"><a href=\"latest.html\">latest run"
                 "</a></p>\n" + "\n".join(table))


def _read_text(lake: Lake, path: str) -> str | None:
    """A small text file under the lake root, or None when it does not exist."""
    from pathlib import Path

    if "://" not in path or path.startswith("file:"):
        target = Path(path.removeprefix("file://").removeprefix("file:"))
        return target.read_text(encoding="utf-8") if target.is_file() else None
    jvm = lake.spark.sparkContext._jvm  # noqa: SLF001 - Hadoop's FileSystem API reaches s3a:// and the like
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(lake.spark.sparkContext._jsc.hadoopConfiguration())  # noqa: SLF001
    if not fs.exists(hpath):
        return None
    stream = fs.open(hpath)
    try:
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def _write_text(lake: Lake, path: str, text: str) -> None:
    """Write a small text file under the lake root: local paths directly, other file systems through Hadoop."""
    from pathlib import Path

    if "://" not in path or path.startswith("file:"):
        target = Path(path.removeprefix("file://").removeprefix("file:"))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
        return
    jvm = lake.spark.sparkContext._jvm  # noqa: SLF001 - Hadoop's FileSystem API reaches s3a:// and the like
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(lake.spark.sparkContext._jsc.hadoopConfiguration())  # noqa: SLF001
    stream = fs.create(hpath, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def result_rows(report: GateReport) -> list[dict[str, Any]]:
    """The report as ops.dq_results rows (column order of the table)."""
    blocked = report.blocked
    return [{
        "run_id": report.run_id, "batch_id": report.batch_id, "suite": r.suite, "expectation": r.expectation,
        "expectation_type": r.expectation_type, "severity": r.severity, "success": r.success,
        "observed_value": r.observed_value, "threshold": r.threshold, "details": r.details,
        "source_system": report.source_system, "source_file": r.source_file, "scope": r.scope,
        "scope_value": r.scope_value, "table_name": report.table, "publish_blocked": blocked,
        "checked_at": report.checked_at,
    } for r in report.results]
