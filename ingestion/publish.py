"""The publishing gate: merge, conform, stage, validate, then publish or quarantine.

Nothing reaches ``published/`` (what Feast serves) without passing the dataset's Great
Expectations suite. A dataset that fails is moved to ``quarantine/<dataset>/<run id>/`` with
its report and the served file stays byte-identical. Every file is written to a temporary
name in its final folder, fsynced and renamed with ``os.replace``, so a reader never sees a
half-written parquet file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from great_expectations.data_context import AbstractDataContext

from ingestion.datasets import DatasetSpec
from ingestion.errors import PublishError, ValidationFailed
from ingestion.validation import ValidationReport, validate, workspace_context
from ingestion.workspace import Workspace

try:  # POSIX advisory locks keep two publishers of one dataset from interleaving.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["PublishResult", "conform", "publish", "read_published"]

logger = logging.getLogger(__name__)

_EXAMPLES = 5
_TIMESTAMP_DTYPE = "datetime64[us, UTC]"  # Feast 0.67 + DuckDB fail on nanosecond parquet


@dataclass(frozen=True)
class PublishResult:
    """A dataset that passed validation and now is served.

    Attributes
    ----------
    dataset : str
        The dataset name.
    path : pathlib.Path
        The published parquet file.
    n_rows : int
        Rows in the published file.
    report : ValidationReport
        The validation that let it through.
    kept_rows : int
        Rows kept from the previously published file (merge).
    replaced_rows : int
        Previously published rows replaced by new rows with the same key.

    Examples
    --------
    >>> result = publish(frame, acs_spec("tract"), ws)  # doctest: +SKIP
    >>> result.path.name  # doctest: +SKIP
    'acs_tract.parquet'
    """

    dataset: str
    path: Path
    n_rows: int
    report: ValidationReport
    kept_rows: int = 0
    replaced_rows: int = 0


def _bad_examples(values: pd.Series, bad: pd.Series) -> str:
    rows = list(values.index[bad][:_EXAMPLES])
    return f"examples {list(values[bad].head(_EXAMPLES))} at rows {rows}"


def _as_string(col: pd.Series) -> pd.Series:
    if col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
        return col.where(col.notna(), None)
    out = col.astype(object)
    present = out.notna()
    out[present] = out[present].astype(str)
    return out.where(present, None)


def _as_number(name: str, col: pd.Series, dtype: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(col):
        raise PublishError(f"column {name}: expected {dtype}, got booleans")
    numbers = pd.to_numeric(col, errors="coerce")
    bad = numbers.isna() & col.notna()
    if bad.any():
        raise PublishError(
            f"column {name}: expected {dtype}, found {int(bad.sum())} non-numeric value(s); "
            f"{_bad_examples(col, bad)}"
        )
    numbers = numbers.astype("float64")
    if dtype == "int64" and numbers.notna().all():
        whole = numbers == numbers.round()
        if whole.all():
            return numbers.astype("int64")
        # Fractions stay float64 so the int64 dtype expectation reports them.
    return numbers


def _as_bool(name: str, col: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(col) and col.dtype != object:
        return col.astype("bool") if col.notna().all() else col.astype(object)
    ok = col.isna() | col.isin([True, False])
    if not ok.all():
        raise PublishError(
            f"column {name}: expected bool, found {int((~ok).sum())} other value(s); "
            f"{_bad_examples(col, ~ok)}"
        )
    if col.notna().all():
        return col.astype("bool")
    # Nulls stay (object) so the not-null expectation reports them.
    return col.astype(object).where(col.notna(), None)


def _as_timestamp(name: str, col: pd.Series) -> pd.Series:
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        stamps = col.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(col):
        stamps = col.dt.tz_localize("UTC")
    else:
        try:
            stamps = pd.to_datetime(col, utc=True, format="mixed")
        except (ValueError, TypeError) as exc:
            raise PublishError(
                f"column {name}: expected timestamps, could not parse them ({exc})"
            ) from exc
    return stamps.dt.floor("us").astype(_TIMESTAMP_DTYPE)


def conform(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Coerce a frame to the dtypes and column order ``spec`` publishes.

    Strings become object columns of ``str`` (nulls ``None``), ``int64`` and ``float64``
    numbers, ``bool`` booleans, and timestamps ``datetime64[us, UTC]`` (naive timestamps are
    taken as UTC; anything finer than a microsecond is floored: Feast 0.67 cannot
    materialize nanosecond parquet). Columns come in ``spec.column_names`` order; columns the
    spec lacks are kept at the end and missing ones stay missing, so validation reports both.
    An int64 or bool column with nulls (or an int64 column with fractions) is left float64 or
    object so that validation, not coercion, reports it.

    Parameters
    ----------
    df : pandas.DataFrame
        The built dataset.
    spec : DatasetSpec
        Its schema.

    Returns
    -------
    pandas.DataFrame
        A new frame with a fresh 0..n-1 index.

    Raises
    ------
    PublishError
        If a value cannot be read as its column's type (text in a number column, an
        unparseable timestamp); the message names the column, values and rows.

    Examples
    --------
    >>> from ingestion.datasets import adi_spec
    >>> out = conform(frame, adi_spec())  # doctest: +SKIP
    >>> str(out["release_ts"].dtype)  # doctest: +SKIP
    'datetime64[us, UTC]'
    """
    df = df.reset_index(drop=True)
    out: dict[str, pd.Series] = {}
    for rule in spec.columns:
        if rule.name not in df.columns:
            continue
        col = df[rule.name]
        if rule.dtype == "string":
            out[rule.name] = _as_string(col)
        elif rule.dtype in ("int64", "float64"):
            out[rule.name] = _as_number(rule.name, col, rule.dtype)
        elif rule.dtype == "bool":
            out[rule.name] = _as_bool(rule.name, col)
        elif rule.dtype == "timestamp":
            out[rule.name] = _as_timestamp(rule.name, col)
        else:
            raise PublishError(f"column {rule.name}: unknown spec dtype {rule.dtype!r}")
    known = set(spec.column_names)
    for name in df.columns:
        if name not in known:
            out[str(name)] = df[name]
    return pd.DataFrame(out, index=df.index)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, write: Any) -> None:
    """Write through ``write(file)`` to a temp file beside ``path``, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _write_parquet(df: pd.DataFrame, path: Path, spec: DatasetSpec) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    # A text column with no value in this partition would be typed null, and readers of the
    # whole folder (DuckDB, Feast) then fail to unify it with the other partitions' strings.
    strings = {c.name for c in spec.columns if c.dtype == "string"}
    for i, column in enumerate(table.schema):
        if pa.types.is_null(column.type) and column.name in strings:
            table = table.set_column(i, pa.field(column.name, pa.string()),
                                     table.column(i).cast(pa.string()))
    write_atomic(path, lambda handle: pq.write_table(table, handle, coerce_timestamps="us"))


def _move(src: Path, dst: Path) -> None:
    os.replace(src, dst)
    _fsync_dir(dst.parent)


@contextlib.contextmanager
def _dataset_lock(workspace: Workspace, dataset: str) -> Iterator[None]:
    """Hold an exclusive lock on ``dataset`` (read-merge-write must not interleave)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    lock_path = workspace.staging / f".{dataset}.lock"
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _kept_rows(new: pd.DataFrame, old: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, int]:
    """Served rows whose key is not among the new rows, and how many were replaced.

    Duplicates inside ``new`` are kept, so the unique-key expectation reports them. New rows
    decide the columns: a column missing from them must stay missing (and fail validation)
    rather than be filled with nulls from the old rows' schema.
    """
    key = list(spec.key_columns)
    if any(k not in new.columns for k in key):
        return old.iloc[0:0].reindex(columns=new.columns), 0
    replaced = pd.MultiIndex.from_frame(old[key]).isin(pd.MultiIndex.from_frame(new[key]))
    return old.loc[~replaced].reindex(columns=new.columns), int(replaced.sum())


