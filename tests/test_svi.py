"""ingestion/derive/svi.py: the CDC/ATSDR SVI computed from ACS as CDC does, and CDC's files read."""

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingestion.core.errors import InputError
from ingestion.core.workspace import Workspace
from ingestion.demo.replay import CensusReplayServer
from ingestion.derive.svi import compute_svi, percentile_rank, round_half_up, svi_variables
from ingestion.jobs.ingest import ingest_svi, ingest_svi_file
from ingestion.sources.census_api import CensusClient
from ingestion.sources.svi_file import apparent_reference, read_svi_file
from sdoh_sources import CatalogError, SdohError
from sdoh_sources.svi import load_svi_catalog, svi_source

VARIABLES = [m for t in load_svi_catalog().themes for m in t.members]
RANKS = [f"EPL_{v}" for v in VARIABLES] + [f"RPL_THEME{n}" for n in (1, 2, 3, 4)] + ["RPL_THEMES"]


def _agreement(ours: pd.Series, official: pd.Series) -> float:
    """Share of areas where both agree to 4 decimals, or both have no value."""
    same = (ours.round(4) == official.round(4)) | (ours.isna() & official.isna())
    return float(same.mean())


def _inputs(release: int, geoids: list[str], **columns) -> pd.DataFrame:
    """Every input column the release needs (counts 100, MOEs 10, population 1000), then ``columns``."""
    values = {name: 100.0 if name.endswith("E") else 10.0 for name in svi_variables(release)}
    return pd.DataFrame({"GEOID": geoids, **values, "S0601_C01_001E": 1000.0, **columns})


# ------------------------------------------------------------------ 1. Delaware reproduction
@pytest.fixture
def delaware(real_data):
    inputs = pd.read_csv(real_data / "de_acs2020_findsvi" / "de_tract_acs5_2020_svi_inputs.csv",
                         dtype={"GEOID": str})
    official = read_svi_file(real_data / "de_svi2020" / "cdc_svi2020_delaware_tract.csv").set_index("GEOID")
    ours = compute_svi(inputs, release=2020, reference="state").set_index("GEOID")
    return ours, official


def test_delaware_2020_ranks_agree_with_cdc(delaware):
    ours, official = delaware
    assert len(official) == 259 and official.index.isin(ours.index).all()
    ours = ours.loc[official.index]
    assert (ours["E_TOTPOP"] == official["E_TOTPOP"]).all()
    agreement = {c: _agreement(ours[c], official[c]) for c in RANKS}
    assert min(agreement.values()) >= 0.99, agreement


def test_delaware_2020_every_published_value_is_reproduced(delaware):
    # Stronger than the 99% above: with CDC's rounding order (half up; EP_ before ranking; M_
    # truncated; MP_ from the rounded EP_) every shared column matches for every tract.
    ours, official = delaware
    ours = ours.loc[official.index]
    shared = [c for c in official.columns
              if c.startswith(("E_", "M_", "EP_", "MP_", "EPL_", "SPL_", "RPL_", "F_"))
              and not c.endswith("_missing") and c in ours.columns]
    assert len(shared) == 117
    differing = {c: 1 - _agreement(ours[c], official[c]) for c in shared}
    assert not {c: d for c, d in differing.items() if d}, differing


def test_delaware_unranked_tracts_carry_reasons(delaware):
    ours, official = delaware
    # Three water tracts (99xxxx, no population) are absent from CDC's file; ours keeps them.
    water = ours.index.difference(official.index)
    assert sorted(water) == ["10001990000", "10003990100", "10005990000"]
    assert (ours.loc[water, "RPL_THEMES_missing"] == "svi_not_computed").all()
    # Dover AFB's tract has people but no households: CDC's EP_HBURD is 0 (ranked), its
    # unemployment rate is not published, so theme 1 is not computed while theme 3 is.
    base = ours.loc["10001980000"]
    assert base["EP_HBURD"] == 0.0 and base["MP_HBURD_missing"] == "zero_denominator"
    assert base["EP_UNEMP_missing"] == "not_applicable"
    assert np.isnan(base["RPL_THEME1"]) and base["RPL_THEME1_missing"] == "svi_not_computed"
    assert base["RPL_THEME3"] == official.loc["10001980000", "RPL_THEME3"]


