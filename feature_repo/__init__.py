"""Feast definitions generated from the catalog, and point-in-time correct retrieval.

Examples
--------
>>> import pandas as pd
>>> from feature_repo import feature_store, training_frame
>>> store = feature_store(ws)  # ws: a Workspace where `sdoh apply` and `sdoh materialize` ran
>>> events = pd.DataFrame({"patient_id": ["A"], "event_timestamp": ["2022-06-01"]})
>>> training_frame(events, store=store, workspace=ws)["acs_tract__pct_below_poverty"].tolist()
[6.0]
"""

from feature_repo.online import OnlineLookup, online_features, online_features_at
from feature_repo.retrieval import training_frame, write_training_frame
from feature_repo.store import (
    ViewWindow,
    apply_definitions,
    feature_store,
    materialization_plan,
    materialize,
    render_profile,
)

__all__ = [
    "OnlineLookup",
    "ViewWindow",
    "apply_definitions",
    "feature_store",
    "materialization_plan",
    "materialize",
    "online_features",
    "online_features_at",
    "render_profile",
    "training_frame",
    "write_training_frame",
]
