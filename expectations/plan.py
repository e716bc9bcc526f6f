"""Expand suite declarations into concrete expectations: one per column, per record rule, per check.

Each :class:`Expectation` says which SQL the gate's aggregation passes evaluate per row
(``breaks``: TRUE when a row breaks it), which metric column of the per-file or
per-month metrics frame holds the result, and how Great Expectations judges that column.
Record rules come from the feed's :class:`~transforms.legacy.spec.RecordRule` declarations,
the same objects that drive the quarantine split, so rules and expectations cannot drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from expectations.suite import BATCH, Declaration, SuiteError, SuiteFile
from transforms.legacy.spec import RecordRule

# Rows a counted check looks at, in a batch: every classified record, or only the accepted ones.
ALL_ROWS = "all"
ACCEPTED = "accepted"

VALUES_BETWEEN = "expect_column_values_to_be_between"
PAIR_EQUAL = "expect_column_pair_values_to_be_equal"

# Placeholders of the serving window, filled in at audit time (the window depends on "today").
WINDOW_START = "__WINDOW_START__"
WINDOW_END = "__WINDOW_END__"


@dataclass(frozen=True)
class Expectation:
    """One concrete expectation: what is measured, where the metric lands, how GX judges it."""

    suite: str
    name: str                       # e.g. required_not_null[txn_id], record_rule[BAD_CURRENCY]
    check: str
    severity: str
    description: str
    threshold: str                  # the bound, for people: "= 0", "<= 0.05"
    metric: str                     # column of the metrics frame GX evaluates
    gx_type: str = VALUES_BETWEEN
    min_value: float | None = None
    max_value: float | None = None
    pair: tuple[str, str] | None = None     # columns of a pair-equality expectation
    breaks: str | None = None       # counted checks: SQL over one row, TRUE when the row breaks it
    rows: str = ACCEPTED            # counted checks of a batch: which records they look at
    value: str | None = None        # SQL value whose largest among breaking rows is reported
    value_label: str = ""           # how that value reads: "largest |amount|", "up to ... days"
    reads: tuple[str, ...] = ()     # data columns the check reads (checked before any pass runs)
    params: tuple = ()              # the declaration's parameters as (name, value) pairs

    @property
    def counted(self) -> bool:
        return self.breaks is not None

    @property
    def qualified_name(self) -> str:
        return f"{self.suite}.{self.name}"

    def param(self, name: str) -> object:
        return dict(self.params)[name]

    def gx_kwargs(self) -> dict:
        """Keyword arguments of the Great Expectations expectation."""
        if self.gx_type == PAIR_EQUAL:
            assert self.pair is not None
            return {"column_A": self.pair[0], "column_B": self.pair[1]}
        return {"column": self.metric, "min_value": self.min_value, "max_value": self.max_value}


def metric_name(name: str) -> str:
    """A metrics-frame column for an expectation name (brackets and dots become underscores)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def plan_suite(suite: SuiteFile, rules: list[RecordRule] | None = None) -> list[Expectation]:
    """The concrete expectations of a suite; ``rules`` are the feed's record rules (batch suites)."""
    planned: list[Expectation] = []
    for decl in suite.declarations:
        planned.extend(_expand(suite, decl, rules))
    seen: set[str] = set()
    for e in planned:
        if e.metric in seen:
            raise SuiteError(f"{suite.path}: two expectations map to the same metric {e.metric!r}; rename one")
        seen.add(e.metric)
    return planned


def _expand(suite: SuiteFile, d: Declaration, rules: list[RecordRule] | None) -> list[Expectation]:
    common = {"suite": suite.name, "check": d.check, "severity": d.severity, "description": d.description,
              "params": tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in d.params.items())}

    def zero(name: str, breaks: str, rows: str = ACCEPTED, value: str | None = None, value_label: str = "",
             description: str | None = None, threshold: str = "= 0", reads: tuple[str, ...] = ()) -> Expectation:
        """A counted check: the number of rows that break it must be 0."""
        args = {**common, "description": description or common["description"]}
        return Expectation(name=name, threshold=threshold, metric=metric_name(name), min_value=0, max_value=0,
                           breaks=breaks, rows=rows, value=value, value_label=value_label, reads=reads, **args)

    p = d.params
    if d.check == "reconciled":
        return [Expectation(name=d.name, threshold="= records in", metric="records_classified", gx_type=PAIR_EQUAL,
                            pair=("records_in", "records_classified"), **common)]
    if d.check == "verdict_consistent":
        ok = ("(verdict IN ('NEW', 'NOOP') AND reason IS NULL) OR (verdict = 'QUARANTINED' AND reason IS NOT NULL)")
        return [zero(d.name, f"NOT coalesce({ok}, FALSE)", rows=ALL_ROWS, threshold="0 inconsistent records")]
    if d.check == "not_null":
        return [zero(f"{d.name}[{c}]", f"{c} IS NULL", threshold=f"0 rows with {c} NULL", reads=(c,))
                for c in p["columns"]]
    if d.check == "max_abs":
        col, limit = p["column"], p["max"]
        return [zero(d.name, f"abs({col}) > {limit}", value=f"abs({col})", value_label=f"largest |{col}|",
                     threshold=f"0 rows with |{col}| > {limit:,}", reads=(col,))]
    if d.check == "record_rules":
        if suite.target != BATCH or rules is None:
            raise SuiteError(f"{suite.path}: check record_rules needs a feed's record rules")
        return [zero(f"{d.name}[{r.reason}]", f"NOT coalesce({r.valid}, FALSE)",
                     description=f"no accepted record breaks {r.reason}: {r.description or r.valid}",
                     threshold="0 accepted records breaking the rule")
                for r in rules]
    if d.check == "days_from_business_date":
        col, days = p["column"], p["max_days"]
        distance = f"abs(datediff({col}, business_date))"
        return [zero(d.name, f"{distance} > {days}", value=distance, value_label="days away, up to",
                     threshold=f"0 rows more than {days} days from the business date", reads=(col,))]
    if d.check == "quarantine_share":
        return [Expectation(name=d.name, threshold=f"<= {p['max_share']:g}", metric="quarantine_share",
                            min_value=0, max_value=p["max_share"], **common)]
    if d.check == "daily_volume":
        f = p["max_factor"]
        return [Expectation(name=d.name, metric="volume_ratio", min_value=1 / f, max_value=f,
                            threshold=f"within {f:g}x of the {p['window_days']}-day average "
                                      f"(ratio {1 / f:.2f}..{f:g})", **common)]
    if d.check == "unique":
        return [Expectation(name=d.name, threshold="= 0 duplicated values", metric=metric_name(d.name),
                            min_value=0, max_value=0, reads=(p["column"],), **common)]
    if d.check == "matches_partition":
        col = p["column"]
        table = suite.table
        assert table is not None
        return [zero(d.name, f"NOT ({col} <=> {table.generated[col]})", rows=ALL_ROWS,
                     threshold=f"0 rows where {col} != {table.generated[col]}", reads=(col, "posting_date"))]
    if d.check == "serving_window":
        col = p["column"]
        return [zero(d.name, f"coalesce(NOT ({col} BETWEEN {WINDOW_START} AND {WINDOW_END}), FALSE)", rows=ALL_ROWS,
                     threshold=f"0 rows with {col} outside the serving window", reads=(col,))]
    raise AssertionError(f"check {d.check} has no expansion")

