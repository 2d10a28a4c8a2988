"""Entities: the keys features hang on. Geography keys are GEOID strings of one boundary vintage."""

from feast import Entity, ValueType

from ingestion.core.datasets import geoid_column

# A patient; features reach patients only through their address history.
patient = Entity(
    name="patient",
    join_keys=["patient_id"],
    value_type=ValueType.STRING,
    description="A patient (or a pseudonymous key for one).",
    owner="sdoh-feature-store",
    tags={"pii": "identifier"},
)

# Census geographies, keyed by zero-padded GEOID strings (DESIGN.md: never NAME), each of the
# boundary vintage of the data read.
GEOGRAPHY_DESCRIPTIONS = {
    "block_group": "Census block group, 12-digit GEOID.",
    "tract": "Census tract, 11-digit GEOID.",
    "county": "County or equivalent (Connecticut planning regions from 2022), 5-digit GEOID.",
    "zcta": "ZIP Code Tabulation Area, 5-digit GEOID (not nested in states or counties).",
    "state": "State, DC or Puerto Rico, 2-digit FIPS.",
}
GEOGRAPHY_ENTITIES = {
    level: Entity(name=level, join_keys=[geoid_column(level)], value_type=ValueType.STRING,
                  description=description, owner="sdoh-feature-store")
    for level, description in GEOGRAPHY_DESCRIPTIONS.items()
}

# The vintage is part of every area key so a lookup reads exactly the vintage in force at the
# event time, never an older vintage of the same GEOID.
vintage = Entity(
    name="vintage",
    join_keys=["vintage"],
    value_type=ValueType.INT64,
    description="Vintage of the source (ACS 5-year final year, ADI year).",
    owner="sdoh-feature-store",
)

ALL_ENTITIES = [patient, *GEOGRAPHY_ENTITIES.values(), vintage]
