"""How SDOH data gets in: Census API client, boundary files, linking, validation, publishing.

Examples
--------
>>> from ingestion import get_acs, CensusClient  # doctest: +SKIP
>>> tidy = get_acs("tract", ["B19013_001"], 2021, "DE")  # doctest: +SKIP
"""

from ingestion.acs import build_acs_measures, ingest_acs
from ingestion.adi import ingest_adi, read_adi_file
from ingestion.boundaries import load_boundaries, load_boundary_set
from ingestion.census_api import CensusClient, get_acs
from ingestion.coverage import coverage_table, feature_coverage, missing_reasons_table, wilson_interval
from ingestion.errors import CensusApiError, InputError, LinkageError, PublishError, ValidationFailed
from ingestion.linking import link_addresses, linkage_funnel, read_address_history
from ingestion.pipeline import link_history_file, run_demo
from ingestion.publish import publish, read_published
from ingestion.replay import CensusReplayServer
from ingestion.validation import validate
from ingestion.workspace import Workspace

__all__ = [
    "CensusApiError",
    "CensusClient",
    "CensusReplayServer",
    "InputError",
    "LinkageError",
    "PublishError",
    "ValidationFailed",
    "Workspace",
    "build_acs_measures",
    "coverage_table",
    "feature_coverage",
    "get_acs",
    "ingest_acs",
    "ingest_adi",
    "link_addresses",
    "link_history_file",
    "linkage_funnel",
    "load_boundaries",
    "load_boundary_set",
    "missing_reasons_table",
    "publish",
    "read_address_history",
    "read_adi_file",
    "read_published",
    "run_demo",
    "validate",
    "wilson_interval",
]
