"""Data sources: each published parquet file of the workspace, timestamped by release date."""

from feast import FileSource

from ingestion.datasets import DatasetSpec
from ingestion.workspace import Workspace


def published_source(spec: DatasetSpec, workspace: Workspace) -> FileSource:
    """The Feast source of a published dataset (`<dataset>_source`).

    Examples
    --------
    >>> from ingestion.datasets import acs_spec
    >>> published_source(acs_spec("tract"), Workspace("/tmp/ws")).name
    'acs_tract_source'
    """
    return FileSource(
        name=f"{spec.name}_source",
        path=workspace.published_glob(spec.name),  # every partition file
        timestamp_field=spec.timestamp_column,
        description=f"Validated, published {spec.name} dataset.",
        owner="sdoh-feature-store",
    )
