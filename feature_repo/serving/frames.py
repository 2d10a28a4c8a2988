"""Writing a training frame by the store's profile: Spark's executors, or pandas chunk by chunk.

Apart from `feature_repo.serving.retrieval` and `feature_repo.serving.spark`, which it picks
between, so that neither imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from feature_repo.serving import retrieval

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

    from ingestion.core.workspace import Workspace


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
    if store.config.offline_store.type == "spark":
        from feature_repo.serving.spark import write_training_frame as write_on_spark

        write_on_spark(events, path, store=store, workspace=workspace, feature_service=feature_service,
                       mode="overwrite")
        return Path(path)
    return retrieval.write_training_frame(
        events, path, store=store, workspace=workspace, feature_service=feature_service,
        chunk_events=chunk_events or retrieval.CHUNK_EVENTS, progress=progress)