def _run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S_%fZ")


def _quarantine(
    staged: Path, workspace: Workspace, spec: DatasetSpec, report: ValidationReport, run_id: str
) -> tuple[Path, Path]:
    folder = workspace.quarantine / spec.name / run_id
    folder.mkdir(parents=True)
    os.replace(staged, folder / "data")  # the staged partition files, as validated
    _fsync_dir(folder)
    report_path = folder / "report.json"
    payload = {
        "run_id": run_id,
        "dataset": spec.name,
        "quarantined_at": datetime.now(UTC).isoformat(),
        "data": str(folder / "data"),
        "published": str(workspace.published_dir(spec.name)),
        "published_unchanged": True,
        **report.to_dict(),
    }
    text = json.dumps(payload, indent=2, default=str).encode()
    write_atomic(report_path, lambda handle: handle.write(text))
    return folder / "data", report_path


def _failure_message(
    spec: DatasetSpec, report: ValidationReport, workspace: Workspace, data: Path, report_path: Path
) -> str:
    served = (
        f"the served data in {workspace.published_dir(spec.name)} is unchanged"
        if workspace.is_published(spec.name) else "no earlier version is served"
    )
    return (
        f"{spec.name} failed validation and was not published ({served}): "
        f"{len(report.failures)} failed check(s) on {report.n_rows} rows.\n"
        f"{report.describe_failures(limit=15)}\n"
        f"Quarantined data: {data}\n"
        f"Report: {report_path}\n"
        f"Next: fix the builder or source data behind the columns above (inspect the rows with "
        f"pandas.read_parquet('{data}')), then publish {spec.name} again."
    )


