"""Generate the synthetic demo region: Census API responses, TIGER files, ADI files, patients.

The demo region is one made-up county ("Synthetic County, Demo State", state FIPS ``99``,
county ``001``) placed in the Atlantic Ocean so that no one can mistake it for a real place.
Everything is written in the sources' real formats, so the real readers run on it:

* ``census_api/{year}/acs/acs5/{level}.json``: Census Data API responses (array of arrays,
  header first, values as strings, jam values, ``null`` where a table is not published);
* ``census_api/{year}/acs/acs5/subject/{level}.json`` and ``.../profile/{level}.json`` (tract
  and county only): the subject and data profile percents the catalog reads in that vintage
  (``{v}E``/``{v}M``; data profile percents end in ``PE``/``PM``), computed from the same
  synthetic counts with the Census Bureau's proportion MOE;
* the inputs of the indices computed from the ACS, in the same files: every variable
  `ingestion.derive.svi.svi_variables` names for the SVI release of a demo vintage (2020, at tract
  and county) and `ingestion.derive.adi.adi_variables` names (2020 and 2021, at block group,
  tract and county);
* ``census_api/2020/dec/pl/block_group.json``: the 2020 Census redistricting data's group
  quarters population (``P5_001N``), which the computed ADI needs and the ACS does not publish
  at block group;
* ``tiger/tl_2010_99_bg10.zip`` and ``tiger/tl_2020_99_bg.zip``: TIGER/Line block groups,
  with the county's offshore water-only tract ``990000`` (block group ``0``, no people) in both;
* ``adi/DS_{vintage}_ADI_Census_Block_Group_v*.csv``: Neighborhood Atlas style ADI files;
* ``patients/``: patients, address histories and encounters with realistic coverage gaps;
* ``fhir/*.ndjson``: the same patients as a FHIR R4 Bulk Data export, with social-needs
  screening Observations and SDOH Conditions (`ingestion.demo.fhir_export`);
* ``truth/address_truth.csv``: what a correct linker should return for each address row;
* ``manifest.json``: what was written, marked ``"synthetic": true``.

The region's layout, the changes between the 2010 and 2020 boundaries, the ACS tables and the
coverage-gap rates are data (the constants below); the code only draws from them. One
``numpy`` generator per named stream, seeded from ``seed``, makes every file byte-identical
for the same seed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import tempfile
import time
import zipfile
import zlib
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Geod
from shapely.geometry import Polygon, box

from ingestion.demo.fhir_export import write_fhir_export
from ingestion.demo.publisher_files import write_publisher_files
from sdoh_sources import Measure, load_catalog
from sdoh_sources.acs_tables import acs_dataset
from sdoh_sources.publisher import publisher_source

if TYPE_CHECKING:
    from sdoh_sources.adi_computed import GroupQuartersSource

__all__ = ["generate_demo_region"]

logger = logging.getLogger(__name__)

# -- the region ---------------------------------------------------------------------------------

STATE_FIPS = "99"  # deliberately no real state
COUNTY_FIPS = "001"
STATE_NAME = "Demo State"
COUNTY_NAME = "Synthetic County"
STATE_POSTAL = "DS"  # not a USPS code
CRS = "EPSG:4269"
# Tract grid (lon/lat degrees): four columns west to east, three rows north to south.
COLUMN_EDGES = (-70.0, -69.85, -69.76, -69.68, -69.6)
ROW_EDGES = (38.3, 38.2, 38.1, 38.0)
# Places (city, ZIP) by grid column; ZIPs 000xx are unassigned by USPS and keep a leading zero.
COLUMN_PLACES = (("Synthdale", "00014"), ("Synthfield", "00013"), ("Synthville", "00012"),
                 ("Port Synth", "00011"))
OUTSIDE_PLACE = ("Elsewhere", "XS", "00090")
# Out-of-region coordinates: open ocean east of the county, outside every loaded boundary.
OUTSIDE_BOX = (-69.45, 37.9, -69.15, 38.4)
# Block group layouts: cells per row, north to south (2 and 3 split along the longer side).
LAYOUTS = {4: (2, 2), 5: (3, 2)}


@dataclass(frozen=True)
class _Tract:
    """One 2010 tract of the grid and the people living in it."""

    code: str
    column: int
    row: int
    n_block_groups: int
    area_type: str  # "urban" or "rural"
    deprivation: float  # tract mean of the latent deprivation score (about N(0, 1) nationally)
    people: int  # typical population of one of its block groups


TRACTS_2010 = (
    _Tract("000100", 3, 0, 4, "urban", -1.1, 1500),
    _Tract("000200", 3, 1, 5, "urban", 1.3, 1900),
    _Tract("000300", 3, 2, 4, "urban", 0.8, 1800),
    _Tract("000400", 2, 0, 4, "urban", -0.4, 1500),
    _Tract("000500", 2, 1, 4, "urban", 0.6, 1600),
    _Tract("000600", 2, 2, 4, "urban", 0.1, 1400),
    _Tract("000700", 1, 0, 3, "rural", 0.1, 1100),
    _Tract("000800", 1, 1, 3, "rural", 0.5, 1000),
    _Tract("000900", 1, 2, 3, "rural", 0.0, 1000),
    _Tract("001000", 0, 0, 2, "rural", 0.4, 850),
    _Tract("001100", 0, 1, 2, "rural", 0.9, 750),
    _Tract("001200", 0, 2, 2, "rural", 0.3, 800),
)
# 2020 boundaries: a grown tract is split into a west and an east half (tract, block groups),
# the shared edge of two tracts moves south, and one rural tract gains a block group.
SPLITS_2020 = {"000300": (("000301", 2), ("000302", 3))}
MOVED_EDGE_2020 = {"north": "000400", "south": "000500", "latitude": 38.185}
BLOCK_GROUPS_2020 = {"001000": 3}
GROWTH_2020 = {"000301": 1.12, "000302": 1.18}
# Block groups with a role, identical in both boundary vintages: (tract, block group).
SPECIAL_BLOCK_GROUPS = {
    "tiny": ("000600", "4"),
    "group_quarters": ("000100", "3"),
    "small_group_quarters": ("001100", "2"),
    "questionable": ("000900", "1"),
}
SPECIAL_LATENTS = {
    "tiny": {"pop": 28.0, "gq": 0.0},
    "group_quarters": {"pop": 2600.0, "gq": 0.7},
    "small_group_quarters": {"pop": 85.0, "gq": 0.5},
}
ADI_SUPPRESSION = {"tiny": "PH", "group_quarters": "GQ", "small_group_quarters": "GQ-PH",
                   "questionable": "QDI"}
# The county's coastal water is a water-only tract in both boundary vintages (the Census Bureau
# codes them 9900xx, with the one block group 0): boundary year -> tract -> box. No one lives
# there, so every ACS count is 0 (the SVI does not rank it, an ADI suppresses it as PH); it lies
# east of the coast, where no address is. Present in every vintage, so every vintage's files
# have the same kinds of missing values.
WATER_BOX = (COLUMN_EDGES[-1], ROW_EDGES[-1], -69.56, ROW_EDGES[0])
WATER_TRACTS = {2010: {"990000": WATER_BOX}, 2020: {"990000": WATER_BOX}}
WATER_BLOCK_GROUP = "0"
WATER_ADI_CODE = "PH"

# -- ACS ----------------------------------------------------------------------------------------

DEMO_VINTAGES = (2019, 2020, 2021)
LEVELS = ("block_group", "tract", "county")
GEOGRAPHY_COLUMNS = {"block_group": ("state", "county", "tract", "block group"),
                     "tract": ("state", "county", "tract"), "county": ("state", "county")}
DETAILED = "acs/acs5"
# Subject and data profile tables are published at tract and county only; their files sit in
# the dataset's own folder (census_api/{year}/acs/acs5/subject/tract.json).
NARROW_DATASETS = {"acs/acs5/subject": "subject", "acs/acs5/profile": "profile"}
NARROW_LEVELS = ("tract", "county")
# Table -> (universe, variable holding the universe total). Universes named in
# DRAWN_UNIVERSES come from cells of tables drawn earlier, so the order matters.
TABLES = {
    "B01001": ("population", "B01001_001"),
    "B01003": ("population", "B01003_001"),
    "B03002": ("population", "B03002_001"),
    "C17002": ("poverty_universe", "C17002_001"),
    "B15003": ("adults_25", "B15003_001"),
    "B23025": ("labor_force", "B23025_003"),
    "B25003": ("households", "B25003_001"),
    "B25014": ("households", "B25014_001"),
    "B25044": ("households", "B25044_001"),
    "C16002": ("households", "C16002_001"),
    "B27010": ("civilian_noninstitutional", "B27010_001"),
    "B05002": ("population", "B05002_001"),
    "B11001": ("households", "B11001_001"),
    "B11003": ("families", "B11003_001"),
    "B11007": ("households", "B11007_001"),
    "B19057": ("households", "B19057_001"),
    "B22010": ("households", "B22010_001"),
    "B28002": ("households", "B28002_001"),
    "B25002": ("housing_units", "B25002_001"),
    "B25024": ("housing_units", "B25024_001"),
    "B25070": ("renter_households", "B25070_001"),
    "B25091": ("owner_households", "B25091_001"),
    "B26001": ("group_quarters", "B26001_001"),
    "B08301": ("workers", "B08301_001"),
    "B08303": ("commuters", "B08303_001"),
}
# Universes that are sums of signed cells drawn before (owners = occupied - renters).
DRAWN_UNIVERSES = {"renter_households": ("B25003_003",),
                   "owner_households": ("B25003_001", "-B25003_003")}
# Cells equal to a universe (vacant units = housing units - households).
FIXED_CELLS = {"B25002_003": "vacant_units"}
CONTROLLED_UNIVERSES = ("population",)  # county totals carry MOE -555555555


@dataclass(frozen=True)
class _CellGroup:
    """Cells of a table drawn together.

    ``share`` is the group's share of the universe (or of the ``within`` cell it nests in) in
    an urban area at deprivation 0; ``deprivation`` and ``rural`` are log-share changes per
    unit of deprivation and in rural areas; ``weights`` split the group among its variables.
    Groups without ``within`` are mutually exclusive; ``remainder`` takes what is left.
    """

    variables: tuple[str, ...]
    share: float
    deprivation: float
    rural: float
    weights: tuple[float, ...] | None = None
    within: str | None = None
    remainder: bool = False


def _vars(table: str, numbers: range | tuple[int, ...]) -> tuple[str, ...]:
    return tuple(f"{table}_{n:03d}" for n in numbers)


AGE_65_WEIGHTS = (0.16, 0.21, 0.25, 0.17, 0.11, 0.10)
AGE_17_WEIGHTS = (0.27, 0.28, 0.28, 0.17)  # under 5, 5-9, 10-14, 15-17
CELL_GROUPS = (
    _CellGroup(_vars("B01001", range(20, 26)), 0.075, -0.1, 0.3, AGE_65_WEIGHTS),
    _CellGroup(_vars("B01001", range(44, 50)), 0.09, -0.1, 0.3, AGE_65_WEIGHTS),
    _CellGroup(_vars("B01001", range(3, 7)), 0.115, 0.1, 0.0, AGE_17_WEIGHTS),
    _CellGroup(_vars("B01001", range(27, 31)), 0.11, 0.1, 0.0, AGE_17_WEIGHTS),
    _CellGroup(("B03002_003",), 0.45, -0.4, 0.55),
    _CellGroup(("B03002_012",), 0.2, 0.3, -0.3),
    _CellGroup(("C17002_002", "C17002_003"), 0.13, 0.55, -0.1, (0.45, 0.55)),
    _CellGroup(("C17002_004", "C17002_005"), 0.10, 0.3, 0.0),
    _CellGroup(_vars("B15003", range(2, 17)), 0.10, 0.55, 0.1,
               (8, 0.5, 0.5, 1, 1, 1, 1.5, 2, 2, 3, 8, 12, 15, 18, 17)),
    _CellGroup(_vars("B15003", range(22, 26)), 0.34, -0.5, -0.5, (20, 9, 2, 1.5)),
    _CellGroup(("B23025_005",), 0.055, 0.45, 0.1),
    _CellGroup(("B25003_003",), 0.42, 0.35, -0.7),
    _CellGroup(_vars("B25014", (5, 6, 7)), 0.015, 0.5, 0.0, (0.75, 0.18, 0.07)),
    _CellGroup(_vars("B25014", (11, 12, 13)), 0.035, 0.6, -0.3, (0.7, 0.2, 0.1)),
    _CellGroup(("B25044_003",), 0.012, 0.3, -0.3),
    _CellGroup(("B25044_010",), 0.08, 0.6, -1.0),
    _CellGroup(_vars("C16002", (4, 7, 10, 13)), 0.045, 0.5, -1.0, (0.55, 0.2, 0.18, 0.07)),
    # B27010: age groups, then the uninsured within each age group.
    _CellGroup(("B27010_002",), 0.24, 0.1, 0.05),
    _CellGroup(("B27010_018",), 0.21, 0.05, -0.2),
    _CellGroup(("B27010_034",), 0.39, 0.0, 0.05),
    _CellGroup(("B27010_051",), 0.0, 0.0, 0.0, remainder=True),
    _CellGroup(("B27010_017",), 0.045, 0.5, 0.3, within="B27010_002"),
    _CellGroup(("B27010_033",), 0.13, 0.5, 0.2, within="B27010_018"),
    _CellGroup(("B27010_050",), 0.09, 0.5, 0.2, within="B27010_034"),
    _CellGroup(("B27010_066",), 0.01, 0.3, 0.0, within="B27010_051"),
    _CellGroup(("B05002_013",), 0.08, 0.3, -0.9),
    _CellGroup(("B11003_010",), 0.035, 0.5, 0.0),
    _CellGroup(("B11003_016",), 0.11, 0.6, -0.1),
    _CellGroup(("B11007_003",), 0.11, -0.05, 0.25),
    _CellGroup(("B19057_002",), 0.022, 0.7, 0.1),
    _CellGroup(("B22010_002",), 0.11, 0.65, 0.1),
    _CellGroup(("B28002_012", "B28002_013"), 0.11, 0.5, 0.45, (0.2, 0.8)),
    _CellGroup(_vars("B25024", (7, 8, 9)), 0.12, 0.2, -1.5, (0.45, 0.3, 0.25)),
    _CellGroup(("B25024_010",), 0.03, 0.3, 1.3),
    _CellGroup(_vars("B25070", (7, 8, 9)), 0.2, 0.3, -0.1, (0.35, 0.25, 0.4)),
    _CellGroup(("B25070_010",), 0.22, 0.35, -0.1),
    _CellGroup(("B25070_011",), 0.05, 0.0, 0.3),
    _CellGroup(_vars("B25091", (8, 9, 10, 11)), 0.12, 0.3, -0.1, (0.3, 0.2, 0.25, 0.25)),
    _CellGroup(("B25091_012",), 0.006, 0.2, 0.0),
    _CellGroup(_vars("B25091", (19, 20, 21, 22)), 0.05, 0.3, 0.1, (0.25, 0.2, 0.25, 0.3)),
    _CellGroup(("B25091_023",), 0.012, 0.2, 0.0),
    _CellGroup(("B08301_010",), 0.05, 0.3, -2.0),
    _CellGroup(("B08303_012", "B08303_013"), 0.08, 0.1, 0.35, (0.7, 0.3)),
)
# Fallbacks for catalog variables none of the above covers (a measure added later).
FALLBACK_SHARE = 0.1
DIRECTION_SLOPE = {"higher_is_worse": 0.4, "higher_is_better": -0.4, "neutral": 0.0}


@dataclass(frozen=True)
class _Statistic:
    """A median or index drawn per block group.

    ``base`` is its value at deprivation 0 in an urban area; ``deprivation`` and ``rural``
    are log effects, ``noise`` a log standard deviation, ``trend`` a yearly factor, ``low``
    and ``high`` bounds and ``decimals`` the precision the API publishes.
    """

    base: float
    deprivation: float
    rural: float
    noise: float
    trend: float
    low: float
    high: float
    decimals: int = 0


STATISTICS = {
    "B19013_001": _Statistic(68000.0, -0.32, -0.08, 0.08, 1.035, 15000.0, 240000.0),  # income
    "B25064_001": _Statistic(1150.0, -0.15, -0.3, 0.07, 1.03, 450.0, 3200.0),  # gross rent
    "B25077_001": _Statistic(240000.0, -0.35, -0.25, 0.12, 1.04, 60000.0, 1_500_000.0),  # value
    "B01002_001": _Statistic(39.5, -0.06, 0.08, 0.06, 1.003, 22.0, 65.0, 1),  # median age
    "B19083_001": _Statistic(0.43, 0.06, -0.02, 0.05, 1.0, 0.3, 0.62, 4),  # Gini index
    # read by the computed ADI only
    "B19113_001": _Statistic(82000.0, -0.33, -0.06, 0.09, 1.035, 18000.0, 240000.0),  # family
    "B25088_002": _Statistic(1650.0, -0.18, -0.25, 0.08, 1.02, 500.0, 4000.0),  # mortgage costs
}
INCOME = "B19013_001"  # the only top-coded statistic of the demo
TOP_CODE = 250001
# Published percents (subject and data profile tables): measure -> (numerator cells,
# denominator cell). Cells named "hidden_*" are drawn per block group, aggregated like any
# count and never published themselves.
PUBLISHED = {
    "pct_disability": (("hidden_disabled",), "B27010_001"),
    "pct_limited_english_speakers": (("hidden_limited_english_5_plus",), "hidden_population_5_plus"),
    "pct_children_in_poverty": (("hidden_children_in_poverty",), "hidden_children_poverty_universe"),
    "pct_uninsured_published": (_vars("B27010", (17, 33, 50, 66)), "B27010_001"),
}
HIDDEN = {  # hidden cell -> (parent cells summed, share, deprivation, rural)
    "hidden_population_5_plus": (("B01003_001",), 0.945, 0.0, 0.0),
    "hidden_limited_english_5_plus": (("hidden_population_5_plus",), 0.05, 0.5, -1.0),
    "hidden_children_poverty_universe": (_vars("B01001", (3, 4, 5, 6, 27, 28, 29, 30)), 0.99, 0.0, 0.0),
    "hidden_children_in_poverty": (("hidden_children_poverty_universe",), 0.17, 0.6, 0.0),
    "hidden_disabled": (("B27010_001",), 0.12, 0.3, 0.2),
}
PERCENT_DECIMALS = 1  # the API publishes percents with one decimal
# Yearly population growth and improvement of the deprivation score across vintages.
POPULATION_TREND = 0.012
DEPRIVATION_TREND = -0.04
DESIGN_FACTOR = 2.6  # MOE = 1.645 * sqrt(estimate) * design factor at block group
ZERO_ESTIMATE_MOE = 12
MEDIAN_RELATIVE_MOE = {"block_group": (0.12, 0.35), "tract": (0.06, 0.16), "county": (0.02, 0.04)}
JAM = {"insufficient": "-666666666", "no_se": "-222222222", "top_coded_moe": "-333333333",
       "suppressed": "-999999999", "not_applicable": "-888888888", "controlled": "-555555555"}
# The tiny block group: table -> (estimate, MOE) written for every variable of the table.
TINY_ANNOTATIONS = {
    "B19013": (JAM["insufficient"], JAM["no_se"]),
    "B23025": (JAM["insufficient"], JAM["no_se"]),
    "C16002": (JAM["suppressed"], JAM["suppressed"]),
    "B25014": (JAM["not_applicable"], JAM["not_applicable"]),
}
N_INSUFFICIENT_MEDIANS = 3  # block groups whose medians are -666666666 in each vintage

# -- inputs of the indices computed from the ACS -------------------------------------------------

# Index -> the demo vintages and levels its inputs are served at. Which variables is the index
# module's own list (`svi_variables` of the SVI release computed from that ACS vintage,
# `adi_variables`); the models below only say how to draw them. SVI releases exist for ACS
# 2016-2020 and 2018-2022, so of the demo vintages only 2020 has one; the computed ADI needs
# the 2020 Census group quarters, hence 2020-boundary vintages.
INDEX_INPUTS = {
    "svi": {"vintages": (2020,), "levels": ("tract", "county")},
    "adi_computed": {"vintages": (2020, 2021), "levels": ("block_group", "tract", "county")},
}
# Index inputs drawn per block group after the catalog's variables, from a stream of their own
# (so that they leave every other value as it was): (universe as signed cells drawn before,
# cell groups), in order. A remainder group takes the rest of a table's total, so its cells and
# the catalog's add up to the total.
INDEX_TABLES: tuple[tuple[tuple[str, ...], tuple[_CellGroup, ...]], ...] = (
    # B03002 not Hispanic: Black, AIAN, Asian, NHPI, some other race, two or more races
    (("B03002_001", "-B03002_003", "-B03002_012"),
     (_CellGroup(_vars("B03002", range(4, 10)), 0.0, 0.0, 0.0,
                 (0.55, 0.06, 0.2, 0.01, 0.03, 0.15), remainder=True),)),
    # B15003 high school diploma, GED, some college (<1 year, 1+ years), associate's degree
    (("B15003_001", *(f"-{v}" for v in _vars("B15003", (*range(2, 17), *range(22, 26))))),
     (_CellGroup(_vars("B15003", range(17, 22)), 0.0, 0.0, 0.0, (0.42, 0.06, 0.09, 0.24, 0.19),
                 remainder=True),)),
    # B16005 speaks English "not well" or "not at all": native (007-023) and foreign born
    # (029-045); Spanish, other Indo-European, Asian and Pacific Island, other languages
    (("hidden_limited_english_5_plus",),
     (_CellGroup(_vars("B16005", (7, 8, 12, 13, 17, 18, 22, 23, 29, 30, 34, 35, 39, 40, 44, 45)),
                 0.0, 0.0, 0.0, (3, 1, 0.5, 0.1, 0.4, 0.1, 0.2, 0.05, 30, 18, 5, 1.5, 10, 4, 2, 0.5),
                 remainder=True),)),
    # B19001 household income: under $10,000; $50,000 or more in seven brackets
    (("B25003_001",),
     (_CellGroup(("B19001_002",), 0.06, 0.6, 0.2),
      _CellGroup(_vars("B19001", range(11, 18)), 0.52, -0.35, -0.2,
                 (0.09, 0.12, 0.17, 0.13, 0.09, 0.11, 0.12)))),
    # B11005 households with people under 18, other family among them; B11012 single parents
    # (male, female householder) with own children, within those other families
    (("B25003_001",),
     (_CellGroup(("B11005_002",), 0.3, 0.1, 0.05),
      _CellGroup(("B11005_005",), 0.27, 0.45, -0.1, within="B11005_002"),
      _CellGroup(("B11012_010", "B11012_015"), 0.85, 0.0, 0.0, (0.22, 0.78), within="B11005_005"))),
    (("B11003_001",), (_CellGroup(("B17010_002",), 0.07, 0.6, 0.1),)),  # families in poverty
    # C24010 management, business, science and arts occupations (male, female) among employed
    (("B23025_003", "-B23025_005"),
     (_CellGroup(("C24010_003", "C24010_039"), 0.4, -0.35, -0.3, (0.47, 0.53)),)),
    # no telephone service (B25043) and lacking complete plumbing (B25016), owners and renters
    (("B25003_001", "-B25003_003"), (_CellGroup(("B25043_007",), 0.005, 0.5, 0.4),)),
    (("B25003_003",), (_CellGroup(("B25043_016",), 0.02, 0.5, 0.3),)),
    (("B25003_001", "-B25003_003"), (_CellGroup(("B25016_007",), 0.003, 0.4, 0.8),)),
    (("B25003_003",), (_CellGroup(("B25016_016",), 0.008, 0.4, 0.5),)),
    # S2503 housing costs >= 30% of income, by income: < $20,000, $20,000-34,999,
    # $35,000-49,999, $50,000-74,999 (occupied units)
    (("B25003_001",),
     (_CellGroup(("S2503_C01_028",), 0.09, 0.5, 0.0), _CellGroup(("S2503_C01_032",), 0.07, 0.35, 0.0),
      _CellGroup(("S2503_C01_036",), 0.05, 0.2, 0.0), _CellGroup(("S2503_C01_040",), 0.05, 0.1, 0.0))),
)
# Index inputs that publish a count drawn before under another name: variable -> signed cells
# summed (the same people or units in another table or dataset). Derived at every level, with
# the MOE of the cell (or the root sum of squares of the cells).
SAME_COUNTS = {
    "B06009_002": _vars("B15003", range(2, 17)),  # less than high school graduate, 25+
    "B09001_001": ("hidden_children_poverty_universe",),  # under 18 in households
    "B16005_001": ("hidden_population_5_plus",),
    "B17010_001": ("B11003_001",),  # families
    "B25001_001": ("B25002_001",),  # housing units
    "B25003_002": ("B25003_001", "-B25003_003"),  # owner occupied
    "B25016_001": ("B25003_001",),  # occupied units
    "B25043_001": ("B25003_001",),
    "C24010_001": ("B23025_003", "-B23025_005"),  # employed civilians 16+
    "S0101_C01_030": _vars("B01001", (*range(20, 26), *range(44, 50))),  # 65 and over
    "S0601_C01_001": ("B01003_001",),  # total population
    "S1701_C01_001": ("C17002_001",),  # poverty status determined
    "S1701_C01_040": _vars("C17002", range(2, 6)),  # below 150% of poverty
    "S2503_C01_001": ("B25003_001",),
    "S2701_C04_001": _vars("B27010", (17, 33, 50, 66)),  # uninsured
    "DP02_0001": ("B11001_001",),  # households
    "DP02_0072": ("hidden_disabled",),  # with a disability
    "DP03_0005": ("B23025_005",),  # unemployed
    "DP04_0001": ("B25002_001",),
    "DP04_0002": ("B25003_001",),
    "DP04_0012": ("B25024_007",),  # 10 to 19 units
    "DP04_0013": ("B25024_008", "B25024_009"),  # 20 or more units
    "DP04_0014": ("B25024_010",),  # mobile homes
    "DP04_0058": ("B25044_003", "B25044_010"),  # no vehicle available
    "DP04_0078": ("B25014_005", "B25014_011"),  # 1.01 to 1.50 occupants per room
    "DP04_0079": ("B25014_006", "B25014_007", "B25014_012", "B25014_013"),  # 1.51 or more
    "DP05_0071": ("B03002_012",),  # Hispanic or Latino (2016-2020 DP05 layout)
    "DP05_0078": ("B03002_004",),  # not Hispanic: Black
    "DP05_0079": ("B03002_005",),  # AIAN
    "DP05_0080": ("B03002_006",),  # Asian
    "DP05_0081": ("B03002_007",),  # NHPI
    "DP05_0082": ("B03002_008",),  # some other race
    "DP05_0083": ("B03002_009",),  # two or more races
}
# Published percents the indices read beyond the catalog's: percent -> (numerator cells,
# denominator cell), computed from the same counts like the catalog's (PUBLISHED).
INDEX_PERCENTS = {
    "S0101_C02_030": (("S0101_C01_030",), "B01003_001"),
    "S0601_C01_033": (("B06009_002",), "B15003_001"),
    "S2701_C05_001": PUBLISHED["pct_uninsured_published"],
    "DP02_0072P": PUBLISHED["pct_disability"],
    "DP03_0009P": (("B23025_005",), "B23025_003"),
    "DP04_0014P": (("B25024_010",), "B25024_001"),
    "DP04_0058P": (("B25044_003", "B25044_010"), "B25044_001"),
}
# The computed ADI's suppression rule reads the group quarters population of a block group from
# the decennial census table its catalog names per boundary vintage (adi_computed.yaml
# `group_quarters_sources`: 2020 Census redistricting data, dec/pl P5_001N, for 2020 block
# groups); the demo serves it for the boundary vintages that have one.
DECENNIAL_LEVEL = "block_group"

# -- ADI ----------------------------------------------------------------------------------------

ADI_FILES = (
    {"vintage": 2015, "file": "DS_2015_ADI_Census_Block_Group_v3_2.csv", "version": "v3.2",
     "available_from": "2018-05-01", "acs_vintage": 2019},
    {"vintage": 2020, "file": "DS_2020_ADI_Census_Block_Group_v4_0.csv", "version": "v4.0",
     "available_from": "2022-09-01", "acs_vintage": 2020},
)
ADI_NATIONAL_SHIFT = 0.15  # the region sits a little above the national median
# Block-group measures combined into the demo's deprivation score (signed by direction).
ADI_COMPONENTS = ("pct_below_poverty", "pct_below_150_poverty", "median_household_income",
                  "pct_unemployed", "pct_no_hs_diploma", "pct_bachelors_or_higher",
                  "pct_no_vehicle", "pct_crowded", "pct_limited_english_households")

# -- patients -----------------------------------------------------------------------------------

RACES = ("Hispanic", "NH White", "NH Black", "NH Asian", "NH AIAN", "NH Other or Multiple")
# Composition of the population other than NH White, by area type (order of RACES).
NON_WHITE_MIX = {"urban": (0.38, 0.0, 0.36, 0.14, 0.02, 0.10),
                 "rural": (0.40, 0.0, 0.18, 0.06, 0.20, 0.16)}
LANGUAGES = ("English", "Spanish", "Other")
LANGUAGE_BY_RACE = {"Hispanic": (0.55, 0.43, 0.02), "NH Asian": (0.62, 0.01, 0.37)}
LANGUAGE_DEFAULT = (0.965, 0.01, 0.025)
PAYERS_65_PLUS = {"Medicare": 0.88, "Medicaid": 0.07, "Commercial": 0.05}
MOVES = {0: 0.70, 1: 0.22, 2: 0.08}
HISTORY_START = dt.date(1995, 1, 1)
STUDY_START = dt.date(2019, 1, 1)
STUDY_END = dt.date(2024, 1, 1)  # exclusive
MIN_DAYS_BETWEEN_MOVES = 45
P_MOVE_ON_ENCOUNTER_DAY = 0.25
ENCOUNTER_TYPES = {"outpatient": 0.68, "ED": 0.24, "inpatient": 0.08}
N_AT_RELEASE_INSTANT = 6  # patients with an encounter exactly at each demo release instant
# Address coverage gaps: probability of each category per address row.
GAPS = {
    "outside_region_on_move": 0.07,
    "zip_only": 0.012,
    "po_box": {"urban": 0.025, "rural": 0.085},
    "po_box_payer_factor": {"Medicaid": 1.8, "Uninsured": 1.8},
    "geocode_failed": {"urban": 0.025, "rural": 0.075},
    "geocode_failed_language_factor": {"Spanish": 2.0, "Other": 2.0},
    "po_box_with_post_office_coordinates": 0.5,
    "rural_route_among_rural_failed": 0.35,
}
CATEGORY_REASON = {"geocoded": "", "po_box": "po_box", "geocode_failed": "geocode_failed",
                   "zip_only": "zip_only", "outside_region": "outside_boundaries"}
PO_BOX_FORMATS = ("PO Box {n}", "P.O. Box {n}", "PO BOX {n}", "Post Office Box {n}")
STREET_NAMES = ("Harbor", "Tide", "Gull", "Kelp", "Anchor", "Beacon", "Driftwood", "Mariner",
                "Compass", "Lantern", "Dune", "Pier", "Shoal", "Current", "Sandbar", "Heron")
STREET_SUFFIXES = ("St", "Ave", "Rd", "Ln", "Way", "Ct")
# Outcome (30-day ED revisit) log-odds.
OUTCOME = {"intercept": -2.4, "deprivation": 0.45, "ED": 0.6, "inpatient": 0.3,
           "public_or_uninsured": 0.35, "age_75_plus": 0.2}
OUTSIDE_DEPRIVATION = 0.3
NOTES = (
    "SYNTHETIC DATA. Synthetic County, Demo State (state FIPS 99, no real state) lies in the "
    "Atlantic Ocean and every estimate, boundary, index rank, patient, address and encounter "
    "was generated by ingestion.demo.region from the seed; none describes a real place or "
    "person. Files follow the real formats (Census Data API JSON, TIGER/Line shapefiles, "
    "Neighborhood Atlas ADI CSV) so the real readers run on them. ACS 2019 uses the 2010 "
    "block groups, 2020 and 2021 the 2020 block groups; the ADI 2015 ranks are derived from "
    "the 2019 demo ACS on 2010 block groups. Subject and data profile percents (tract and "
    "county files under acs/acs5/subject and acs/acs5/profile) are computed from the same "
    "synthetic counts as the detailed tables. The same files also hold the inputs of the CDC "
    "SVI 2020 (ACS 2020, tract and county) and of the ADI computed from ACS block groups (2020 "
    "and 2021); census_api/2020/dec/pl holds the 2020 Census group quarters population "
    "(P5_001N) per block group. Tract 9900 is water only: its counts are 0 and its medians "
    "and percents not available. PO boxes may carry the post office's "
    "coordinates: a linker must recognise them from the street text. truth/address_truth.csv "
    "holds the expected linkage of every address row; it is an answer key, not an input."
)


# -- small helpers ------------------------------------------------------------------------------


def _rng(seed: int, stream: str) -> np.random.Generator:
    """Return an independent generator per named stream, so parts change independently."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def _edges(start: float, stop: float, n: int) -> list[float]:
    return [start + (stop - start) * i / n for i in range(n)] + [stop]


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One category index per row of a (rows, categories) probability matrix."""
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    return np.minimum((cumulative < rng.random((len(probs), 1))).sum(axis=1), probs.shape[1] - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in np.ravel(x)])


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")


# -- geography ----------------------------------------------------------------------------------


def _tile(cell: tuple[float, float, float, float], n: int) -> list[Polygon]:
    """Split a box into ``n`` boxes with shared edges, numbered north-west first."""
    x0, y0, x1, y1 = cell
    if n in LAYOUTS:
        rows = LAYOUTS[n]
    elif (y1 - y0) > (x1 - x0):
        rows = (1,) * n
    else:
        rows = (n,)
    ys = _edges(y1, y0, len(rows))
    polygons = []
    for r, k in enumerate(rows):
        xs = _edges(x0, x1, k)
        polygons += [box(xs[c], ys[r + 1], xs[c + 1], ys[r]) for c in range(k)]
    return polygons


def _tract_cells(boundary_year: int) -> list[dict]:
    """List the tracts of a boundary vintage: code, box, bg count, area type, 2010 parent."""
    cells = []
    for t in TRACTS_2010:
        x0, x1 = COLUMN_EDGES[t.column], COLUMN_EDGES[t.column + 1]
        y1, y0 = ROW_EDGES[t.row], ROW_EDGES[t.row + 1]
        base = {"code": t.code, "n": t.n_block_groups, "area_type": t.area_type, "parent": t.code}
        if boundary_year < 2020:
            cells.append({**base, "box": (x0, y0, x1, y1)})
            continue
        if t.code == MOVED_EDGE_2020["north"]:
            y0 = MOVED_EDGE_2020["latitude"]
        if t.code == MOVED_EDGE_2020["south"]:
            y1 = MOVED_EDGE_2020["latitude"]
        if t.code in SPLITS_2020:
            (west, n_west), (east, n_east) = SPLITS_2020[t.code]
            middle = (x0 + x1) / 2
            cells.append({**base, "code": west, "n": n_west, "box": (x0, y0, middle, y1)})
            cells.append({**base, "code": east, "n": n_east, "box": (middle, y0, x1, y1)})
            continue
        cells.append({**base, "n": BLOCK_GROUPS_2020.get(t.code, t.n_block_groups),
                      "box": (x0, y0, x1, y1)})
    return cells


def _block_groups(boundary_year: int) -> gpd.GeoDataFrame:
    """Build the block groups of a boundary vintage, sorted by GEOID."""
    records = []
    for cell in _tract_cells(boundary_year):
        for i, polygon in enumerate(_tile(cell["box"], cell["n"]), start=1):
            records.append({
                "tract": cell["code"], "block_group": str(i),
                "geoid": f"{STATE_FIPS}{COUNTY_FIPS}{cell['code']}{i}",
                "tract_geoid": f"{STATE_FIPS}{COUNTY_FIPS}{cell['code']}",
                "area_type": cell["area_type"], "parent_tract_2010": cell["parent"],
                "geometry": polygon,
            })
    frame = gpd.GeoDataFrame(records, geometry="geometry", crs=CRS)
    return frame.sort_values("geoid", ignore_index=True)


def _with_water(bgs: gpd.GeoDataFrame, boundary_year: int) -> gpd.GeoDataFrame:
    """Add the water-only block groups (block group 0 of each water tract), sorted by GEOID."""
    records = [{"tract": code, "block_group": WATER_BLOCK_GROUP,
                "geoid": f"{STATE_FIPS}{COUNTY_FIPS}{code}{WATER_BLOCK_GROUP}",
                "tract_geoid": f"{STATE_FIPS}{COUNTY_FIPS}{code}", "area_type": "water",
                "parent_tract_2010": "", "geometry": box(*cell)}
               for code, cell in sorted(WATER_TRACTS.get(boundary_year, {}).items())]
    if not records:
        return bgs
    water = gpd.GeoDataFrame(records, geometry="geometry", crs=CRS)
    return pd.concat([bgs, water], ignore_index=True).sort_values("geoid", ignore_index=True)


def _special_geoids() -> dict[str, str]:
    return {role: f"{STATE_FIPS}{COUNTY_FIPS}{tract}{bg}"
            for role, (tract, bg) in SPECIAL_BLOCK_GROUPS.items()}


# -- latent neighbourhood attributes ----------------------------------------------------------


def _latents_2010(bgs: gpd.GeoDataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Draw population, deprivation, group-quarters share and household size per 2010 bg."""
    tracts = {t.code: t for t in TRACTS_2010}
    n = len(bgs)
    people = np.array([tracts[c].people for c in bgs["tract"]], dtype=float)
    rural = (bgs["area_type"] == "rural").to_numpy()
    latents = pd.DataFrame({
        "geoid": bgs["geoid"],
        "pop": np.round(people * rng.lognormal(0.0, 0.25, n)),
        "z": np.array([tracts[c].deprivation for c in bgs["tract"]]) + rng.normal(0, 0.35, n),
        "gq": np.zeros(n),
        "hh_size": np.where(rural, 2.6, 2.3) + rng.normal(0, 0.15, n),
    })
    for role, geoid in _special_geoids().items():
        for key, value in SPECIAL_LATENTS.get(role, {}).items():
            latents.loc[latents["geoid"] == geoid, key] = value
    return latents


