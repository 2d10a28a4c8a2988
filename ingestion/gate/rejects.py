"""Address rejects of a linking run, published beside the timeline they belong to.

A run writes ``outputs/address_rejects/<run id>.csv`` (`write_rejects`); once its timeline is
published, ``outputs/address_rejects.csv`` points at it (`publish_rejects`), so the rejects
read back (`read_published_rejects`) always belong to the timeline being served.

Examples
--------
>>> read_published_rejects(ws) is None or "reason" in read_published_rejects(ws)
True
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ingestion.core.atomic import point_link, write_atomic
from ingestion.core.datasets import geography_timeline_spec
from ingestion.core.workspace import Workspace, private_dir
from ingestion.gate.publish import published_runs
from ingestion.geo.linking import REJECT_COLUMNS

logger = logging.getLogger(__name__)


_REJECTS = "address_rejects"  # outputs/address_rejects/<run id>.csv; address_rejects.csv: latest


def write_rejects(rejects: pd.DataFrame, workspace: Workspace, *, run_id: str) -> Path:
    """Write a linking run's rejected rows, privately, as ``outputs/address_rejects/<run id>.csv``.

    Written before the run publishes its timeline, under the run's id; it describes the
    run only once `publish_rejects` points ``outputs/address_rejects.csv`` at it, after the
    publish. The file holds raw patient ids and coordinates: it is created 0600.

    Parameters
    ----------
    rejects : pandas.DataFrame
        As `read_address_history` returns them (may be empty: the run rejected nothing).
    workspace : Workspace
        The workspace the run publishes in.
    run_id : str
        The id the run publishes under (`ingestion.gate.publish.new_run_id`).

    Returns
    -------
    pathlib.Path
        The file written.

    Examples
    --------
    >>> rejects = pd.DataFrame({"row": [7], "field": ["valid_from"], "reason": ["unparseable_date"]})
    >>> path = write_rejects(rejects, scratch, run_id="20261206T221500_123456Z")
    >>> path.name
    '20261206T221500_123456Z.csv'
    """
    path = private_dir(workspace.outputs / _REJECTS) / f"{run_id}.csv"
    text = rejects.to_csv(index=False).encode("utf-8")
    write_atomic(path, lambda handle: handle.write(text))
    return path


def publish_rejects(workspace: Workspace, *, run_id: str) -> Path:
    """Point ``outputs/address_rejects.csv`` at a completed run's rejects; drop stale ones.

    Call once the run's timeline is published; if a later run has published since, the
    pointer is left to that run. Rejects files of runs whose timeline is no longer kept (and
    of runs killed before publishing) are removed.

    Examples
    --------
    Without a published timeline under the run's id, nothing points at its rejects yet:

    >>> _ = write_rejects(pd.DataFrame(columns=["row", "field", "reason"]), scratch,
    ...                   run_id="20261206T221500_123456Z")
    >>> latest = publish_rejects(scratch, run_id="20261206T221500_123456Z")
    >>> latest.name, latest.exists()
    ('address_rejects.csv', False)
    """
    folder = workspace.outputs / _REJECTS
    latest = workspace.outputs / f"{_REJECTS}.csv"
    runs = published_runs(geography_timeline_spec().name, workspace)
    if runs[:1] == [run_id]:
        point_link(latest, folder / f"{run_id}.csv")
    kept = {run_id, *runs}
    for stale in folder.glob("*.csv"):
        if stale.stem not in kept:
            stale.unlink()
            logger.info("removed %s: its run is not served", stale)
    return latest


def read_published_rejects(workspace: Workspace) -> pd.DataFrame | None:
    """The rejected rows of the run whose timeline is served (empty if it rejected none).

    None when no timeline is published, or it was published before rejects were kept per run.

    Examples
    --------
    >>> read_published_rejects(scratch) is None  # no timeline published yet
    True
    """
    runs = published_runs(geography_timeline_spec().name, workspace)
    path = workspace.outputs / _REJECTS / f"{runs[0]}.csv" if runs else None
    if path is None or not path.exists():
        return None
    return pd.read_csv(path, dtype={c: "string" for c in REJECT_COLUMNS if c != "row"})