def publish(
    df: pd.DataFrame,
    spec: DatasetSpec,
    workspace: Workspace,
    *,
    merge: bool = True,
    context: AbstractDataContext | None = None,
    data_docs: bool = False,
) -> PublishResult:
    """Validate a dataset and, only if it passes, atomically replace the served file.

    Steps: conform dtypes and column order (`conform`); split the rows into the dataset's
    partition files (``<vintage>/<state>.parquet``); merge each touched partition with its
    served file (new rows replace old rows with the same key); write the staged files
    atomically under ``workspace.staging``; validate them together (`validate` on the files
    read back); then move each over its served file in ``workspace.published_dir(spec.name)``
    by an atomic rename. On failure the staged files go to
    ``workspace.quarantine/<dataset>/<UTC run id>/`` with
    ``report.json`` beside it and the published file is left untouched.

    Parameters
    ----------
    df : pandas.DataFrame
        The new rows (or the whole dataset).
    spec : DatasetSpec
        The dataset's schema.
    workspace : Workspace
        Where staging, published and quarantine folders live.
    merge : bool, optional
        Combine with the published file (default). False publishes ``df`` alone.
    context : great_expectations data context, optional
        Passed to `validate`. Default: the workspace's file project when ``data_docs`` is
        set (jobs), else an ephemeral context (tests, one-off checks).
    data_docs : bool, optional
        Keep validation results and update Data Docs in the workspace's GX project.

    Returns
    -------
    PublishResult
        The published path, row count and validation report.

    Raises
    ------
    ValidationFailed
        If the dataset fails its suite; ``report_path`` points to the quarantined report.
    PublishError
        If a value cannot be coerced to its column's type (nothing is staged).

    Examples
    --------
    >>> from ingestion.datasets import acs_spec
    >>> from ingestion.workspace import Workspace
    >>> ws = Workspace("/tmp/sdoh-example")
    >>> result = publish(frame, acs_spec("tract"), ws)  # doctest: +SKIP
    >>> result.n_rows  # doctest: +SKIP
    40
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"publish() needs a pandas DataFrame, got {type(df).__name__}")
    if context is None and data_docs:
        context = workspace_context(workspace)
    folder = workspace.published_dir(spec.name)
    with _dataset_lock(workspace, spec.name):
        run_id = _run_id()
        staged = workspace.staging / f"{spec.name}-{run_id}"
        frame = conform(df, spec)
        parts, old_rows, replaced = _stage(frame, spec, folder, staged, merge=merge)
        kept = len(old_rows)
        # New rows first, in the caller's order, so the report's row numbers are theirs.
        checked = pd.concat([frame, old_rows], ignore_index=True) if kept else frame
        try:
            report = validate(checked, spec, context=context, data_docs=data_docs)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        if not report.success:
            data_path, report_path = _quarantine(staged, workspace, spec, report, run_id)
            message = _failure_message(spec, report, workspace, data_path, report_path)
            logger.warning("%s failed validation; quarantined to %s", spec.name, data_path.parent)
            raise ValidationFailed(message, report_path=str(report_path))
        _swap_in(staged, folder, parts, replace_all=not merge)
    n_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob("**/*.parquet"))
    logger.info(
        "published %s: %d rows validated (%d kept, %d replaced), %d served from %s",
        spec.name, report.n_rows, kept, replaced, n_rows, folder,
    )
    return PublishResult(
        dataset=spec.name,
        path=folder,
        n_rows=n_rows,
        report=report,
        kept_rows=kept,
        replaced_rows=replaced,
    )


def _stage(
    frame: pd.DataFrame, spec: DatasetSpec, folder: Path, staged: Path, *, merge: bool
) -> tuple[list[str], pd.DataFrame, int]:
    """Write each partition the new rows touch, merged with its served file, into ``staged``.

    Returns the partition files written, the served rows they keep, and how many served rows
    the new rows replace.
    """
    kept: list[pd.DataFrame] = []
    replaced = 0
    groups = dict(tuple(frame.groupby(spec.partition_paths(frame), sort=True))) or {
        "data.parquet": frame}
    for rel, part in groups.items():
        served = folder / rel
        if merge and served.exists():
            old, n_replaced = _kept_rows(part, pd.read_parquet(served), spec)
            kept.append(old)
            replaced += n_replaced
            part = pd.concat([old, part], ignore_index=True) if len(old) else part
        target = staged / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            _write_parquet(part, target, spec)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            shutil.rmtree(staged, ignore_errors=True)
            raise PublishError(
                f"{spec.name}: cannot write the conformed frame as parquet ({exc}); "
                "check the columns the spec does not know"
            ) from exc
    old_rows = pd.concat(kept, ignore_index=True) if kept else frame.iloc[0:0]
    return sorted(groups), old_rows, replaced


def _swap_in(staged: Path, folder: Path, parts: list[str], *, replace_all: bool) -> None:
    """Move validated partition files over the served ones, each by an atomic rename."""
    for rel in parts:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        _move(staged / rel, folder / rel)
    if replace_all:  # publishing without merge serves exactly the new partitions
        for old in folder.glob("**/*.parquet"):
            if old.relative_to(folder).as_posix() not in parts:
                old.unlink()
    shutil.rmtree(staged, ignore_errors=True)


def read_published(spec: DatasetSpec, workspace: Workspace) -> pd.DataFrame:
    """Read the served parquet file of a dataset.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset's schema.
    workspace : Workspace
        The workspace it was published in.

    Returns
    -------
    pandas.DataFrame
        The published rows, columns in spec order, timestamps ``datetime64[us, UTC]``.

    Raises
    ------
    PublishError
        If the dataset has not been published in ``workspace``.

    Examples
    --------
    >>> from ingestion.datasets import acs_spec
    >>> df = read_published(acs_spec("tract"), ws)  # doctest: +SKIP
    """
    if not workspace.is_published(spec.name):
        raise PublishError(
            f"{spec.name} has not been published in {workspace.root}: "
            f"{workspace.published_dir(spec.name)} holds no data; ingest it first (`sdoh ingest`)"
        )
    path = workspace.published_dir(spec.name)
    return pd.read_parquet(path)
