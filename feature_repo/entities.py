"""Entities: the keys features hang on. Geography keys are GEOID strings of one boundary vintage."""

from feast import Entity, ValueType

# A patient; features reach patients only through their address history.
patient = Entity(
    name="patient",
    join_keys=["patient_id"],
    value_type=ValueType.STRING,
    description="A patient (or a pseudonymous key for one).",
    owner="sdoh-feature-store",
    tags={"pii": "identifier"},
)

# Census geographies, keyed by zero-padded GEOID strings (DESIGN.md: never NAME).
block_group = Entity(
    name="block_group",
    join_keys=["block_group_geoid"],
    value_type=ValueType.STRING,
    description="Census block group, 12-digit GEOID of the boundary vintage of the data read.",
    owner="sdoh-feature-store",
)
tract = Entity(
    name="tract",
    join_keys=["tract_geoid"],
    value_type=ValueType.STRING,
    description="Census tract, 11-digit GEOID of the boundary vintage of the data read.",
    owner="sdoh-feature-store",
)
county = Entity(
    name="county",
    join_keys=["county_geoid"],
    value_type=ValueType.STRING,
    description="County or equivalent (Connecticut planning regions from 2022), 5-digit GEOID.",
    owner="sdoh-feature-store",
)

zcta = Entity(
    name="zcta",
    join_keys=["zcta_geoid"],
    value_type=ValueType.STRING,
    description="ZIP Code Tabulation Area, 5-digit GEOID (not nested in states or counties).",
    owner="sdoh-feature-store",
)
state = Entity(
    name="state",
    join_keys=["state_geoid"],
    value_type=ValueType.STRING,
    description="State, DC or Puerto Rico, 2-digit FIPS.",
    owner="sdoh-feature-store",
)

# The vintage is part of every area key so a lookup reads exactly the vintage in force at the
# event time, never an older vintage of the same GEOID.
vintage = Entity(
    name="vintage",
    join_keys=["vintage"],
    value_type=ValueType.INT64,
    description="Vintage of the source (ACS 5-year final year, ADI year).",
    owner="sdoh-feature-store",
)

GEOGRAPHY_ENTITIES = {"block_group": block_group, "tract": tract, "county": county, "zcta": zcta,
                      "state": state}
ALL_ENTITIES = [patient, *GEOGRAPHY_ENTITIES.values(), vintage]