def _latents_for(target: gpd.GeoDataFrame, source: gpd.GeoDataFrame,
                 source_latents: pd.DataFrame) -> pd.DataFrame:
    """Carry 2010 latents to other block groups by area-weighted interpolation."""
    rows = []
    for geoid, polygon, tract in zip(target["geoid"], target.geometry, target["tract"],
                                     strict=True):
        share = np.array([polygon.intersection(p).area / p.area for p in source.geometry])
        people = source_latents["pop"].to_numpy() * share
        weights = people / people.sum()
        rows.append({
            "geoid": geoid,
            "pop": round(people.sum() * GROWTH_2020.get(tract, 1.0)),
            **{k: float(weights @ source_latents[k].to_numpy()) for k in ("z", "gq", "hh_size")},
        })
    return pd.DataFrame(rows)


# -- ACS values ---------------------------------------------------------------------------------


def _is_detailed(variable: str) -> bool:
    return acs_dataset(variable) == DETAILED


def _catalog_variables(year: int | None = None) -> tuple[str, ...]:
    """The catalog's detailed-table variables read in ``year`` (or in any vintage), sorted."""
    measures = load_catalog().acs.measures
    found = {v for m in measures for v in (m.variables if year is None else m.variables_for(year))}
    return tuple(sorted(v for v in found if _is_detailed(v)))


