"""What the file scans of an executed query read (files, bytes), from Spark's scan metrics: for layout tests."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame


@dataclass(frozen=True)
class ScanMetrics:
    """What the file scans of one executed query read, from Spark's scan metrics."""

    files: int = 0                 # data files read (after partition pruning and Delta's file skipping)
    bytes: int = 0                 # their total size
    scans: int = 0                 # table scans in the plan

    def __add__(self, other: ScanMetrics) -> ScanMetrics:
        return ScanMetrics(self.files + other.files, self.bytes + other.bytes, self.scans + other.scans)


def _children(plan) -> list:  # noqa: ANN001 - a py4j SparkPlan
    name = plan.getClass().getSimpleName()
    if name == "AdaptiveSparkPlanExec":
        return [plan.executedPlan()]
    if name.endswith("QueryStageExec"):
        return [plan.plan()]
    seq = plan.children()
    return [seq.apply(i) for i in range(seq.size())]


def _metric(plan, key: str) -> int:  # noqa: ANN001
    metrics = plan.metrics()
    return int(metrics.apply(key).value()) if metrics.contains(key) else 0


def scan_metrics(df: DataFrame) -> ScanMetrics:
    """Files and bytes read by the file scans of ``df``; call after an action ran on ``df`` itself."""
    total = ScanMetrics()
    stack = [df._jdf.queryExecution().executedPlan()]  # noqa: SLF001 - metrics live on the JVM plan
    while stack:
        node = stack.pop()
        if node.getClass().getSimpleName() == "FileSourceScanExec":
            total += ScanMetrics(_metric(node, "numFiles"), _metric(node, "filesSize"), 1)
        stack.extend(_children(node))
    return total
