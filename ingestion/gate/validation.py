"""The validation gate: a Great Expectations 1.x suite generated from each `DatasetSpec`.

Every published dataset is checked against a suite built from its spec, never written by
hand: the exact column set, the unique key, non-null columns, GEOID formats, value ranges,
allowed vocabularies (missing reasons, reliability classes, boundary vintages), int and bool
dtypes, at least one row, and that no Census jam value (-666666666 and friends) leaks into a
number.

The suite runs through the GX 1.x objects: one pandas data source (``sdoh_pandas``), a
dataframe asset and a whole-dataframe batch definition per dataset (fetched or added), the
validation definition ``<dataset>_validation`` and two checkpoints registered with
``add_or_update``: ``<dataset>_checkpoint`` (the gate: pass/fail per expectation) and, run only
when the gate fails, ``<dataset>_diagnosis_checkpoint`` (example values and row positions).
With ``data_docs=True`` both update Data Docs (useful with a file context, see
`workspace_context`), and `offline_data_docs` then makes the site readable without a network:
GX's pages load Bootstrap, jQuery, Font Awesome, bootstrap-table and Vega from CDNs and list
the validation results only through bootstrap-table. Bootstrap 4, jQuery and Font Awesome are
copied from their XStatic packages next to the pages and the tags point there; tags of
libraries with no local copy are dropped; the index gets the results as a plain HTML table.

Cost. GX pays ~7 ms of bookkeeping per expectation and run whatever the frame size, and on
pandas each map expectation filters the *whole* frame (every column) once or more, so a wide
frame with nulls costs rows x columns per expectation. Hence:

- a rule is carried by one expectation where one suffices: a float column whose minimum is
  above every jam value (all ACS and ADI measures: minimum 0 or 1) gets no separate jam
  expectation, its ``ExpectColumnValuesToBeBetween`` already rejects them and the report names
  a rejected jam value as a leaked jam value; float columns without such a range keep an
  explicit ``ExpectColumnValuesToNotBeInSet``;
- dtype expectations only for int64 and bool columns (a float column holding non-numbers
  already fails its range check; `ingestion.gate.publish` coerces dtypes before validating);
- checkpoints run under pandas copy-on-write, which turns GX's all-true row filters into free
  views instead of full copies;
- the gate asks for ``BOOLEAN_ONLY`` results; examples (``SUMMARY``, without the unexpected
  index "query") are computed only for a frame that failed;
- an unchanged checkpoint is reused rather than re-registered (GX's suite diff in
  ``add_or_update`` is quadratic in the number of expectations).

Measured for ``acs_spec("block_group")`` (79 expectations), fresh ephemeral context: 40 rows
0.5-0.7 s; 240,000 valid rows 1.1 s, or 3.4 s with 5% nulls in every measure; a failing
240,000-row frame ~13 s (gate, then diagnosis). The first version (SUMMARY, no copy-on-write,
a dtype expectation per column) took 1.6 s for 40 rows and 9.2 s for 240,000 valid rows.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd

from ingestion.core.datasets import JAM_VALUES, DatasetSpec
from ingestion.core.workspace import Workspace

if TYPE_CHECKING:  # Great Expectations takes seconds to import: only validating loads it
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context import AbstractDataContext

__all__ = [
    "ValidationReport",
    "build_suite",
    "offline_data_docs",
    "suite_name",
    "validate",
    "workspace_context",
]

logger = logging.getLogger(__name__)

DATASOURCE_NAME = "sdoh_pandas"
EXAMPLE_COUNT = 5
# The gate asks GX only for pass/fail per expectation; a failed gate is rerun by the diagnosis
# checkpoint for a few example values and rows. On 240,000 block groups with nulls, SUMMARY
# costs ~9 s, BOOLEAN_ONLY ~3 s.
_GATE_FORMAT: dict[str, Any] = {"result_format": "BOOLEAN_ONLY"}
_DIAGNOSIS_FORMAT: dict[str, Any] = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": EXAMPLE_COUNT,
    # The pandas "query" lists every unexpected index; it costs a full-frame filter per
    # expectation and nothing here reads it.
    "return_unexpected_index_query": False,
}
_FINGERPRINT_KEY = "sdoh_fingerprint"
# Dtype expectations only where a wrong dtype would pass every other check (an int or bool
# column read back as float or object); a float column holding anything but numbers already
# fails its range check, and each expectation costs ~7 ms of GX overhead.
_NUMPY_TYPE = {"int64": "int64", "bool": "bool_"}
_TABLE_COLUMNS = "expect_table_columns_to_match_set"


def _tame_gx_logging() -> None:
    """Keep GX's routine INFO chatter out of applications that log at INFO.

    GX logs every store load and docs-site setup at INFO, and pins one of its loggers to
    INFO explicitly. Its package logger is raised to WARNING only when nobody configured it,
    so ``logging.getLogger("great_expectations").setLevel(logging.INFO)`` brings it back.
    """
    package = logging.getLogger("great_expectations")
    if package.level == logging.NOTSET:
        package.setLevel(logging.WARNING)
    pinned = logging.getLogger("great_expectations.data_context.types.base")
    if pinned.level == logging.INFO:
        pinned.setLevel(logging.NOTSET)


def _gx() -> ModuleType:
    """Great Expectations, imported on first use (it takes seconds), its INFO chatter tamed.

    Examples
    --------
    >>> _gx().__name__
    'great_expectations'
    """
    import great_expectations

    _tame_gx_logging()
    return great_expectations


def suite_name(dataset: str) -> str:
    """Return the expectation suite name of ``dataset``.

    Parameters
    ----------
    dataset : str
        A dataset name such as ``"acs_tract"``.

    Returns
    -------
    str
        ``"<dataset>_suite"``.

    Examples
    --------
    >>> suite_name("acs_tract")
    'acs_tract_suite'
    """
    return f"{dataset}_suite"


def _typed_values(values: tuple[str, ...], dtype: str) -> list[Any]:
    """Convert allowed values to the column's dtype (the spec stores them as strings)."""
    if dtype == "int64":
        return [int(v) for v in values]
    if dtype == "float64":
        return [float(v) for v in values]
    return list(values)


