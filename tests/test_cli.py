import json
import re

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
    result = CliRunner().invoke(sdoh, ["ingest", "source", "adi", str(bad), "--available-from",
                                       "2022-09-01", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 1
    assert "line 2, field ADI_NATRANK" in result.output
    assert "Traceback" not in result.output


# -- the error boundary: one line first, details only under -v -----------------------------------

def _svi_file(*, drop=(), ranks=(0.0, 0.5, 1.0)) -> bytes:
    """A small CDC-style SVI tract file of one state with every published column."""
    from sdoh_sources.svi import load_svi_catalog, published_columns

    columns = [c for c in published_columns(load_svi_catalog()) if c not in drop]
    lines = [",".join(["ST", "STATE", "ST_ABBR", "STCNTY", "COUNTY", "FIPS", "LOCATION", *columns])]
    for i, rank in enumerate(ranks):
        values = ["1" if c == "F_TOTAL" else str(rank) for c in columns]
        lines.append(",".join(["10", "Delaware", "DE", "10001", "Kent", f"1000104{i:02d}00",
                               f"Tract {i}", *values]))
    return ("\n".join(lines) + "\n").encode()


SVI_ARGS = ["--release", "2020", "--available-from", "2022-12-22"]
ADI_ARGS = ["--available-from", "2022-09-01"]
ADI_HEADER = b"FIPS,ADI_NATRANK,ADI_STATERNK\n"
BAD_FILES = [  # command, file content, extra options, what the one line must say (cause, next step)
    ("svi-file", b"", ["--reference", "state"], r"the file is empty; .*: download it again", "InputError"),
    ("svi-file", _svi_file()[:_svi_file().index(b"\n") + 1], ["--reference", "state"],
     r"a header row and no data rows; .*: download it again", "InputError"),
    ("svi-file", _svi_file().replace(b"Tract 1", b"Tract \xe9"), ["--reference", "state"],
     r"line 3: byte 0xe9 is not UTF-8; .*convert it, e\.g\. `iconv", "UnicodeDecodeError"),
    ("svi-file", _svi_file(drop=["RPL_THEMES"]), ["--reference", "state"],
     r"row 1 \(header\): missing column\(s\) \['RPL_THEMES'\].*pass CDC's full SVI file",
     "InputError"),
    ("svi-file", _svi_file(), ["--reference", "nation"],
     r"the ranks look computed within the state: .*pass --reference state", "InputError"),
    ("svi-file", _svi_file(ranks=(0.1, 0.5, 0.9)), ["--reference", "state"],
     r"the ranks look computed within the nation: .*pass --reference nation", "InputError"),
    ("svi-file", _svi_file().replace(b"10001040100", b"1000104X100"), ["--reference", "state"],
     r"row 3, field FIPS: '1000104X100' is not a 11-digit code; fix the row", "InputError"),
    ("source adi", b"", [], r"the file is empty; .*: download it again", "InputError"),
    ("source adi", ADI_HEADER, [], r"a header row and no data rows; .*: download it again", "InputError"),
    ("source adi", ADI_HEADER + b"010010201001,73,6\n010010201002,73,6,Pe\xf1a\n", [],
     r"line 3: byte 0xf1 is not UTF-8; .*`iconv", "UnicodeDecodeError"),
    ("source adi", ADI_HEADER + b"010010201001,16.5,6\n", [],
     r"line 2, field ADI_NATRANK: '16.5' is not a whole number; fix the row", "InputError"),
    ("source adi", ADI_HEADER + b"010010201001,73,11\n", [],
     r"line 2, field ADI_STATERNK: '11' is not within the measure's range 1.0 to 10.0", "InputError"),
    ("source adi", b"FIPS,ADI_NATRANK\n010010201001,73\n", [],
     r"header: missing column\(s\) \['ADI_STATERNK'\]", "InputError"),
]


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
@pytest.mark.parametrize(("command", "content", "extra", "message", "detail"), BAD_FILES,
                         ids=[f"{c}-{i}" for i, (c, *_) in enumerate(BAD_FILES)])
def test_bad_input_files_give_one_line_and_details_only_when_verbose(
        tmp_path, verbose, command, content, extra, message, detail):
    path = tmp_path / "US_2020_ADI_Census_Block_Group_v4_0.csv"
    path.write_bytes(content)
    args = [*(["-v"] if verbose else []), "ingest", *command.split(), str(path),
            *(SVI_ARGS if command == "svi-file" else ADI_ARGS), *extra,
            "--workspace", str(tmp_path / "ws")]
    result = CliRunner().invoke(sdoh, args)
    assert result.exit_code == 1, result.output
    first, *rest = result.stderr.splitlines()
    assert first.startswith(f"error: {path}: "), result.stderr
    assert re.search(message, first), first
    if verbose:
        assert "Traceback (most recent call last)" in result.stderr
        assert detail in "\n".join(rest)  # the chain names the original exception
    else:
        assert rest == [] and "Traceback" not in result.output
    assert not any((tmp_path / "ws").rglob("*.parquet"))  # nothing published


@pytest.mark.parametrize(("command", "options"), [
    ("svi-file", [*SVI_ARGS, "--reference", "state"]), ("source adi", ADI_ARGS)])
def test_a_missing_input_file_is_a_usage_error(tmp_path, command, options):
    missing = tmp_path / "US_2020_ADI_nothing.csv"
    result = CliRunner().invoke(sdoh, ["ingest", *command.split(), str(missing), *options])
    assert result.exit_code == 2
    # PATH is optional for `source` (downloads), so click writes it [PATH]
    assert re.search(r"Invalid value for '\[?PATH\]?': File '.*US_2020_ADI_nothing.csv' does not exist",
                     result.stderr)
    assert "Traceback" not in result.output


def _boundary_group():
    from ingestion.cli._common import SdohGroup
    from ingestion.core.errors import InputError

    @click.group(cls=SdohGroup)
    @click.option("-v", "--verbose", is_flag=True)
    def group(verbose):
        """A group with the boundary."""

    @group.command()
    @click.argument("kind")
    def fail(kind):
        """Fail the way ``kind`` says."""
        if kind == "project":
            raise InputError("x.csv: row 2, field A: 'q' is not a number; fix the row")
        if kind == "usage":
            raise click.BadParameter("no such kind")
        raise KeyError("surprise")

    return group


@pytest.mark.parametrize(("args", "code", "first", "traceback"), [
    (["fail", "project"], 1, "error: x.csv: row 2, field A: 'q' is not a number; fix the row", False),
    (["-v", "fail", "project"], 1, "error: x.csv: row 2, field A: 'q' is not a number; fix the row", True),
    (["fail", "other"], 1, "error: internal error: KeyError: 'surprise' (rerun with -v for the "
                           "traceback); please report it with the command that caused it", False),
    (["-v", "fail", "other"], 1, "error: internal error: KeyError: 'surprise'; please report it "
                                 "with the command that caused it", True),
    (["fail", "usage"], 2, "Usage: group fail [OPTIONS] KIND", False),  # click's own, unchanged
])
def test_the_boundary_reports_project_and_internal_errors(args, code, first, traceback):
    result = CliRunner().invoke(_boundary_group(), args)
    assert result.exit_code == code
    assert result.stderr.splitlines()[0] == first
    assert ("Traceback (most recent call last)" in result.stderr) == traceback


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
    from ingestion.core.workspace import Workspace
    from ingestion.demo.region import generate_demo_region
    from ingestion.demo.replay import CensusReplayServer

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
    from ingestion.demo.region import generate_demo_region

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
    from ingestion.core.workspace import Workspace
    from ingestion.demo.replay import CensusReplayServer

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
    from ingestion.core.workspace import Workspace
    from ingestion.demo.region import generate_demo_region
    from ingestion.demo.replay import CensusReplayServer
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
    from feature_repo.definitions.feature_views import acs_view
    from ingestion.core.workspace import Workspace
    from ingestion.demo.region import generate_demo_region
    from ingestion.demo.replay import CensusReplayServer

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


def test_ingest_svi_and_computed_adi_on_the_demo_region(tmp_path):
    from ingestion.core.workspace import Workspace
    from ingestion.demo.region import generate_demo_region
    from ingestion.demo.replay import CensusReplayServer

    region = tmp_path / "region"
    manifest = generate_demo_region(region, n_patients=50)
    ws = Workspace(tmp_path / "ws")
    with CensusReplayServer(region / "census_api") as server:
        common = ["--state", "99", "--reference", "state", "--base-url", server.base_url,
                  "--workspace", str(ws.root)]
        svi = CliRunner().invoke(sdoh, ["ingest", "svi", "--release", "2020", "--level", "tract",
                                        *common])
        adi = CliRunner().invoke(sdoh, ["ingest", "adi-acs", "--vintage", "2021", *common])
        nation = CliRunner().invoke(sdoh, ["ingest", "adi-acs", "--vintage", "2021", *common[:2],
                                           "--reference", "nation", *common[4:]])
    assert svi.exit_code == 0, svi.output
    assert adi.exit_code == 0, adi.output
    # Ranking within the nation needs every state's block groups: refused, not ranked locally.
    assert nation.exit_code == 1 and "nation" in nation.output

    tracts = pd.read_parquet(ws.published_dir("svi_tract_state"))
    water = set(manifest["geography"]["water_tracts"]["2020"])
    assert len(tracts) == manifest["geography"]["tracts"]["2020"]
    unranked = tracts[tracts["svi_state_rpl_themes"].isna()]
    assert set(unranked["tract_geoid"]) == water
    assert set(unranked["svi_state_rpl_themes_missing"]) == {"svi_not_computed"}
    ranked = tracts["svi_state_rpl_themes"].dropna().sort_values()
    # CDC's rank: (rank - 1) / (n - 1) over the populated tracts, rounded to 4 decimals.
    n = len(ranked)
    assert ranked.iloc[0] == 0.0 and ranked.iloc[-1] == 1.0
    assert ranked.round(4).isin([round(i / (n - 1), 4) for i in range(n)]).all()

    bgs = pd.read_parquet(ws.published_dir("adi_acs_block_group_state"))
    assert len(bgs) == manifest["geography"]["block_groups"]["2020"]
    ranked = bgs["adi_acs_state_percentile"].dropna()
    assert ranked.between(1, 100).all() and ranked.max() == 100
    assert set(bgs["origin"]) == {"computed_from_acs"}
    suppressed = bgs.loc[bgs["adi_acs_state_percentile"].isna(), "adi_acs_state_percentile_missing"]
    assert len(suppressed) and suppressed.notna().all()


# -- sdoh link and sdoh boundaries, against local servers ---------------------------------------

LINK_HISTORY = """patient_id,valid_from,valid_to,street,city,state,zip,latitude,longitude
MRN-1,2019-01-01,2021-03-01,1 Main St,Springfield,XX,99001,38.5,-77.5
MRN-1,2021-03-01,,100 Maple Ave,Springfield,XX,99001,,
MRN-2,2019-01-01,,999 Nowhere Ln,Springfield,XX,99001,,
MRN-3,2019-01-01,,P.O. Box 12,Springfield,XX,99001,,
MRN-4,2019-01-01,,,,,99001,,
MRN-5,2019-13-01,,2 Main St,Springfield,XX,99001,38.5,-77.5
"""
UDS_2020 = "ZIP_CODE,PO_NAME,STATE,ZIP_TYPE,ZCTA,zip_join_type\n" \
           "99001,Springfield,XX,ZIP Code Area,99001,ZIP Matches ZCTA\n"


@pytest.fixture
def link_inputs(tmp_path):
    """An address history, 2010 and 2020 block groups around it and a UDS crosswalk."""
    import geopandas as gpd
    import shapely

    history = tmp_path / "addresses.csv"
    history.write_text(LINK_HISTORY)
    files = {}
    for year, geoid in ((2010, "110010001001"), (2020, "110019800001")):
        files[year] = tmp_path / f"bg{year}.geojson"
        gpd.GeoDataFrame({"GEOID": [geoid]}, geometry=[shapely.box(-78, 38, -76, 39)],
                         crs=4269).to_file(files[year])
    crosswalk = tmp_path / "ZIPCodetoZCTACrosswalk2020UDS.csv"
    crosswalk.write_text(UDS_2020)
    return {"history": history, "bg": files, "crosswalk": crosswalk, "ws": tmp_path / "ws"}


@pytest.fixture
def geocoder_server():
    from test_geocoder import FakeGeocoder

    fake = FakeGeocoder()
    yield fake
    fake.stop()


def _link(inputs, *extra, env=None):
    args = ["link", str(inputs["history"]), "--boundaries", "2010", str(inputs["bg"][2010]),
            "--boundaries", "2020", str(inputs["bg"][2020]), "--workspace", str(inputs["ws"]),
            *extra]
    return CliRunner().invoke(sdoh, args, env=env)


def _timeline(inputs) -> pd.DataFrame:
    from ingestion.core.workspace import Workspace

    published = Workspace(inputs["ws"]).published_dir("patient_geography")
    return pd.read_parquet(published).sort_values(["patient_id", "valid_from"])


def test_link_sends_nothing_without_the_opt_in(link_inputs, geocoder_server):
    result = _link(link_inputs, "--geocoder-url", geocoder_server.base_url,
                   "--zip-crosswalk", str(link_inputs["crosswalk"]), "--zip-crosswalk-year", "2020")
    assert result.exit_code == 0, result.output
    assert geocoder_server.received == []
    assert "leave this machine" not in result.output
    timeline = _timeline(link_inputs).set_index(["patient_id", "valid_from"])
    reasons = timeline["link_missing"].droplevel(1).fillna("-").to_dict()
    assert reasons == {"MRN-1": "geocode_failed", "MRN-2": "geocode_failed", "MRN-3": "po_box",
                       "MRN-4": "zip_only"}
    first = timeline.loc[("MRN-1", pd.Timestamp("2019-01-01", tz="UTC"))]
    assert (first["block_group_geoid_2020"], first["link_missing"]) == ("110019800001", None)
    zip_only = timeline.loc["MRN-4"].iloc[0]
    assert (zip_only["zcta_geoid_2020"], zip_only["precision"]) == ("99001", "zcta")
    assert pd.isna(zip_only["tract_geoid_2020"])
    # The funnel is printed; the rejected row is named by file, row and field.
    assert "zip_fallback" in result.output and "geocode_failed" in result.output
    assert "1 rows rejected" in result.output
    rejects = pd.read_csv(link_inputs["ws"] / "outputs" / "address_rejects.csv")
    assert rejects[["source_file", "row", "field", "reason"]].values.tolist() == [
        [str(link_inputs["history"]), 7, "valid_from", "unparseable_date"]]


def test_link_geocodes_streets_only_with_the_flag_and_says_so(link_inputs, geocoder_server):
    result = _link(link_inputs, "--send-addresses-to-census-geocoder",
                   "--geocoder-url", geocoder_server.base_url,
                   "--geocoder-benchmark", "Public_AR_Current")
    assert result.exit_code == 0, result.output
    assert "patient addresses will leave this machine" in result.output
    sent = [row[1] for received in geocoder_server.received for row in received.rows]
    assert sorted(sent) == ["100 Maple Ave", "999 Nowhere Ln"]  # no PO box, no coordinates
    assert geocoder_server.received[0].fields["benchmark"] == "Public_AR_Current"
    timeline = _timeline(link_inputs)
    moved = timeline[(timeline["patient_id"] == "MRN-1")].iloc[1]
    assert (moved["block_group_geoid_2020"], moved["link_method"]) == ("110019800001",
                                                                      "point_in_polygon")
    assert timeline.set_index("patient_id").loc["MRN-2", "link_missing"] == "geocode_failed"


def test_link_pseudonymizes_with_the_secret_from_the_environment(link_inputs):
    secret = "k" * 40
    result = _link(link_inputs, "--pseudonymize", env={"SDOH_PATIENT_KEY_SECRET": secret})
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    published = link_inputs["ws"] / "published" / "patient_geography"
    raw = b"".join(p.read_bytes() for p in published.glob("**/*.parquet"))
    assert b"MRN-" not in raw
    assert _timeline(link_inputs)["patient_id"].str.fullmatch(r"[0-9a-f]{64}").all()

    missing = _link(link_inputs, "--pseudonymize", env={"SDOH_PATIENT_KEY_SECRET": ""})
    assert missing.exit_code == 1
    assert "set the environment variable SDOH_PATIENT_KEY_SECRET" in missing.output
    assert "Traceback" not in missing.output


@pytest.fixture
def tiger_server(tmp_path):
    from test_tiger import STATE_TRACTS, TigerServer, tract_frame, zipped

    folder = tmp_path / "zips"
    folder.mkdir()
    server = TigerServer({"TIGER2020/TRACT/tl_2020_10_tract.zip": zipped(
        tract_frame(STATE_TRACTS["10"], field="GEOID"), "tl_2020_10_tract", folder)})
    yield server
    server.stop()


def test_boundaries_download_prints_verified_files_and_uses_the_cache(tmp_path, tiger_server):
    args = ["boundaries", "download", "tract", "--year", "2020", "--state", "DE",
            "--cache-dir", str(tmp_path / "cache"), "--base-url", tiger_server.base_url,
            "--workers", "1", "--no-progress"]
    result = CliRunner().invoke(sdoh, args)
    assert result.exit_code == 0, result.output
    path = tmp_path / "cache/127.0.0.1/geo/tiger/TIGER2020/TRACT/tl_2020_10_tract.zip"
    assert result.output.startswith(f"{path}\tboundary vintage 2020\t")
    assert path.is_file() and path.with_name(path.name + ".json").is_file()
    again = CliRunner().invoke(sdoh, args)
    assert again.exit_code == 0 and len(tiger_server.served()) == 1  # the cache answered


@pytest.mark.parametrize(("extra", "code", "match"), [
    (["--year", "2020", "--state", "PA"], 1, r"HTTP 404.*tl_2020_42_tract\.zip"),
    (["--year", "2011", "--kind", "cb"], 2, r"2011"),
    (["--year", "2020", "--state", "Atlantis"], 2, r"Atlantis"),
])
def test_boundaries_download_errors_are_messages(tmp_path, tiger_server, extra, code, match):
    result = CliRunner().invoke(sdoh, ["boundaries", "download", "tract", *extra,
                                       "--cache-dir", str(tmp_path / "cache"),
                                       "--base-url", tiger_server.base_url, "--no-progress"])
    assert result.exit_code == code, result.output
    assert re.search(match, result.output, re.S)
    assert "Traceback" not in result.output


def test_sources_lists_every_release_and_what_it_needs():
    result = CliRunner().invoke(sdoh, ["sources", "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("source,title,level,release,layout,boundary_vintage,available_from")
    assert any(line.startswith("eji,Environmental Justice Index,tract,2022,wide,2010,2023-08-24,file only")
               for line in lines)
    assert any(line.startswith("food_access,") and ",unknown,url," in line for line in lines)
