"""Feast definitions generated from the catalog (`definitions`), and serving them (`serving`).

The names below are imported on first use, so ``import feature_repo`` costs nothing and
``from feature_repo import feature_store`` loads Feast without the online lookup's geometry
stack or the training frame's DuckDB code.

Examples
--------
>>> import pandas as pd
>>> from feature_repo import feature_store, training_frame
>>> store = feature_store(ws)  # ws: a Workspace where `sdoh apply` and `sdoh materialize` ran
>>> events = pd.DataFrame({"patient_id": ["A"], "event_timestamp": ["2022-06-01"]})
>>> training_frame(events, store=store, workspace=ws)["acs_tract__pct_below_poverty"].tolist()
[6.0]
"""

from importlib import import_module

_EXPORTS = {
    "OnlineLookup": "serving.online", "online_features": "serving.online",
    "online_features_at": "serving.online",
    "training_frame": "serving.retrieval", "write_training_frame": "serving.frames",
    "ViewWindow": "serving.store", "apply_definitions": "serving.store",
    "feature_store": "serving.store", "materialization_plan": "serving.store",
    "materialize": "serving.store", "render_profile": "serving.store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'feature_repo' has no attribute {name!r}")
    return getattr(import_module(f"feature_repo.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