def _jam_covered_by_range(minimum: float | None, maximum: float | None) -> bool:
    """Whether a [minimum, maximum] range already excludes every Census jam value."""
    return (minimum is not None and minimum > max(JAM_VALUES)) or (
        maximum is not None and maximum < min(JAM_VALUES)
    )


def build_suite(spec: DatasetSpec) -> gx.ExpectationSuite:
    """Build the expectation suite of a dataset from its spec.

    The suite holds, in this order: the exact column set; at least one row; the unique key;
    then per column: non-null (``nullable=False``), dtype (int64 and bool columns), regex,
    allowed set (converted to the column's dtype), min/max range, and for float columns
    whose range does not already exclude them, no Census jam values.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset's schema.

    Returns
    -------
    great_expectations.ExpectationSuite
        A suite named ``<dataset>_suite``, not yet added to any context.

    Examples
    --------
    >>> from ingestion.core.datasets import adi_spec
    >>> suite = build_suite(adi_spec())
    >>> suite.name
    'adi_block_group_suite'
    """
    gx = _gx()
    gxe = gx.expectations
    exps: list[gxe.Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*spec.column_names, *(f"{REASON_CHECK}{m}" for m in spec.measures)],
            exact_match=True),
        # An empty frame would pass every column check and replace served data with nothing.
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
    ]
    key = list(spec.key_columns)
    if len(key) >= 2:
        exps.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=key))
    else:
        exps.append(gxe.ExpectColumnValuesToBeUnique(column=key[0]))
    for rule in spec.columns:
        col = rule.name
        if not rule.nullable:
            exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col))
        if rule.dtype in _NUMPY_TYPE:
            exps.append(gxe.ExpectColumnValuesToBeOfType(column=col, type_=_NUMPY_TYPE[rule.dtype]))
        if rule.regex is not None:
            exps.append(gxe.ExpectColumnValuesToMatchRegex(column=col, regex=rule.regex))
        if rule.allowed is not None:
            exps.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=col, value_set=_typed_values(rule.allowed, rule.dtype)
                )
            )
        if rule.minimum is not None or rule.maximum is not None:
            covers_jam = rule.dtype == "float64" and _jam_covered_by_range(
                rule.minimum, rule.maximum
            )
            exps.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=col,
                    min_value=rule.minimum,
                    max_value=rule.maximum,
                    meta={"covers_jam_values": covers_jam},
                )
            )
        if rule.dtype == "float64" and not _jam_covered_by_range(rule.minimum, rule.maximum):
            exps.append(
                gxe.ExpectColumnValuesToNotBeInSet(
                    column=col, value_set=[float(v) for v in JAM_VALUES]
                )
            )
    exps += _reason_expectations(spec)
    return gx.ExpectationSuite(name=suite_name(spec.name), expectations=exps)


