"""Open the Feast store of a workspace under a profile, register definitions, materialize."""

from __future__ import annotations

import datetime as dt
import functools
import glob
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from feast import FeatureStore, FeatureView
from feast.repo_config import RepoConfig
from feast.utils import make_tzaware
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from feature_repo.definitions.feast_cli import definitions, write_cli_repo
from feature_repo.serving.materialize import (
    DEFAULT_START,
    OnlineCheck,
    check_online,
    fast_materialize,
    online_keys,
)
from feature_repo.serving.online_sqlite import write_plan
from feature_repo.serving.profiles import render_profile, selected_profile
from ingestion.core import known_warnings
from ingestion.core.atomic import write_atomic
from ingestion.core.errors import InputError, OnlineStoreUnavailable, PublishError, ServiceUnavailable
from ingestion.core.settings import Settings, load_settings
from ingestion.core.workspace import Workspace

log = logging.getLogger(__name__)


def feature_store(workspace: Workspace, *, profile: str | None = None,
                  settings: Settings | None = None) -> FeatureStore:
    """A FeatureStore for ``workspace`` under a profile (argument, settings' profile, or embedded).

    ``settings`` default to the environment's, read once here; ``profile`` wins over theirs.
    Also writes the rendered feature_store.yaml into ``<workspace>/feast`` for Feast's CLI and
    UI, with the definitions module Feast's CLI imports there (`feature_repo.definitions.feast_cli`),
    which carries the profile. The production profile's file holds connection settings, so it
    is created 0600 (never briefly readable by others) in a private folder. A SQLite online
    store's file holds patient keys and features: it is created 0600 before Feast opens it
    (SQLite gives its journal the same mode).

    Examples
    --------
    >>> import tempfile
    >>> feature_store(Workspace(tempfile.mkdtemp())).config.online_store.type
    'sqlite'
    """
    settings = settings or load_settings()
    name = selected_profile(profile, settings=settings)
    text = render_profile(workspace, name, settings=settings)
    path = workspace.feast / "feature_store.yaml"
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))
    write_cli_repo(workspace, profile=name)
    config = RepoConfig(**yaml.safe_load(text))
    config.repo_path = workspace.feast
    if config.online_store.type == "sqlite":
        _private_file(Path(workspace.feast, config.online_store.path))
    store = FeatureStore(config=config)
    if config.online_store.type == "redis" and config.online_store.redis_type != "redis_cluster":
        _bound_retries(store)
    return store


def store_profile(store: FeatureStore) -> str:
    """The profile a store was opened under, read from its configuration.

    Examples
    --------
    >>> store_profile(store)
    'embedded'
    """
    if store.config.offline_store.type == "spark":
        return "spark"
    return "production" if store.config.registry.registry_type == "sql" else "embedded"


def _bound_retries(store: FeatureStore) -> None:
    """One immediate retry for the Redis clients every online read uses (ours and Feast's).

    redis-py retries a failed command 3 times with 1, 2 and 4 s of backoff by default, so
    each lookup during an outage waited about 7 s. One retry still rides over a pooled
    connection that a Redis restart reset; the profile's socket timeouts
    (``SDOH_REDIS_TIMEOUT_S``) bound each attempt. No connection is made here. Feast's
    server reads through its asyncio client, made on first use inside the server's event
    loop: this store's online store gets it bounded the same way when it is made.
    """
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    online = store._get_provider().online_store
    online._get_client(store.config.online_store).set_retry(Retry(NoBackoff(), 1))
    make_async = online._get_client_async

    async def bounded_async(config):
        client = await make_async(config)
        client.set_retry(AsyncRetry(NoBackoff(), 1))
        return client

    online._get_client_async = bounded_async


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

    The sources suit the store's profile (`store_profile`): ``SparkSource`` on the spark
    profile, ``FileSource`` otherwise.

    Raises
    ------
    PublishError
        If nothing is published in ``workspace``.
    ServiceUnavailable
        If the profile's SQL registry (PostgreSQL) cannot be reached.

    Examples
    --------
    >>> apply_definitions(store, ws)  # the same definitions again: nothing changes
    ['acs_tract', 'acs_zcta', 'acs_state', 'patient_geography']
    """
    # The same list Feast's CLI gets from the feast folder, with the sources the store reads.
    objects = definitions(workspace, profile=store_profile(store))
    try:
        store.apply(objects)
    except OperationalError as exc:  # Feast's SQL registry connects on first use
        raise _registry_unreachable(store, exc) from exc
    write_plan(store)
    return [o.name for o in objects if isinstance(o, FeatureView)]


@dataclass(frozen=True)
class ViewWindow:
    """One view's materialization: its event-time window, why, and the rows written.

    ``written`` is None on Feast's path, which does not report it. ``online`` is what the
    online store held afterwards (`check_online`); ``refilled`` the keys it had lost, found
    missing and written again.
    """

    view: str
    start: dt.datetime
    end: dt.datetime
    reason: str  # "first", "incremental" or "files changed"
    written: int | None = None
    online: OnlineCheck | None = None
    refilled: int = 0


def _files(view: FeatureView) -> dict[str, list[int]]:
    """Each file of a view's source glob with (mtime in ns, size, inode): what it was read from."""
    files = {}
    for path in sorted(glob.glob(view.batch_source.path, recursive=True)):
        stat = os.stat(path)
        files[path] = [stat.st_mtime_ns, stat.st_size, stat.st_ino]
    return files


