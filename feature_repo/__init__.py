"""Feast definitions generated from the catalog, and point-in-time correct retrieval.

Examples
--------
>>> from feature_repo import feature_store, training_frame  # doctest: +SKIP
>>> store = feature_store(workspace)  # doctest: +SKIP
>>> frame = training_frame(events, store=store, workspace=workspace)  # doctest: +SKIP
"""

from feature_repo.retrieval import online_features, training_frame
from feature_repo.store import apply_definitions, feature_store, materialize, render_profile

__all__ = [
    "apply_definitions",
    "feature_store",
    "materialize",
    "online_features",
    "render_profile",
    "training_frame",
]