def _published(level: str, year: int) -> set[str]:
    return set(load_catalog().acs.variables_for(level, year))


def _statistic_variables() -> list[str]:
    return [v for v in _catalog_variables() if v in STATISTICS]


def _published_measures(year: int, level: str) -> list[tuple[Measure, str]]:
    """(measure, its published-percent variable in ``year``) for the percents at ``level``."""
    pairs = [(m, m.formula(year)) for m in load_catalog().acs.measures_at(level)]
    return [(m, f.percent) for m, f in pairs if f is not None and f.percent is not None]


def _published_model(measure: Measure) -> tuple[tuple[str, ...], str]:
    """The synthetic numerator cells and denominator cell behind a published percent."""
    if measure.name in PUBLISHED:
        return PUBLISHED[measure.name]
    return (f"hidden_{measure.name}",), "B01003_001"


def _hidden_specs() -> dict[str, tuple[tuple[str, ...], float, float, float]]:
    """HIDDEN plus a generic share of the population for published percents without a model."""
    specs = dict(HIDDEN)
    for m in load_catalog().acs.measures:
        if any(f.percent for f in m.formulas) and m.name not in PUBLISHED:
            logger.warning("demo region: no model for the published percent %s; using a generic "
                           "share", m.name)
            specs[f"hidden_{m.name}"] = (("B01003_001",), FALLBACK_SHARE,
                                         DIRECTION_SLOPE.get(m.direction, 0.0), 0.0)
    return specs


