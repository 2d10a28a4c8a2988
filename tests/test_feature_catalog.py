import io
import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from equity.feature_catalog import filter_catalog, measure_of
from ingestion.cli import sdoh
from ingestion.core.errors import InputError

FRAME = pd.DataFrame({
    "view": ["a", "a", "b", "b"],
    "field": ["pct_minority", "pct_hispanic", "pct_no_vehicle", "tract_geoid_2020"],
    "proxy_for": ["race,ethnicity", "ethnicity", "none", "race,ethnicity,national_origin"],
    "domain": ["social_community_context", "social_community_context",
               "neighborhood_built_environment", "none"],
    "reliability": ["low", "acceptable", "low", "not_applicable"],
})


@pytest.mark.parametrize(("where", "fields"), [
    ({"proxy_for": "race"}, ["pct_minority", "tract_geoid_2020"]),
    ({"proxy_for": "ethnicity"}, ["pct_minority", "pct_hispanic", "tract_geoid_2020"]),
    ({"proxy_for": ["national_origin", "none"]}, ["pct_no_vehicle", "tract_geoid_2020"]),
    ({"proxy_for": "race", "domain": "social_community_context"}, ["pct_minority"]),
    ({"reliability": "low"}, ["pct_minority", "pct_no_vehicle"]),
    ({}, ["pct_minority", "pct_hispanic", "pct_no_vehicle", "tract_geoid_2020"]),
])
def test_filter_matches_inside_lists_any_value_of_a_key_and_every_key(where, fields):
    assert filter_catalog(FRAME, where)["field"].tolist() == fields


def test_an_unknown_key_lists_the_known_keys():
    with pytest.raises(InputError, match=r"unknown metadata key 'proxy'; known keys: domain, "
                                         r"gravity_category, .*proxy_for, .*, reliability$"):
        filter_catalog(FRAME, {"proxy": "race"})


@pytest.mark.parametrize(("where", "allowed"), [
    ({"proxy_for": "raec"}, "none, race, ethnicity"),
    ({"reliability": "bad"}, "low, acceptable, not_applicable"),
])
def test_a_value_outside_the_vocabulary_lists_the_allowed_values(where, allowed):
    with pytest.raises(InputError, match=f"choose from: {allowed}"):
        filter_catalog(FRAME, where)


@pytest.mark.parametrize(("field", "measure"), [
    ("pct_minority", "pct_minority"), ("pct_minority_moe", "pct_minority"),
    ("pct_minority_reliability", "pct_minority"), ("svi_state_epl_minrty_missing", "svi_state_epl_minrty"),
    ("link_missing", "link_missing"),
])
def test_measure_of(field, measure):
    names = {"pct_minority", "pct_minority_moe", "pct_minority_reliability", "svi_state_epl_minrty",
             "svi_state_epl_minrty_missing", "link_missing"}
    assert measure_of(field, names) == measure


def test_where_must_be_key_equals_value():
    result = CliRunner().invoke(sdoh, ["catalog", "--where", "proxy_for"])
    assert result.exit_code == 2
    assert "is not KEY=VALUE, e.g. proxy_for=race" in result.output


# --- on the demo workspace ------------------------------------------------------------------


def catalog_cli(workspace, *args):
    result = CliRunner().invoke(sdoh, ["catalog", *args, "--workspace", str(workspace.root)])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.slow
def test_which_features_proxy_race(demo_run):
    from equity.feature_catalog import feature_catalog
    from feature_repo import feature_store

    workspace, _ = demo_run
    expected = {(v.name, f.name) for v in feature_store(workspace).list_feature_views()
                for f in v.features if "race" in f.tags["proxy_for"].split(",")}
    found = feature_catalog(workspace, where={"proxy_for": "race"})
    assert set(zip(found["view"], found["field"], strict=True)) == expected
    assert len(found) == len(expected)
    assert {("acs_tract", "pct_minority"), ("patient_geography", "tract_geoid_2020")} <= expected
    assert ("acs_tract", "pct_below_poverty") not in expected


