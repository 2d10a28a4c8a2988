"""The publishing gate: merge, conform, stage, validate, then publish or quarantine.

Nothing reaches ``published/`` (what Feast serves) without passing the dataset's Great
Expectations suite. A dataset that fails is moved to ``quarantine/<dataset>/<run id>/`` with
its report and the served file stays byte-identical. Every file is written to a temporary
name in its final folder, fsynced and renamed with ``os.replace``, so a reader never sees a
half-written parquet file.

A publish is all or nothing across partitions. ``published/<dataset>`` is a symbolic link to
a complete version, ``published/.versions/<dataset>/<run id>/``: a publish stages the touched
partitions in ``staging/<dataset>/<run id>/``, validates them, builds the new version (the
untouched partitions hard-linked from the served one), then swaps the link with one
``os.replace``. A reader going through the link sees the old or the new version, never a
mix, at every instant and after a crash anywhere. The version served before is kept (readers
that resolved the link keep a stable view); older ones, unfinished versions and staging
folders of killed runs are removed by the next publish. A workspace whose dataset is a plain
folder (written before versions existed) is migrated by its next publish; for the instant
between its two renames the dataset is absent, and a crash there is undone by the next
publish.

Every file written here holds or may hold patient data: it is created 0600 (folders 0700)
whatever the umask.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.core.atomic import fsync_dir, point_link, write_atomic
from ingestion.core.datasets import DatasetSpec
from ingestion.core.errors import PublishError, ValidationFailed
from ingestion.core.workspace import Workspace, private_dir
from ingestion.gate.validation import ValidationReport, validate, workspace_context

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext

try:  # POSIX advisory locks keep two publishers of one dataset from interleaving.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["PublishResult", "conform", "new_run_id", "point_link", "publish", "published_runs",
           "read_published", "write_atomic"]

logger = logging.getLogger(__name__)

_EXAMPLES = 5
_TIMESTAMP_DTYPE = "datetime64[us, UTC]"  # Feast 0.67 + DuckDB fail on nanosecond parquet
_VERSIONS = ".versions"  # published/.versions/<dataset>/<run id>/: every kept version
_PREVIOUS = ".previous"  # published/.versions/<dataset>/.previous: the version served before
_RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,99}")
_LEGACY_STAGING = re.compile(r"(.+)-(\d{8}T\d{6}_\d{6}Z)")  # staging/<dataset>-<run id>/


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
    run_id : str
        The run that published it: the name of the version folder now served.

    Examples
    --------
    `publish` returns one (its example publishes):

    >>> list(PublishResult.__dataclass_fields__)[:3]
    ['dataset', 'path', 'n_rows']
    """

    dataset: str
    path: Path
    n_rows: int
    report: ValidationReport
    kept_rows: int = 0
    replaced_rows: int = 0
    run_id: str = ""


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
    >>> from ingestion.core.datasets import adi_spec
    >>> from ingestion.core.datasets import acs_spec
    >>> out = conform(tracts.astype({"release_ts": str}), acs_spec("tract"))
    >>> str(out["release_ts"].dtype)
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


