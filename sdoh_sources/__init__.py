"""What the feature store serves: catalogs of SDOH measures, release calendars, vocabularies.

Every catalog file of ``sdoh_sources/catalog`` has a pydantic model and one cached loader,
which raises `CatalogError` naming the file and the field.

Examples
--------
>>> from sdoh_sources import load_catalog
>>> [m.name for m in load_catalog().acs.measures][:2]
['pct_below_poverty', 'pct_below_150_poverty']
"""

from sdoh_sources._models import EquityMetadata, Measure, Release, Source
from sdoh_sources.adi_computed import load_adi_method
from sdoh_sources.boundaries import load_boundary_catalog
from sdoh_sources.catalog import (
    METADATA_KEYS,
    Catalog,
    CatalogError,
    boundary_vintages,
    check_vocabularies,
    load_catalog,
    read_catalog_file,
    release_in_force,
)
from sdoh_sources.errors import SdohError
from sdoh_sources.fairness import load_fairness_thresholds
from sdoh_sources.rurality import load_rurality_catalog
from sdoh_sources.screening import load_screening_catalog
from sdoh_sources.svi import load_svi_catalog
from sdoh_sources.zip_crosswalks import load_zip_crosswalk_catalog, zip_join_types

__all__ = [
    "METADATA_KEYS",
    "Catalog",
    "CatalogError",
    "EquityMetadata",
    "Measure",
    "Release",
    "SdohError",
    "Source",
    "boundary_vintages",
    "check_vocabularies",
    "load_adi_method",
    "load_boundary_catalog",
    "load_catalog",
    "load_fairness_thresholds",
    "load_rurality_catalog",
    "load_screening_catalog",
    "load_svi_catalog",
    "load_zip_crosswalk_catalog",
    "read_catalog_file",
    "release_in_force",
    "zip_join_types",
]
