"""Feast definitions generated from the catalog, and point-in-time correct retrieval.

Examples
--------
>>> from feature_repo import feature_store, training_frame  # doctest: +SKIP
>>> store = feature_store(workspace)  # doctest: +SKIP
>>> frame = training_frame(events, store=store, workspace=workspace)  # doctest: +SKIP
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
