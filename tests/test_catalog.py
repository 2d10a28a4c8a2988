import datetime as dt

import pytest

from sdoh_sources import CatalogError, check_vocabularies, load_catalog, release_in_force
from sdoh_sources._models import Measure, Source
from sdoh_sources.acs_tables import acs_dataset

DOMAINS = {"economic_stability", "education", "health_care_access",
           "neighborhood_built_environment", "social_community_context"}


def test_catalog_covers_all_five_domains_with_at_least_forty_measures():
    acs = load_catalog().acs
    assert len(acs.measures) >= 40
    assert {m.domain for m in acs.measures} == DOMAINS
    per_domain = {d: sum(m.domain == d for m in acs.measures) for d in DOMAINS}
    assert min(per_domain.values()) >= 3, per_domain


@pytest.mark.parametrize("name", [
    "pct_below_poverty", "pct_below_150_poverty", "median_household_income", "gini_index",
    "pct_public_assistance_households", "pct_snap_households", "pct_unemployed",
    "pct_no_health_insurance", "pct_no_hs_diploma", "pct_bachelors_or_higher",
    "pct_limited_english_households", "pct_owner_cost_burden", "pct_renter_cost_burden",
    "pct_crowded", "pct_no_vehicle", "pct_renter_occupied", "pct_vacant_housing",
    "pct_multi_unit_10_plus", "pct_mobile_homes", "pct_no_internet_subscription",
    "pct_single_parent_households", "pct_65_plus_living_alone", "pct_age_65_plus",
    "pct_age_17_under", "pct_disability", "pct_group_quarters", "median_gross_rent",
    "median_home_value", "pct_minority", "pct_foreign_born"])
def test_required_measures_are_in_the_catalog(name):
    m = load_catalog().acs.measure(name)
    assert m.variables and m.levels and m.universe


def test_every_measure_states_every_metadata_key():
    for m in load_catalog().acs.measures:
        for key in ("domain", "gravity_category", "measure_type", "unit", "direction",
                    "proxy_for", "fairness_role", "known_biases", "intended_use",
                    "prohibited_use", "label", "universe", "levels"):
            assert getattr(m, key), (m.name, key)


def test_subject_and_profile_measures_stop_at_the_tract():
    narrow = [m for m in load_catalog().acs.measures
              if any(v.startswith(("S", "DP")) for v in m.variables)]
    assert {m.name for m in narrow if any(v.startswith("S") for v in m.variables)}
    assert {m.name for m in narrow if any(v.startswith("DP") for v in m.variables)}
    assert all("block_group" not in m.levels and m.percent for m in narrow)


def test_subject_or_profile_variable_at_block_group_is_refused():
    base = load_catalog().acs.measure("pct_disability").model_dump()
    with pytest.raises(ValueError, match="not published at block group"):
        Measure.model_validate({**base, "levels": ["block_group", "tract"]})


@pytest.mark.parametrize(("changes", "message"), [
    ({"percent": "B18101_001"}, "percent"),
    ({"numerator": ["B18101_004"]}, "takes no numerator"),
    ({"percent": None, "denominator": ["B18101_001"]}, "needs a numerator"),
])
def test_malformed_formulas_are_refused(changes, message):
    base = load_catalog().acs.measure("pct_disability").model_dump()
    with pytest.raises(ValueError, match=message):
        Measure.model_validate({**base, "by_vintage": [], **changes})


def test_acs_dataset_routes_each_table_family():
    assert [acs_dataset(v) for v in ("B19013_001", "C17002_002", "S2701_C05_001", "DP02_0072P",
                                     "-B25070_011")] == [
        "acs/acs5", "acs/acs5", "acs/acs5/subject", "acs/acs5/profile", "acs/acs5"]


@pytest.mark.parametrize(
    ("vintage", "released", "boundary"),
    [(2018, "2019-12-19", 2010), (2019, "2020-12-10", 2010), (2020, "2022-03-17", 2020),
     (2021, "2022-12-08", 2020)],
)
def test_release_calendar(vintage, released, boundary):
    release = load_catalog().release("acs5", vintage)
    assert release.release_date.isoformat() == released
    assert release.boundary_vintage == boundary
    assert release.release_ts == dt.datetime.fromisoformat(released + "T00:00:00+00:00")


def test_unknown_vintage_says_where_to_add_it():
    with pytest.raises(CatalogError, match="release_calendar.yaml"):
        load_catalog().release("acs5", 1999)


def test_release_in_force_is_inclusive_of_the_release_instant():
    releases = load_catalog().calendar["acs5"]
    at = dt.datetime(2022, 3, 17, tzinfo=dt.UTC)
    assert release_in_force(releases, at).vintage == 2020
    assert release_in_force(releases, at - dt.timedelta(microseconds=1)).vintage == 2019
    assert release_in_force(releases, dt.datetime(2015, 1, 1, tzinfo=dt.UTC)) is None


def test_proxies_are_declared():
    acs = load_catalog().acs
    assert acs.measure("pct_minority").proxy_for == ("race", "ethnicity")
    assert acs.measure("pct_minority").fairness_role == "stratifier_only"
    assert "language" in acs.measure("pct_limited_english_households").proxy_for


@pytest.mark.parametrize(("name", "proxy", "role"), [
    ("pct_minority", ("race", "ethnicity"), "stratifier_only"),
    ("pct_hispanic", ("ethnicity",), "stratifier_only"),
    ("pct_foreign_born", ("national_origin",), "stratifier_only"),
    ("pct_disability", ("disability",), "model_input"),
    ("pct_age_65_plus", ("age",), "model_input"),
    ("pct_age_17_under", ("age",), "model_input"),
    ("median_age", ("age",), "model_input"),
    ("pct_65_plus_living_alone", ("age",), "model_input"),
    ("pct_limited_english_households", ("language", "national_origin"), "model_input"),
    ("pct_limited_english_speakers", ("language", "national_origin"), "model_input"),
    ("pct_below_poverty", ("none",), "model_input"),
])
def test_proxy_and_fairness_role(name, proxy, role):
    m = load_catalog().acs.measure(name)
    assert (m.proxy_for, m.fairness_role) == (proxy, role)


def test_composition_by_race_ethnicity_or_national_origin_is_never_a_model_input():
    for m in load_catalog().acs.measures:
        if {"race", "ethnicity"} & set(m.proxy_for) or m.proxy_for == ("national_origin",):
            assert m.fairness_role == "stratifier_only", m.name


def _source_with(**changes) -> Source:
    acs = load_catalog().acs
    measure = acs.measures[0].model_copy(update=changes)
    return acs.model_copy(update={"measures": (measure,)})


@pytest.mark.parametrize(
    ("change", "message"),
    [({"domain": "astrology"}, "domain='astrology'"),
     ({"proxy_for": ("zodiac",)}, "proxy_for has 'zodiac'"),
     ({"fairness_role": "anything"}, "fairness_role='anything'"),
     ({"levels": ("galaxy",)}, "levels has 'galaxy'")],
)
def test_vocabulary_violations_fail(change, message):
    with pytest.raises(CatalogError, match=message):
        check_vocabularies(_source_with(**change), load_catalog().vocabularies)


def test_duplicate_measure_names_fail():
    acs = load_catalog().acs
    with pytest.raises(ValueError, match="repeated"):
        Source.model_validate({**acs.model_dump(), "measures": [acs.measures[0].model_dump()] * 2})
