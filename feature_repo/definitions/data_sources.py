"""Data sources: each published parquet file of the workspace, timestamped by release date.

The same files serve every profile; only the source kind follows the offline store: a
`feast.FileSource` (DuckDB) by default, a ``SparkSource`` on the spark profile. The profile is
an argument, passed down from the store that reads the sources, never read from the
environment here.
"""

from feast import FileSource
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

from ingestion.core import known_warnings
from ingestion.core.datasets import DatasetSpec
from ingestion.core.workspace import Workspace


def published_source(spec: DatasetSpec, workspace: Workspace, *, profile: str) -> DataSource:
    """The Feast source of a published dataset (`<dataset>_source`) for a profile's offline store.

    Parameters
    ----------
    spec : DatasetSpec
        The published dataset.
    workspace : Workspace
        The workspace that publishes it.
    profile : str
        ``spark`` for a ``SparkSource``; any other profile reads through a `feast.FileSource`.

    Examples
    --------
    >>> from ingestion.core.datasets import acs_spec
    >>> published_source(acs_spec("tract"), Workspace("/tmp/ws"), profile="embedded").name
    'acs_tract_source'
    """
    common = dict(
        name=f"{spec.name}_source",
        path=workspace.published_glob(spec.name),  # every partition file
        timestamp_field=spec.timestamp_column,
        description=f"Validated, published {spec.name} dataset.",
        owner="sdoh-feature-store",
    )
    if profile == "spark":  # the one switch: Spark reads the same files
        with known_warnings.ignored():  # Feast flags its Spark source as alpha on every use
            return SparkSource(**common | {"path": spark_glob(spec, workspace)}, file_format="parquet")
    return FileSource(**common)


def spark_glob(spec: DatasetSpec, workspace: Workspace) -> str:
    """The published files as a Hadoop glob, one ``*`` per folder level (its ``**`` is one level).

    Examples
    --------
    >>> from ingestion.core.datasets import acs_spec
    >>> spark_glob(acs_spec("tract"), Workspace("/tmp/ws")).endswith("acs_tract/*/*.parquet")
    True
    """
    depth = max(len(spec.partition_by), 1)  # <vintage>/<state>.parquet, or data.parquet
    return str(workspace.published_dir(spec.name) / "/".join(["*"] * depth)) + ".parquet"
