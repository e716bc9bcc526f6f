"""Great Expectations as the judge of the gate's metrics: an ephemeral GX 1.x context, pandas batches.

The gate computes its metrics in Spark (a few aggregation passes) and GX evaluates the
suite's expectations over the resulting small frame: one row per file or per month.
Importing GX takes several seconds, so :func:`preload` starts it in the background when
a gate is loaded at job start, while Spark starts up.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from expectations.plan import Expectation

log = logging.getLogger(__name__)

_preload_thread: threading.Thread | None = None
_preload_error: BaseException | None = None
_lock = threading.Lock()
_validator: GxValidator | None = None


class GxEvaluationError(RuntimeError):
    """Great Expectations could not evaluate an expectation (a defect, never a data problem)."""


def _import_gx() -> None:
    """Import GX, create the context and run one tiny validation: GX's first use is its slowest."""
    global _preload_error, _validator
    try:
        import pandas as pd

        from expectations.plan import PAIR_EQUAL, Expectation

        validator = GxValidator()
        warm_up = [Expectation("warm_up", "between", "between", "warning", "", "", "m", max_value=0),
                   Expectation("warm_up", "pair", "pair", "warning", "", "", "m", gx_type=PAIR_EQUAL, pair=("m", "n"))]
        validator.validate("warm_up", warm_up, pd.DataFrame({"key": ["k"], "m": [0.0], "n": [0.0]}), key="key")
        _validator = validator
    except BaseException as exc:  # reported when the gate first needs GX
        _preload_error = exc


def preload() -> None:
    """Start importing and warming up Great Expectations in a background thread (idempotent)."""
    global _preload_thread
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    # GX logs its own start-up at INFO; the job's log is for the job.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    with _lock:
        if _preload_thread is None:
            _preload_thread = threading.Thread(target=_import_gx, name="gx-preload", daemon=True)
            _preload_thread.start()


def validator() -> GxValidator:
    """The process's GX validator (created on first use, after the background import)."""
    global _validator
    preload()
    assert _preload_thread is not None
    _preload_thread.join()
    if _preload_error is not None:
        raise _preload_error
    with _lock:
        if _validator is None:
            _validator = GxValidator()
        return _validator


@dataclass
class GxOutcome:
    """GX's verdict on one expectation: success, and the keys of the rows (files, months) that failed."""

    success: bool
    gx_type: str
    unexpected_keys: set[str] = field(default_factory=set)
    element_count: int = 0


class GxValidator:
    """An ephemeral GX context with a pandas datasource; one dataframe asset and suite per gate suite."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("great_expectations"):
                logging.getLogger(name).setLevel(logging.WARNING)
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.datasource = self.context.data_sources.add_pandas("ledgerlake_dq_metrics")
        self._batch_definitions: dict[str, Any] = {}
        self._suites: dict[tuple, Any] = {}

    def suite(self, name: str, expectations: list[Expectation]) -> Any:
        """The GX ExpectationSuite for these expectations (built once)."""
        from great_expectations.expectations.metadata_types import FailureSeverity

        key = (name, tuple(expectations))
        if key not in self._suites:
            suite = self._gx.ExpectationSuite(name=f"{name}_{len(self._suites)}")
            for e in expectations:
                cls = _expectation_class(self._gx, e.gx_type)
                suite.add_expectation(cls(**e.gx_kwargs(), severity=FailureSeverity(e.severity),
                                          meta={"ledgerlake_name": e.name, "check": e.check},
                                          description=e.description or None))
            self._suites[key] = suite
        return self._suites[key]

    def validate(self, name: str, expectations: list[Expectation], frame: pd.DataFrame,
                 key: str) -> dict[str, GxOutcome]:
        """Evaluate the expectations over the metrics frame; returns GX's outcome per expectation name."""
        if name not in self._batch_definitions:
            asset = self.datasource.add_dataframe_asset(name)
            self._batch_definitions[name] = asset.add_batch_definition_whole_dataframe(f"{name}_metrics")
        batch = self._batch_definitions[name].get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(self.suite(name, expectations),
                                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [key]})
        outcomes: dict[str, GxOutcome] = {}
        for r in result.results:
            config = r.expectation_config
            name_ = config.meta["ledgerlake_name"]
            info = r.exception_info or {}
            if info.get("raised_exception"):
                raise GxEvaluationError(f"Great Expectations failed on {name}.{name_}: {info.get('exception_message')}")
            unexpected = r.result.get("unexpected_index_list") or []
            outcomes[name_] = GxOutcome(
                success=bool(r.success), gx_type=config.type,
                unexpected_keys={str(row[key]) for row in unexpected},
                element_count=int(r.result.get("element_count") or 0),
            )
        missing = {e.name for e in expectations} - set(outcomes)
        if missing:
            raise GxEvaluationError(f"Great Expectations returned no result for {sorted(missing)}")
        return outcomes


def _expectation_class(gx: Any, gx_type: str) -> Any:
    """expect_column_values_to_be_between -> gx.expectations.ExpectColumnValuesToBeBetween."""
    class_name = "".join(part.capitalize() for part in gx_type.split("_"))
    return getattr(gx.expectations, class_name)
