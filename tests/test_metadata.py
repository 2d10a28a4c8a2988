import pytest

from feature_repo.metadata import Publication, check_tags, linkage_tags, measure_tags
from sdoh_sources import METADATA_KEYS, CatalogError, load_catalog

PUB = Publication("tract", (2019, 2021), ("2020-12-10", "2022-12-08"), (2010, 2020))


@pytest.mark.parametrize("suffix", ["", "_moe", "_cv", "_reliability", "_missing"])
def test_every_measure_column_has_every_key(suffix):
    cat = load_catalog()
    for m in cat.acs.measures:
        tags = measure_tags(m, cat.acs, PUB, suffix=suffix)
        assert set(tags) == set(METADATA_KEYS)
        assert all(isinstance(v, str) and v for v in tags.values())


def test_tags_carry_vintages_and_release_dates():
    cat = load_catalog()
    tags = measure_tags(cat.acs.measure("pct_below_poverty"), cat.acs, PUB)
    assert tags["vintage"] == "2019,2021"
    assert tags["release_date"] == "2020-12-10,2022-12-08"
    assert tags["boundary_vintage"] == "2010,2020"
    assert tags["moe_feature"] == "pct_below_poverty_moe"
    moe_tags = measure_tags(cat.acs.measure("pct_below_poverty"), cat.acs, PUB, suffix="_moe")
    assert moe_tags["measure_type"] == "moe"


def test_linkage_fields_are_flagged_as_location_proxies():
    tags = linkage_tags("tract_geoid_2020")
    assert tags["boundary_vintage"] == "2020"
    assert tags["fairness_role"] == "excluded_from_models"
    assert "race" in tags["proxy_for"]


def test_missing_key_fails():
    tags = linkage_tags("tract_geoid_2020")
    del tags["license"]
    with pytest.raises(CatalogError, match=r"missing metadata keys \['license'\]"):
        check_tags(tags, field="x")


@pytest.mark.parametrize(("key", "value"),
                         [("domain", "vibes"), ("direction", "up"), ("proxy_for", "race,zodiac")])
def test_value_outside_vocabulary_fails(key, value):
    tags = linkage_tags("tract_geoid_2020") | {key: value}
    with pytest.raises(CatalogError, match="outside their vocabularies"):
        check_tags(tags, field="x")
