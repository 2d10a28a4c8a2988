"""Online reads through Feast: the online store's own ``online_read``, or Feast's Redis layout.

`feature_repo.serving.online.OnlineLookup` reads through these when it is given a
FeatureStore (the SDK and the HTTP server); `feature_repo.serving.online_sqlite` reads the
embedded profile's SQLite file without importing Feast, for the command line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from feast import FeatureStore, FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type

from feature_repo.serving.lookup_rules import GEOGRAPHY_VIEW
from feature_repo.serving.online_sqlite import PLAIN_KINDS, unavailable, write_plan

__all__ = ["RedisReader", "StoreReader", "feast_views", "reader_for"]
# A view as listed for a lookup: handle, features requested, features it has, geography level.
Listed = tuple[FeatureView, list[str], tuple[str, ...], str | None]

def _value(proto: ValueProto) -> Any:
    """The Python value Feast returns for a ValueProto; scalars without Feast's generic path."""
    kind = proto.WhichOneof("val")
    if kind in PLAIN_KINDS:
        return getattr(proto, kind)
    return feast_value_type_to_python_type(proto)


def _entity_key(view: FeatureView, key: tuple) -> EntityKeyProto:
    return EntityKeyProto(join_keys=[c.name for c in view.entity_columns], entity_values=[
        ValueProto(int64_val=v) if isinstance(v, int) else ValueProto(string_val=v) for v in key])


Read = tuple[FeatureView, list[tuple], Sequence[str]]  # view, keys (join-key order), features


class StoreReader:
    """Reads through the online store's own ``online_read``: one call per view (any store)."""

    def __init__(self, store: FeatureStore):
        self.config = store.config
        self.online_store = store._get_provider().online_store  # what Feast itself reads with

    def read(self, reads: list[Read]) -> list[list[dict | None]]:
        """Per read, per key: the features' Python values, or None if the key has no row."""
        out = []
        for view, keys, features in reads:
            with unavailable(f"reading {view.name}"):
                rows = self.online_store.online_read(self.config, view, [_entity_key(view, k) for k in keys],
                                                     list(features)) if keys else []
            out.append([None if _absent(stamp, values) else {f: _value(values[f]) for f in features}
                        for stamp, values in rows])
        return out


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _absent(stamp: dt.datetime | None, values: dict[str, ValueProto] | None) -> bool:
    """Whether ``online_read`` found no row: None, or (Feast's Redis read) empty values at epoch 0."""
    return values is None or (stamp == _EPOCH and not any(v.WhichOneof("val") for v in values.values()))


class RedisReader:
    """Feast's Redis layout read in one pipelined round trip for every view of a call.

    Same keys and fields as ``RedisOnlineStore.online_read`` (serialized entity key +
    project; murmur3 of ``view:feature``; ``_ts:view`` says whether the row exists), with the
    field names hashed once per view rather than on every call.
    """

    def __init__(self, store: FeatureStore):
        online = store._get_provider().online_store
        self.client = online._get_client(store.config.online_store)
        self.project = store.config.project.encode()
        self.version = store.config.entity_key_serialization_version
        self.fields: dict[tuple[str, tuple[str, ...]], list[bytes]] = {}

    def _fields(self, view: FeatureView, features: Sequence[str]) -> list[bytes]:
        key = (view.name, tuple(features))
        if key not in self.fields:
            self.fields[key] = [_mmh3(f"{view.name}:{f}") for f in features] + [f"_ts:{view.name}".encode()]
        return self.fields[key]

    def read(self, reads: list[Read]) -> list[list[dict | None]]:
        """As `StoreReader.read`."""
        with unavailable("reading " + ", ".join(view.name for view, _, _ in reads)), \
                self.client.pipeline(transaction=False) as pipe:
            for view, keys, features in reads:
                fields = self._fields(view, features)
                for k in keys:
                    key = serialize_entity_key(_entity_key(view, k), self.version) + self.project
                    pipe.hmget(key, fields)
            replies = iter(pipe.execute())
        return [[_decode(next(replies), features) for _ in keys] for _, keys, features in reads]


def _decode(reply: list[bytes | None], features: Sequence[str]) -> dict | None:
    if reply[-1] is None:  # no _ts: the key was never written
        return None
    return {f: None if raw is None else _value(ValueProto.FromString(raw))
            for f, raw in zip(features, reply, strict=False)}


def reader_for(store: FeatureStore) -> StoreReader | RedisReader:
    """The fastest reader of the store's online store: Redis's layout directly, else Feast's."""
    online = store.config.online_store
    if online.type == "redis" and online.redis_type == "redis" and \
            not getattr(store.config.registry, "enable_online_feature_view_versioning", False):
        return RedisReader(store)
    return StoreReader(store)




def feast_views(store: FeatureStore, feature_service: str) -> tuple[list[Listed], FeatureView | None]:
    """The service's views as `OnlineLookup` lists them, and the address view, from the registry.

    Also records the plan the command line's Feast-free reader uses
    (`feature_repo.serving.online_sqlite.write_plan`).
    """
    store.refresh_registry()
    service = store.get_feature_service(feature_service)
    views = {v.name: v for v in store.list_feature_views()}
    write_plan(store)
    listed = [(views[p.name], [f.name for f in p.features], tuple(f.name for f in views[p.name].features),
               views[p.name].tags.get("geography_level")) for p in service.feature_view_projections]
    return listed, views.get(GEOGRAPHY_VIEW)