# ------------------------------------------------------------------ 2. hand-computed ranks
def test_hand_computed_ranks_with_ties_and_zero_population():
    geoids = ["10001000100", "10001000200", "10001000300", "10001000400", "10001000500"]
    frame = _inputs(2020, geoids,
                    S1701_C01_040E=[10, 2004, 20, 40, 0],        # below 150% of poverty
                    S1701_C01_001E=[100, 10000, 100, 100, 0],    # poverty universe
                    S0601_C01_001E=[1000, 1000, 1000, 1000, 0])  # the last tract has no people
    svi = compute_svi(frame, release=2020, reference="state").set_index("GEOID")
    # EP_POV150 = 10.0, 20.04 -> 20.0, 20.0, 40.0 (rounded before ranking, so B ties with C);
    # 4 ranked tracts: min-ranks 1, 2, 2, 4 -> (r - 1) / 3 = 0, 1/3, 1/3, 1.
    assert svi["EP_POV150"].tolist()[:4] == [10.0, 20.0, 20.0, 40.0]
    assert svi["EPL_POV150"].tolist()[:4] == [0.0, 0.3333, 0.3333, 1.0]
    # Every other variable is tied, so it ranks 0 and theme 1 and the overall follow POV150.
    assert svi["EPL_UNEMP"].tolist()[:4] == [0.0] * 4
    assert svi["SPL_THEME1"].tolist()[:4] == [0.0, 0.3333, 0.3333, 1.0]
    assert svi["RPL_THEME1"].tolist()[:4] == svi["RPL_THEMES"].tolist()[:4] == [0.0, 0.3333, 0.3333, 1.0]
    assert svi["F_POV150"].tolist()[:4] == svi["F_TOTAL"].tolist()[:4] == [0.0, 0.0, 0.0, 1.0]
    empty = svi.loc["10001000500"]
    for column in ("EPL_POV150", "SPL_THEME1", "RPL_THEME1", "RPL_THEMES", "F_POV150", "F_TOTAL"):
        assert np.isnan(empty[column]) and empty[f"{column}_missing"] == "svi_not_computed"
    assert svi.loc["10001000100", "EPL_POV150_missing"] is None
    assert (svi["svi_release"] == 2020).all() and (svi["svi_reference"] == "state").all()


@pytest.mark.parametrize(("reference", "expected"), [
    ("nation", [0.5, 0.0, 0.5, np.nan, 1.0, 0.25]),
    ("state", [0.5, 0.0, 0.5, np.nan, 1.0, 0.0]),
    ("county", [1.0, 0.0, np.nan, np.nan, 1.0, 0.0]),  # county 10003 has one ranked tract
])
def test_percentile_rank_within_reference_areas(reference, expected):
    values = pd.Series([5.0, 1.0, 5.0, np.nan, 9.0, 3.0],
                       index=["10001000100", "10001000200", "10003000100", "10003000200",
                              "24001000100", "24001000200"])
    np.testing.assert_array_equal(percentile_rank(values, reference=reference).to_numpy(), expected)


@pytest.mark.parametrize(("value", "decimals", "expected"), [
    (0.03125, 4, 0.0313),  # 8/256: numpy's half-even gives 0.0312, CDC 0.0313
    (0.145, 2, 0.15),      # stored as 0.14499999..., rounded as the decimal it stands for
    (12.25, 1, 12.3),
    (2.5, 0, 3.0),
])
def test_round_half_up(value, decimals, expected):
    assert float(round_half_up(value, decimals)) == expected


def test_county_level_and_annotation_values():
    frame = _inputs(2020, ["10001", "10003", "10005"],
                    DP03_0009PE=[4.0, -666666666, 6.0], DP03_0005M=[-555555555, 10, 10])
    svi = compute_svi(frame, release=2020, reference="state").set_index("GEOID")
    assert svi.loc["10003", "EP_UNEMP_missing"] == "insufficient_sample"
    assert np.isnan(svi.loc["10003", "EPL_UNEMP"])
    assert svi.loc["10001", "M_UNEMP"] == 0.0  # controlled estimate: no sampling error
    assert svi["EPL_UNEMP"].tolist()[::2] == [0.0, 1.0]


