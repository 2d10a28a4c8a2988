"""How SDOH data gets in: Census API client, indices, boundary files, linking, validation, publishing.

And what analysts ask of it: coverage gaps and fairness checks.

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
    "compute_adi": "adi_compute", "ingest_adi_acs": "adi_compute",
    "load_boundaries": "boundaries", "load_boundary_set": "boundaries",
    "CensusClient": "census_api", "get_acs": "census_api",
    "coverage_table": "coverage", "feature_coverage": "coverage",
    "missing_reasons_table": "coverage", "missingness_odds_ratios": "coverage",
    "wilson_interval": "coverage",
    "coverage_report": "coverage_report",
    "fairness_check": "fairness", "fairness_drift": "fairness", "fairness_report": "fairness",
    "split_by_fairness_role": "fairness",
    "geocode_addresses": "geocoder",
    "CensusApiError": "errors", "InputError": "errors", "LinkageError": "errors",
    "PublishError": "errors", "ValidationFailed": "errors",
    "link_addresses": "linking", "linkage_funnel": "linking", "read_address_history": "linking",
    "link_history_file": "pipeline", "run_demo": "pipeline",
    "pseudonymize_ids": "pseudonym",
    "publish": "publish", "read_published": "publish",
    "CensusReplayServer": "replay",
    "compute_svi": "svi", "ingest_svi": "svi", "ingest_svi_file": "svi", "read_svi_file": "svi",
    "download_boundaries": "tiger",
    "validate": "validation",
    "Workspace": "workspace",
    "read_zip_crosswalk": "zip_crosswalk", "zip_links": "zip_crosswalk",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ingestion' has no attribute {name!r}")
    return getattr(import_module(f"ingestion.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