FILES_RECORD = "materialized_files.json"
# Per view: keys verified in the online store and a sample of them (serialized, hex).
VERIFIED_RECORD = "online_verified.json"


def _record_path(store: FeatureStore, name: str = FILES_RECORD) -> Path:
    return Path(store.config.repo_path) / name


def _read_record(store: FeatureStore, name: str = FILES_RECORD) -> dict:
    path = _record_path(store, name)
    record = json.loads(path.read_text()) if path.exists() else {}
    return record.get(store.project, {})


def _write_record(store: FeatureStore, views: dict[str, dict], name: str = FILES_RECORD) -> None:
    path = _record_path(store, name)
    record = json.loads(path.read_text()) if path.exists() else {}
    record[store.project] = {**record.get(store.project, {}), **views}
    partial = path.with_suffix(".json.partial")  # a crash never leaves half a record
    # The verified record holds sample entity keys (patient ids): private from the start.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(record, indent=1))
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
    >>> [w.reason for w in materialization_plan(store)]
    ['incremental', 'incremental', 'incremental', 'incremental']
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
    `feature_repo.serving.materialize.fast_materialize` (same online values as Feast, about 8-10x
    faster) or, with ``feast_default``, by Feast's own ``store.materialize``. Both record the
    window in the registry, so Feast's ``materialize-incremental`` continues where this stops.

    Then every view is checked against its source (`feature_repo.serving.materialize.check_online`):
    keys the source no longer has are removed from the online store (a patient dropped from
    the timeline, ids of a previous scheme after ``--pseudonymize``), and a view that lost keys
    (Redis restarted without persistence) is materialized again over its whole history. The
    counts and a sample of keys are recorded (``online_verified.json``) for `online_problems`,
    which ``/health`` and lookups use.

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
        Per view: the window, why, the entity rows written (None on Feast's path), what the
        online store held afterwards and how many lost keys were refilled.

    Raises
    ------
    InputError
        If a view is unknown or offline.
    PublishError
        If keys are still missing after a refill, or a key read back is absent or stale.
    OnlineStoreUnavailable
        If the online store does not answer.

    Examples
    --------
    >>> [(w.view, w.written) for w in materialize(store, end=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))]
    [('acs_tract', 0), ('acs_zcta', 0), ('acs_state', 0), ('patient_geography', 0)]
    """
    plan = materialization_plan(store, views=views, end=end)
    done = {w.view: w for w in _write_windows(store, plan, feast_default=feast_default,
                                              progress=progress)}
    checks = check_online(store, list(done))
    lost = [replace(done[name], start=DEFAULT_START, reason="refill")
            for name, check in checks.items() if check.missing]
    if lost:  # keys the online store lost (a Redis restart without persistence, an eviction)
        log.warning("the online store lacks keys of %s: materializing their whole history again",
                    ", ".join(f"{w.view} ({checks[w.view].missing} of {checks[w.view].expected})"
                              for w in lost))
        for w in _write_windows(store, lost, feast_default=feast_default, progress=progress):
            before = done[w.view]
            added = None if before.written is None or w.written is None else before.written + w.written
            done[w.view] = replace(before, written=added, refilled=checks[w.view].missing)
        again = check_online(store, [w.view for w in lost])
        for name, check in again.items():
            if check.missing:
                raise PublishError(f"view {name}: {check.missing} of {check.expected} keys are still "
                                   "missing from the online store after materializing its whole "
                                   "history again; check the online store's memory limit and "
                                   "eviction policy (Redis maxmemory)")
        checks |= {name: replace(check, removed=checks[name].removed) for name, check in again.items()}
    _write_record(store, {name: {"keys": c.expected, "sample": [k.hex() for k in c.sample]}
                          for name, c in checks.items()}, VERIFIED_RECORD)
    write_plan(store)  # after the registry recorded the windows
    return [replace(w, online=checks.get(name)) for name, w in done.items()]


def _write_windows(store: FeatureStore, plan: list[ViewWindow], *, feast_default: bool,
                   progress: bool) -> list[ViewWindow]:
    """Write every window of ``plan`` (views sharing a window together); record their files."""
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


def online_problems(store: FeatureStore, views: Sequence[FeatureView] | None = None) -> dict[str, str]:
    """Views whose online rows are gone since `materialize` verified them, and what is wrong.

    Cheap: one read of each view's sample of verified keys (16 at most), in one query or
    round trip; nothing is scanned. A view never verified by `materialize` is not checked.

    Parameters
    ----------
    store : feast.FeatureStore
        The workspace's store.
    views : sequence of FeatureView, optional
        Views to check; default every view `materialize` verified.

    Returns
    -------
    dict of str to str
        Per view with a problem, one line saying what and what to do; empty when all is well.

    Raises
    ------
    ingestion.core.errors.OnlineStoreUnavailable
        If the online store does not answer.

    Examples
    --------
    >>> online_problems(store)  # a lost store reads e.g. {'acs_tract': 'empty: 0 of 7 sampled keys ...'}
    {}
    """
    verified = _verified(store)
    if views is None:
        known = {v.name: v for v in store.registry.list_feature_views(store.project, allow_cache=True)}
        views = [known[name] for name in verified if name in known]
    wanted = [(v, [bytes.fromhex(k) for k in verified[v.name]["sample"]]) for v in views
              if v.name in verified]
    problems = {}
    for (view, sample), present in zip(wanted, online_keys(store, wanted), strict=True):
        if present < len(sample):
            state = "empty" if present == 0 else "stale"
            problems[view.name] = (f"{state}: {present} of {len(sample)} sampled keys present "
                                   f"({verified[view.name]['keys']} keys materialized); run "
                                   "`sdoh materialize` to refill the online store")
    return problems


def _verified(store: FeatureStore) -> dict:
    """The verified record, read again only when the file changes."""
    path = _record_path(store, VERIFIED_RECORD)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    return _parse_verified(str(path), store.project, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _parse_verified(path: str, project: str, _mtime_ns: int, _size: int) -> dict:
    return json.loads(Path(path).read_text()).get(project, {})


def require_online(store: FeatureStore, views: Sequence[FeatureView]) -> None:
    """Raise `OnlineStoreUnavailable` if any of ``views`` lost its rows since `materialize`.

    A lookup calls this when a read finds no row, so that a wiped online store answers an
    error rather than a record of nulls (an empty store looks like unknown ids otherwise).

    Examples
    --------
    >>> require_online(store, [store.get_feature_view("patient_geography")])
    """
    problems = online_problems(store, views)
    if problems:
        raise OnlineStoreUnavailable("the online store has lost materialized rows: " + "; ".join(
            f"{name} {problem}" for name, problem in problems.items()))


def _write(store: FeatureStore, names: list[str], *, start: dt.datetime, end: dt.datetime,
           feast_default: bool, progress: bool) -> dict[str, int]:
    if not feast_default:
        return fast_materialize(store, views=names, start=start, end=end, progress=progress)
    with known_warnings.ignored():  # ibis's deprecated DuckDB call on every query
        store.materialize(start_date=start, end_date=end, feature_views=names)
    return {}