REASON_CHECK = "reason_consistent__"


def _reason_expectations(spec: DatasetSpec) -> list[gxe.Expectation]:
    """A value is missing exactly when its ``<measure>_missing`` column gives a reason.

    Checked on a derived boolean column per measure (see `_with_reason_checks`): GX row
    conditions run a pandas query over the whole frame per expectation, far too slow at 40+
    measures.
    """
    gxe = _gx().expectations
    return [
        gxe.ExpectColumnValuesToBeInSet(
            column=f"{REASON_CHECK}{m}", value_set=[True],
            meta={"rule": f"{m} is missing exactly when {m}_missing gives a reason",
                  "report_columns": [m, f"{m}_missing"]})
        for m in spec.measures
    ]


def _with_reason_checks(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """``df`` plus one boolean column per measure: value missing == reason present."""
    checks = {
        f"{REASON_CHECK}{m}": (df[m].isna() == df[f"{m}_missing"].notna())
        if {m, f"{m}_missing"} <= set(df.columns) else True
        for m in spec.measures
    }
    return df.assign(**checks)


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one dataset: what failed, where, with examples.

    Attributes
    ----------
    dataset : str
        The dataset name.
    success : bool
        True when every expectation passed.
    n_rows : int
        Rows validated.
    n_expectations : int
        Expectations in the suite.
    failures : list of dict
        One dict per failed expectation with keys ``expectation`` (GX type),
        ``columns`` (list of column names, empty for table-level checks), ``rule``
        (what was expected), ``unexpected_count``, ``unexpected_values`` (a few examples),
        ``example_rows`` (0-based row positions of some offending rows) and ``message``
        (one line naming the column, the rule, the count, examples and rows); plus
        ``missing_columns`` and ``unexpected_columns`` for the column-set check,
        ``jam_values`` when Census jam values leaked, ``observed`` for a dtype check and
        ``error`` when GX could not evaluate the expectation.
    data_docs : list of str
        Data Docs pages updated by the checkpoint (empty unless requested).

    Examples
    --------
    >>> r = ValidationReport("acs_tract", success=True, n_rows=3, n_expectations=9)
    >>> r.summary()
    'acs_tract: passed 9 expectations on 3 rows'
    """

    dataset: str
    success: bool
    n_rows: int
    n_expectations: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    data_docs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-serialisable builtins.

        Returns
        -------
        dict
            ``dataset``, ``success``, ``n_rows``, ``n_expectations``, ``failures``,
            ``data_docs``.

        Examples
        --------
        >>> ValidationReport("adi_block_group", success=True, n_rows=1, n_expectations=2).to_dict()["success"]
        True
        """  # noqa: E501
        return {
            "dataset": self.dataset,
            "success": self.success,
            "n_rows": self.n_rows,
            "n_expectations": self.n_expectations,
            "failures": [dict(f) for f in self.failures],
            "data_docs": list(self.data_docs),
        }

    def summary(self) -> str:
        """Say in one line whether the dataset passed, or what failed and on which columns.

        Returns
        -------
        str
            For example ``"acs_tract: FAILED 2 checks on 40 rows (pct_crowded, tract_geoid);
            84 expectations"``.

        Examples
        --------
        >>> ValidationReport("acs_tract", success=True, n_rows=3, n_expectations=9).summary()
        'acs_tract: passed 9 expectations on 3 rows'
        """
        if self.success:
            return (
                f"{self.dataset}: passed {self.n_expectations} expectations on {self.n_rows} rows"
            )
        cols = sorted(
            {c for f in self.failures for c in [*f["columns"], *f.get("missing_columns", [])]}
        )
        return (
            f"{self.dataset}: FAILED {len(self.failures)} check(s) on {self.n_rows} rows "
            f"({', '.join(cols) or 'table'}); {self.n_expectations} expectations"
        )

    def describe_failures(self, *, limit: int = 20) -> str:
        """Return the failure messages, one per line, at most ``limit`` of them.

        Parameters
        ----------
        limit : int, optional
            Maximum number of lines; a final line says how many were left out.

        Returns
        -------
        str
            Empty when the validation passed.

        Examples
        --------
        >>> ValidationReport("acs_tract", success=True, n_rows=3, n_expectations=9).describe_failures()
        ''
        """  # noqa: E501
        lines = [f"- {f['message']}" for f in self.failures[:limit]]
        if len(self.failures) > limit:
            lines.append(f"- ... and {len(self.failures) - limit} more failed expectations")
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """Make a value from a GX result JSON-safe (numpy scalars, timestamps, NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _rule_text(exp_type: str, kwargs: dict[str, Any]) -> str:
    if exp_type == "expect_table_columns_to_match_set":
        return "exactly the spec's columns"
    if exp_type in ("expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique"):
        return "unique key"
    if exp_type == "expect_column_values_to_not_be_null":
        return "no nulls"
    if exp_type == "expect_column_values_to_be_of_type":
        return f"dtype {kwargs.get('type_')}"
    if exp_type == "expect_column_values_to_match_regex":
        return f"matches {kwargs.get('regex')}"
    if exp_type == "expect_column_values_to_be_in_set":
        values = list(kwargs.get("value_set") or [])
        shown = ", ".join(map(str, values[:6])) + (", ..." if len(values) > 6 else "")
        return f"one of {{{shown}}}"
    if exp_type == "expect_column_values_to_not_be_in_set":
        return "no Census jam values"
    if exp_type == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if high is None:
            return f">= {low}"
        if low is None:
            return f"<= {high}"
        return f"between {low} and {high}"
    return exp_type


def _jam_values(res: dict[str, Any]) -> list[int]:
    """Find Census jam values among a result's example values and top counts."""
    seen = list(res.get("partial_unexpected_list") or [])
    seen += [c.get("value") for c in res.get("partial_unexpected_counts") or []]
    jams = set()
    for value in seen:
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if number in JAM_VALUES:
            jams.add(int(number))
    return sorted(jams)


def _failure(result: Any, *, present: set[str], n_rows: int) -> dict[str, Any] | None:
    """Turn a failed GX result into a report entry (None: the column set covers it)."""
    config = result.expectation_config
    exp_type = config.type
    kwargs = dict(config.kwargs)
    meta = dict(config.meta or {})
    columns = ([kwargs["column"]] if "column" in kwargs else list(kwargs.get("column_list") or []))
    columns = meta.get("report_columns", columns)
    res = dict(result.result or {})
    entry: dict[str, Any] = {
        "expectation": exp_type,
        "columns": columns,
        "rule": _rule_text(exp_type, kwargs),
        "unexpected_count": int(res.get("unexpected_count") or 0),
        "unexpected_values": _jsonable(list(res.get("partial_unexpected_list") or [])
                                       [:EXAMPLE_COUNT]),
        "example_rows": _jsonable(list(res.get("partial_unexpected_index_list") or [])
                                  [:EXAMPLE_COUNT]),
    }
    where = (f"column{'s' if len(columns) > 1 else ''} {', '.join(columns)}" if columns
             else "table")
    if exp_type == _TABLE_COLUMNS:
        mismatched = (res.get("details") or {}).get("mismatched") or {}
        entry["missing_columns"] = list(mismatched.get("missing") or [])
        entry["unexpected_columns"] = list(mismatched.get("unexpected") or [])
        entry["message"] = (
            f"table: columns differ from the spec: missing {entry['missing_columns'] or 'none'}, "
            f"unexpected {entry['unexpected_columns'] or 'none'}"
        )
        return entry
    if "rule" in meta:
        entry["rule"] = meta["rule"]
    if any(c not in present for c in columns):
        return None  # the column-set failure names the missing column once
    exc = result.exception_info or {}
    if exc.get("raised_exception"):
        reason = str(exc.get("exception_message") or "error").splitlines()[0][:300]
        entry["error"] = reason
        entry["message"] = f"{where}: could not check {entry['rule']}: {reason}"
        return entry
    if exp_type == "expect_table_row_count_to_be_between":
        entry["message"] = f"table: has {res.get('observed_value')} rows, expected at least 1"
        return entry
    if exp_type == "expect_column_values_to_be_of_type":
        entry["observed"] = _jsonable(res.get("observed_value"))
        entry["message"] = f"{where}: expected {entry['rule']}, found {entry['observed']}"
        return entry
    count = entry["unexpected_count"]
    share = f" ({100 * count / n_rows:.2f}% of {n_rows} rows)" if n_rows else ""
    if exp_type == "expect_column_values_to_not_be_null":
        entry["unexpected_values"] = [None] * len(entry["unexpected_values"])
        rule = f" ({meta['rule']})" if "rule" in meta else ""
        entry["message"] = (f"{where}: {count} null value(s){share}{rule} at rows "
                            f"{entry['example_rows']}")
        return entry
    entry["message"] = (
        f"{where}: {count} value(s){share} violate {entry['rule']}; "
        f"examples {entry['unexpected_values']} at rows {entry['example_rows']}"
    )
    jams = _jam_values(res)
    if jams:
        entry["jam_values"] = jams
        entry["message"] += (
            f"; Census jam value(s) {jams} leaked into a number: map them to NaN with a "
            "missing reason"
        )
    return entry


def _failures(
    results: list[Any], spec: DatasetSpec, *, present: set[str], n_rows: int
) -> list[dict[str, Any]]:
    """Build report entries of failed results: table first, then columns in spec order."""
    order = {name: i for i, name in enumerate(spec.column_names)}
    entries = [
        e for e in (_failure(r, present=present, n_rows=n_rows) for r in results if not r.success)
        if e is not None
    ]

    def rank(entry: dict[str, Any]) -> tuple[int, int]:
        if not entry["columns"]:
            return (0, 0)
        if len(entry["columns"]) > 1:
            return (1, 0)
        return (2, order.get(entry["columns"][0], len(order)))

    return sorted(entries, key=rank)


def _fingerprint(suite: gx.ExpectationSuite) -> str:
    """Digest the suite's expectations (stored in its meta to spot an unchanged suite)."""
    configs = [
        {k: v for k, v in e.configuration.to_json_dict().items() if k != "id"}
        for e in suite.expectations
    ]  # ids are assigned on registration, so they are not part of what the suite checks
    payload = json.dumps(configs, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _registered_checkpoint(
    context: AbstractDataContext, name: str, fingerprint: str, *,
    result_format: dict[str, Any], actions: list[str],
) -> gx.Checkpoint | None:
    """Return the stored checkpoint ``name`` if it is the one we would register, else None."""
    try:
        checkpoint = context.checkpoints.get(name)
        (definition,) = checkpoint.validation_definitions
        same = (
            definition.suite.meta.get(_FINGERPRINT_KEY) == fingerprint
            and _canonical(checkpoint.result_format) == _canonical(result_format)
            and [a.type for a in checkpoint.actions] == actions
        )
    except Exception:  # noqa: BLE001 - absent or unreadable: register it afresh
        return None
    return checkpoint if same else None


def _checkpoint(
    context: AbstractDataContext, spec: DatasetSpec, suite: gx.ExpectationSuite, *,
    name: str, result_format: dict[str, Any], data_docs: bool,
) -> gx.Checkpoint:
    """Return checkpoint ``name`` over the dataset's suite, registered if it changed.

    ``checkpoints.add_or_update`` add-or-updates its validation definition, which
    add-or-updates the suite; doing each once more by hand would repeat GX's suite diff,
    which is quadratic in the number of expectations (~0.4 s per pass at 120). A stored
    checkpoint with the same suite fingerprint, result format and actions is reused.
    """
    gx = _gx()
    fingerprint = _fingerprint(suite)
    actions = [gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")] if data_docs else []
    existing = _registered_checkpoint(
        context, name, fingerprint, result_format=result_format,
        actions=[a.type for a in actions],
    )
    if existing is not None:
        return existing
    suite.meta[_FINGERPRINT_KEY] = fingerprint
    # Data source, asset and batch definition are fetched or added, not add_or_update'd:
    # ``data_sources.add_or_update_pandas`` replaces the source with an empty one, dropping
    # the other datasets' assets and so invalidating their checkpoints.
    try:
        source = context.data_sources.get(DATASOURCE_NAME)
    except LookupError:
        source = context.data_sources.add_pandas(name=DATASOURCE_NAME)
    try:
        asset = source.get_asset(spec.name)
    except LookupError:
        asset = source.add_dataframe_asset(name=spec.name)
    batch_name = f"{spec.name}_whole_dataframe"
    try:
        batch_definition = asset.get_batch_definition(batch_name)
    except KeyError:
        batch_definition = asset.add_batch_definition_whole_dataframe(batch_name)
    definition = gx.ValidationDefinition(
        name=f"{spec.name}_validation", data=batch_definition, suite=suite
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=name,
            validation_definitions=[definition],
            actions=actions,
            result_format=dict(result_format),
        )
    )


def _run(checkpoint: gx.Checkpoint, df: pd.DataFrame) -> tuple[Any, Any]:
    """Run a checkpoint on ``df``; return its (validation result id, suite result)."""
    # Copy-on-write turns GX's all-true row filters (one or more per map expectation, each
    # copying the whole frame) into free views.
    with pd.option_context("mode.copy_on_write", True):
        result = checkpoint.run(batch_parameters={"dataframe": df})
    return next(iter(result.run_results.items()))


def workspace_context(workspace: Workspace) -> AbstractDataContext:
    """Open (creating on first use) the workspace's file Great Expectations project.

    The project lives in ``workspace.gx`` (``great_expectations.yml``, suites, validation
    results, ``uncommitted/data_docs/local_site/index.html``). Pass the workspace root, not
    ``workspace.gx``, as GX's ``project_root_dir``: GX adds the ``gx/`` folder itself.

    Parameters
    ----------
    workspace : Workspace
        The deployment's workspace.

    Returns
    -------
    great_expectations.data_context.FileDataContext
        The file data context, for `validate` and `ingestion.gate.publish.publish` in jobs.

    Examples
    --------
    >>> from ingestion.core.datasets import acs_spec
    >>> from ingestion.gate.publish import publish
    >>> ctx = workspace_context(scratch)
    >>> publish(tracts, acs_spec("tract"), scratch, context=ctx, data_docs=True).n_rows
    7
    """
    workspace.gx  # noqa: B018 - make sure the folder exists
    return _gx().get_context(mode="file", project_root_dir=str(workspace.root))


def validate(
    df: pd.DataFrame,
    spec: DatasetSpec,
    *,
    context: AbstractDataContext | None = None,
    data_docs: bool = False,
) -> ValidationReport:
    """Validate a frame against its dataset's suite and report every failure.

    Parameters
    ----------
    df : pandas.DataFrame
        The dataset as it would be published (see `ingestion.gate.publish.publish`, which
        coerces dtypes first). Row positions in the report are 0-based positions in ``df``.
    spec : DatasetSpec
        The dataset's schema; the suite is built from it with `build_suite`.
    context : great_expectations data context, optional
        Where the suite, validation definition and checkpoint are registered. Jobs pass the
        workspace's file context (`workspace_context`); the default is a fresh ephemeral
        context (nothing persisted).
    data_docs : bool, optional
        Add an ``UpdateDataDocsAction`` to the checkpoint so the context's Data Docs sites
        show this run. Only meaningful for a file context.

    Returns
    -------
    ValidationReport
        Success, counts and the failed expectations with example values and rows.

    Raises
    ------
    TypeError
        If ``df`` is not a pandas DataFrame.

    Examples
    --------
    >>> from ingestion.core.datasets import geography_timeline_spec
    >>> report = validate(timeline, geography_timeline_spec())
    >>> report.summary()
    'patient_geography: passed 24 expectations on 5 rows'
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate() needs a pandas DataFrame, got {type(df).__name__}")
    if not (isinstance(df.index, pd.RangeIndex) and df.index.start == 0
            and df.index.step == 1):
        df = df.reset_index(drop=True)
    df = _with_reason_checks(df, spec)
    suite = build_suite(spec)
    gx = _gx()
    ctx = context if context is not None else gx.get_context(mode="ephemeral")
    if ctx.variables.progress_bars is None:
        ctx.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
    gate = _checkpoint(ctx, spec, suite, name=f"{spec.name}_checkpoint",
                       result_format=_GATE_FORMAT, data_docs=data_docs)
    result_id, run = _run(gate, df)
    success = bool(run.success)
    if not success:
        # Only now pay for examples and row positions (values, counts, index lists).
        diagnosis = _checkpoint(ctx, spec, suite, name=f"{spec.name}_diagnosis_checkpoint",
                                result_format=_DIAGNOSIS_FORMAT, data_docs=data_docs)
        result_id, run = _run(diagnosis, df)
    failures = _failures(run.results, spec, present=set(map(str, df.columns)), n_rows=len(df))
    docs: list[str] = []
    if data_docs:
        offline_data_docs(ctx)
        docs = [
            str(site["site_url"])
            for site in ctx.get_docs_sites_urls(resource_identifier=result_id)
            if site.get("site_url")
        ]
    report = ValidationReport(
        dataset=spec.name,
        success=success,
        n_rows=len(df),
        n_expectations=len(run.results),
        failures=failures,
        data_docs=docs,
    )
    log = logger.info if report.success else logger.warning
    log("%s", report.summary())
    return report


# ------------------------------------------------------------------ Data Docs offline
# (pattern of a CDN URL, XStatic package, file in its data folder, copy under static/offline/).
# Bootstrap's bundle includes Popper, which GX loads on its own.
_OFFLINE_ASSETS = (
    (r"bootstrap[@/]4[^/]*/(dist/)?css/bootstrap(\.min)?\.css$", "bootstrap",
     "css/bootstrap.min.css", "bootstrap/css/bootstrap.min.css"),
    (r"bootstrap[@/]4[^/]*/(dist/)?js/bootstrap(\.min)?\.js$", "bootstrap",
     "js/bootstrap.bundle.min.js", "bootstrap/js/bootstrap.bundle.min.js"),
    (r"/jquery-3[.0-9]*(\.min)?\.js$", "jquery", "jquery.min.js", "jquery/jquery.min.js"),
    (r"font-awesome/6[^/]*/css/all(\.min)?\.css$", "font_awesome", "css/all.min.css",
     "font-awesome/css/all.min.css"),
)
_FONT_FOLDER = ("font_awesome", "webfonts", "font-awesome/webfonts")  # all.min.css: ../webfonts/
_REMOTE_TAG = re.compile(
    r"""<(?P<script>script)\b[^>]*?\bsrc=["'](?P<script_url>https?://[^"']+)["'][^>]*>\s*</script>"""
    r"""|<(?P<tag>link|img)\b[^>]*?\b(?:src|href)=["'](?P<url>https?://[^"']+)["'][^>]*>""",
    re.IGNORECASE)
# GX writes some site-relative links one folder short (the favicon of a validation page).
_STATIC_REF = re.compile(r"""(?P<attr>\b(?:src|href)=["'])(?P<ref>(?:\.{1,2}/)*(?P<rest>static/[^"'?]+))""")
_REMOTE_CSS_URL = re.compile(r"""url\(\s*["']?https?://[^)]*\)""", re.IGNORECASE)
_RESULTS_MARK = "<!-- sdoh: validation results -->"
_OFFLINE_MARK = "<!-- sdoh: offline -->"  # a page already rewritten (GX rewrites only some)


def _copy_offline_assets(site: Path) -> None:
    """Copy the XStatic files the pages point to into ``site/static/offline`` (once)."""
    targets = [(package, source, copy) for _, package, source, copy in _OFFLINE_ASSETS]
    for package, source, copy in [*targets, _FONT_FOLDER]:
        target = site / "static" / "offline" / copy
        if target.exists():
            continue
        origin = Path(import_module(f"xstatic.pkg.{package}").BASE_DIR) / source
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target)
        else:
            shutil.copyfile(origin, target)


def _local_tag(match: re.Match, *, page: Path, site: Path) -> str:
    """The tag pointing to a local copy of ``url``, or "" when there is none."""
    tag = (match["script"] or match["tag"]).lower()
    url = match["script_url"] or match["url"]
    path = url.split("?")[0]
    local = next((site / "static" / "offline" / copy for pattern, _, _, copy in _OFFLINE_ASSETS
                  if re.search(pattern, path)), None)
    if tag == "img":  # GX's logo, also shipped in the site's own static/images
        local = site / "static" / "images" / path.rsplit("/", 1)[-1]
    if local is None or not local.exists():
        return ""
    href = Path(os.path.relpath(local, page.parent)).as_posix()
    if tag == "script":
        return f'<script src="{href}"></script>'
    if tag == "link":
        return f'<link rel="stylesheet" href="{href}">'
    return match[0].replace(url, href)


def _static_ref(match: re.Match, *, page: Path, site: Path) -> str:
    """The link to a file of the site's ``static/`` folder, relative to ``page``."""
    target = site / match["rest"]
    if (page.parent / match["ref"]).exists() or not target.exists():
        return match[0]
    return match["attr"] + Path(os.path.relpath(target, page.parent)).as_posix()


def _results_table(context: AbstractDataContext, site: Path) -> str:
    """Every stored validation result, newest first, as a plain HTML table linking its page."""
    store = context.validation_results_store
    rows = []
    for key in store.list_keys():
        # The stored JSON as is: GX's deserialisation costs ~80 ms per result.
        result = json.loads(store.store_backend.get(store.key_to_tuple(key)))
        stats = result["statistics"]
        page = Path("validations", *key.to_tuple()[:-1], f"{key.to_tuple()[-1]}.html")
        name = html.escape(str(result.get("meta", {}).get("active_batch_definition", {}).get(
            "data_asset_name", key.batch_identifier)))
        link = f'<a href="{page.as_posix()}">{name}</a>' if (site / page).exists() else name
        rows.append((key.run_id.run_time, (
            f"<tr><td>{link}</td><td>{html.escape(key.expectation_suite_identifier.name)}</td>"
            f"<td>{key.run_id.run_time:%Y-%m-%d %H:%M:%S} UTC</td>"
            f"<td>{'passed' if result['success'] else 'FAILED'}</td>"
            f"<td>{stats['successful_expectations']} of {stats['evaluated_expectations']}</td></tr>")))
    body = "".join(row for _, row in sorted(rows, key=lambda r: r[0], reverse=True))
    return (f"{_RESULTS_MARK}<section class='sdoh-validation-results container-fluid pt-4 pl-5 pr-5'>"
            "<h2>Validation results</h2><table class='table table-sm table-bordered'>"
            "<thead><tr><th>dataset</th><th>suite</th><th>run time</th><th>status</th>"
            f"<th>expectations met</th></tr></thead><tbody>{body}</tbody></table></section>"
            f"{_RESULTS_MARK}")


def _localize_page(page: Path, site: Path, *, results: str | None) -> None:
    text = page.read_text(encoding="utf-8")
    if _OFFLINE_MARK in text and results is None:
        return
    new = _REMOTE_TAG.sub(lambda m: _local_tag(m, page=page, site=site), text)
    new = _STATIC_REF.sub(lambda m: _static_ref(m, page=page, site=site), new)
    new = _REMOTE_CSS_URL.sub("none", new)
    if results is not None:
        new = re.sub(f"{_RESULTS_MARK}.*?{_RESULTS_MARK}", "", new, flags=re.S)
        new = re.sub(r"(<body[^>]*>)", lambda m: m[1] + results, new, count=1)
    if _OFFLINE_MARK not in new:  # in <head>: before the doctype it would set quirks mode
        new = re.sub(r"(<head[^>]*>)", lambda m: m[1] + _OFFLINE_MARK, new, count=1)
    if new != text:
        page.write_text(new, encoding="utf-8")


def offline_data_docs(context: AbstractDataContext) -> list[Path]:
    """Make the context's local Data Docs sites readable without a network.

    Each page's CDN scripts, stylesheets and images are pointed to local copies (Bootstrap 4,
    jQuery and Font Awesome from their XStatic packages, GX's logo from the site's own
    ``static/images``) or dropped when no local copy exists (bootstrap-table, Vega, the
    date picker); CSS ``url()`` of remote images become ``none``. The index then lists every
    stored validation result in a plain HTML table (GX lists them only through
    bootstrap-table). Pages already rewritten are left as they are, so it runs after every
    Data Docs update.

    Parameters
    ----------
    context : great_expectations data context
        A context whose Data Docs sites are local folders (a file context).

    Returns
    -------
    list of pathlib.Path
        The index page of each site rewritten; sites that are not local files are skipped.

    Examples
    --------
    >>> import great_expectations as gx
    >>> offline_data_docs(gx.get_context(mode="ephemeral"))  # no local site to rewrite
    []
    """
    indexes = []
    for site_url in context.get_docs_sites_urls():
        url = urlparse(str(site_url.get("site_url") or ""))
        index = Path(url2pathname(url.path))
        if url.scheme != "file" or not index.exists():
            continue
        site = index.parent
        _copy_offline_assets(site)
        for page in site.rglob("*.html"):
            _localize_page(page, site, results=_results_table(context, site) if page == index else None)
        indexes.append(index)
    return indexes
