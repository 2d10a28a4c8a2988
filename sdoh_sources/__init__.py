"""What the feature store serves: catalogs of SDOH measures, release calendars, vocabularies.

Examples
--------
>>> from sdoh_sources import load_catalog
>>> [m.name for m in load_catalog().acs.measures][:2]
['pct_below_poverty', 'pct_below_150_poverty']
"""

from sdoh_sources._models import EquityMetadata, Measure, Release, Source
from sdoh_sources.catalog import (
    METADATA_KEYS,
    Catalog,
    CatalogError,
    check_vocabularies,
    load_catalog,
    release_in_force,
)
from sdoh_sources.errors import SdohError

__all__ = [
    "METADATA_KEYS",
    "Catalog",
    "CatalogError",
    "EquityMetadata",
    "Measure",
    "Release",
    "SdohError",
    "Source",
    "check_vocabularies",
    "load_catalog",
    "release_in_force",
]
