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

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    from feast import FeatureStore

    from ingestion.core.workspace import Workspace

_EXPORTS = {
    "OnlineLookup": "serving.online", "online_features": "serving.online",
    "online_features_at": "serving.online",
    "training_frame": "serving.retrieval",
    "ViewWindow": "serving.store", "apply_definitions": "serving.store",
    "feature_store": "serving.store", "materialization_plan": "serving.store",
    "materialize": "serving.store", "render_profile": "serving.store",
}
__all__ = sorted([*_EXPORTS, "write_training_frame"])


def write_training_frame(events: pd.DataFrame, path: str | Path, *, store: FeatureStore,
                         workspace: Workspace, feature_service: str = "model_inputs_v1",
                         chunk_events: int | None = None, progress: bool = False) -> Path:
    """Write the training frame as parquet, by the store's profile.

    On the Spark profile the executors write a folder of part files
    (`feature_repo.serving.spark.write_training_frame`, replacing ``path``); elsewhere pandas
    writes one file chunk by chunk (`feature_repo.serving.retrieval.write_training_frame`).
    ``pandas.read_parquet`` reads either.

    Parameters
    ----------
    events : pandas.DataFrame
        Rows of ``patient_id`` and ``event_timestamp``.
    path : str or Path
        Where to write.
    store, workspace, feature_service
        As for `training_frame`.
    chunk_events : int, optional
        Events per chunk off Spark (default `feature_repo.serving.retrieval.CHUNK_EVENTS`).
    progress : bool
        Show a progress bar (off Spark).

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> events = pd.DataFrame({"patient_id": ["A"], "event_timestamp": ["2022-06-01"]})
    >>> path = write_training_frame(events, tempfile.mkdtemp() + "/f.parquet", store=store, workspace=ws)
    >>> pd.read_parquet(path)["acs_tract__pct_below_poverty"].tolist()
    [6.0]
    """
    from pathlib import Path

    if store.config.offline_store.type == "spark":
        from feature_repo.serving.spark import write_training_frame as write_on_spark

        write_on_spark(events, path, store=store, workspace=workspace, feature_service=feature_service,
                       mode="overwrite")
        return Path(path)
    from feature_repo.serving import retrieval

    return retrieval.write_training_frame(
        events, path, store=store, workspace=workspace, feature_service=feature_service,
        chunk_events=chunk_events or retrieval.CHUNK_EVENTS, progress=progress)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'feature_repo' has no attribute {name!r}")
    return getattr(import_module(f"feature_repo.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
