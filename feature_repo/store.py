"""Open the Feast store of a workspace under a profile, register definitions, materialize."""

from __future__ import annotations

import datetime as dt
import glob
import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from string import Template

import yaml
from feast import FeatureStore, FeatureView
from feast.repo_config import RepoConfig
from feast.utils import make_tzaware
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from feature_repo.entities import ALL_ENTITIES
from feature_repo.fast_materialize import DEFAULT_START, fast_materialize
from feature_repo.feature_services import feature_services
from feature_repo.feature_views import feature_views
from feature_repo.metadata import check_views
from ingestion.errors import InputError, PublishError, ServiceUnavailable
from ingestion.publish import write_atomic
from ingestion.workspace import Workspace

log = logging.getLogger(__name__)
# ibis, under Feast's DuckDB offline store, calls a deprecated DuckDB method on every query;
# set after importing feast, whose own simplefilter("once", DeprecationWarning) would win.
warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated",
                        category=DeprecationWarning)
PROFILES = ("embedded", "production", "spark")
# Settings a profile may use; each can be overridden by the environment variable of its name.
SETTINGS = {
    "SDOH_PROJECT": "sdoh",
    "SDOH_REDIS": "127.0.0.1:6379",
    "SDOH_REGISTRY_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "SDOH_SPARK_MASTER": "local[2]",
    "SDOH_SPARK_DRIVER_MEMORY": "4g",  # Spark's 1g default hangs near 1M entity rows
    "SDOH_SPARK_SHUFFLE_PARTITIONS": "8",  # Spark's 200 default suits a cluster, not local[2]
}


def selected_profile(profile: str | None = None) -> str:
    """The profile to use: the argument, else ``SDOH_PROFILE``, else ``embedded``."""
    chosen = profile or os.environ.get("SDOH_PROFILE") or "embedded"
    if chosen not in PROFILES:
        raise ValueError(f"unknown profile {chosen!r}; choose one of {PROFILES} (SDOH_PROFILE)")
    return chosen


def render_profile(workspace: Workspace, profile: str | None = None) -> str:
    """The profile's feature_store.yaml text with the workspace and settings filled in.

    Examples
    --------
    >>> "duckdb" in render_profile(Workspace("/tmp/ws"), "embedded")
    True
    """
    name = selected_profile(profile)
    text = resources.files("feature_repo").joinpath("profiles", f"{name}.yaml").read_text()
    values = {key: os.environ.get(key, default) for key, default in SETTINGS.items()}
    return Template(text).substitute(values, SDOH_WORKSPACE=str(workspace.root))


def feature_store(workspace: Workspace, *, profile: str | None = None) -> FeatureStore:
    """A FeatureStore for ``workspace`` under a profile (argument, ``SDOH_PROFILE``, or embedded).

    Also writes the rendered feature_store.yaml into ``<workspace>/feast`` for Feast's CLI and
    UI; the production profile's file holds connection settings, so it is created 0600 (never
    briefly readable by others) in a private folder. A SQLite online store's file holds
    patient keys and features: it is created 0600 before Feast opens it (SQLite gives its
    journal the same mode).

    Examples
    --------
    >>> store = feature_store(Workspace("/tmp/ws"))  # doctest: +SKIP
    """
    text = render_profile(workspace, profile)
    path = workspace.feast / "feature_store.yaml"
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))
    config = RepoConfig(**yaml.safe_load(text))
    config.repo_path = workspace.feast
    if config.online_store.type == "sqlite":
        _private_file(Path(workspace.feast, config.online_store.path))
    return FeatureStore(config=config)


def _registry_unreachable(store: FeatureStore, exc: OperationalError) -> ServiceUnavailable:
    """The error for a SQL registry that cannot be reached: which one (password hidden), why."""
    url = make_url(store.config.registry.path).render_as_string(hide_password=True)
    cause = (str(exc.orig or exc).strip().splitlines() or ["no answer"])[0]
    return ServiceUnavailable(
        f"cannot reach the Feast registry at {url} ({cause}); start PostgreSQL or point "
        "SDOH_REGISTRY_URL at a running one, or use the embedded profile (unset SDOH_PROFILE)")


def _private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if absent (an empty file is an empty SQLite database)."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)  # exact whatever the umask, and closes a file an older version left open


def apply_definitions(store: FeatureStore, workspace: Workspace) -> list[str]:
    """Register entities, sources, views and services for what is published; returns view names.

    Raises
    ------
    PublishError
        If nothing is published in ``workspace``.
    ServiceUnavailable
        If the profile's SQL registry (PostgreSQL) cannot be reached.

    Examples
    --------
    >>> apply_definitions(feature_store(Workspace("ws")), Workspace("ws"))  # doctest: +SKIP
    ['acs_tract', 'patient_geography']
    """
    views = feature_views(workspace)
    if not views:
        raise PublishError(f"nothing is published in {workspace.root}: run `sdoh ingest` first")
    check_views(views)  # every field carries DESIGN.md section 4's metadata, in vocabulary
    try:
        store.apply([*ALL_ENTITIES, *views, *feature_services(views)])
    except OperationalError as exc:  # Feast's SQL registry connects on first use
        raise _registry_unreachable(store, exc) from exc
    return [v.name for v in views]