def _published_cells() -> list[str]:
    cells = set()
    for m in load_catalog().acs.measures:
        if any(f.percent for f in m.formulas):
            numerators, denominator = _published_model(m)
            cells |= {*numerators, denominator}
    return sorted(cells)


def _table_plan() -> dict[str, tuple[str, str, list[_CellGroup]]]:
    """Table -> (universe, total variable, cell groups), covering every detailed variable."""
    plan = {t: (u, total, [g for g in CELL_GROUPS if g.variables[0].startswith(t + "_")])
            for t, (u, total) in TABLES.items()}
    covered = set(STATISTICS) | set(FIXED_CELLS)
    for _, total, groups in plan.values():
        covered |= {total, *(v for g in groups for v in g.variables)}
    for m in load_catalog().acs.measures:
        missing = [v for v in m.variables if _is_detailed(v) and v not in covered]
        if missing:
            _plan_fallback(plan, m, missing)
            covered |= set(missing)
    return plan


def _plan_fallback(plan: dict, measure: Measure, missing: list[str]) -> None:
    logger.warning("demo region: no ACS model for %s of measure %s; using a generic share",
                   missing, measure.name)
    denominator = [d.lstrip("-") for d in measure.denominator]
    for variable in missing:
        table = variable.split("_")[0]
        if table not in plan:
            total = denominator[0] if denominator and denominator[0].startswith(table) else None
            plan[table] = ("population", total or f"{table}_001", [])
    cells = [v for v in missing if v != plan[v.split("_")[0]][1]]
    slope = DIRECTION_SLOPE.get(measure.direction, 0.0)
    for variable in cells:
        plan[variable.split("_")[0]][2].append(_CellGroup((variable,), FALLBACK_SHARE, slope, 0.0))


def _vintage_latents(latents: pd.DataFrame, year: int, rng: np.random.Generator) -> pd.DataFrame:
    """Apply a vintage's trend and noise to the base population and deprivation."""
    out = latents.copy()
    n = len(out)
    years = year - DEMO_VINTAGES[0]
    out["pop"] = np.maximum(1, np.round(
        latents["pop"] * (1 + POPULATION_TREND * years) * rng.lognormal(0.0, 0.01, n)))
    out["z"] = latents["z"] + DEPRIVATION_TREND * years + rng.normal(0, 0.06, n)
    return out


def _universes(lat: pd.DataFrame, rural: np.ndarray, rng: np.random.Generator) -> dict:
    pop, gq, n = lat["pop"].to_numpy(), lat["gq"].to_numpy(), len(lat)
    z = lat["z"].to_numpy()
    households = np.where(pop < 40, np.round(pop / 3), np.round(pop * (1 - gq) / lat["hh_size"].to_numpy()))
    labor_force = np.round(pop * rng.uniform(0.45, 0.53, n) * (1 - 0.05 * np.clip(z, -2, 2)))
    universes = {
        "population": pop,
        "households": households,
        "poverty_universe": np.round(pop * (1 - gq) * rng.uniform(0.975, 0.995, n)
                                     + pop * gq * 0.1),
        "adults_25": np.round(pop * (1 - gq) * rng.uniform(0.6, 0.7, n) + rural * pop * 0.03
                              + pop * gq * 0.1),
        "labor_force": labor_force,
        "civilian_noninstitutional": np.round(pop * rng.uniform(0.975, 0.995, n)),
    }
    vacancy = np.clip(0.09 * np.exp(0.3 * z + 0.5 * rural), 0.01, 0.45)
    workers = np.round(labor_force * rng.uniform(0.9, 0.96, n))
    universes.update({
        "families": np.round(households * rng.uniform(0.6, 0.7, n)),
        "vacant_units": rng.binomial(households.astype(np.int64), vacancy),
        "group_quarters": np.round(pop * gq),
        "workers": workers,
        "commuters": np.round(workers * rng.uniform(0.88, 0.95, n)),
    })
    universes["housing_units"] = households + universes["vacant_units"]
    return universes


def _universe(name: str, universes: dict, columns: dict) -> np.ndarray:
    """A universe drawn up front, or a signed sum of cells drawn before (DRAWN_UNIVERSES)."""
    if name not in DRAWN_UNIVERSES:
        return universes[name]
    return sum((-1 if t.startswith("-") else 1) * columns[t.lstrip("-")]
               for t in DRAWN_UNIVERSES[name])


def _share(group: _CellGroup, z: np.ndarray, rural: np.ndarray) -> np.ndarray:
    return group.share * np.exp(group.deprivation * z + group.rural * rural)


def _draw_table(total: np.ndarray, groups: list[_CellGroup], z: np.ndarray, rural: np.ndarray,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw a table's cells from its universe, group by group, never exceeding the total.

    Exclusive groups share the total; ``remainder`` takes what is left and ``within`` groups
    are drawn from a cell of the same table drawn before them.
    """
    values: dict[str, np.ndarray] = {}
    remaining = total.astype(np.int64)
    used = np.zeros(len(total))
    for group in groups:
        if group.within is not None:
            drawn = rng.binomial(values[group.within], np.clip(_share(group, z, rural), 0, 1))
        elif group.remainder:
            drawn, remaining = remaining, np.zeros_like(remaining)
        else:
            share = np.clip(_share(group, z, rural), 0, 0.9)
            conditional = np.clip(share / np.maximum(1 - used, 0.05), 0, 1)
            drawn = rng.binomial(remaining, conditional)
            remaining = remaining - drawn
            used = np.minimum(used + share, 0.95)
        weights = np.asarray(group.weights or (1.0,) * len(group.variables), dtype=float)
        split = rng.multinomial(drawn, weights / weights.sum())
        for i, variable in enumerate(group.variables):
            values[variable] = split[:, i]
    return values


def _draw_hidden(columns: dict, z: np.ndarray, rural: np.ndarray,
                 rng: np.random.Generator) -> None:
    """Draw the unpublished counts behind the subject and data profile percents."""
    for name, (parents, share, deprivation, rural_effect) in _hidden_specs().items():
        parent = sum(columns[p] for p in parents).astype(np.int64)
        columns[name] = rng.binomial(parent, np.clip(share * np.exp(deprivation * z + rural_effect
                                                                    * rural), 0, 1))


def _statistic(spec: _Statistic, lat: pd.DataFrame, rural: np.ndarray, year: int,
               rng: np.random.Generator) -> np.ndarray:
    log_value = (np.log(spec.base) + spec.deprivation * lat["z"].to_numpy() + spec.rural * rural
                 + rng.normal(0, spec.noise, len(lat)))
    value = np.exp(log_value) * spec.trend ** (year - DEMO_VINTAGES[0])
    return np.round(np.clip(value, spec.low, spec.high), spec.decimals)


def _acs_block_groups(bgs: gpd.GeoDataFrame, latents: pd.DataFrame, year: int,
                      rng: np.random.Generator) -> pd.DataFrame:
    """Every catalog variable at block group for one vintage, before jam values."""
    lat = _vintage_latents(latents, year, rng)
    rural = (bgs["area_type"] == "rural").to_numpy().astype(float)
    universes = _universes(lat, rural, rng)
    z = lat["z"].to_numpy()
    columns: dict[str, np.ndarray] = {}
    for table, (universe, total, groups) in _table_plan().items():
        columns[total] = _universe(universe, universes, columns).astype(np.int64)
        columns.update(_draw_table(columns[total], groups, z, rural, rng))
        for cell, source in FIXED_CELLS.items():
            if cell.startswith(table + "_"):
                columns[cell] = universes[source].astype(np.int64)
    for variable in _statistic_variables():
        columns[variable] = _statistic(STATISTICS[variable], lat, rural, year, rng)
    _draw_hidden(columns, z, rural, rng)
    return pd.DataFrame({"geoid": bgs["geoid"], "tract": bgs["tract"],
                         "block_group": bgs["block_group"], "area_type": bgs["area_type"],
                         "z": z, **columns})


def _moe_counts(est: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    moe = np.round(1.645 * np.sqrt(est) * DESIGN_FACTOR * rng.uniform(0.85, 1.2, est.shape))
    return np.where(est > 0, np.maximum(moe, 2), ZERO_ESTIMATE_MOE).astype(np.int64)


def _rss(est: np.ndarray, moe: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Aggregate MOEs by group as the Census Bureau does (rows of ``est``, ``moe``: areas).

    Root sum of squares of the MOEs, counting only the largest zero-estimate MOE; ``est`` and
    ``moe`` are (rows, variables), ``groups`` the group of each row.
    """
    squares = np.zeros((n_groups, est.shape[1]))
    np.add.at(squares, groups, np.where(est > 0, moe.astype(float) ** 2, 0.0))
    zeros = np.zeros((n_groups, est.shape[1]))
    np.maximum.at(zeros, groups, np.where(est == 0, moe.astype(float), 0.0))
    return np.maximum(1, np.round(np.sqrt(squares + zeros**2))).astype(np.int64)


def _aggregate(child: pd.DataFrame, keys: list[str], counts: list[str],
               medians: list[str]) -> pd.DataFrame:
    """Sum counts of child areas, RSS their MOEs and take household-weighted statistics.

    Medians get their MOEs from `_add_median_moes`.
    """
    grouped = child.groupby(keys, sort=True)
    groups = grouped.ngroup().to_numpy()
    frame = grouped[counts].sum().reset_index()
    moes = _rss(child[counts].to_numpy(), child[[f"{v}_moe" for v in counts]].to_numpy(),
                groups, len(frame))
    columns = {f"{v}_moe": moes[:, i] for i, v in enumerate(counts)}
    weights = child[TABLES["B25003"][1]].to_numpy(dtype=float) + 1e-9
    for v in medians:
        logs = np.log(child[v].to_numpy(dtype=float))
        columns[v] = [float(np.exp(np.average(logs[groups == g], weights=weights[groups == g])))
                      for g in range(len(frame))]
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)


def _add_median_moes(frame: pd.DataFrame, medians: list[str], rng: np.random.Generator,
                     level: str) -> pd.DataFrame:
    low, high = MEDIAN_RELATIVE_MOE[level]
    for v in medians:
        decimals = STATISTICS[v].decimals
        frame[v] = np.round(frame[v].to_numpy(dtype=float), decimals)
        frame[f"{v}_moe"] = np.round(frame[v] * rng.uniform(low, high, len(frame)), decimals)
    return frame


