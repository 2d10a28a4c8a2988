"""How SDOH data gets in: Census API client, boundary files, linking, validation, publishing.

The names below are imported on first use, so ``import ingestion`` (and the ``sdoh`` command's
``--help``) stays fast while Great Expectations, geopandas and Feast load only when needed.

Examples
--------
>>> from ingestion import get_acs, CensusClient  # doctest: +SKIP
>>> tidy = get_acs("tract", ["B19013_001"], 2021, "DE")  # doctest: +SKIP
"""

from importlib import import_module

_EXPORTS = {
    "build_acs_measures": "acs", "ingest_acs": "acs",
    "ingest_adi": "adi", "read_adi_file": "adi",
    "load_boundaries": "boundaries", "load_boundary_set": "boundaries",
    "CensusClient": "census_api", "get_acs": "census_api",
    "coverage_table": "coverage", "feature_coverage": "coverage",
    "missing_reasons_table": "coverage", "wilson_interval": "coverage",
    "CensusApiError": "errors", "InputError": "errors", "LinkageError": "errors",
    "PublishError": "errors", "ValidationFailed": "errors",
    "link_addresses": "linking", "linkage_funnel": "linking", "read_address_history": "linking",
    "link_history_file": "pipeline", "run_demo": "pipeline",
    "publish": "publish", "read_published": "publish",
    "CensusReplayServer": "replay",
    "validate": "validation",
    "Workspace": "workspace",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ingestion' has no attribute {name!r}")
    return getattr(import_module(f"ingestion.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