@dataclass(frozen=True)
class ViewWindow:
    """One view's materialization: its event-time window, why, and the rows written.

    ``written`` is None on Feast's path, which does not report it.
    """

    view: str
    start: dt.datetime
    end: dt.datetime
    reason: str  # "first", "incremental" or "files changed"
    written: int | None = None


def _files(view: FeatureView) -> dict[str, list[int]]:
    """Each file of a view's source glob with (mtime in ns, size, inode): what it was read from."""
    files = {}
    for path in sorted(glob.glob(view.batch_source.path, recursive=True)):
        stat = os.stat(path)
        files[path] = [stat.st_mtime_ns, stat.st_size, stat.st_ino]
    return files


def _record_path(store: FeatureStore) -> Path:
    return Path(store.config.repo_path) / "materialized_files.json"


def _read_record(store: FeatureStore) -> dict:
    path = _record_path(store)
    record = json.loads(path.read_text()) if path.exists() else {}
    return record.get(store.project, {})


def _write_record(store: FeatureStore, views: dict[str, dict]) -> None:
    path = _record_path(store)
    record = json.loads(path.read_text()) if path.exists() else {}
    record[store.project] = {**record.get(store.project, {}), **views}
    partial = path.with_suffix(".json.partial")  # a crash never leaves half a record
    partial.write_text(json.dumps(record, indent=1))
    os.replace(partial, path)


def materialization_plan(store: FeatureStore, *, views: Sequence[str] | None = None,
                         end: dt.datetime | None = None) -> list[ViewWindow]:
    """The window each view needs, from the registry's materialization intervals.

    Feast's ``materialize-incremental`` semantics: a view materialized before gets
    ``[its most recent end, end]``. A view never materialized (no interval in the registry)
    gets the whole history from 1970. A view whose published files changed since its last
    materialization (a vintage published late, with a release date inside a window already
    done, or a republished timeline) gets the whole history again, which Feast's event-time
    windows alone would miss.

    Examples
    --------
    >>> [w.reason for w in materialization_plan(store)]  # doctest: +SKIP
    ['incremental', 'files changed']
    """
    end = make_tzaware(end or dt.datetime.now(dt.UTC))
    done = _read_record(store)
    plan = []
    for view in _online_views(store, views):
        last = view.most_recent_end_time
        if last is None:
            plan.append(ViewWindow(view.name, DEFAULT_START, end, "first"))
        elif _files(view) != done.get(view.name):
            plan.append(ViewWindow(view.name, DEFAULT_START, end, "files changed"))
        else:
            plan.append(ViewWindow(view.name, make_tzaware(last), end, "incremental"))
    return plan


def _online_views(store: FeatureStore, names: Sequence[str] | None) -> list[FeatureView]:
    known = {v.name: v for v in store.list_feature_views() if v.online}
    if names is None:
        return list(known.values())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown feature views {unknown}; choose from {sorted(known)} "
                         "(or run `sdoh apply` first)")
    return [known[n] for n in names]


def materialize(store: FeatureStore, *, views: Sequence[str] | None = None,
                end: dt.datetime | None = None, feast_default: bool = False,
                progress: bool = True) -> list[ViewWindow]:
    """Bring the online store up to date: only the rows each view gained since last time.

    Windows come from `materialization_plan`; views sharing a window are written together, by
    `feature_repo.fast_materialize.fast_materialize` (same online values as Feast, about 8-10x
    faster) or, with ``feast_default``, by Feast's own ``store.materialize``. Both record the
    window in the registry, so Feast's ``materialize-incremental`` continues where this stops.

    Parameters
    ----------
    store : feast.FeatureStore
        A store with definitions applied.
    views : sequence of str, optional
        Feature views to materialize; default every online view.
    end : datetime, optional
        End of the event-time window (included); default now.
    feast_default : bool, default False
        Write through Feast's default (slow) materialization instead.
    progress : bool, default True
        Show a progress bar per view.

    Returns
    -------
    list of ViewWindow
        Per view: the window, why, and the entity rows written (None on Feast's path).

    Raises
    ------
    InputError
        If a view is unknown or offline.

    Examples
    --------
    >>> [(w.view, w.written) for w in materialize(store)]  # doctest: +SKIP
    [('acs_tract', 0), ('patient_geography', 2)]
    """
    plan = materialization_plan(store, views=views, end=end)
    groups: dict[tuple[dt.datetime, dt.datetime], list[ViewWindow]] = {}
    for window in plan:
        groups.setdefault((window.start, window.end), []).append(window)
    done = []
    for (start, stop), windows in groups.items():
        names = [w.view for w in windows]
        files = {w.view: _files(store.get_feature_view(w.view)) for w in windows}
        written = _write(store, names, start=start, end=stop, feast_default=feast_default,
                         progress=progress)
        _write_record(store, files)
        done += [replace(w, written=written.get(w.view)) for w in windows]
        log.info("materialized %s from %s to %s", ", ".join(names), start, stop)
    return done


def _write(store: FeatureStore, names: list[str], *, start: dt.datetime, end: dt.datetime,
           feast_default: bool, progress: bool) -> dict[str, int]:
    if not feast_default:
        return fast_materialize(store, views=names, start=start, end=end, progress=progress)
    store.materialize(start_date=start, end_date=end, feature_views=names)
    return {}
