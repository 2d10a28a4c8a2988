import datetime as dt

import pytest

from sdoh_sources import CatalogError, check_vocabularies, load_catalog, release_in_force
from sdoh_sources._models import Source


def test_catalog_covers_all_five_domains_with_at_least_eight_measures():
    acs = load_catalog().acs
    assert len(acs.measures) >= 8
    assert {m.domain for m in acs.measures} == {
        "economic_stability", "education", "health_care_access",
        "neighborhood_built_environment", "social_community_context"}


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
