"""The embedded online store (SQLite) read without importing Feast, for a command that starts fast.

``import feast`` takes about 4 s (typeguard re-parses Feast's modules to instrument their
classes), most of a one-off ``sdoh online``. The lookup itself needs little of Feast: which
views a feature service reads (the registry) and the rows of Feast's SQLite tables. So:

- `write_plan` records, after `sdoh apply`, `sdoh materialize` and every Feast-backed
  `OnlineLookup` refresh, what the registry says the lookup needs (``online_plan.json`` beside
  the registry, with the registry file's size and modification time and the profile's text);
- `SqliteSource` reads Feast's SQLite tables as Feast's ``SqliteOnlineStore.online_read``
  does: the same serialized entity keys (version 3) and Feast's own ``Value`` message, loaded
  from Feast's generated descriptor into a private descriptor pool.

`plan_source` gives None (use Feast) whenever the plan could be out of date: another profile or
settings, a registry changed since, a feature service it does not hold, no SQLite file (Feast
then creates it, and says what is missing).
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import functools
import importlib.util
import json
import sqlite3
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pool, message_factory

from feature_repo.serving.lookup_rules import GEOGRAPHY_VIEW
from feature_repo.serving.profiles import render_profile
from ingestion.core.atomic import write_atomic
from ingestion.core.errors import OnlineStoreUnavailable
from ingestion.core.settings import Settings
from ingestion.core.workspace import Workspace

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = ["PLAIN_KINDS", "PLAN_FILE", "PlannedView", "SqliteSource", "plan_source", "serialize_key",
           "sqlite_unavailable", "unavailable", "write_plan"]

PLAN_FILE = "online_plan.json"
# Feast types whose values this reader decodes exactly as Feast does.
DECODED_TYPES = frozenset({"Float64", "Float32", "Int64", "Int32", "String", "Bool", "UnixTimestamp"})
# Value kinds whose Python value is the field itself (Feast's generic conversion is slower).
PLAIN_KINDS = frozenset({"double_val", "string_val", "int64_val", "int32_val", "float_val", "bool_val"})
_NULL_TIMESTAMP = -(2 ** 63)  # Feast's null UnixTimestamp (NaT as int64)


@contextlib.contextmanager
def sqlite_unavailable(what: str) -> Iterator[None]:
    """Turn a SQLite online store's failures (missing or locked, no table) into `OnlineStoreUnavailable`.

    Examples
    --------
    >>> with sqlite_unavailable("reading acs_tract"):
    ...     pass
    """
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise OnlineStoreUnavailable(f"the online store (SQLite) failed while {what}: {exc}; run "
                                     "`sdoh apply` and `sdoh materialize`") from exc


@contextlib.contextmanager
def unavailable(what: str) -> Iterator[None]:
    """Turn the online store's connection failures into `OnlineStoreUnavailable`.

    Redis refused, reset or timed out (the profile bounds every socket operation, see
    ``SDOH_REDIS_TIMEOUT_S``), or SQLite failed (`sqlite_unavailable`).

    Examples
    --------
    >>> with unavailable("reading acs_tract"):
    ...     pass
    """
    import redis  # only its error types, and only here: a SQLite reader needs none of it

    try:
        with sqlite_unavailable(what):
            yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise OnlineStoreUnavailable(f"the online store (Redis) did not answer while {what}: "
                                     f"{type(exc).__name__}: {exc}; retry shortly, and check that "
                                     "Redis is up (SDOH_REDIS)") from exc


@dataclass(frozen=True)
class PlannedView:
    """What a lookup needs of a registered feature view: its keys, level tag and features."""

    name: str
    join_keys: tuple[str, ...]
    tags: dict[str, str]
    feature_names: tuple[str, ...]


def _registry_file(store: FeatureStore) -> Path | None:
    registry = store.config.registry
    if getattr(registry, "registry_type", "file") != "file" or \
            getattr(registry, "enable_online_feature_view_versioning", False):
        return None
    return Path(store.config.repo_path, registry.path)


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_mtime_ns, stat.st_size]


def write_plan(store: FeatureStore) -> None:
    """Record what the embedded profile's lookups need of the registry (else remove the record).

    Written only for a SQLite online store, a file registry, entity keys of version 3 and
    views whose types this module decodes; any other store is read through Feast.

    Examples
    --------
    >>> write_plan(store)
    >>> sorted(json.loads((Path(store.config.repo_path) / PLAN_FILE).read_text())["services"])
    ['equity_audit_v1', 'model_inputs_v1']
    """
    if store.config.repo_path is None:  # no workspace folder to record it in
        return
    path = Path(store.config.repo_path, PLAN_FILE)
    registry = _registry_file(store)
    views = store.list_feature_views()
    usable = (store.config.online_store.type == "sqlite" and registry is not None and registry.exists()
              and store.config.entity_key_serialization_version == 3
              and all(str(f.dtype) in DECODED_TYPES for v in views for f in v.features))
    if not usable:
        path.unlink(missing_ok=True)
        return
    plan = {
        "profile": Path(store.config.repo_path, "feature_store.yaml").read_text(),
        "registry": _stamp(registry),
        "registry_path": str(registry),
        "project": store.project,
        "online_path": str(Path(store.config.repo_path, store.config.online_store.path)),
        "services": {s.name: [[p.name, [f.name for f in p.features]] for p in s.feature_view_projections]
                     for s in store.list_feature_services()},
        "views": {v.name: {"join_keys": [c.name for c in v.entity_columns], "tags": dict(v.tags),
                           "features": [f.name for f in v.features]} for v in views},
    }
    write_atomic(path, lambda handle: handle.write(json.dumps(plan).encode("utf-8")))


def plan_source(workspace: Workspace, feature_service: str, *, profile: str | None = None,
                settings: Settings | None = None,
                on_missing_rows: Callable[[Sequence[PlannedView]], None]) -> SqliteSource | None:
    """A Feast-free source for ``feature_service``, or None if the recorded plan may be stale.

    Parameters
    ----------
    workspace : Workspace
        The workspace whose ``feast`` folder holds the plan.
    feature_service : str
        The service to read.
    profile : str, optional
        As for `feature_repo.serving.store.feature_store`.
    on_missing_rows : callable
        Called with the views a read found keys missing from (`SqliteSource.require_online`).

    Examples
    --------
    >>> plan_source(ws, "no_such_service", on_missing_rows=print) is None
    True
    """
    path = workspace.feast / PLAN_FILE
    try:
        plan = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    registry = Path(plan["registry_path"])
    fresh = (plan["profile"] == render_profile(workspace, profile, settings=settings) and registry.exists()
             and Path(plan["online_path"]).exists()
             and _stamp(registry) == plan["registry"] and feature_service in plan["services"])
    return SqliteSource(plan, feature_service, on_missing_rows) if fresh else None


@functools.cache
def _value_types() -> tuple[Any, dict[str, int]]:
    """Feast's ``Value`` message and ``ValueType`` numbers, from Feast's generated descriptor.

    Read from the file without importing the ``feast`` package, into a pool of our own (the
    default pool stays Feast's).
    """
    feast = importlib.util.find_spec("feast")  # finds the package without running it
    source = Path(feast.submodule_search_locations[0], "protos", "feast", "types", "Value_pb2.py")
    serialized = next(ast.literal_eval(node.args[0]) for node in ast.walk(ast.parse(source.read_text()))
                      if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile")
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(serialized)
    kinds = pool.FindEnumTypeByName("feast.types.ValueType.Enum")
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("feast.types.Value")),
            {v.name: v.number for v in kinds.values})


def _python(raw: bytes) -> Any:
    """The Python value Feast's online read returns for a stored ``Value``."""
    value_class, _ = _value_types()
    proto = value_class.FromString(raw)
    kind = proto.WhichOneof("val")
    if kind is None:
        return None
    value = getattr(proto, kind)
    if kind == "unix_timestamp_val":
        return None if value == _NULL_TIMESTAMP else dt.datetime.fromtimestamp(value, tz=dt.UTC)
    if kind not in PLAIN_KINDS:  # write_plan admits only the types above
        raise TypeError(f"cannot decode a {kind} value without Feast")
    return value


def serialize_key(join_keys: Sequence[str], values: Sequence[Any]) -> bytes:
    """Feast's entity key serialization (version 3) of string and integer key values.

    Examples
    --------
    >>> serialize_key(["patient_id"], ["A"]).hex()
    '01000000020000000a00000070617469656e745f6964020000000100000041'
    """
    _, kinds = _value_types()
    pairs = sorted(zip(join_keys, values, strict=True))  # Feast sorts by join key
    out = [struct.pack("<I", len(pairs))]
    for key, _ in pairs:
        encoded = key.encode("utf8")
        out += [struct.pack("<II", kinds["STRING"], len(encoded)), encoded]
    for _, value in pairs:
        if isinstance(value, int):
            kind, encoded = kinds["INT64"], struct.pack("<q", value)
        else:
            kind, encoded = kinds["STRING"], value.encode("utf8")
        out += [struct.pack("<II", kind, len(encoded)), encoded]
    return b"".join(out)


class SqliteSource:
    """`OnlineLookup`'s source on the embedded profile: the plan, and Feast's SQLite tables."""

    def __init__(self, plan: dict, feature_service: str,
                 on_missing_rows: Callable[[Sequence[PlannedView]], None]):
        self.plan = plan
        self.feature_service = feature_service
        self.require_online = on_missing_rows

    def _view(self, name: str) -> PlannedView:
        view = self.plan["views"][name]
        return PlannedView(name, tuple(view["join_keys"]), view["tags"], tuple(view["features"]))

    def views(self, feature_service: str) -> tuple[list[tuple], PlannedView | None]:
        """As `feature_repo.serving.feast_reads.feast_views`, from the plan."""
        listed = [(view, list(features), view.feature_names, view.tags.get("geography_level"))
                  for view, features in ((self._view(name), features)
                                         for name, features in self.plan["services"][feature_service])]
        return listed, self._view(GEOGRAPHY_VIEW) if GEOGRAPHY_VIEW in self.plan["views"] else None

    def read(self, reads: list[tuple[PlannedView, list[tuple], Sequence[str]]]) -> list[list[dict | None]]:
        """Per read, per key: the features' Python values, or None if the key has no row."""
        out = []
        uri = f"file:{self.plan['online_path']}?mode=ro"
        with sqlite_unavailable("opening the online store"), \
                contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
            for view, keys, features in reads:
                with sqlite_unavailable(f"reading {view.name}"):  # as Feast's reader says it
                    out.append(self._read_view(con, view, keys, features))
        return out

    def _read_view(self, con: sqlite3.Connection, view: PlannedView, keys: list[tuple],
                   features: Sequence[str]) -> list[dict | None]:
        if not keys:
            return []
        serialized = [serialize_key(view.join_keys, key) for key in keys]
        table = '"' + f"{self.plan['project']}_{view.name}".replace('"', '""') + '"'
        rows: dict[bytes, dict[str, bytes]] = {}
        for key, feature, value in con.execute(
                f"SELECT entity_key, feature_name, value FROM {table} "  # noqa: S608 (a quoted table name)
                f"WHERE entity_key IN ({','.join('?' * len(serialized))})", serialized):
            rows.setdefault(key, {})[feature] = value
        return [None if key not in rows else {f: _python(rows[key][f]) for f in features}
                for key in serialized]