def _acs_levels(bgs: gpd.GeoDataFrame, latents: pd.DataFrame, year: int, seed: int,
                boundary_year: int) -> dict[str, pd.DataFrame]:
    """Build the three levels of one vintage, consistent by construction (tract = sum of bgs).

    The catalog's variables come from the vintage's stream, the index inputs (in the vintages
    that serve them) from a stream of their own, so that adding them changed no other value.
    Water-only areas come last, with zero counts; the counts published under other names
    (SAME_COUNTS) are then derived at each level.
    """
    rng = _rng(seed, f"acs-{year}")
    bg = _acs_block_groups(bgs, latents, year, rng)
    medians = _statistic_variables()
    counts = sorted({v for v in _catalog_variables() if v not in medians} | set(_published_cells()))
    moes = {f"{v}_moe": _moe_counts(bg[v].to_numpy(), rng) for v in counts}
    bg = pd.concat([bg, pd.DataFrame(moes, index=bg.index)], axis=1)
    bg = _top_code(bg)
    bg = _add_median_moes(bg, medians, rng, "block_group")
    index_rng = _rng(seed, f"index-inputs-{year}")
    bg, index_counts, index_medians = _draw_index_inputs(bg, year, index_rng)
    counts, all_medians = counts + index_counts, medians + index_medians
    levels = {"block_group": bg}
    child, keys = bg, ["tract"]
    for level in ("tract", "county"):
        frame = _aggregate(child, keys, counts, all_medians)
        frame = _add_median_moes(frame, medians, rng, level)
        levels[level] = _add_median_moes(frame, index_medians, index_rng, level)
        child, keys = levels[level].assign(county=COUNTY_FIPS), ["county"]
    water = _with_water(bgs.iloc[:0], boundary_year)
    for level in ("block_group", "tract"):
        levels[level] = _add_water(levels[level], water, level, counts)
    if index_counts or index_medians:
        levels = {level: _add_same_counts(frame) for level, frame in levels.items()}
    return levels


def _add_water(frame: pd.DataFrame, water: gpd.GeoDataFrame, level: str,
               counts: list[str]) -> pd.DataFrame:
    """Append the water-only areas: every count 0 with the zero-estimate MOE, no statistic."""
    if water.empty:
        return frame
    keys = ["geoid", "tract", "block_group", "area_type"] if level == "block_group" else ["tract"]
    rows = water[keys].drop_duplicates().reset_index(drop=True)
    zeros = {v: np.zeros(len(rows), dtype=np.int64) for v in counts}
    zeros |= {f"{v}_moe": np.full(len(rows), ZERO_ESTIMATE_MOE, dtype=np.int64) for v in counts}
    rows = pd.concat([rows, pd.DataFrame(zeros, index=rows.index)], axis=1)
    return pd.concat([frame, rows], ignore_index=True).sort_values(keys[0], ignore_index=True)


def _top_code(bg: pd.DataFrame) -> pd.DataFrame:
    """Give the least deprived ordinary block group a median income above the top code."""
    if INCOME not in bg:
        return bg
    ordinary = ~bg["geoid"].isin(_special_geoids().values())
    bg.loc[bg.loc[ordinary, "z"].idxmin(), INCOME] = TOP_CODE + 9999
    return bg


def _bg_annotations(bg: pd.DataFrame) -> dict[tuple[str, str], tuple[str, str]]:
    """(geoid, variable) -> (estimate, MOE) strings that replace the drawn values."""
    specials = _special_geoids()
    notes: dict[tuple[str, str], tuple[str, str]] = {}
    for variable in bg.columns:
        table = variable.split("_")[0]
        if table in TINY_ANNOTATIONS and not variable.endswith("_moe"):
            notes[(specials["tiny"], variable)] = TINY_ANNOTATIONS[table]
    land = bg[bg["area_type"] != "water"]
    households = land.set_index("geoid")[TABLES["B25003"][1]]
    ordinary = households.drop(list(specials.values())).sort_values(kind="stable")
    small = [specials["tiny"], specials["small_group_quarters"]]
    small += list(ordinary.index[: N_INSUFFICIENT_MEDIANS - len(small)])
    for variable in (v for v in STATISTICS if v in bg.columns):
        for geoid in small:
            notes[(geoid, variable)] = (JAM["insufficient"], JAM["no_se"])
    if INCOME in bg:
        for geoid in bg.loc[bg[INCOME] > TOP_CODE, "geoid"]:
            notes[(geoid, INCOME)] = (str(TOP_CODE), JAM["top_coded_moe"])
    return notes


def _county_annotations() -> dict[tuple[str, str], tuple[str | None, str]]:
    """Controlled totals (and the same counts published under other names) have no MOE."""
    geoid = STATE_FIPS + COUNTY_FIPS
    controlled = {total for universe, total in TABLES.values() if universe in CONTROLLED_UNIVERSES}
    controlled |= {v for v, terms in SAME_COUNTS.items() if len(terms) == 1 and terms[0] in controlled}
    return {(geoid, v): (None, JAM["controlled"]) for v in sorted(controlled)}


def _water_annotations() -> dict[tuple[str, str], tuple[str, str]]:
    """No statistic (median, Gini index) can be computed for a water-only area."""
    prefix = STATE_FIPS + COUNTY_FIPS
    geoids = [prefix + code + suffix for tracts in WATER_TRACTS.values() for code in tracts
              for suffix in ("", WATER_BLOCK_GROUP)]
    return {(g, v): (JAM["insufficient"], JAM["no_se"]) for g in geoids for v in STATISTICS}


# -- index inputs -------------------------------------------------------------------------------


def _svi_releases(years) -> list[int]:
    """The SVI releases computed from the ACS vintages ``years``."""
    from sdoh_sources.svi import load_svi_catalog

    return sorted(r.release for r in load_svi_catalog().releases if r.acs_vintage in years)


def _index_variables(index: str, year: int) -> list[str]:
    """The API names (``{v}E``, ``{v}M``) an index reads in ACS vintage ``year``, from its module.

    Imported here: the index modules load the publishing stack, which generating the region
    does not otherwise need.
    """
    if index == "svi":
        from ingestion.derive.svi import svi_variables

        return sorted({v for r in _svi_releases([year]) for v in svi_variables(r)})
    from ingestion.derive.adi import adi_variables

    return adi_variables(year)


@cache
def _index_inputs(year: int) -> dict[str, frozenset[str]]:
    """Level -> the variables the indices read in ``year``, bare (``B19113_001``, ``DP03_0009P``)."""
    found: dict[str, set[str]] = {level: set() for level in LEVELS}
    for index, spec in INDEX_INPUTS.items():
        if year in spec["vintages"]:
            names = {name[:-1] for name in _index_variables(index, year)}  # drop the E/M suffix
            for level in spec["levels"]:
                found[level] |= names
    return {level: frozenset(names) for level, names in found.items()}


def _index_percent(variable: str) -> tuple[tuple[str, ...], str] | None:
    """The (numerator cells, denominator cell) of a published percent the indices read."""
    if variable in INDEX_PERCENTS:
        return INDEX_PERCENTS[variable]
    if variable.endswith("P"):  # a data profile percent without a model
        return (f"generic_{variable}",), "B01003_001"
    return None


def _signed_sum(terms: tuple[str, ...], columns: Mapping) -> np.ndarray:
    return sum((-1 if t.startswith("-") else 1) * np.asarray(columns[t.lstrip("-")], dtype=np.int64)
               for t in terms)


def _draw_index_inputs(bg: pd.DataFrame, year: int,
                       rng: np.random.Generator) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Draw the index inputs the catalog does not, per block group: (bg, counts, medians).

    Counts come from INDEX_TABLES with their MOEs, medians from STATISTICS; SAME_COUNTS and
    the published percents are derived later from these and the catalog's cells. An input
    without a model gets a generic share of the population, with a warning.
    """
    needed = set().union(*_index_inputs(year).values())
    if not needed:
        return bg, [], []
    rural = (bg["area_type"] == "rural").to_numpy().astype(float)
    z = bg["z"].to_numpy()
    drawn: dict[str, np.ndarray] = {}
    for universe, groups in INDEX_TABLES:
        total = _signed_sum(universe, ChainMap(drawn, bg))
        drawn.update(_draw_table(total, list(groups), z, rural, rng))
    known = {*bg.columns, *drawn, *SAME_COUNTS, *INDEX_PERCENTS, *STATISTICS}
    for variable in sorted(needed - known):
        logger.warning("demo region: no model for the index input %s; using a generic share",
                       variable)
        name = f"generic_{variable}" if _index_percent(variable) else variable
        drawn[name] = rng.binomial(bg["B01003_001"].to_numpy(np.int64), FALLBACK_SHARE)
    # cells drawn for the catalog without an MOE of their own (table totals it does not read)
    cells = {t.lstrip("-") for terms in SAME_COUNTS.values() for t in terms}
    unmeasured = sorted(c for c in cells if c in bg.columns and f"{c}_moe" not in bg.columns)
    values = {**drawn, **{c: bg[c].to_numpy() for c in unmeasured}}
    counts = [*sorted(drawn), *unmeasured]
    medians = sorted(v for v in needed & set(STATISTICS) if v not in bg.columns)
    columns = {**drawn, **{f"{v}_moe": _moe_counts(values[v], rng) for v in counts},
               **{v: _statistic(STATISTICS[v], bg, rural, year, rng) for v in medians}}
    bg = pd.concat([bg, pd.DataFrame(columns, index=bg.index)], axis=1)
    return _add_median_moes(bg, medians, rng, "block_group"), counts, medians


def _add_same_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the SAME_COUNTS variables: signed sums of cells, MOE by root sum of squares."""
    columns = {}
    for variable, terms in SAME_COUNTS.items():
        cells = [t.lstrip("-") for t in terms]
        signs = np.array([-1 if t.startswith("-") else 1 for t in terms])
        est = frame[cells].to_numpy(np.int64)
        moe = frame[[f"{c}_moe" for c in cells]].to_numpy(np.int64)
        columns[variable] = est @ signs
        columns[f"{variable}_moe"] = _rss(est.T, moe.T, np.zeros(len(cells), dtype=int), 1)[0]
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)


# -- Census API files ---------------------------------------------------------------------------


def _tract_label(code: str) -> str:
    number, suffix = int(code[:4]), code[4:]
    return f"{number}" if suffix == "00" else f"{number}.{suffix}"


def _name(level: str, row: pd.Series) -> str:
    place = f"{COUNTY_NAME}, {STATE_NAME}"
    if level == "county":
        return place
    tract = f"Census Tract {_tract_label(row['tract'])}, {place}"
    return tract if level == "tract" else f"Block Group {row['block_group']}, {tract}"


def _geoid(level: str, row: pd.Series) -> str:
    if level == "county":
        return STATE_FIPS + COUNTY_FIPS
    tract = STATE_FIPS + COUNTY_FIPS + row["tract"]
    return tract if level == "tract" else tract + row["block_group"]


def _geography_values(level: str, row: pd.Series) -> list[str]:
    values = [STATE_FIPS, COUNTY_FIPS]
    if level != "county":
        values.append(row["tract"])
    if level == "block_group":
        values.append(row["block_group"])
    return values


def _text(variable: str, value: float) -> str:
    """An API value as text: counts and dollars as integers, other statistics with decimals."""
    decimals = STATISTICS[variable].decimals if variable in STATISTICS else 0
    return str(int(round(value))) if decimals == 0 else f"{value:.{decimals}f}"


def _detailed_variables(year: int) -> list[str]:
    """The detailed-table variables of a vintage's files: the catalog's, then the indices'."""
    catalog = _catalog_variables(year)
    index = {v for names in _index_inputs(year).values() for v in names if _is_detailed(v)}
    return [*catalog, *sorted(index - set(catalog))]


def _api_rows(frame: pd.DataFrame, level: str, notes: dict, year: int) -> list[list[str | None]]:
    """Build a detailed-table response: header, then one row per area, values as strings.

    Every level has the same header; a variable not published at a level is null there.
    """
    variables = _detailed_variables(year)
    published = _published(level, year) | _index_inputs(year)[level]
    header = ["NAME", *[f"{v}{s}" for v in variables for s in "EM"], *GEOGRAPHY_COLUMNS[level]]
    rows: list[list[str | None]] = [header]
    for _, row in frame.iterrows():
        geoid = _geoid(level, row)
        values: list[str | None] = [_name(level, row)]
        for v in variables:
            if v not in published:
                values += [None, None]
                continue
            est, moe = notes.get((geoid, v), (None, None))
            values += [est or _text(v, row[v]), moe or _text(v, row[f"{v}_moe"])]
        rows.append(values + _geography_values(level, row))
    return rows


def _percent_text(row: pd.Series, numerators: tuple[str, ...], denominator: str) -> list[str]:
    """A published percent and its MOE (Census proportion formula), one decimal, as the API."""
    num = float(sum(row[c] for c in numerators))
    num_moe = math.sqrt(sum(float(row[f"{c}_moe"]) ** 2 for c in numerators))
    den, den_moe = float(row[denominator]), float(row[f"{denominator}_moe"])
    if den <= 0:
        return [JAM["insufficient"], JAM["no_se"]]
    p = num / den
    under = num_moe**2 - p**2 * den_moe**2
    under = under if under >= 0 else num_moe**2 + p**2 * den_moe**2
    return [f"{100 * p:.{PERCENT_DECIMALS}f}", f"{100 * math.sqrt(under) / den:.{PERCENT_DECIMALS}f}"]