# ------------------------------------------------------------------ 3. reference area
@pytest.fixture
def philadelphia(real_data):
    folder = real_data / "phl_tracts2020"
    nation = read_svi_file(folder / "cdc_svi2020_us_rpl_philadelphia_tracts.csv").set_index("GEOID")
    county = pd.read_csv(folder / "findsvi_svi2020_county_ref_philadelphia_tracts.csv",
                         dtype={"GEOID": str}).set_index("GEOID")
    county.columns = [c.upper() for c in county.columns]  # findSVI writes RPL_theme1
    return nation, county


def test_county_reference_theme1_is_a_percentile_rank_within_the_county(philadelphia):
    _, county = philadelphia
    # Theme 1 was ranked over exactly the 390 tracts of the file: ranking its own values
    # within the county gives them back.
    assert len(county) == 390
    rerank = percentile_rank(county["RPL_THEME1"], reference="county")
    assert (rerank == county["RPL_THEME1"]).all()
    # Themes 2-4 and the overall were ranked over 391 tracts (k/390), one of them absent from
    # this extract, so they cannot be re-ranked from the file alone.
    for column in ("RPL_THEME2", "RPL_THEME3", "RPL_THEME4", "RPL_THEMES"):
        k = county[column] * 390
        assert (round_half_up(np.round(k) / 390, 4) == county[column]).all()


def test_reference_area_moves_ranks(philadelphia):
    nation, county = philadelphia
    shared = nation.index.intersection(county.index)
    assert len(shared) == 388
    nation, county = nation.loc[shared], county.loc[shared]
    # Theme 3 has one variable, so in any reference area its rank orders tracts by EP_MINRTY:
    # re-ranking CDC's national ranks within the county gives the county ranks exactly.
    assert (percentile_rank(nation["RPL_THEME3"], reference="county")
            == percentile_rank(county["RPL_THEME3"], reference="county")).all()
    # The other themes sum ranks taken in the reference area, so moving the reference changes
    # the order, not only the scale: re-ranking national ranks does not give the county ones.
    for column in ("RPL_THEME1", "RPL_THEME2", "RPL_THEME4", "RPL_THEMES"):
        moved = percentile_rank(nation[column], reference="county") - percentile_rank(
            county[column], reference="county")
        assert (moved != 0).mean() > 0.9 and moved.abs().max() > 0.1
    # Philadelphia is more vulnerable than the nation: its national ranks average well above
    # the county's own (about 0.5 by construction), most for theme 3 (0.73 against 0.50).
    shift = {c: nation[c].mean() - county[c].mean() for c in county.columns}
    assert all(s > 0.08 for s in shift.values()), shift
    assert max(shift, key=shift.get) == "RPL_THEME3"
    assert round(nation["RPL_THEME3"].mean(), 2) == 0.73 and round(county["RPL_THEME3"].mean(), 2) == 0.50


# ------------------------------------------------------------------ 4. reading CDC files
HEADER = "ST,STATE,ST_ABBR,STCNTY,COUNTY,FIPS,LOCATION,E_TOTPOP,EP_POV150,RPL_THEMES\n"


def test_read_svi_file_bom_padding_and_not_computed(tmp_path):
    path = tmp_path / "SVI_2020_US.csv"
    rows = ('1,Alabama,AL,1001,Autauga,1001020100,"Tract 201, Autauga County, Alabama",1941,-999,0.2\n'
            '10,Delaware,DE,10001,Kent,10001040100,"Tract 401, Kent County, Delaware",7531,29.6,0.7608\n')
    path.write_bytes(("\ufeff" + HEADER + rows).encode("utf-8"))
    svi = read_svi_file(path)
    assert list(svi.columns[:3]) == ["ST", "STATE", "ST_ABBR"]  # no BOM in the first name
    assert svi["FIPS"].tolist() == ["01001020100", "10001040100"]
    assert svi["ST"].tolist() == ["01", "10"] and svi["STCNTY"].tolist() == ["01001", "10001"]
    assert np.isnan(svi.loc[0, "EP_POV150"]) and svi.loc[0, "EP_POV150_missing"] == "svi_not_computed"
    assert svi.loc[1, "EP_POV150"] == 29.6 and svi.loc[1, "EP_POV150_missing"] is None
    assert svi["RPL_THEMES"].tolist() == [0.2, 0.7608]
    assert "LOCATION_missing" not in svi.columns