@contextlib.contextmanager
def _dataset_lock(workspace: Workspace, dataset: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``dataset`` (read-merge-write must not interleave).

    Yields whether the lock is held: always with ``wait``; without, False when another
    process holds it.
    """
    if fcntl is None:  # pragma: no cover - Windows
        yield wait
        return
    lock_path = workspace.staging / f".{dataset}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
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


def new_run_id() -> str:
    """A new run id: the UTC time to the microsecond, e.g. ``20261206T221500_123456Z``.

    Examples
    --------
    >>> len(new_run_id())
    23
    """
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S_%fZ")


def _quarantine(
    staged: Path, workspace: Workspace, spec: DatasetSpec, report: ValidationReport, run_id: str
) -> tuple[Path, Path]:
    folder = workspace.quarantine / spec.name / run_id
    private_dir(folder.parent)
    folder.mkdir(mode=0o700)
    os.replace(staged, folder / "data")  # the staged partition files, as validated
    fsync_dir(folder)
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
    run_id: str | None = None,
) -> PublishResult:
    """Validate a dataset and, only if it passes, atomically replace the served version.

    Steps: clean up what killed runs left (their staging folders, unfinished versions);
    conform dtypes and column order (`conform`); split the rows into the dataset's partition
    files (``<vintage>/<state>.parquet``); merge each touched partition with its served file
    (new rows replace old rows with the same key); write the staged files under
    ``staging/<dataset>/<run id>/``; validate them together; then build the new version
    (staged partitions moved in, untouched ones hard-linked) and swap the link
    ``workspace.published_dir(spec.name)`` to it in one atomic rename, so every partition
    changes at once. On failure the staged files go to
    ``workspace.quarantine/<dataset>/<run id>/`` with ``report.json`` beside it and the
    published version is left untouched.

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
    run_id : str, optional
        The run's id, naming its staging, version and quarantine folders (letters, digits,
        ``_.-``; default `new_run_id`). Pass one to tie other outputs of the run to it.

    Returns
    -------
    PublishResult
        The published path, row count, validation report and run id.

    Raises
    ------
    ValidationFailed
        If the dataset fails its suite; ``report_path`` points to the quarantined report.
    PublishError
        If a value cannot be coerced to its column's type (nothing is staged).

    Examples
    --------
    >>> from ingestion.core.datasets import geography_timeline_spec
    >>> from ingestion.core.workspace import Workspace
    >>> import tempfile
    >>> result = publish(timeline, geography_timeline_spec(), Workspace(tempfile.mkdtemp()))
    >>> result.dataset, result.n_rows, result.path.name
    ('patient_geography', 5, 'patient_geography')
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"publish() needs a pandas DataFrame, got {type(df).__name__}")
    run_id = new_run_id() if run_id is None else run_id
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run_id {run_id!r}: expected letters, digits and _.- (at most 100), "
                         "starting with a letter or digit")
    if context is None and data_docs:
        context = workspace_context(workspace)
    link = workspace.published_dir(spec.name)
    with _dataset_lock(workspace, spec.name):
        _recover(workspace, spec.name)
        _clean_staging(workspace, spec.name)
        staged = private_dir(workspace.staging / spec.name) / run_id
        try:
            frame = conform(df, spec)
            parts, old_rows, replaced = _stage(frame, spec, link, staged, merge=merge)
            kept = len(old_rows)
            # New rows first, in the caller's order, so the report's row numbers are theirs.
            checked = pd.concat([frame, old_rows], ignore_index=True) if kept else frame
            report = validate(checked, spec, context=context, data_docs=data_docs)
            if not report.success:
                data_path, report_path = _quarantine(staged, workspace, spec, report, run_id)
                message = _failure_message(spec, report, workspace, data_path, report_path)
                logger.warning("%s failed validation; quarantined to %s", spec.name,
                               data_path.parent)
                raise ValidationFailed(message, report_path=str(report_path))
            version = _versions(workspace, spec.name) / run_id
            _build_version(staged, link, version, parts, replace_all=not merge)
            _swap(link, version)
            _recover(workspace, spec.name)  # versions older than the previous one go
            n_rows = sum(pq.ParquetFile(f).metadata.num_rows
                         for f in version.glob("**/*.parquet"))
        finally:
            shutil.rmtree(staged, ignore_errors=True)
            with contextlib.suppress(OSError):  # the dataset's folder, once no run uses it
                staged.parent.rmdir()
    logger.info(
        "published %s: %d rows validated (%d kept, %d replaced), %d served from %s (run %s)",
        spec.name, report.n_rows, kept, replaced, n_rows, link, run_id,
    )
    return PublishResult(
        dataset=spec.name,
        path=link,
        n_rows=n_rows,
        report=report,
        kept_rows=kept,
        replaced_rows=replaced,
        run_id=run_id,
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
        _private_folders(staged, rel)
        try:
            _write_parquet(part, target, spec)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise PublishError(
                f"{spec.name}: cannot write the conformed frame as parquet ({exc}); "
                "check the columns the spec does not know"
            ) from exc
    old_rows = pd.concat(kept, ignore_index=True) if kept else frame.iloc[0:0]
    return sorted(groups), old_rows, replaced


def _private_folders(root: Path, rel: str) -> list[Path]:
    """Create ``root`` and the folders of the file ``rel`` under it, each 0700; return them."""
    folders = [root, *(root / f for f in reversed(Path(rel).parents[:-1]))]
    for folder in folders:
        private_dir(folder)
    return folders


def _versions(workspace: Workspace, dataset: str) -> Path:
    return workspace.published_dir(dataset).parent / _VERSIONS / dataset


def _build_version(staged: Path, link: Path, version: Path, parts: list[str], *,
                   replace_all: bool) -> None:
    """Make ``version`` a complete copy of what will be served.

    The staged parts are moved in; the served partitions they do not replace are hard-linked
    (copied where links fail).
    """
    private_dir(version.parent)
    version.mkdir(mode=0o700)  # a run id already used fails here
    files = {rel: staged / rel for rel in parts}
    if not replace_all and link.is_dir():  # publishing without merge serves only the new parts
        for old in link.glob("**/*.parquet"):
            files.setdefault(old.relative_to(link).as_posix(), old)
    folders = {version}
    for rel, source in sorted(files.items()):
        target = version / rel
        folders.update(_private_folders(version, rel))
        if source.is_relative_to(staged):
            os.replace(source, target)
        else:
            try:
                os.link(source, target)  # served files are never rewritten in place
            except OSError:
                shutil.copy2(source, target)
    for folder in folders:
        fsync_dir(folder)
    fsync_dir(version.parent)


def _swap(link: Path, version: Path) -> None:
    """Serve ``version`` through ``link``; remember the version served before as previous."""
    previous = version.parent / _PREVIOUS
    if link.is_symlink():
        point_link(previous, link.resolve())
    else:
        previous.unlink(missing_ok=True)
    point_link(link, version)


def _recover(workspace: Workspace, dataset: str) -> None:
    """Finish or undo what a killed publish of ``dataset`` left (the caller holds its lock).

    A plain folder set aside during migration goes back if the link was not made, else goes;
    versions neither served nor previous (unfinished, unserved or old) are removed.
    """
    link = workspace.published_dir(dataset)
    aside = link.with_name(f".{link.name}.plain")
    if aside.exists():
        if not link.is_symlink():
            os.rename(aside, link)
            logger.warning("%s: restored the folder a killed publish had set aside", dataset)
        else:
            shutil.rmtree(aside)
    link.with_name(f".{link.name}.link").unlink(missing_ok=True)
    versions = _versions(workspace, dataset)
    if not versions.is_dir():
        return
    keep = {p.resolve() for p in (link, versions / _PREVIOUS) if p.is_symlink()}
    (versions / f".{_PREVIOUS}.link").unlink(missing_ok=True)
    for version in versions.iterdir():
        if version.is_dir() and not version.is_symlink() and version.resolve() not in keep:
            shutil.rmtree(version)
            logger.info("%s: removed version %s (not served)", dataset, version.name)


def _clean_staging(workspace: Workspace, dataset: str) -> None:
    """Remove the staging folders of killed runs.

    Every one of ``dataset`` (whose lock the caller holds) and those of any other dataset no
    process is publishing now.
    """
    for entry in workspace.staging.iterdir():
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        legacy = _LEGACY_STAGING.fullmatch(entry.name)  # staging/<dataset>-<run id>/
        name = legacy[1] if legacy else entry.name
        if name == dataset:
            _remove_staged(entry, whole=bool(legacy))
            continue
        with _dataset_lock(workspace, name, wait=False) as held:
            if held:
                _remove_staged(entry, whole=bool(legacy))


def _remove_staged(entry: Path, *, whole: bool) -> None:
    runs = [entry] if whole else list(entry.iterdir())
    for run in runs:
        logger.warning("removing %s, staged by a run that did not finish", run)
        shutil.rmtree(run, ignore_errors=True)


def published_runs(dataset: str, workspace: Workspace) -> list[str]:
    """The run ids of the versions of ``dataset`` kept: the served one first, then the previous.

    Empty before the dataset's first versioned publish.

    Examples
    --------
    >>> published_runs("patient_geography", ws)  # doctest: +ELLIPSIS
    ['..._...Z']
    """
    link = workspace.published_dir(dataset)
    previous = _versions(workspace, dataset) / _PREVIOUS
    runs = [p.resolve().name for p in (link, previous) if p.is_symlink()]
    return list(dict.fromkeys(runs))


def read_published(spec: DatasetSpec, workspace: Workspace) -> pd.DataFrame:
    """Read the served version of a dataset (the link is resolved once: one version).

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
    >>> from ingestion.core.datasets import acs_spec
    >>> df = read_published(acs_spec("tract"), ws)
    >>> df[["tract_geoid", "vintage", "pct_below_poverty"]].head(2)
       tract_geoid  vintage  pct_below_poverty
    0  99001000300     2019               10.0
    1  99001000100     2019                5.0
    """
    if not workspace.is_published(spec.name):
        raise PublishError(
            f"{spec.name} has not been published in {workspace.root}: "
            f"{workspace.published_dir(spec.name)} holds no data; ingest it first (`sdoh ingest`)"
        )
    path = workspace.published_dir(spec.name).resolve()
    return pd.read_parquet(path)
