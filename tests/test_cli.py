import json

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from ingestion.cli import sdoh


def all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in all_commands(sdoh)], ids=" ".join)
def test_every_command_has_useful_help(path):
    result = CliRunner().invoke(sdoh, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command = dict(all_commands(sdoh))[path]
    if not isinstance(command, click.Group):
        assert "Example" in result.output


def test_project_errors_become_a_message_and_exit_code_1(tmp_path):
    bad = tmp_path / "US_2020_ADI_Census_Block_Group_v4_0.csv"
    bad.write_text("FIPS,ADI_NATRANK,ADI_STATERNK\n010010201001,XX,3\n")
    result = CliRunner().invoke(sdoh, ["ingest", "adi", str(bad), "--available-from", "2022-09-01",
                                       "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 1
    assert "row 2, field ADI_NATRANK" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_training_frame_and_online_commands(demo_run, tmp_path):
    workspace, _ = demo_run
    events = tmp_path / "events.csv"
    pd.DataFrame({"patient_id": ["P000001", "P000002"],
                  "event_timestamp": ["2021-06-01T00:00:00Z", "2023-06-01T00:00:00Z"]}
                 ).to_csv(events, index=False)
    out = tmp_path / "frame.parquet"
    result = CliRunner().invoke(sdoh, ["training-frame", str(events), "-o", str(out),
                                       "--workspace", str(workspace.root)])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out)) == 2
    result = CliRunner().invoke(sdoh, ["online", "P000001", "--workspace", str(workspace.root)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["patient_id"] == "P000001"


def test_ingest_acs_for_several_states_through_the_replay_server(tmp_path):
    from ingestion.demo_region import generate_demo_region
    from ingestion.replay import CensusReplayServer
    from ingestion.workspace import Workspace

    region = tmp_path / "region"
    generate_demo_region(region, n_patients=50)
    tree = region / "census_api"
    for table in (tree / "2021").rglob("tract.json"):  # a second state: the same rows as 98
        rows = json.loads(table.read_text())
        state = rows[0].index("state")
        rows += [[*r[:state], "98", *r[state + 1:]] for r in rows[1:]]
        table.write_text(json.dumps(rows))
    with CensusReplayServer(tree) as server:
        result = CliRunner().invoke(sdoh, [
            "ingest", "acs", "--vintage", "2021", "--state", "99", "--state", "98", "--level", "tract",
            "--base-url", server.base_url, "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    published = pd.read_parquet(Workspace(tmp_path / "ws").published_dir("acs_tract"))
    assert set(published["tract_geoid"].str[:2]) == {"98", "99"}
    assert published["tract_geoid"].str[:2].value_counts().nunique() == 1  # as many tracts each


def _replay_tree_with_state_and_zcta(tmp_path):
    """The demo region's 2021 tables, plus state and ZCTA tables derived from them."""
    from ingestion.demo_region import generate_demo_region

    region = tmp_path / "region"
    generate_demo_region(region, n_patients=50)
    tree = region / "census_api"
    for county in (tree / "2021").rglob("county.json"):
        rows = json.loads(county.read_text())
        drop = rows[0].index("county")
        (county.parent / "state.json").write_text(json.dumps([r[:drop] + r[drop + 1:] for r in rows]))
        tracts = json.loads((county.parent / "tract.json").read_text())
        header = tracts[0]
        keep = [i for i, name in enumerate(header) if name not in ("state", "county", "tract")]
        tract = header.index("tract")
        zctas = [[header[i] for i in keep] + ["zip code tabulation area"]]
        zctas += [[r[i] for i in keep] + [f"0{r[tract][2:6]}"] for r in tracts[1:]]
        (county.parent / "zcta.json").write_text(json.dumps(zctas))
    return tree


def test_ingest_state_and_national_zcta_levels(tmp_path):
    from ingestion.replay import CensusReplayServer
    from ingestion.workspace import Workspace

    ws = tmp_path / "ws"
    with CensusReplayServer(_replay_tree_with_state_and_zcta(tmp_path)) as server:
        def ingest(*args):
            return CliRunner().invoke(sdoh, ["ingest", "acs", "--vintage", "2021", *args,
                                             "--base-url", server.base_url, "--workspace", str(ws)])
        assert ingest("--state", "99", "--level", "state").exit_code == 0
        refused = ingest("--state", "99", "--level", "zcta")
        assert refused.exit_code == 1 and "--state all" in refused.output
        result = ingest("--state", "all", "--level", "zcta")
        assert result.exit_code == 0, result.output
    states = pd.read_parquet(Workspace(ws).published_dir("acs_state"))
    assert states["state_geoid"].tolist() == ["99"]
    zctas = pd.read_parquet(Workspace(ws).published_dir("acs_zcta"))
    assert zctas["zcta_geoid"].str.fullmatch(r"\d{5}").all() and len(zctas) > 1
    assert zctas["pct_no_health_insurance"].notna().any()  # tract-level tables reach ZCTAs


def test_connecticut_planning_regions_flow_through_from_2022(tmp_path):
    """ACS 2022+ county data for CT are keyed by planning regions 09110-09190, not counties."""
    from ingestion.demo_region import generate_demo_region
    from ingestion.replay import CensusReplayServer
    from ingestion.workspace import Workspace
    from sdoh_sources import load_catalog

    assert "planning regions" in load_catalog().release("acs5", 2022).note
    region = tmp_path / "region"
    generate_demo_region(region, n_patients=50)
    tree = region / "census_api"
    for county in (tree / "2021").rglob("county.json"):  # serve them as CT's 2022 regions
        rows = json.loads(county.read_text())
        state, code = rows[0].index("state"), rows[0].index("county")
        regions = [f"{n}0" for n in range(11, 20)]  # 110, 120, ..., 190
        out = [rows[0]] + [[*r[:state], "09", *r[state + 1:code], c, *r[code + 1:]]
                           for r in rows[1:] for c in regions]
        target = tree / "2022" / county.relative_to(tree / "2021")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(out))
    with CensusReplayServer(tree) as server:
        result = CliRunner().invoke(sdoh, [
            "ingest", "acs", "--vintage", "2022", "--state", "CT", "--level", "county",
            "--base-url", server.base_url, "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    counties = pd.read_parquet(Workspace(tmp_path / "ws").published_dir("acs_county"))
    assert sorted(counties["county_geoid"]) == [f"09{n}0" for n in range(11, 20)]
    assert (counties["boundary_year"] == 2020).all()


def test_ingest_acs_for_listed_counties_with_another_reliability_rule(tmp_path):
    from feature_repo.feature_views import acs_view
    from ingestion.demo_region import generate_demo_region
    from ingestion.replay import CensusReplayServer
    from ingestion.workspace import Workspace

    region = tmp_path / "region"
    generate_demo_region(region, n_patients=50)
    for table in (region / "census_api" / "2021").rglob("tract.json"):  # counties 003 and 005
        rows = json.loads(table.read_text())
        county = rows[0].index("county")
        rows += [[*r[:county], c, *r[county + 1:]] for c in ("003", "005") for r in rows[1:]]
        table.write_text(json.dumps(rows))
    ws = Workspace(tmp_path / "ws")
    with CensusReplayServer(region / "census_api") as server:
        result = CliRunner().invoke(sdoh, [
            "ingest", "acs", "--vintage", "2021", "--state", "99", "--county", "001",
            "--county", "003", "--level", "tract", "--reliability-rule", "cv_15_30",
            "--base-url", server.base_url, "--workspace", str(ws.root)])
        assert result.exit_code == 0, result.output
        unknown = CliRunner().invoke(sdoh, [
            "ingest", "acs", "--vintage", "2021", "--state", "99", "--level", "tract",
            "--reliability-rule", "cv_1_2", "--base-url", server.base_url,
            "--workspace", str(ws.root)])
    assert unknown.exit_code == 1 and "cv_15_30" in unknown.output
    tracts = pd.read_parquet(ws.published_dir("acs_tract"))
    assert set(tracts["tract_geoid"].str[2:5]) == {"001", "003"}
    assert set(tracts["reliability_rule"]) == {"cv_15_30"}
    cv = tracts["pct_renter_occupied_cv"]
    expected = pd.Series("low", index=cv.index).mask(cv <= 30, "medium").mask(cv <= 15, "high")
    known = tracts["pct_renter_occupied_reliability"].isin(["high", "medium", "low"])
    assert (tracts.loc[known, "pct_renter_occupied_reliability"] == expected[known]).all()
    field = next(f for f in acs_view("tract", ws).schema if f.name == "pct_renter_occupied")
    assert field.tags["reliability_rule"].startswith("cv_15_30: CV<=15% high, CV<=30% medium")
