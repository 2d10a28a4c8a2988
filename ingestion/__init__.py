"""How SDOH data gets in: sources, derived measures, patient geography, the gate, the jobs.

One subpackage per stage of the flow, each importing only the ones before it:

- `ingestion.core`: errors, the workspace, atomic writes, dataset specs, GEOIDs, settings
- `ingestion.sources`: the Census Data API, Geocoder and TIGER clients; publisher files
- `ingestion.derive`: MOE rules, ACS measures, the SVI and the ADI
- `ingestion.geo`: address histories linked to 2010 and 2020 areas, pseudonyms
- `ingestion.gate`: validation (Great Expectations), atomic publishing, quarantine
- `ingestion.jobs` and `ingestion.demo`: the ingest verbs, the demo run, Spark jobs
- `ingestion.cli`: the ``sdoh`` command, on top

The names below are imported on first use, so ``import ingestion`` (and the ``sdoh`` command's
``--help``) stays fast while Great Expectations, geopandas and Feast load only when needed.

Examples
--------
``census`` is a `CensusClient` answered by a local replay of the synthetic demo region (state 99);
leave ``client`` out to ask the real API:

>>> from ingestion import get_acs
>>> get_acs("tract", ["B19013_001"], 2021, "99", client=census).shape
(14, 6)
"""

from importlib import import_module

_EXPORTS = {
    "CensusApiError": "core.errors", "InputError": "core.errors", "LinkageError": "core.errors",
    "PublishError": "core.errors", "ValidationFailed": "core.errors",
    "Workspace": "core.workspace",
    "Settings": "core.settings", "load_settings": "core.settings",
    "CensusClient": "sources.census_api", "get_acs": "sources.census_api",
    "geocode_addresses": "sources.geocoder",
    "download_boundaries": "sources.tiger",
    "read_release_file": "sources.publisher_file", "conform_release": "sources.publisher_file",
    "read_svi_file": "sources.svi_file",
    "build_acs_measures": "derive.acs",
    "compute_adi": "derive.adi",
    "compute_svi": "derive.svi",
    "load_boundaries": "geo.boundaries", "load_boundary_set": "geo.boundaries",
    "link_addresses": "geo.linking", "linkage_funnel": "geo.linking",
    "read_address_history": "geo.linking",
    "pseudonymize_ids": "geo.pseudonym",
    "read_zip_crosswalk": "geo.zip_crosswalk", "zip_links": "geo.zip_crosswalk",
    "validate": "gate.validation",
    "publish": "gate.publish", "read_published": "gate.publish",
    "read_published_rejects": "gate.rejects",
    "ingest_acs": "jobs.ingest", "ingest_source": "jobs.ingest", "ingest_adi_acs": "jobs.ingest",
    "ingest_svi": "jobs.ingest", "ingest_svi_file": "jobs.ingest",
    "link_history_file": "jobs.pipeline", "run_demo": "jobs.pipeline",
    "CensusReplayServer": "demo.replay",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ingestion' has no attribute {name!r}")
    return getattr(import_module(f"ingestion.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
