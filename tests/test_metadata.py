import shutil

import pytest
from feast import FeatureView, Field, FileSource
from feast.types import Float64

from feature_repo.definitions.metadata import (
    Publication,
    check_views,
    linkage_tags,
    measure_tags,
    tag_problems,
    view_problems,
)
from sdoh_sources import METADATA_KEYS, CatalogError, load_catalog
from sdoh_sources.svi import svi_source

PUB = Publication("tract", (2019, 2021), ("2020-12-10", "2022-12-08"), (2010, 2020))


def view_of(fields: dict[str, dict[str, str]], name: str = "acs_test") -> FeatureView:
    """A feature view over a (never read) parquet path with these fields and tags."""
    return FeatureView(
        name=name, entities=[], source=FileSource(path="/nonexistent.parquet", timestamp_field="ts"),
        schema=[Field(name=n, dtype=Float64, tags=tags) for n, tags in fields.items()])


def minority_view(**changes: str) -> FeatureView:
    """pct_minority and its MOE, the value's tags changed by ``changes``."""
    cat = load_catalog()
    measure = cat.acs.measure("pct_minority")
    return view_of({"pct_minority": measure_tags(measure, cat.acs, PUB) | changes,
                    "pct_minority_moe": measure_tags(measure, cat.acs, PUB, suffix="_moe")})


@pytest.mark.parametrize("suffix", ["", "_moe", "_cv", "_reliability", "_missing"])
def test_every_measure_column_has_every_key_in_vocabulary(suffix):
    cat = load_catalog()
    for m in cat.acs.measures:
        tags = measure_tags(m, cat.acs, PUB, suffix=suffix)
        assert set(tags) == set(METADATA_KEYS)
        assert tag_problems(tags) == [], m.name


def test_tags_carry_vintages_and_release_dates():
    cat = load_catalog()
    tags = measure_tags(cat.acs.measure("pct_below_poverty"), cat.acs, PUB)
    assert tags["vintage"] == "2019,2021"
    assert tags["release_date"] == "2020-12-10,2022-12-08"
    assert tags["boundary_vintage"] == "2010,2020"
    assert tags["moe_feature"] == "pct_below_poverty_moe"
    moe_tags = measure_tags(cat.acs.measure("pct_below_poverty"), cat.acs, PUB, suffix="_moe")
    assert moe_tags["measure_type"] == "moe"


def test_an_acs_index_has_the_reliability_rule_of_its_rows():
    # The Gini index is an ACS estimate with an MOE and a reliability class, unlike SVI ranks.
    cat = load_catalog()
    gini = measure_tags(cat.acs.measure("gini_index"), cat.acs, PUB)["reliability_rule"]
    assert gini.startswith(f"{cat.default_reliability_rule}: CV<=")
    svi = svi_source("state")
    rank = measure_tags(svi.measures[0], svi, PUB)["reliability_rule"]
    assert rank.startswith("not_applicable")


def test_linkage_fields_are_flagged_as_location_proxies():
    tags = linkage_tags("tract_geoid_2020")
    assert tags["boundary_vintage"] == "2020"
    assert tags["fairness_role"] == "excluded_from_models"
    assert "race" in tags["proxy_for"]
    assert tag_problems(tags) == []


def test_a_valid_view_passes():
    check_views([minority_view(), view_of({"tract_geoid_2020": linkage_tags("tract_geoid_2020")})])


def test_a_missing_key_fails_naming_view_field_and_key():
    tags = linkage_tags("tract_geoid_2020")
    del tags["license"]
    with pytest.raises(CatalogError, match=r"feature view geo, field tract_geoid_2020: "
                                           r"missing metadata key 'license'"):
        check_views([view_of({"tract_geoid_2020": tags}, name="geo")])


def test_an_empty_value_counts_as_missing():
    with pytest.raises(CatalogError, match="field pct_minority: missing metadata key 'known_biases'"):
        check_views([minority_view(known_biases="")])


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("domain", "vibes", "economic_stability, education, health_care_access"),
    ("direction", "up", "higher_is_worse, higher_is_better, neutral"),
    ("fairness_role", "anything", "model_input, sensitive_attribute, stratifier_only"),
    ("geography_level", "galaxy", "block_group, tract, county"),
    ("proxy_for", "race,zodiac", "none, race, ethnicity, national_origin"),
])
def test_a_value_outside_its_vocabulary_fails_listing_allowed_values(key, value, allowed):
    bad = value.split(",")[-1]
    with pytest.raises(CatalogError, match=rf"feature view acs_test, field pct_minority: {key}="
                                           rf"'{bad}' is outside its vocabulary; allowed values: {allowed}"):
        check_views([minority_view(**{key: value})])


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("proxy_for", "none,race", "lists 'none' beside other values"),
    ("release_date", "2022-12", "does not match the format"),
    ("vintage", "2019-2021", "does not match the format"),
    ("moe_feature", "pct_minority_se", "is not a field of the view"),
])
def test_malformed_values_fail(key, value, problem):
    with pytest.raises(CatalogError, match=rf"field pct_minority: {key}='{value}' {problem}"):
        check_views([minority_view(**{key: value})])


def test_every_problem_is_reported_at_once():
    assert len(view_problems(minority_view(domain="vibes", direction="up"))) == 2


@pytest.mark.slow
def test_every_field_of_the_demo_views_passes(demo_run):
    from feature_repo import feature_store
    from feature_repo.definitions.feature_views import feature_views

    workspace, _ = demo_run
    built = feature_views(workspace)
    registered = feature_store(workspace).list_feature_views()
    assert {v.name for v in built} == {v.name for v in registered}
    for views in (built, registered):
        assert sum(len(v.features) for v in views) > 100
        assert [p for v in views for p in view_problems(v)] == []


@pytest.fixture
def demo_copy(demo_run, tmp_path):
    """A fresh workspace publishing the demo's data, with nothing registered yet."""
    from ingestion.core.workspace import Workspace

    workspace, _ = demo_run
    shutil.copytree(workspace.root / "published", tmp_path / "published")
    return Workspace(tmp_path)


@pytest.mark.slow
def test_a_value_outside_its_vocabulary_fails_the_build(demo_copy, monkeypatch):
    from feature_repo import apply_definitions, feature_store

    vocabularies = load_catalog().vocabularies
    narrowed = tuple(v for v in vocabularies["proxy_for"] if v != "national_origin")
    monkeypatch.setitem(vocabularies, "proxy_for", narrowed)
    store = feature_store(demo_copy)
    with pytest.raises(CatalogError, match=r"feature view patient_geography, field tract_geoid_2020: "
                                           r"proxy_for='national_origin' is outside its vocabulary; "
                                           r"allowed values: none, race, ethnicity, language"):
        apply_definitions(store, demo_copy)
    assert store.list_feature_views() == []  # nothing registered


@pytest.mark.slow
def test_a_field_without_a_key_fails_the_build(demo_copy, monkeypatch):
    import feature_repo.definitions.feast_cli
    from feature_repo import apply_definitions, feature_store
    from feature_repo.definitions.feature_views import feature_views

    def without_licence(workspace, profile):
        views = feature_views(workspace, profile=profile)
        acs_tract = next(v for v in views if v.name == "acs_tract")
        del next(f for f in acs_tract.features if f.name == "pct_minority").tags["license"]
        return views

    monkeypatch.setattr(feature_repo.definitions.feast_cli, "feature_views", without_licence)
    with pytest.raises(CatalogError, match=r"feature view acs_tract, field pct_minority: "
                                           r"missing metadata key 'license'"):
        apply_definitions(feature_store(demo_copy), demo_copy)
