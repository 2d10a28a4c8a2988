"""A hand-built region whose every value is traceable, shared by the retrieval tests.

Tract 99001000300 (2010 boundaries) was split into 000301 and 000302 in 2020; tract 000100
exists under both boundary vintages. ACS vintages: 2019 released 2020-12-10 (2010 tracts),
2020 released 2022-03-17 and 2021 released 2022-12-08 (2020 tracts).
"""

import numpy as np
import pandas as pd

from ingestion.core.datasets import acs_spec, geography_timeline_spec
from ingestion.core.workspace import Workspace
from ingestion.gate.publish import publish
from sdoh_sources import load_catalog

# (tract, vintage) -> percent below poverty
POVERTY = {
    ("99001000300", 2019): 10.0,
    ("99001000100", 2019): 5.0,
    ("99001000301", 2020): 20.0,
    ("99001000302", 2020): 30.0,
    ("99001000100", 2020): 6.0,
    ("99001000301", 2021): 21.0,
    ("99001000302", 2021): 31.0,
    # 99001000100 has no 2021 row: geography_not_in_vintage
}


# state -> percent below poverty per vintage; a state is read through its county's prefix.
STATE_POVERTY = {("99", 2019): 1.0, ("99", 2020): 2.0, ("99", 2021): 3.0}

# ZCTA -> percent below poverty: E, known only by a ZIP, is linked to ZCTA 99101 by a crosswalk.
ZCTA_POVERTY = {("99101", 2019): 40.0, ("99101", 2020): 41.0, ("99101", 2021): 42.0}


def acs_frame(level: str, poverty: dict) -> pd.DataFrame:
    """An ACS dataset at ``level`` where only pct_below_poverty is present."""
    catalog = load_catalog()
    spec = acs_spec(level)
    rows = []
    for (geoid, vintage), value in poverty.items():
        release = catalog.release("acs5", vintage)
        row = {f"{level}_geoid": geoid, "vintage": vintage, "boundary_year": release.boundary_vintage,
               "release_ts": pd.Timestamp(release.release_ts), "synthetic": True,
               "reliability_rule": catalog.default_reliability_rule}
        for m in spec.measures:
            row |= {m: np.nan, f"{m}_moe": np.nan, f"{m}_cv": np.nan, f"{m}_reliability": None,
                    f"{m}_missing": "insufficient_sample"}
        row |= {"pct_below_poverty": value, "pct_below_poverty_moe": 1.0,
                "pct_below_poverty_cv": 1.0 / 1.645 / value * 100, "pct_below_poverty_reliability": "high",
                "pct_below_poverty_missing": None}
        rows.append(row)
    return pd.DataFrame(rows)


def timeline_row(patient, start, end, t2010=None, t2020=None, reason=None):
    row = {"patient_id": patient, "valid_from": pd.Timestamp(start, tz="UTC"),
           "valid_to": pd.Timestamp(end, tz="UTC") if end else pd.NaT}
    for year, tract in ((2010, t2010), (2020, t2020)):
        row[f"block_group_geoid_{year}"] = tract + "1" if tract else None
        row[f"tract_geoid_{year}"] = tract
        row[f"county_geoid_{year}"] = tract[:5] if tract else None
        row[f"zcta_geoid_{year}"] = None
    linked = t2010 is not None
    row |= {"link_method": "point_in_polygon" if linked else "none",
            "precision": "coordinate" if linked else "none", "link_missing": reason,
            "zip_join_type": None, "zip_link_ratio": None, "nonresidential_zip": False,
            "zip_crosswalk_vintage": None, "patient_id_scheme": "raw"}
    return row


def zip_row(patient, start, zcta):
    """A period known only by its ZIP, linked to ``zcta`` (both vintages) by a UDS crosswalk."""
    return timeline_row(patient, start, None, reason="zip_only") | {
        "zcta_geoid_2010": zcta, "zcta_geoid_2020": zcta, "link_method": "zip_crosswalk",
        "precision": "zcta", "zip_join_type": "zip_matches_zcta", "zip_crosswalk_vintage": "2021"}


TIMELINE = pd.DataFrame([
    # A moves on 2022-06-01 from the split tract to tract 000100.
    timeline_row("A", "2019-01-01", "2022-06-01", "99001000300", "99001000301"),
    timeline_row("A", "2022-06-01", None, "99001000100", "99001000100"),
    timeline_row("B", "2019-01-01", None, reason="po_box"),
    timeline_row("C", "2019-01-01", "2021-01-01", "99001000300", "99001000302"),
    zip_row("E", "2019-01-01", "99101"),
])[list(geography_timeline_spec().column_names)]




def publish_hand_built(workspace: Workspace) -> None:
    """Publish the hand-built ACS tracts, ZCTAs and state and the patient timeline into ``workspace``."""
    publish(acs_frame("tract", POVERTY), acs_spec("tract"), workspace)
    publish(acs_frame("zcta", ZCTA_POVERTY), acs_spec("zcta"), workspace)
    publish(acs_frame("state", STATE_POVERTY), acs_spec("state"), workspace)
    publish(TIMELINE, geography_timeline_spec(), workspace)