def _narrow_rows(frame: pd.DataFrame, level: str, year: int, dataset: str,
                 notes: dict) -> list[list[str | None]]:
    """A subject or data profile response: the year's published percents (E/M or PE/PM).

    The catalog's percents come first, then the variables the indices read from the dataset
    at the level: published percents, or counts with their MOEs.
    """
    models = {v: _published_model(m) for m, v in _published_measures(year, level)
              if acs_dataset(v) == dataset}
    index = sorted(v for v in _index_inputs(year)[level]
                   if acs_dataset(v) == dataset and v not in models)
    models |= {v: _index_percent(v) for v in index}
    header = ["NAME", *[f"{v}{s}" for v in models for s in "EM"], *GEOGRAPHY_COLUMNS[level]]
    rows: list[list[str | None]] = [header]
    for _, row in frame.iterrows():
        geoid = _geoid(level, row)
        values: list[str | None] = [_name(level, row)]
        for v, model in models.items():
            if model is not None:
                values += _percent_text(row, *model)
                continue
            est, moe = notes.get((geoid, v), (None, None))
            values += [est or _text(v, row[v]), moe or _text(v, row[f"{v}_moe"])]
        rows.append(values + _geography_values(level, row))
    return rows if models else []


def _write_api_json(path: Path, rows: list[list[str | None]]) -> None:
    lines = ",\n".join(json.dumps(r, separators=(",", ":")) for r in rows)
    _write_text(path, f"[{lines}]")