@pytest.mark.slow
def test_low_reliability_means_a_share_of_published_rows_classed_low(demo_run):
    from equity.feature_catalog import DEFAULT_LOW_SHARE, feature_catalog
    from ingestion.core.datasets import acs_spec

    workspace, _ = demo_run
    rows = pd.read_parquet(workspace.published_dir("acs_tract"))
    shares = {m: (rows[f"{m}_reliability"] == "low").sum() / rows[m].notna().sum()
              for m in acs_spec("tract").measures}
    found = feature_catalog(workspace, where={"reliability": "low"}, views=["acs_tract"])
    assert set(found["measure"]) == {m for m, share in shares.items() if share > DEFAULT_LOW_SHARE}
    assert 0 < len(set(found["measure"])) < len(shares)
    for measure, share in found.groupby("measure")["low_reliability_share"].first().items():
        assert share == pytest.approx(shares[measure])
    stricter = feature_catalog(workspace, where={"reliability": "low"}, views=["acs_tract"], low_share=0.5)
    assert set(stricter["measure"]) == {m for m, share in shares.items() if share > 0.5}


@pytest.mark.slow
def test_one_domain(demo_run):
    from feature_repo import feature_store

    workspace, _ = demo_run
    expected = sum(f.tags["domain"] == "economic_stability"
                   for v in feature_store(workspace).list_feature_views() for f in v.features)
    found = json.loads(catalog_cli(workspace, "--where", "domain=economic_stability", "--format", "json"))
    assert len(found) == expected > 0
    assert {r["domain"] for r in found} == {"economic_stability"}


@pytest.mark.slow
def test_json_and_csv_round_trip(demo_run):
    from equity.feature_catalog import feature_catalog

    workspace, _ = demo_run
    frame = feature_catalog(workspace, where={"proxy_for": "race"})
    as_json = catalog_cli(workspace, "--where", "proxy_for=race", "--format", "json")
    pd.testing.assert_frame_equal(pd.DataFrame(json.loads(as_json)), frame)
    as_csv = catalog_cli(workspace, "--where", "proxy_for=race", "--format", "csv")
    text = {c: str for c in frame.columns if c != "low_reliability_share"}
    from_csv = pd.read_csv(io.StringIO(as_csv), dtype=text, keep_default_na=False,
                           na_values={"low_reliability_share": [""]})
    pd.testing.assert_frame_equal(from_csv, frame)


@pytest.mark.slow
def test_table_lists_view_and_field(demo_run):
    out = catalog_cli(demo_run[0], "--where", "proxy_for=race", "--view", "acs_tract")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["view", "field"]
    assert {line.split()[0] for line in lines[1:]} == {"acs_tract"}
    assert any(line.split()[1] == "pct_minority" for line in lines[1:])


@pytest.mark.slow
def test_unknown_key_or_view_is_a_clear_error(demo_run):
    workspace, _ = demo_run
    result = CliRunner().invoke(sdoh, ["catalog", "--where", "zodiac=leo",
                                       "--workspace", str(workspace.root)])
    assert result.exit_code == 1
    assert "unknown metadata key 'zodiac'; known keys: domain" in result.output
    result = CliRunner().invoke(sdoh, ["catalog", "--view", "acs_moon", "--workspace", str(workspace.root)])
    assert result.exit_code == 1
    assert "unknown feature views ['acs_moon']; choose from" in result.output


@pytest.mark.slow
def test_without_a_registry_the_built_definitions_answer(demo_run, tmp_path):
    from equity.feature_catalog import feature_catalog
    from feature_repo.definitions.feature_views import feature_views
    from ingestion.core.workspace import Workspace

    shutil.copytree(demo_run[0].root / "published", tmp_path / "published")
    workspace = Workspace(tmp_path)
    expected = {(v.name, f.name) for v in feature_views(workspace)
                for f in v.features if "race" in f.tags["proxy_for"].split(",")}
    found = feature_catalog(workspace, where={"proxy_for": "race"})
    assert set(zip(found["view"], found["field"], strict=True)) == expected