def test_read_svi_county_file_without_bom(tmp_path):
    path = tmp_path / "SVI_2020_US_county.csv"
    path.write_text("ST,STATE,ST_ABBR,STCNTY,COUNTY,FIPS,LOCATION,E_TOTPOP,RPL_THEMES\n"
                    "1,Alabama,AL,1001,Autauga,1001,\"Autauga County, Alabama\",55639,0.4354\n")
    assert read_svi_file(path)["FIPS"].tolist() == ["01001"]


@pytest.mark.parametrize(("row", "message"), [
    ('10,Delaware,DE,10001,Kent,10001040100,"Kent",7531,29.6,abc\n', r"row 3, field RPL_THEMES: 'abc'"),
    ('10,Delaware,DE,10001,Kent,10001040100,"Kent",7531,,0.5\n', r"row 3, field EP_POV150: ''"),
    ('10,Delaware,DE,10001,Kent,1000104X100,"Kent",7531,29.6,0.5\n', r"row 3, field FIPS: '1000104X100'"),
    ('10,Delaware,DE,10001,Kent,10001,"Kent",7531,29.6,0.5\n', r"row 3, field FIPS: '10001'"),
    ('10,Delaware,DE,10001,Kent,10001040100,"Kent",7531,29.6,0.5,9\n', r"malformed CSV"),
])
def test_read_svi_file_names_file_row_and_field(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    good = '10,Delaware,DE,10001,Kent,10001040200,"Kent",4766,16.1,0.4706\n'
    path.write_text(HEADER + good + row)
    with pytest.raises(InputError, match=message) as caught:
        read_svi_file(path)
    assert "bad.csv" in str(caught.value)
    assert isinstance(caught.value, SdohError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize(("content", "match"), [
    (b"", r"the file is empty; expected a CDC SVI file"),
    (b"\n\n", r"the file is empty"),
    (HEADER.encode(), r"a header row and no data rows"),
    ((HEADER + '10,Delaware,DE,10001,Kent,10001040100,"Tract 401, Kent County, Dela\xe9ware",'
      '7531,29.6,0.76\n').encode("latin-1"), r"line 2: byte 0xe9 is not UTF-8.*iconv"),
    (b"ST,E_TOTPOP\n10,7531\n", r"row 1 \(header\): no FIPS \(or GEOID\) column"),
])
def test_read_svi_file_refuses_unusable_files(tmp_path, content, match):
    path = tmp_path / "SVI_2020_US.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as caught:
        read_svi_file(path)
    assert str(caught.value).startswith(str(path))


# ------------------------------------------------------------------ 5. the 2022 release
def test_2022_definitions():
    frame = _inputs(2022, ["10001000100", "10001000200"],
                    DP05_0001E=[1000, 2000], DP05_0079E=[600, 500], DP05_0001M=[50, 60],
                    DP05_0079M=[40, 30], DP05_0079PE=[60.0, 25.0], DP05_0079PM=[4.0, 3.0],
                    DP05_0019PE=[22.4, 18.0], DP05_0019E=[224, 360],
                    DP02_0007E=[5, 8], DP02_0011E=[20, 30], DP02_0007PE=[1.2, 2.0], DP02_0011PE=[6.3, 7.0],
                    DP02_0007PM=[0.3, 0.4], DP02_0011PM=[0.4, 0.3],
                    DP04_0012PE=[0.1, 5.0], DP04_0013PE=[0.2, 5.0],
                    DP04_0078PE=[1.5, 0.0], DP04_0079PE=[0.5, 0.0],
                    S2503_C01_001E=[400, 800], S2503_C01_028E=[10, 20], S2503_C01_032E=[10, 20],
                    S2503_C01_036E=[10, 20], S2503_C01_040E=[10, 20],
                    B16005_001E=[950, 1900], S0601_C01_033E=[12.3, 4.5], S2701_C05_001E=[7.7, 3.1])
    svi = compute_svi(frame, release=2022, reference="nation").set_index("GEOID")
    first = svi.loc["10001000100"]
    # Changed in 2022: minority status as total minus non-Hispanic White alone ...
    assert first["E_MINRTY"] == 400 and first["M_MINRTY"] == 64  # floor(sqrt(50^2 + 40^2))
    assert svi["EP_MINRTY"].tolist() == [40.0, 75.0] and first["MP_MINRTY"] == 4.0
    # ... children, single parents, multi-unit and crowding from DP05/DP02/DP04 percents.
    assert svi["EP_AGE17"].tolist() == [22.4, 18.0]
    assert first["E_SNGPNT"] == 25 and svi["EP_SNGPNT"].tolist() == [7.5, 9.0]
    assert first["MP_SNGPNT"] == 0.5  # sqrt(0.3^2 + 0.4^2)
    assert svi["EP_MUNIT"].tolist() == [0.3, 10.0] and svi["EP_CROWD"].tolist() == [2.0, 0.0]
    # Unchanged: housing burden and limited English are ratios, no diploma and uninsured the
    # subject tables' published percents.
    assert svi["EP_HBURD"].tolist() == [10.0, 10.0]
    assert svi["EP_LIMENG"].tolist() == [round(100 * 1600 / 950, 1), round(100 * 1600 / 1900, 1)]
    assert svi["EP_NOHSDP"].tolist() == [12.3, 4.5] and svi["EP_UNINSUR"].tolist() == [7.7, 3.1]
    assert svi["EPL_MINRTY"].tolist() == [0.0, 1.0]


def test_2022_needs_its_own_variables():
    names = svi_variables(2022)
    assert {"DP05_0019E", "DP05_0079PE", "DP02_0007PM", "DP04_0078PE"} <= set(names)
    assert not {"B09001_001E", "B11012_010E", "DP05_0071E"} & set(names)
    inputs = _inputs(2020, ["10001040100"])
    with pytest.raises(InputError, match=r"SVI 2022 needs: \[.*'DP02_0007E'.*'DP05_0019E'"):
        compute_svi(inputs, release=2022)


# ------------------------------------------------------------------ errors and the catalog
def test_unknown_release():
    with pytest.raises(CatalogError, match=r"release 2018 .* known releases: \[2020, 2022\]"):
        svi_variables(2018)


def test_missing_columns_are_named():
    frame = _inputs(2020, ["10001000100"]).drop(columns=["B06009_002E", "DP03_0009PM"])
    needs = r"lack 2 column\(s\) SVI 2020 needs: \['B06009_002E', 'DP03_0009PM'\]"
    with pytest.raises(InputError, match=needs):
        compute_svi(frame, release=2020)


@pytest.mark.parametrize(("geoids", "error", "message"), [
    (["1000104010"], InputError, "'1000104010' .* not an 11-digit tract or a 5-digit county"),
    (["10001040100", "10001"], InputError, "mix tracts"),
    (["10001040100", "10001040100"], InputError, "repeat"),
])
def test_bad_geoids(geoids, error, message):
    with pytest.raises(error, match=message):
        compute_svi(_inputs(2020, geoids), release=2020)


@pytest.mark.parametrize(("geoids", "level", "message"), [
    # ZCTAs of Seattle and Dover passed as counties: no state 98; Iowa has no county 901.
    (["98101", "98102"], None, r"GEOID '98101' \(row 0\) is not a county GEOID: '98' is no state FIPS "
                               r"code; pass county GEOIDs .*not ZCTAs or ZIP codes"),
    (["10001", "19901"], "county", r"GEOID '19901' \(row 1\) is not a county GEOID: '901' is no "
                                   r"county FIPS code \(001 to 840\)"),
    (["43001040100"], "tract", r"'43' is no state FIPS code"),
    (["10000040100"], None, r"'000' is no county FIPS code"),
    (["10001040100", "10001040200"], "county", r"level='county', but the GEOIDs are tract GEOIDs"),
])
def test_geoids_of_no_state_or_county_are_refused(geoids, level, message):
    with pytest.raises(InputError, match=message):
        compute_svi(_inputs(2020, geoids), release=2020, reference="state", level=level)


def test_declared_states_admit_the_demo_region():
    svi = compute_svi(_inputs(2020, ["99001", "99003"]), release=2020, states=["99"])
    assert svi["GEOID"].tolist() == ["99001", "99003"]
    with pytest.raises(InputError, match="'99' is no state FIPS code"):
        compute_svi(_inputs(2020, ["99001", "99003"]), release=2020)


def test_geoids_must_be_strings_and_reference_known():
    frame = _inputs(2020, ["10001040100", "10001040200"])
    with pytest.raises(TypeError, match="zero-padded strings"):
        compute_svi(frame.assign(GEOID=[10001040100, 10001040200]), release=2020)
    with pytest.raises(InputError, match="reference='planet'"):
        compute_svi(frame, release=2020, reference="planet")
    with pytest.raises(InputError, match="its own reference"):
        compute_svi(_inputs(2020, ["10001", "10003"]), release=2020, reference="county")


def test_catalog_equity_metadata():
    cat = load_svi_catalog()
    assert cat.equity("EP_MINRTY")["proxy_for"] == ("ethnicity", "race")
    assert cat.equity("RPL_THEME3")["fairness_role"] == "stratifier_only"
    assert "language" in cat.equity("EP_LIMENG")["proxy_for"]
    assert cat.equity("EP_AGE65")["proxy_for"] == cat.equity("EPL_AGE17")["proxy_for"] == ("age",)
    assert cat.equity("EP_DISABL")["proxy_for"] == ("disability",)
    assert {"race", "age", "disability"} <= set(cat.equity("RPL_THEMES")["proxy_for"])
    assert cat.equity("EPL_POV150")["measure_type"] == "percentile_rank"
    assert cat.license.startswith("Public domain")
    assert all(len(v.releases) == 2 for v in cat.variables) and len(cat.variables) == 16


# ------------------------------------------------------------------ ingestion and publishing
def _replay_tree(inputs: pd.DataFrame, root):
    """The Delaware inputs as the Census Data API serves them: one file per ACS dataset."""
    datasets = {"acs/acs5": "B", "acs/acs5/subject": "S", "acs/acs5/profile": "DP"}
    geo = [inputs["GEOID"].str[:2], inputs["GEOID"].str[2:5], inputs["GEOID"].str[5:]]
    for dataset, prefix in datasets.items():
        columns = [c for c in inputs.columns if c.startswith(prefix) and
                   not (prefix == "S" and c.startswith("DP"))]
        rows = [[*columns, "state", "county", "tract"]]
        values = inputs[columns].astype(object).where(inputs[columns].notna(), None)  # null
        rows += [[*v, *codes] for v, *codes in zip(values.to_numpy().tolist(), *geo, strict=True)]
        path = root / "2020" / dataset / "tract.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows))
    return root


def test_ingest_svi_through_the_api_publishes_cdc_ranks(real_data, tmp_path):
    """Delaware's real inputs, pulled by the real client, give CDC's published ranks."""
    inputs = pd.read_csv(real_data / "de_acs2020_findsvi" / "de_tract_acs5_2020_svi_inputs.csv",
                         dtype=str).drop(columns="NAME")
    computed_ws, file_ws = Workspace(tmp_path / "computed"), Workspace(tmp_path / "file")
    with CensusReplayServer(_replay_tree(inputs, tmp_path / "api")) as server:
        result = ingest_svi("tract", 2020, "DE", reference="state", workspace=computed_ws,
                            client=CensusClient(base_url=server.base_url))
    assert result.n_rows == 262
    official = real_data / "de_svi2020" / "cdc_svi2020_delaware_tract.csv"
    ingest_svi_file(official, release=2020, reference="state", available_from=dt.date(2022, 12, 22),
                    workspace=file_ws)
    computed = pd.read_parquet(computed_ws.published_dir("svi_tract_state")).set_index("tract_geoid")
    published = pd.read_parquet(file_ws.published_dir("svi_tract_state")).set_index("tract_geoid")
    assert len(published) == 259
    features = [m.name for m in svi_source("state").measures]
    pd.testing.assert_frame_equal(computed.loc[published.index, features], published[features])
    assert (computed["origin"] == "computed_from_acs").all()
    assert (published["origin"] == "publisher_file").all()
    # Computed rows are available from the ACS 2016-2020 release; the file's from the day given.
    assert computed["release_ts"].dt.strftime("%Y-%m-%d").unique().tolist() == ["2022-03-17"]
    assert published["release_ts"].dt.strftime("%Y-%m-%d").unique().tolist() == ["2022-12-22"]
    water = computed.loc["10001990000"]
    assert np.isnan(water["svi_state_rpl_themes"])
    assert water["svi_state_rpl_themes_missing"] == "svi_not_computed"


def test_a_national_reference_needs_every_state(tmp_path):
    with pytest.raises(InputError, match="--state all"):
        ingest_svi("tract", 2020, "DE", reference="nation", workspace=Workspace(tmp_path))


# ------------------------------------------------------------------ 7. CDC files: columns, reference
def _cdc_state_file(real_data, tmp_path, change=None) -> Path:
    """The real Delaware state file, optionally changed (a frame -> frame function), as CSV."""
    frame = pd.read_csv(real_data / "de_svi2020" / "cdc_svi2020_delaware_tract.csv", dtype=str)
    path = tmp_path / "Delaware.csv"
    (change(frame) if change else frame).to_csv(path, index=False)
    return path


def _ingest_file(path, reference, tmp_path):
    return ingest_svi_file(path, release=2020, reference=reference,
                           available_from=dt.date(2022, 12, 22), workspace=Workspace(tmp_path / "ws"))


@pytest.mark.parametrize(("dropped", "named"), [
    (["RPL_THEMES"], "['RPL_THEMES']"),
    (["F_TOTAL", "RPL_THEMES", "EPL_POV150"], "['EPL_POV150', 'RPL_THEMES', 'F_TOTAL']"),
])
def test_svi_file_without_published_columns_names_them_all(real_data, tmp_path, dropped, named):
    path = _cdc_state_file(real_data, tmp_path, lambda f: f.drop(columns=dropped))
    with pytest.raises(InputError, match=rf"Delaware.csv: row 1 \(header\): missing column\(s\) "
                                         rf"{re.escape(named)}, which the feature store publishes"):
        _ingest_file(path, "state", tmp_path)


def test_reference_area_is_read_from_the_ranks(real_data):
    state = read_svi_file(real_data / "de_svi2020" / "cdc_svi2020_delaware_tract.csv")
    nation = read_svi_file(real_data / "phl_tracts2020" / "cdc_svi2020_us_rpl_philadelphia_tracts.csv")
    assert apparent_reference(state)[0] == "state"
    assert apparent_reference(nation) == (
        "nation", "RPL_THEME1 in state 42 runs from 0 to 0.9989, not from 0 to 1 as in a file "
                  "ranked within its state")
    assert apparent_reference(state.head(1)) is None  # one ranked tract tells nothing


def test_a_state_file_given_as_national_is_refused(real_data, tmp_path):
    path = _cdc_state_file(real_data, tmp_path)
    with pytest.raises(InputError, match=r"Delaware.csv: reference='nation' \(--reference nation\) "
                                         r"given, but the ranks look computed within the state: "
                                         r"every RPL_ column runs from 0 to 1 within each of its 1 "
                                         r"state\(s\).*pass --reference state"):
        _ingest_file(path, "nation", tmp_path)
    assert not Workspace(tmp_path / "ws").is_published("svi_tract_nation")


def test_national_ranks_given_as_a_state_file_are_refused(real_data, tmp_path):
    def national(frame):  # ranks that stop short of 0 and 1 within the state, as in CDC's US file
        ranks = [c for c in frame.columns if c.startswith("RPL_")]
        values = frame[ranks].astype(float)
        frame[ranks] = values.where(values == -999, 0.05 + 0.9 * values).round(4).astype(str)
        return frame

    path = _cdc_state_file(real_data, tmp_path, national)
    with pytest.raises(InputError, match=r"reference='state' \(--reference state\) given, but the "
                                         r"ranks look computed within the nation: RPL_THEME1 in "
                                         r"state 10 runs from 0.05 to 0.95.*pass --reference nation"):
        _ingest_file(path, "state", tmp_path)