def _write_acs(out_dir: Path, year: int, levels: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Write one vintage's API files; returns {file key: relative path}.

    Keys are the levels for the detailed tables and ``subject/{level}`` or
    ``profile/{level}`` for the tract and county files of the narrower datasets.
    """
    notes = {**_bg_annotations(levels["block_group"]), **_county_annotations(),
             **_water_annotations()}
    files = {}
    for level in LEVELS:
        relative = f"census_api/{year}/{DETAILED}/{level}.json"
        _write_api_json(out_dir / relative, _api_rows(levels[level], level, notes, year))
        files[level] = relative
    for dataset, folder in NARROW_DATASETS.items():
        for level in NARROW_LEVELS:
            rows = _narrow_rows(levels[level], level, year, dataset, notes)
            if rows:
                relative = f"census_api/{year}/{dataset}/{level}.json"
                _write_api_json(out_dir / relative, rows)
                files[f"{folder}/{level}"] = relative
    return files


def _group_quarters_source(boundary_year: int) -> GroupQuartersSource | None:
    """The decennial table the computed ADI reads group quarters from, or None."""
    from sdoh_sources.adi_computed import load_adi_method

    return load_adi_method().suppression.group_quarters_source(boundary_year)


def _write_decennial(out_dir: Path, bgs: gpd.GeoDataFrame, latents: pd.DataFrame,
                     boundary_year: int, seed: int) -> dict | None:
    """Write the census group quarters population of every block group, if the ADI reads one.

    Each person of a block group is in group quarters with its latent share: the same people
    the ACS group quarters (B26001) are drawn from, counted on census day.
    """
    source = _group_quarters_source(boundary_year)
    if source is None:
        return None
    rng = _rng(seed, f"decennial-{source.year}")
    quarters = rng.binomial(latents["pop"].to_numpy(np.int64), np.clip(latents["gq"], 0.0, 1.0))
    frame = _with_water(bgs.assign(**{source.variable: quarters}), boundary_year)
    counts = frame[source.variable].fillna(0).astype(np.int64)  # nobody lives in the water
    level = DECENNIAL_LEVEL
    rows: list[list[str | None]] = [["NAME", source.variable, *GEOGRAPHY_COLUMNS[level]]]
    for (_, row), count in zip(frame.iterrows(), counts, strict=True):
        rows.append([_name(level, row), str(count), *_geography_values(level, row)])
    relative = f"census_api/{source.year}/{source.dataset}/{level}.json"
    _write_api_json(out_dir / relative, rows)
    return {"year": source.year, "dataset": source.dataset, "boundary_vintage": boundary_year,
            "variables": [source.variable], "files": {level: relative},
            "read_by": "ingestion.derive.adi (group quarters share of the suppression rule)"}


# -- TIGER files --------------------------------------------------------------------------------


def _tiger_frame(bgs: gpd.GeoDataFrame, boundary_year: int) -> gpd.GeoDataFrame:
    """Block groups in the TIGER/Line schema of the vintage (``10`` suffix for 2010)."""
    sfx = "10" if boundary_year == 2010 else ""
    geod = Geod(ellps="GRS80")
    area = np.array([abs(geod.geometry_area_perimeter(p)[0]) for p in bgs.geometry])
    coastal = np.array([p.bounds[2] == COLUMN_EDGES[-1] for p in bgs.geometry])
    water_only = (bgs["area_type"] == "water").to_numpy()
    water = np.round(np.where(water_only, area, np.where(coastal, area * 0.02, 0.0))).astype(np.int64)
    point = bgs.geometry.representative_point()
    columns = {
        "STATEFP": STATE_FIPS, "COUNTYFP": COUNTY_FIPS, "TRACTCE": bgs["tract"],
        "BLKGRPCE": bgs["block_group"], "GEOID": bgs["geoid"],
        "NAMELSAD": "Block Group " + bgs["block_group"], "MTFCC": "G5030", "FUNCSTAT": "S",
        "ALAND": np.round(area).astype(np.int64) - water, "AWATER": water,
        "INTPTLAT": [f"{y:+011.7f}" for y in point.y],
        "INTPTLON": [f"{x:+012.7f}" for x in point.x],
    }
    frame = pd.DataFrame({f"{k}{sfx}": v for k, v in columns.items()})
    return gpd.GeoDataFrame(frame, geometry=bgs.geometry.to_numpy(), crs=CRS)


def _fix_dbf_date(path: Path, year: int) -> None:
    """Pin the dBASE header's last-update date (GDAL writes today's) for byte-identical files."""
    data = bytearray(path.read_bytes())
    data[1:4] = bytes([year - 1900, 1, 1])
    path.write_bytes(bytes(data))


def _write_tiger(out_dir: Path, bgs: gpd.GeoDataFrame, boundary_year: int) -> dict[str, str]:
    layer = (f"tl_2010_{STATE_FIPS}_bg10" if boundary_year == 2010
             else f"tl_{boundary_year}_{STATE_FIPS}_bg")
    relative = f"tiger/{layer}.zip"
    target = out_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        shp = Path(tmp) / f"{layer}.shp"
        _tiger_frame(bgs, boundary_year).to_file(
            shp, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8",
            layer_options={"RESIZE": "YES"})  # TIGER-like field widths
        _fix_dbf_date(shp.with_suffix(".dbf"), boundary_year)
        cpg = shp.with_suffix(".cpg")
        if not cpg.exists():
            cpg.write_text("UTF-8")
        with zipfile.ZipFile(target, "w") as archive:
            for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
                stamp = (boundary_year + 1, 1, 1, 0, 0, 0)
                info = zipfile.ZipInfo(f"{layer}{ext}", date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, (Path(tmp) / f"{layer}{ext}").read_bytes())
    return {"path": relative, "layer": layer, "level": "block_group", "crs": CRS,
            "geoid_column": "GEOID10" if boundary_year == 2010 else "GEOID"}


# -- ADI files ----------------------------------------------------------------------------------


def _measure_values(bg: pd.DataFrame, measure: Measure) -> np.ndarray:
    def total(terms: tuple[str, ...]) -> np.ndarray:
        sign = [(-1.0 if t.startswith("-") else 1.0, t.lstrip("-")) for t in terms]
        return sum(s * bg[v].to_numpy(dtype=float) for s, v in sign)

    numerator = total(measure.numerator)
    if not measure.denominator:
        return numerator
    denominator = total(measure.denominator)
    return np.where(denominator > 0, 100 * numerator / np.maximum(denominator, 1), np.nan)


def _deprivation_index(bg: pd.DataFrame) -> np.ndarray:
    """Combine the ADI_COMPONENTS measures into one score, standardised across bgs."""
    parts = []
    for m in (load_catalog().acs.measure(name) for name in ADI_COMPONENTS):
        sign = {"higher_is_worse": 1.0, "higher_is_better": -1.0}[m.direction]
        values = _measure_values(bg, m)
        if m.measure_type == "median":
            values = np.log(values)
        mean, sd = np.nanmean(values), np.nanstd(values)
        parts.append(sign * np.nan_to_num((values - mean) / (sd or 1.0)))
    composite = np.mean(parts, axis=0)
    return (composite - composite.mean()) / composite.std()


def _adi_frame(bg: pd.DataFrame) -> pd.DataFrame:
    """GISJOIN, FIPS and ranks (national percentile, state decile) or suppression codes."""
    water = (bg["area_type"] == "water").to_numpy()
    index = np.full(len(bg), np.nan)
    index[~water] = _deprivation_index(bg[~water])
    national = np.clip(np.ceil(100 * _normal_cdf(ADI_NATIONAL_SHIFT + 0.85 * index)), 1, 100)
    codes = {geoid: ADI_SUPPRESSION[role] for role, geoid in _special_geoids().items()}
    codes |= {geoid: WATER_ADI_CODE for geoid in bg.loc[water, "geoid"]}
    suppressed = bg["geoid"].isin(codes).to_numpy()
    ranked = pd.Series(index[~suppressed]).rank(method="first").to_numpy()
    deciles = np.zeros(len(bg))
    deciles[~suppressed] = np.ceil(10 * ranked / len(ranked))
    nat = [codes[g] if g in codes else str(int(v)) for g, v in zip(bg["geoid"], national, strict=True)]
    state = [codes[g] if g in codes else str(int(v)) for g, v in zip(bg["geoid"], deciles, strict=True)]
    gisjoin = "G" + STATE_FIPS + "0" + COUNTY_FIPS + "0" + bg["tract"] + bg["block_group"]
    return pd.DataFrame({"GISJOIN": gisjoin, "FIPS": bg["geoid"], "ADI_NATRANK": nat,
                         "ADI_STATERNK": state})


def _write_adi(out_dir: Path, acs: dict[int, dict[str, pd.DataFrame]]) -> list[dict]:
    atlas = publisher_source("adi")
    entries = []
    for spec in ADI_FILES:
        relative = f"adi/{spec['file']}"
        _write_csv(out_dir / relative, _adi_frame(acs[spec["acs_vintage"]]["block_group"]))
        entries.append({"path": relative, "vintage": spec["vintage"],
                        "boundary_vintage": atlas.release(spec["vintage"]).boundary_vintage,
                        "available_from": spec["available_from"], "version": spec["version"],
                        "derived_from_demo_acs_vintage": spec["acs_vintage"]})
    return entries


# -- publisher files ----------------------------------------------------------------------------

# Publisher files describe the areas of their ACS inputs' boundary vintage: the demo vintage
# on each boundary vintage whose ACS shares their values follow.
PUBLISHER_ACS = {"tract": {2010: 2019, 2020: 2021}, "county": {2010: 2019, 2020: 2020}}
# Area shares the publisher files follow: share -> (numerator cells, denominator cell).
AREA_SHARES = {
    "poverty": (("C17002_002", "C17002_003"), "C17002_001"),
    "child_poverty": (("hidden_children_in_poverty",), "hidden_children_poverty_universe"),
    "no_vehicle": (("B25044_003", "B25044_010"), "B25044_001"),
    "unemployed": (("B23025_005",), "B23025_003"),
    "uninsured": (_vars("B27010", (17, 33, 50, 66)), "B27010_001"),
    "minority": (("B03002_001", "-B03002_003"), "B03002_001"),
    "limited_english": (_vars("C16002", (4, 7, 10, 13)), "C16002_001"),
}


def _area_profile(frame: pd.DataFrame, level: str, bgs: gpd.GeoDataFrame) -> pd.DataFrame:
    """GEOID, area type, urban core, population and ACS shares of each area of a level."""
    population = frame["B01003_001"].to_numpy(dtype=float)
    out = {"population": population}
    for share, (numerator, denominator) in AREA_SHARES.items():
        total = frame[denominator].to_numpy(dtype=float)
        out[share] = np.where(total > 0, _signed_sum(numerator, frame) / np.maximum(total, 1), np.nan)
    if level == "county":
        return pd.DataFrame({"geoid": STATE_FIPS + COUNTY_FIPS, "area_type": "mixed", "core": False,
                             **out})
    parents = bgs.drop_duplicates("tract").set_index("tract")
    kinds = parents["area_type"].reindex(frame["tract"]).fillna("water").to_numpy()
    core = [_tract_column(p) == len(COLUMN_EDGES) - 2 if p else False
            for p in parents["parent_tract_2010"].reindex(frame["tract"]).fillna("")]
    return pd.DataFrame({"geoid": STATE_FIPS + COUNTY_FIPS + frame["tract"].to_numpy(),
                         "tract": frame["tract"].to_numpy(), "area_type": kinds, "core": core, **out})


def _write_publisher(out_dir: Path, acs: dict[int, dict[str, pd.DataFrame]],
                     bgs: dict[int, gpd.GeoDataFrame], seed: int) -> list[dict]:
    profiles = {level: {boundary: _area_profile(acs[year][level], level, bgs[boundary])
                        for boundary, year in years.items()}
                for level, years in PUBLISHER_ACS.items()}
    centre = ((COLUMN_EDGES[0] + COLUMN_EDGES[-1]) / 2, (ROW_EDGES[0] + ROW_EDGES[-1]) / 2)
    return write_publisher_files(out_dir, tracts=profiles["tract"], counties=profiles["county"],
                                 centroid=centre, seed=seed)


# -- patients -----------------------------------------------------------------------------------


def _nh_white_share(bg2019: pd.DataFrame) -> np.ndarray:
    total, white = TABLES["B03002"][1], "B03002_003"
    return (bg2019[white] / bg2019[total].clip(lower=1)).to_numpy()


def _draw_demographics(rng: np.random.Generator, bg2019: pd.DataFrame,
                       home: np.ndarray) -> pd.DataFrame:
    """Sex, age, race/ethnicity and language of patients living in block groups ``home``."""
    n = len(home)
    area = bg2019["area_type"].to_numpy()[home]
    white = _nh_white_share(bg2019)[home]
    mix = np.array([NON_WHITE_MIX[a] for a in area]) * (1 - white)[:, None]
    mix[:, RACES.index("NH White")] = white
    race = np.array(RACES)[_pick(rng, mix)]
    language_probs = np.array([LANGUAGE_BY_RACE.get(r, LANGUAGE_DEFAULT) for r in race])
    age_years = np.clip(rng.normal(46, 22, n), 0, 97)
    age_days = (age_years * 365.25).astype(int) + rng.integers(0, 365, n)
    return pd.DataFrame({
        "birth": [STUDY_START - dt.timedelta(days=int(d)) for d in age_days],
        "age": age_days / 365.25,
        "sex": np.where(rng.random(n) < 0.55, "F", "M"),
        "race_ethnicity": race,
        "preferred_language": np.array(LANGUAGES)[_pick(rng, language_probs)],
        "home_area": area,
        "home": home,
        "z": bg2019["z"].to_numpy()[home],
    })


def _draw_payer(rng: np.random.Generator, people: pd.DataFrame) -> np.ndarray:
    n = len(people)
    z, age = people["z"].to_numpy(), people["age"].to_numpy()
    non_english = (people["preferred_language"] != "English").to_numpy()
    medicaid = _sigmoid(-1.6 + 0.75 * z + 0.5 * (age < 18) + 0.3 * non_english)
    uninsured = _sigmoid(-2.9 + 0.45 * z + 0.7 * non_english) * np.where(age < 18, 0.4, 1.0)
    u = rng.random(n)
    under_65 = np.where(u < medicaid, "Medicaid",
                        np.where(u < medicaid + (1 - medicaid) * uninsured, "Uninsured",
                                 "Commercial"))
    names, probs = list(PAYERS_65_PLUS), np.array(list(PAYERS_65_PLUS.values()))
    older = np.array(names)[_pick(rng, np.tile(probs, (n, 1)))]
    return np.where(age >= 65, older, under_65)


def _patients(seed: int, bg2019: pd.DataFrame, n: int) -> pd.DataFrame:
    rng = _rng(seed, "patients")
    weights = bg2019["B01003_001"].to_numpy(dtype=float)
    home = rng.choice(len(bg2019), size=n, p=weights / weights.sum())
    people = _draw_demographics(rng, bg2019, home)
    people["payer"] = _draw_payer(rng, people)
    people.insert(0, "patient_id", [f"P{i:06d}" for i in range(1, n + 1)])
    return people


def _encounter_times(seed: int, patients: pd.DataFrame) -> pd.DataFrame:
    """~5 encounters per patient, minute resolution, some exactly at release instants."""
    rng = _rng(seed, "encounters")
    counts = 1 + rng.poisson(4, len(patients))
    ids = np.repeat(patients["patient_id"].to_numpy(), counts)
    minutes = (STUDY_END - STUDY_START).days * 24 * 60
    start = pd.Timestamp(STUDY_START.isoformat(), tz="UTC")
    stamps = start + pd.to_timedelta(rng.integers(0, minutes, len(ids)), unit="min")
    frame = pd.DataFrame({"patient_id": ids, "event_timestamp": stamps})
    first_rows = np.concatenate([[0], np.cumsum(counts)[:-1]])
    size = min(N_AT_RELEASE_INSTANT * len(DEMO_VINTAGES), len(patients))
    chosen = rng.choice(len(patients), size=size, replace=False)
    for k, vintage in enumerate(DEMO_VINTAGES):
        instant = pd.Timestamp(load_catalog().release("acs5", vintage).release_ts)
        rows = first_rows[chosen[k::len(DEMO_VINTAGES)]]
        frame.loc[rows, "event_timestamp"] = instant
    types = list(ENCOUNTER_TYPES)
    probs = np.tile(list(ENCOUNTER_TYPES.values()), (len(frame), 1))
    frame["encounter_type"] = np.array(types)[_pick(rng, probs)]
    return frame.sort_values(["patient_id", "event_timestamp"], kind="stable", ignore_index=True)


def _move_dates(rng: np.random.Generator, n_moves: int,
                encounter_days: list[dt.date]) -> tuple[list[dt.date], bool]:
    """Sorted move days in the study period, one possibly on an encounter day."""
    if n_moves == 0:
        return [], False
    span = (STUDY_END - STUDY_START).days
    while True:
        days = sorted(int(d) for d in rng.integers(1, span - 1, n_moves))
        if all(b - a >= MIN_DAYS_BETWEEN_MOVES for a, b in zip(days, days[1:], strict=False)):
            break
    dates = [STUDY_START + dt.timedelta(days=d) for d in days]
    if rng.random() >= P_MOVE_ON_ENCOUNTER_DAY:
        return dates, False
    low = dates[-2] + dt.timedelta(days=MIN_DAYS_BETWEEN_MOVES) if n_moves > 1 else STUDY_START
    options = sorted({d for d in encounter_days if low < d})
    if not options:
        return dates, False
    dates[-1] = options[int(rng.integers(len(options)))]
    return dates, True


def _history_periods(seed: int, patients: pd.DataFrame, encounters: pd.DataFrame,
                     n_bgs: int, weights: np.ndarray) -> pd.DataFrame:
    """Address periods (patient, valid_from, valid_to, residence bg or -1 when outside)."""
    rng = _rng(seed, "moves")
    days_by_patient = {pid: [t.date() for t in stamps] for pid, stamps
                       in encounters.groupby("patient_id")["event_timestamp"]}
    n_moves = _pick(rng, np.tile(list(MOVES.values()), (len(patients), 1)))
    rows = []
    for i, person in enumerate(patients.itertuples(index=False)):
        back = int(rng.integers(0, (STUDY_START - HISTORY_START).days + 1))
        start = max(person.birth, STUDY_START - dt.timedelta(days=back))
        moves, on_encounter = _move_dates(rng, int(n_moves[i]), days_by_patient[person.patient_id])
        starts = [start, *moves]
        homes = [person.home]
        for _ in moves:
            outside = rng.random() < GAPS["outside_region_on_move"]
            homes.append(-1 if outside else int(rng.choice(n_bgs, p=weights)))
        for k, (begin, home) in enumerate(zip(starts, homes, strict=True)):
            rows.append({"patient_id": person.patient_id, "valid_from": begin,
                         "valid_to": starts[k + 1] if k + 1 < len(starts) else None,
                         "home": home, "move_on_encounter_day": on_encounter and k == len(moves)})
    return pd.DataFrame(rows)


def _categories(rng: np.random.Generator, periods: pd.DataFrame, patients: pd.DataFrame,
                area: np.ndarray) -> np.ndarray:
    """Choose how each address period is recorded: geocoded, po_box, zip_only, ..."""
    person = patients.set_index("patient_id").loc[periods["patient_id"]]
    row_area = np.where(periods["home"] >= 0, area[periods["home"].clip(lower=0)], "urban")
    po = np.array([GAPS["po_box"][a] for a in row_area]) * person["payer"].map(
        GAPS["po_box_payer_factor"]).fillna(1.0).to_numpy()
    failed = np.array([GAPS["geocode_failed"][a] for a in row_area]) * person[
        "preferred_language"].map(GAPS["geocode_failed_language_factor"]).fillna(1.0).to_numpy()
    u = rng.random(len(periods))
    category = np.select(
        [u < GAPS["zip_only"], u < GAPS["zip_only"] + po, u < GAPS["zip_only"] + po + failed],
        ["zip_only", "po_box", "geocode_failed"], "geocoded")
    return np.where(periods["home"] < 0, "outside_region", category)


def _inside_points(rng: np.random.Generator, polygons: list[Polygon],
                   checks: list[gpd.GeoDataFrame]) -> np.ndarray:
    """Draw one point per polygon, uniform inside it and rounded to 1e-6 degrees.

    Each rounded point is strictly inside exactly one block group of every frame in ``checks``,
    so it links the same way whatever the point-in-polygon predicate.
    """
    points = np.full((len(polygons), 2), np.nan)
    todo = np.arange(len(polygons))
    while len(todo):
        bounds = np.array([polygons[i].bounds for i in todo])
        x = np.round(rng.uniform(bounds[:, 0], bounds[:, 2]), 6)
        y = np.round(rng.uniform(bounds[:, 1], bounds[:, 3]), 6)
        ok = np.array([shapely.contains_xy(polygons[i], a, b)
                       for i, a, b in zip(todo, x, y, strict=True)])
        for frame in checks:
            hits = sum(shapely.contains_xy(p, x, y).astype(int) for p in frame.geometry)
            ok &= hits == 1
        points[todo[ok]] = np.column_stack([x[ok], y[ok]])
        todo = todo[~ok]
    return points


def _street(rng: np.random.Generator) -> str:
    return (f"{int(rng.integers(1, 9999))} {STREET_NAMES[int(rng.integers(len(STREET_NAMES)))]} "
            f"{STREET_SUFFIXES[int(rng.integers(len(STREET_SUFFIXES)))]}")


def _post_offices() -> dict[int, tuple[float, float]]:
    """Place a post office per grid column, just off the centre of its middle tract."""
    offices = {}
    for t in TRACTS_2010:
        if t.row == 1:
            x = (COLUMN_EDGES[t.column] + COLUMN_EDGES[t.column + 1]) / 2 + 0.007113
            y = (ROW_EDGES[1] + ROW_EDGES[2]) / 2 + 0.004271
            offices[t.column] = (round(x, 6), round(y, 6))
    return offices


def _address_text(rng: np.random.Generator, category: str, column: int, area: str,
                  office: tuple[float, float]) -> dict:
    """Street, city, state, ZIP and (sometimes) coordinates of one non-geocoded row."""
    city, zip_code = COLUMN_PLACES[column]
    row = {"street": _street(rng), "city": city, "state": STATE_POSTAL, "zip": zip_code,
           "latitude": "", "longitude": ""}
    if category == "zip_only":
        row["street"] = ""
    elif category == "po_box":
        template = PO_BOX_FORMATS[int(rng.integers(len(PO_BOX_FORMATS)))]
        row["street"] = template.format(n=int(rng.integers(1, 2000)))
        if rng.random() < GAPS["po_box_with_post_office_coordinates"]:
            row["longitude"], row["latitude"] = f"{office[0]:.6f}", f"{office[1]:.6f}"
    elif category == "geocode_failed" and area == "rural":
        if rng.random() < GAPS["rural_route_among_rural_failed"]:
            row["street"] = f"Rural Route {int(rng.integers(1, 6))} Box {int(rng.integers(1, 300))}"
    return row


def _tract_column(tract_2010: str) -> int:
    return next(t.column for t in TRACTS_2010 if t.code == tract_2010)


def _addresses(seed: int, periods: pd.DataFrame, patients: pd.DataFrame,
               bgs: dict[int, gpd.GeoDataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the address history file and its answer key."""
    rng = _rng(seed, "addresses")
    b10 = bgs[2010]
    area = b10["area_type"].to_numpy()
    category = _categories(rng, periods, patients, area)
    inside = periods["home"].to_numpy() >= 0
    points = np.full((len(periods), 2), np.nan)
    polygons = [b10.geometry.iloc[h] for h in periods.loc[inside, "home"]]
    points[inside] = _inside_points(rng, polygons, [bgs[2010], bgs[2020]])
    n_out = int((~inside).sum())
    points[~inside] = np.column_stack([
        np.round(rng.uniform(OUTSIDE_BOX[0], OUTSIDE_BOX[2], n_out), 6),
        np.round(rng.uniform(OUTSIDE_BOX[1], OUTSIDE_BOX[3], n_out), 6)])
    offices = _post_offices()
    rows = []
    for k, period in enumerate(periods.itertuples(index=False)):
        rows.append(_address_row(rng, period, category[k], points[k], b10, offices))
    history = pd.DataFrame(rows)
    truth = _truth(periods, category, points, bgs)
    return history, truth


def _address_row(rng: np.random.Generator, period, category: str, point: np.ndarray,
                 b10: gpd.GeoDataFrame, offices: dict) -> dict:
    base = {"patient_id": period.patient_id, "valid_from": period.valid_from.isoformat(),
            "valid_to": period.valid_to.isoformat() if period.valid_to else ""}
    coords = {"latitude": f"{point[1]:.6f}", "longitude": f"{point[0]:.6f}"}
    if category == "outside_region":
        city, state, zip_code = OUTSIDE_PLACE
        return {**base, "street": _street(rng), "city": city, "state": state, "zip": zip_code,
                **coords}
    column = _tract_column(b10["tract"].iloc[period.home])
    area = b10["area_type"].iloc[period.home]
    if category == "geocoded":
        city, zip_code = COLUMN_PLACES[column]
        return {**base, "street": _street(rng), "city": city, "state": STATE_POSTAL,
                "zip": zip_code, **coords}
    return {**base, **_address_text(rng, category, column, area, offices[column])}


