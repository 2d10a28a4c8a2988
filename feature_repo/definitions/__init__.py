"""The Feast definitions, built from the catalog: entities, sources, feature views and services.

Modules: `entities`, `data_sources`, `feature_views`, `feature_services` (one kind each),
`metadata` (the equity tags every feature carries), `feast_cli` (the module Feast's own CLI
loads from ``<workspace>/feast``), ``profiles/`` (feature_store.yaml templates).
"""