def _locate(points: np.ndarray, frame: gpd.GeoDataFrame) -> np.ndarray:
    found = np.full(len(points), "", dtype=object)
    for geoid, polygon in zip(frame["geoid"], frame.geometry, strict=True):
        found[shapely.contains_xy(polygon, points[:, 0], points[:, 1])] = geoid
    return found


def _truth(periods: pd.DataFrame, category: np.ndarray, points: np.ndarray,
           bgs: dict[int, gpd.GeoDataFrame]) -> pd.DataFrame:
    """Record what a correct linker returns per address row, and where the person lived."""
    linkable = category == "geocoded"
    truth = pd.DataFrame({
        "patient_id": periods["patient_id"],
        "valid_from": [d.isoformat() for d in periods["valid_from"]],
        "category": category,
        "expected_missing": [CATEGORY_REASON[c] for c in category],
        "move_on_encounter_day": periods["move_on_encounter_day"],
    })
    for year, frame in bgs.items():
        residence = _locate(points, frame)
        truth[f"expected_block_group_{year}"] = np.where(linkable, residence, "")
        truth[f"residence_block_group_{year}"] = residence
    return truth


def _outcomes(seed: int, encounters: pd.DataFrame, periods: pd.DataFrame,
              patients: pd.DataFrame, z: np.ndarray) -> np.ndarray:
    """30-day ED revisit, likelier from deprived block groups, ED visits and public payers."""
    rng = _rng(seed, "outcomes")
    stays = periods.assign(start=pd.to_datetime(periods["valid_from"]).dt.tz_localize("UTC"))
    stays["z"] = np.where(stays["home"] >= 0, z[stays["home"].clip(lower=0)], OUTSIDE_DEPRIVATION)
    events = encounters.reset_index().sort_values("event_timestamp", kind="stable")
    joined = pd.merge_asof(events, stays.sort_values("start")[["patient_id", "start", "z"]],
                           left_on="event_timestamp", right_on="start", by="patient_id")
    joined = joined.sort_values("index").merge(
        patients[["patient_id", "payer", "age"]], on="patient_id", how="left")
    logit = (OUTCOME["intercept"] + OUTCOME["deprivation"] * joined["z"].to_numpy()
             + OUTCOME["ED"] * (joined["encounter_type"] == "ED")
             + OUTCOME["inpatient"] * (joined["encounter_type"] == "inpatient")
             + OUTCOME["public_or_uninsured"] * joined["payer"].isin(["Medicaid", "Uninsured"])
             + OUTCOME["age_75_plus"] * (joined["age"] >= 75))
    return (rng.random(len(joined)) < _sigmoid(logit.to_numpy(dtype=float))).astype(int)


def _write_patients(out_dir: Path, seed: int, n_patients: int, bg2019: pd.DataFrame,
                    bgs: dict[int, gpd.GeoDataFrame]) -> tuple[dict, dict]:
    """Write the patient CSVs and their FHIR export; return both manifest entries."""
    patients = _patients(seed, bg2019, n_patients)
    encounters = _encounter_times(seed, patients)
    weights = bg2019["B01003_001"].to_numpy(dtype=float)
    periods = _history_periods(seed, patients, encounters, len(bg2019), weights / weights.sum())
    history, truth = _addresses(seed, periods, patients, bgs)
    encounters["outcome"] = _outcomes(seed, encounters, periods, patients,
                                      bg2019["z"].to_numpy())
    out = patients.assign(birth_date=[d.isoformat() for d in patients["birth"]])
    columns = ["patient_id", "birth_date", "sex", "race_ethnicity", "preferred_language",
               "payer", "home_area"]
    paths = {"patients": "patients/patients.csv", "address_history":
             "patients/address_history.csv", "encounters": "patients/encounters.csv",
             "address_truth": "truth/address_truth.csv"}
    _write_csv(out_dir / paths["patients"], out[columns])
    _write_csv(out_dir / paths["address_history"], history)
    stamps = encounters["event_timestamp"]
    encounters["event_timestamp"] = stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    _write_csv(out_dir / paths["encounters"], encounters)
    _write_csv(out_dir / paths["address_truth"], truth)
    fhir = write_fhir_export(out_dir, seed=seed, patients=patients,
                             encounters=encounters.assign(event_timestamp=stamps), history=history)
    return _patient_manifest(paths, patients, history, truth, encounters), fhir


def _patient_manifest(paths: dict, patients: pd.DataFrame, history: pd.DataFrame,
                      truth: pd.DataFrame, encounters: pd.DataFrame) -> dict:
    categories = truth["category"].value_counts().sort_index()
    first_release = load_catalog().release("acs5", DEMO_VINTAGES[0]).release_ts
    stamps = pd.to_datetime(encounters["event_timestamp"], utc=True)
    instants = [pd.Timestamp(load_catalog().release("acs5", v).release_ts) for v in DEMO_VINTAGES]
    return {
        "patients": {"path": paths["patients"], "rows": len(patients)},
        "address_history": {
            "path": paths["address_history"], "rows": len(history),
            "patients_who_moved": int((history.groupby("patient_id").size() > 1).sum()),
            "categories": {k: int(v) for k, v in categories.items()},
            "po_box_rows_with_coordinates": int(((truth["category"] == "po_box")
                                                 & (history["latitude"] != "")).sum()),
            "moves_on_an_encounter_day": int(truth["move_on_encounter_day"].sum()),
            "linkable_share": round(float((truth["category"] == "geocoded").mean()), 4),
        },
        "encounters": {
            "path": paths["encounters"], "rows": len(encounters),
            "before_first_release": int((stamps < first_release).sum()),
            "at_release_instants": {str(t.date()): int((stamps == t).sum()) for t in instants},
            "outcome": "30-day ED revisit (synthetic)",
            "outcome_rate": round(float(encounters["outcome"].mean()), 4),
        },
        "address_truth": {"path": paths["address_truth"], "rows": len(truth),
                          "note": "answer key for linker tests; not an input"},
    }


# -- the whole region ---------------------------------------------------------------------------


def _check_arguments(seed: int, n_patients: int) -> None:
    for name, value in (("seed", seed), ("n_patients", n_patients)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if n_patients < 1:
        raise ValueError(f"n_patients must be >= 1, got {n_patients}")


def _geography_manifest(bgs: dict[int, gpd.GeoDataFrame]) -> dict:
    """Describe the block groups of each boundary vintage (water-only ones included)."""
    prefix = STATE_FIPS + COUNTY_FIPS
    water = {str(y): [prefix + t for t in sorted(tracts)] for y, tracts in WATER_TRACTS.items()}
    split = {prefix + old: [prefix + new for new, _ in parts] for old, parts in SPLITS_2020.items()}
    return {
        "block_groups": {str(y): len(f) for y, f in bgs.items()},
        "tracts": {str(y): int(f["tract"].nunique()) for y, f in bgs.items()},
        "split_tracts": split,
        "moved_boundaries": [{
            "tracts": [prefix + MOVED_EDGE_2020["north"], prefix + MOVED_EDGE_2020["south"]],
            "description": (f"their shared edge moves from latitude {ROW_EDGES[1]} to "
                            f"{MOVED_EDGE_2020['latitude']} in 2020; points between change "
                            "from the southern to the northern tract"),
        }],
        "block_group_changes": {prefix + t: n for t, n in BLOCK_GROUPS_2020.items()},
        "water_tracts": water,
        "special_block_groups": _special_geoids(),
        "adi_suppression": {**{g: ADI_SUPPRESSION[r] for r, g in _special_geoids().items()},
                            **{t + WATER_BLOCK_GROUP: WATER_ADI_CODE for ts in water.values()
                               for t in ts}},
    }


def _land(levels: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The block groups where people live (patients are drawn from them)."""
    bg = levels["block_group"]
    return bg[bg["area_type"] != "water"].reset_index(drop=True)


def _index_manifest() -> dict:
    """Which index inputs are served: vintages, levels and where the variable list comes from."""
    source = {"svi": "ingestion.derive.svi.svi_variables",
              "adi_computed": "ingestion.derive.adi.adi_variables"}
    out = {index: {"vintages": list(spec["vintages"]), "levels": list(spec["levels"]),
                   "variables": source[index]} for index, spec in INDEX_INPUTS.items()}
    out["svi"]["releases"] = _svi_releases(INDEX_INPUTS["svi"]["vintages"])
    return out


def generate_demo_region(out_dir: Path, *, seed: int = 20221208, n_patients: int = 2000) -> dict:
    """Write the synthetic demo region (ACS API JSON, TIGER, ADI, patients) and its manifest.

    The county "Synthetic County, Demo State" (state FIPS ``99``, county ``001``) lies in the
    Atlantic Ocean; ~40 block groups in 2010 and 2020 boundaries (one tract split, one edge
    moved, an offshore water-only tract), ACS 5-year 2019/2020/2021 responses consistent
    across levels, with the inputs of the CDC SVI 2020 (tract, county) and of the ADI computed
    from ACS block groups (2020, 2021) and the 2020 Census group quarters it needs, two ADI
    files, and patients with address histories and encounters whose coverage gaps differ by
    subgroup. The same seed gives byte-identical files.

    Parameters
    ----------
    out_dir : Path
        Folder to write into (created if needed); existing files of the same names are
        replaced.
    seed : int, default 20221208
        Seed of every random draw (non-negative).
    n_patients : int, default 2000
        Number of synthetic patients.

    Returns
    -------
    dict
        The manifest, also written to ``out_dir/manifest.json``: ``synthetic``, ``seed``,
        ``state_fips``, ``county_fips``, ``vintages`` (year, datasets, boundary_vintage,
        files by level, ``subject/{level}`` and ``profile/{level}``), ``tiger``,
        ``adi_files``, ``decennial`` (the 2020 Census group quarters file), ``index_inputs``
        (which SVI and computed-ADI inputs are served, where), ``patients``, ``fhir`` (the
        FHIR export: `ingestion.demo.fhir_export.write_fhir_export`), ``geography``
        (split tracts, moved boundaries, water tracts, special block groups) and ``notes``.

    Raises
    ------
    TypeError
        If ``seed`` or ``n_patients`` is not an int.
    ValueError
        If ``seed`` is negative or ``n_patients`` is below 1.

    Examples
    --------
    >>> manifest = generate_demo_region(scratch.root / "demo", seed=1, n_patients=50)
    >>> manifest["synthetic"], manifest["geography"]["split_tracts"]
    (True, {'99001000300': ['99001000301', '99001000302']})
    """
    _check_arguments(seed, n_patients)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    catalog = load_catalog()
    bgs = {2010: _block_groups(2010), 2020: _block_groups(2020)}
    latents = {2010: _latents_2010(bgs[2010], _rng(seed, "latents"))}
    latents[2020] = _latents_for(bgs[2020], bgs[2010], latents[2010])
    vintages, acs = [], {}
    for year in DEMO_VINTAGES:
        release = catalog.release("acs5", year)
        boundary = release.boundary_vintage
        acs[year] = _acs_levels(bgs[boundary], latents[boundary], year, seed, boundary)
        files = _write_acs(out_dir, year, acs[year])
        datasets = [DETAILED, *(d for d, folder in NARROW_DATASETS.items()
                                if any(k.startswith(folder + "/") for k in files))]
        vintages.append({"year": year, "period": release.period, "dataset": DETAILED,
                         "datasets": datasets, "boundary_vintage": boundary,
                         "release_date": release.release_date.isoformat(), "files": files})
    patients, fhir = _write_patients(out_dir, seed, n_patients, _land(acs[DEMO_VINTAGES[0]]), bgs)
    manifest = {
        "synthetic": True,
        "generator": "ingestion.demo.region.generate_demo_region",
        "seed": seed,
        "n_patients": n_patients,
        "state_fips": STATE_FIPS,
        "county_fips": COUNTY_FIPS,
        "county_geoid": STATE_FIPS + COUNTY_FIPS,
        "name": f"{COUNTY_NAME}, {STATE_NAME}",
        "bbox": [COLUMN_EDGES[0], ROW_EDGES[-1], COLUMN_EDGES[-1], ROW_EDGES[0]],
        "census_api_root": "census_api",
        "vintages": vintages,
        "tiger": {str(y): _write_tiger(out_dir, _with_water(f, y), y) for y, f in bgs.items()},
        "adi_files": _write_adi(out_dir, acs),
        "publisher_files": _write_publisher(out_dir, acs, bgs, seed),
        "decennial": [entry for y, f in bgs.items()
                      if (entry := _write_decennial(out_dir, f, latents[y], y, seed))],
        "index_inputs": _index_manifest(),
        "patients": patients,
        "fhir": fhir,
        "geography": _geography_manifest({y: _with_water(f, y) for y, f in bgs.items()}),
        "notes": NOTES,
    }
    manifest["split_tracts"] = manifest["geography"]["split_tracts"]
    _write_text(out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    logger.info("demo region written to %s in %.1f s (%d patients, %d address rows)", out_dir,
                time.perf_counter() - started, n_patients,
                manifest["patients"]["address_history"]["rows"])
    return manifest
