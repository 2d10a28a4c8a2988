"""ZIP crosswalks: UDS ZIP-to-ZCTA and HUD ZIP-to-tract/county files, and ZIP-level links.

The files are generated here in the publishers' layouts (header spellings and values as the
real files have them, see sdoh_sources/catalog/zip_crosswalks.yaml); rows quote real ZIPs.
"""

import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from ingestion.core.errors import InputError
from ingestion.geo.zip_crosswalk import (
    ALLOCATION_COLUMNS,
    CROSSWALK_COLUMNS,
    ZIP_LINK_COLUMNS,
    ZIP_LINK_MISSING_REASONS,
    detect_style,
    read_zip_crosswalk,
    zip_allocations,
    zip_links,
)
from sdoh_sources.errors import SdohError

# UDS 2016-2021 layout (values as in 2019/2020: "ZIP Code Area", "ZIP Matches ZCTA").
UDS_2021 = """ZIP_CODE,PO_NAME,STATE,ZIP_TYPE,ZCTA,zip_join_type
501,Holtsville,NY,Post Office or large volume customer,11742,Spatial join to ZCTA
00601,Adjuntas,PR,ZIP Code Area,00601,ZIP Matches ZCTA
1001,Agawam,MA,ZIP Code Area,1001,ZIP Matches ZCTA
96939,Ngerulmud,PW,ZIP Code Area,No ZCTA,"territory ZIP, no ZCTA available"
08540,Princeton,NJ,ZIP Code Area,08540,ZIP Matches ZCTA
"""

# UDS 2022: lower-case "zcta" header, "Zip Code Area", "Zip matches ZCTA".
UDS_2022 = """ZIP_CODE,PO_NAME,STATE,ZIP_TYPE,zcta,zip_join_type
00501,Holtsville,NY,Post Office or large volume customer,11742,Spatial join to ZCTA
00611,Angeles,PR,Post Office or large volume customer,00611,Zip matches ZCTA
00601,Adjuntas,PR,Zip Code Area,00601,Zip matches ZCTA
"""

# UDS 2015: ZIP, ZIPType, CityName, StateAbbr, ENC_ZIP and ZCTA_USE (which differ for 00616).
UDS_2015 = """ZIP,ReportingYear,ZIPType,CityName,StateName,StateAbbr,ENC_ZIP,ZCTA_USE
00616,2015,Post Office or large volume customer,Bajadero,,PR,00612,00616
00601,2015,ZIP Code Area,Adjuntas,,PR,00601,00601
"""

# UDS 2014: no join type column, "ZIP Code area", a ZIP that lost its leading zero.
UDS_2014 = """ZIP,PO_NAME,STATE,ZIP_TYPE,ZCTA
4691,Whitefield,ME,ZIP Code area,4691
00604,Aguadilla,PR,Post Office or large volume customer,00603
"""

# UDS 2012-2013: ZIPType codes, StateAbbr sometimes empty with StateName filled.
UDS_2012 = """ZIP,CityName,StateName,StateAbbr,ZIPType,ZCTA_USE
00601,ADJUNTAS,,PR,S,00601
09001,APO,Armed Forces Europe,,M,N/A
00604,AGUADILLA,,PR,P,00603
"""

HUD_TRACT = """ZIP,TRACT,USPS_ZIP_PREF_CITY,USPS_ZIP_PREF_STATE,RES_RATIO,BUS_RATIO,OTH_RATIO,TOT_RATIO
03870,33015066000,RYE,NH,0.0042,0.01,0,0.005
03870,33015071000,RYE,NH,0.9958,0.99,1,0.995
35004,1115040100,MOODY,AL,1,1,1,1
00501,36103158607,HOLTSVILLE,NY,0,1,0,1
"""

# Lower-case HUD headers; Excel-style numeric ZIP and county (leading zeros lost).
HUD_COUNTY = """zip,county,usps_zip_pref_city,usps_zip_pref_state,res_ratio,bus_ratio,oth_ratio,tot_ratio
601,72081,ADJUNTAS,PR,0.002547987,0.005063291,0.012195122,0.002947564
601,72001,ADJUNTAS,PR,0.997452013,0.994936709,0.987804878,0.997052436
1001,25013,AGAWAM,MA,1,1,1,1
"""


def write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def uds(tmp_path):
    return read_zip_crosswalk(write(tmp_path, "ZIPCodetoZCTACrosswalk2021UDS.csv", UDS_2021),
                              boundary_year=2020)


@pytest.fixture
def hud_tract(tmp_path):
    return read_zip_crosswalk(write(tmp_path, "ZIP_TRACT_122023.csv", HUD_TRACT))


# -- reading ------------------------------------------------------------------------------------


def test_uds_2021_layout_reads_into_canonical_columns(uds):
    assert tuple(uds.columns) == CROSSWALK_COLUMNS
    assert uds["zip"].tolist() == ["00501", "00601", "01001", "96939", "08540"]
    assert uds["geoid"].tolist()[:3] == ["11742", "00601", "01001"]
    assert pd.isna(uds["geoid"].iloc[3])  # "No ZCTA"
    assert uds["join_type"].tolist() == ["spatial_join_to_zcta", "zip_matches_zcta",
                                         "zip_matches_zcta", "no_zcta", "zip_matches_zcta"]
    assert uds["zip_type"].iloc[0] == "post_office_or_large_volume_customer"
    assert uds["nonresidential_zip"].tolist() == [True, False, False, False, False]
    assert uds["crosswalk_vintage"].iloc[0] == "2021"
    assert uds["boundary_year"].tolist() == [2020] * 5
    assert uds["source_row"].tolist() == [2, 3, 4, 5, 6]
    assert uds["target_level"].unique().tolist() == ["zcta"]
    assert uds["res_ratio"].isna().all()


def test_uds_2022_lowercase_zcta_and_new_value_spellings(tmp_path):
    xw = read_zip_crosswalk(write(tmp_path, "ZIPCodetoZCTACrosswalk2022UDS.csv", UDS_2022))
    assert xw["geoid"].tolist() == ["11742", "00611", "00601"]
    assert xw["join_type"].tolist() == ["spatial_join_to_zcta", "zip_matches_zcta", "zip_matches_zcta"]
    assert xw["zip_type"].iloc[2] == "zip_code_area"
    assert xw["join_type_raw"].iloc[1] == "Zip matches ZCTA"  # the file's own value is kept
    assert xw["boundary_year"].isna().all()  # a UDS file does not say its ZCTA vintage


def test_uds_2015_layout_uses_zcta_use_not_enc_zip(tmp_path):
    xw = read_zip_crosswalk(write(tmp_path, "uds2015.csv", UDS_2015))
    assert xw.set_index("zip").loc["00616", "geoid"] == "00616"  # ENC_ZIP says 00612
    assert xw["po_name"].tolist() == ["Bajadero", "Adjuntas"]
    assert xw["join_type"].unique().tolist() == ["not_recorded"]


def test_uds_2014_pads_a_zip_that_lost_its_leading_zero(tmp_path):
    xw = read_zip_crosswalk(write(tmp_path, "uds2014.csv", UDS_2014))
    assert xw["zip"].tolist() == ["04691", "00604"]
    assert xw["geoid"].tolist() == ["04691", "00603"]
    assert xw["zip_type"].tolist() == ["zip_code_area", "post_office_or_large_volume_customer"]
    assert xw["join_type"].unique().tolist() == ["not_recorded"]


def test_uds_2012_codes_state_fallback_and_no_zcta(tmp_path):
    xw = read_zip_crosswalk(write(tmp_path, "uds2012.csv", UDS_2012)).set_index("zip")
    assert xw["zip_type"].tolist() == ["zip_code_area", "military", "post_office_or_large_volume_customer"]
    assert xw.loc["09001", "state"] == "Armed Forces Europe"  # StateAbbr empty: StateName
    assert pd.isna(xw.loc["09001", "geoid"])  # "N/A"
    assert bool(xw.loc["09001", "nonresidential_zip"]) is True


def test_hud_tract_pads_tracts_and_infers_boundary_from_the_quarter(hud_tract):
    assert hud_tract["geoid"].tolist() == ["33015066000", "33015071000", "01115040100", "36103158607"]
    assert hud_tract["target_level"].unique().tolist() == ["tract"]
    assert hud_tract["crosswalk_vintage"].iloc[0] == "2023-12"
    assert hud_tract["boundary_year"].unique().tolist() == [2020]
    assert hud_tract["res_ratio"].tolist() == [0.0042, 0.9958, 1.0, 0.0]
    assert hud_tract["join_type"].isna().all()
    assert hud_tract["po_name"].iloc[0] == "RYE"


def test_hud_county_lowercase_headers_and_numeric_zips(tmp_path):
    xw = read_zip_crosswalk(write(tmp_path, "ZIP_COUNTY_122019.csv", HUD_COUNTY))
    assert xw["style"].unique().tolist() == ["hud_county"]
    assert xw["zip"].tolist() == ["00601", "00601", "01001"]
    assert xw["geoid"].tolist() == ["72081", "72001", "25013"]
    assert xw["boundary_year"].unique().tolist() == [2010]


@pytest.mark.parametrize(("text", "style"), [
    (UDS_2021, "uds_zcta"), (UDS_2022, "uds_zcta"), (UDS_2015, "uds_zcta"),
    (UDS_2014, "uds_zcta"), (UDS_2012, "uds_zcta"), (HUD_TRACT, "hud_tract"),
    (HUD_COUNTY, "hud_county"),
])
def test_style_is_detected_from_the_header(tmp_path, text, style):
    assert detect_style(text.splitlines()[0].split(",")) == style
    assert read_zip_crosswalk(write(tmp_path, "x.csv", text))["style"].iloc[0] == style


def test_an_explicit_style_must_fit_the_header(tmp_path):
    path = write(tmp_path, "x.csv", UDS_2021)
    with pytest.raises(InputError, match=r"x\.csv: row 1 \(header\): a hud_tract crosswalk needs"):
        read_zip_crosswalk(path, style="hud_tract")


def test_an_unknown_header_names_the_styles(tmp_path):
    path = write(tmp_path, "x.csv", "POSTCODE,AREA\n08540,08540\n")
    with pytest.raises(InputError, match="fit no ZIP crosswalk style.*pass style="):
        read_zip_crosswalk(path)


def test_unknown_columns_warn_rather_than_vanish(tmp_path):
    text = UDS_2021.replace("zip_join_type", "zip_join_kind")
    with pytest.warns(UserWarning, match=r"\['zip_join_kind'\] are not part of the uds_zcta layout"):
        xw = read_zip_crosswalk(write(tmp_path, "x.csv", text))
    assert xw["join_type"].unique().tolist() == ["not_recorded"]


# -- malformed files: the error names file, row and field ----------------------------------------


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad_zip.csv", UDS_2021.replace("00601,Adjuntas", "1234A,Adjuntas"),
     r"bad_zip\.csv: row 3, field 'ZIP_CODE': '1234A' is not a ZIP code"),
    ("empty_zip.csv", UDS_2021.replace("00601,Adjuntas", ",Adjuntas"),
     r"empty_zip\.csv: row 3, field 'ZIP_CODE': '' is empty"),
    ("bad_zcta.csv", UDS_2022.replace(",00611,", ",0611X,"),
     r"bad_zcta\.csv: row 3, field 'zcta': '0611X' is not a ZCTA code"),
    ("dup.csv", UDS_2021 + "00601,Adjuntas,PR,ZIP Code Area,00602,Spatial join to ZCTA\n",
     r"dup\.csv: row 7, field 'ZIP_CODE': ZIP 00601 is listed again \(first at row 3\)"),
    ("zip_type.csv", UDS_2021.replace("ZIP Code Area,00601", "Unique,00601"),
     r"zip_type\.csv: row 3, field 'ZIP_TYPE': 'Unique' is not a known zip type.*zip_crosswalks\.yaml"),
    ("join.csv", UDS_2021.replace("00601,ZIP Matches ZCTA", "00601,Nearest ZCTA"),
     r"join\.csv: row 3, field 'zip_join_type': 'Nearest ZCTA' is not a known join type"),
    ("contradiction.csv", UDS_2021.replace("No ZCTA", "96940"),
     r"contradiction\.csv: row 5, field 'zip_join_type'.*says no ZCTA"),
    ("ratio.csv", HUD_TRACT.replace("0.9958,0.99", "1.2,0.99"),
     r"ratio\.csv: row 3, field 'RES_RATIO': '1.2' is outside 0-1"),
    ("negative.csv", HUD_TRACT.replace("0,1,0,1\n", "0,1,-0.5,1\n"),
     r"negative\.csv: row 5, field 'OTH_RATIO': '-0.5' is outside 0-1"),
    ("nan.csv", HUD_TRACT.replace("0.0042", "n/a"),
     r"nan\.csv: row 2, field 'RES_RATIO': 'n/a' is not a number"),
    ("tract.csv", HUD_TRACT.replace("1115040100", "11150401"),
     r"tract\.csv: row 4, field 'TRACT': '11150401' is not a TRACT code: expected 11 digits"),
    ("pair.csv", HUD_TRACT + "03870,33015071000,RYE,NH,0.1,0,0,0.1\n",
     r"pair\.csv: row 6, field 'TRACT': ZIP 03870 and 33015071000 are listed again \(first at row 3\)"),
    ("empty_tract.csv", HUD_TRACT.replace("35004,1115040100", "35004,"),
     r"empty_tract\.csv: row 4, field 'TRACT': '' a tract GEOID is required"),
])
def test_malformed_rows_name_file_row_and_field(tmp_path, name, text, message):
    with pytest.raises(InputError, match=message):
        read_zip_crosswalk(write(tmp_path, name, text))


def test_the_error_counts_further_bad_rows(tmp_path):
    text = UDS_2021.replace("00601,Adjuntas", "0060A,Adjuntas").replace("1001,Agawam", "10O1,Agawam")
    more = r"row 3, .*\(1 more row\(s\) with this problem, e\.g\. row\(s\) 4\)"
    with pytest.raises(InputError, match=more):
        read_zip_crosswalk(write(tmp_path, "x.csv", text))


def test_errors_are_sdoh_errors_and_value_errors(tmp_path):
    with pytest.raises(SdohError):
        read_zip_crosswalk(write(tmp_path, "x.csv", UDS_2021.replace("501,", "50A,")))
    with pytest.raises(ValueError):
        read_zip_crosswalk(write(tmp_path, "y.csv", UDS_2021.replace("501,", "50A,")))


def test_a_zip_repeated_with_no_zcta_keeps_the_row_with_one(tmp_path):
    # The 2019 file lists 96898 (Wake Island) twice, once with "No ZCTA".
    po = "96898,Wake Island,HI,Post Office or large volume customer"
    text = UDS_2021 + (f"{po},96819,Spatial join to ZCTA\n"
                       f"{po},No ZCTA,\"territory ZIP, no ZCTA available\"\n")
    with pytest.warns(UserWarning, match="ZIP 96898 is listed 2 times.*keeping row 7"):
        xw = read_zip_crosswalk(write(tmp_path, "x.csv", text))
    assert xw.set_index("zip").loc["96898", "geoid"] == "96819"
    assert xw["zip"].is_unique


def test_hud_ratio_sums_above_one_warn(tmp_path):
    text = HUD_TRACT.replace("0.0042,0.01", "0.5,0.01")
    with pytest.warns(UserWarning, match="RES_RATIO of 1 ZIP\\(s\\) sum to more than 1"):
        read_zip_crosswalk(write(tmp_path, "x.csv", text))


def test_hud_file_name_and_boundary_year(tmp_path):
    old = write(tmp_path, "ZIP_TRACT_122011.csv", HUD_TRACT)
    with pytest.raises(InputError, match="2000 Census geographies"):
        read_zip_crosswalk(old)
    recent = write(tmp_path, "ZIP_TRACT_032023.csv", HUD_TRACT)
    assert read_zip_crosswalk(recent)["boundary_year"].iloc[0] == 2020
    with pytest.raises(InputError, match="2023-03 HUD data on 2020 Census geographies, but "
                                         "boundary_year=2010"):
        read_zip_crosswalk(recent, boundary_year=2010)
    late_2022 = write(tmp_path, "ZIP_TRACT_122022.csv", HUD_TRACT)
    assert read_zip_crosswalk(late_2022)["boundary_year"].iloc[0] == 2010


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"style": "zcta"}, "style must be one of"),
    ({"boundary_year": 2000}, "boundary_year must be one of"),
])
def test_bad_arguments_are_value_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        read_zip_crosswalk(write(tmp_path, "x.csv", UDS_2021), **kwargs)


def test_blank_rows_are_skipped_and_row_numbers_stay_true(tmp_path):
    text = UDS_2021.replace("00601,Adjuntas", ",,,,,\n00601,Adjuntas")
    xw = read_zip_crosswalk(write(tmp_path, "x.csv", text))
    assert xw.set_index("zip").loc["00601", "source_row"] == 4


def test_latin1_csv_and_gzip(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(UDS_2021.replace("Adjuntas", "Añasco").encode("latin-1"))
    assert read_zip_crosswalk(path)["po_name"].iloc[1] == "Añasco"
    gz = tmp_path / "y.csv.gz"
    pd.read_csv(write(tmp_path, "z.csv", UDS_2021), dtype=str).to_csv(gz, index=False)
    assert read_zip_crosswalk(gz)["zip"].iloc[0] == "00501"


def test_legacy_xls_and_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"\.xls workbooks are not read.*save it as \.xlsx or CSV"):
        read_zip_crosswalk(tmp_path / "ZIPCodetoZCTACrosswalk2010UDS.xls")
    with pytest.raises(InputError, match="no such file"):
        read_zip_crosswalk(tmp_path / "absent.csv")


def test_xlsx_without_openpyxl_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # import openpyxl now fails
    path = tmp_path / "ZIP_TRACT_122023.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(InputError, match="needs the openpyxl package.*save the sheet as CSV"):
        read_zip_crosswalk(path)


def test_xlsx_numeric_cells_and_sheet_choice(tmp_path):
    pytest.importorskip("openpyxl")
    path = tmp_path / "ZIPCodetoZCTACrosswalk2021UDS.xlsx"
    data = pd.read_csv(pd.io.common.StringIO(UDS_2021), dtype=str)
    data["ZIP_CODE"] = pd.to_numeric(data["ZIP_CODE"])  # Excel stores ZIPs as numbers
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        about = pd.DataFrame({"note": ["ZIP Code to ZCTA Crosswalk"]})
        about.to_excel(writer, sheet_name="About", index=False)
        data.to_excel(writer, sheet_name="ziptozcta2020", index=False)
    xw = read_zip_crosswalk(path)
    assert xw["zip"].tolist() == ["00501", "00601", "01001", "96939", "08540"]
    assert xw["source_row"].tolist() == [2, 3, 4, 5, 6]


# -- linking ------------------------------------------------------------------------------------


def test_zip_links_uds(uds):
    zips = pd.Series(["00501", "00601-1234", "96939", "99999", None, "1234A", "  ", "085401234"],
                     index=list("abcdefgh"))
    links = zip_links(zips, uds)
    assert tuple(links.columns) == ZIP_LINK_COLUMNS
    assert links.index.tolist() == list("abcdefgh")
    assert links["zcta_geoid"].tolist()[:2] == ["11742", "00601"]
    assert links["zcta_geoid"].iloc[7] == "08540"
    assert links["link_missing"].fillna("").tolist() == [
        "", "", "zip_has_no_zcta", "zip_not_in_crosswalk", "no_zip", "invalid_zip", "no_zip", ""]
    assert links["link_method"].tolist() == ["zip_crosswalk", "zip_crosswalk", "none", "none",
                                             "none", "none", "none", "zip_crosswalk"]
    assert links["precision"].tolist() == ["zip", "zip", "zip", "zip", "none", "none", "none", "zip"]
    assert links["boundary_year"].iloc[0] == 2020
    assert links["tract_geoid"].isna().all() and links["county_geoid"].isna().all()
    assert links["ratio"].isna().all()
    assert links["crosswalk_style"].unique().tolist() == ["uds_zcta"]
    assert links["crosswalk_vintage"].unique().tolist() == ["2021"]


def test_po_box_zips_link_to_the_crosswalk_zcta_but_are_flagged(uds):
    link = zip_links(pd.Series(["00501"]), uds).iloc[0]
    assert link["zcta_geoid"] == "11742"
    assert link["link_method"] == "zip_crosswalk" and pd.isna(link["link_missing"])
    assert link["join_type"] == "spatial_join_to_zcta"
    assert link["zip_type"] == "post_office_or_large_volume_customer"
    assert bool(link["nonresidential_zip"]) is True


def test_numeric_zips_get_their_leading_zeros_back(uds):
    links = zip_links(pd.Series([501, 1001, 8540.0, np.nan, 8540.5, 123456]), uds)
    assert links["zip"].tolist()[:3] == ["00501", "01001", "08540"]
    assert links["zcta_geoid"].tolist()[:3] == ["11742", "01001", "08540"]
    assert links["link_missing"].tolist()[3:] == ["no_zip", "invalid_zip", "invalid_zip"]


def test_a_zip_only_link_never_has_block_group_or_coordinate_precision(uds, hud_tract):
    for xw in (uds, hud_tract):
        links = zip_links(pd.Series(["00501", "03870", "99999", "x"]), xw)
        assert not any("block_group" in c for c in links.columns)
        assert set(links["precision"]) <= {"zip", "none"}


def test_zip_links_hud_main_tract_is_the_largest_residential_share(hud_tract):
    links = zip_links(pd.Series(["03870", "35004", "00501", "10001"]), hud_tract)
    assert links["tract_geoid"].tolist()[:3] == ["33015071000", "01115040100", "36103158607"]
    assert links["county_geoid"].tolist()[:3] == ["33015", "01115", "36103"]
    assert links["zcta_geoid"].isna().all()
    assert links["join_type"].tolist()[:3] == ["hud_max_res_ratio", "hud_max_res_ratio",
                                               "hud_max_tot_ratio"]
    assert links["ratio"].tolist()[:3] == [0.9958, 1.0, 1.0]
    assert links["ratio_basis"].tolist()[:3] == ["res_ratio", "res_ratio", "tot_ratio"]
    assert links["candidates"].tolist()[:3] == [2, 1, 1]
    assert links["nonresidential_zip"].tolist()[:3] == [False, False, True]
    assert links["link_missing"].iloc[3] == "zip_not_in_crosswalk"  # e.g. a PO-box-only ZIP
    assert links["boundary_year"].iloc[0] == 2020


def test_hud_ties_break_on_total_ratio_then_geoid(tmp_path):
    text = ("ZIP,TRACT,RES_RATIO,TOT_RATIO\n"
            "10001,36061000200,0.5,0.4\n10001,36061000100,0.5,0.6\n"
            "10002,36061000400,0.5,0.5\n10002,36061000300,0.5,0.5\n")
    links = zip_links(pd.Series(["10001", "10002"]), read_zip_crosswalk(write(tmp_path, "x.csv", text)))
    assert links["tract_geoid"].tolist() == ["36061000100", "36061000300"]


def test_hud_county_links(tmp_path):
    xw = read_zip_crosswalk(write(tmp_path, "ZIP_COUNTY_122019.csv", HUD_COUNTY))
    links = zip_links(pd.Series([601, "01001"]), xw)
    assert links["county_geoid"].tolist() == ["72001", "25013"]
    assert links["tract_geoid"].isna().all()
    assert links["ratio"].iloc[0] == pytest.approx(0.997452013)


def test_zip_allocations_hud_one_to_many(hud_tract):
    alloc = zip_allocations(pd.Series(["03870", "99999", "00501"], index=[10, 11, 12]), hud_tract)
    assert tuple(alloc.columns) == ALLOCATION_COLUMNS
    rye = alloc[alloc["zip"] == "03870"]
    assert rye["input_index"].tolist() == [10, 10]
    assert rye["tract_geoid"].tolist() == ["33015071000", "33015066000"]
    assert rye["weight"].sum() == pytest.approx(1.0)
    assert rye["weight"].tolist() == pytest.approx([0.9958, 0.0042])
    assert rye["main_link"].tolist() == [True, False]
    assert rye["weight_basis"].unique().tolist() == ["res_ratio"]
    assert 11 not in alloc["input_index"].tolist()  # not in the crosswalk: zip_links says why
    business = alloc[alloc["zip"] == "00501"].iloc[0]
    assert business["weight_basis"] == "tot_ratio" and business["weight"] == 1.0


def test_zip_allocations_normalise_rounded_ratios(tmp_path):
    text = "ZIP,TRACT,RES_RATIO,TOT_RATIO\n10001,36061000100,0.6,0.6\n10001,36061000200,0.39,0.4\n"
    alloc = zip_allocations(pd.Series(["10001"]), read_zip_crosswalk(write(tmp_path, "x.csv", text)))
    assert alloc["weight"].sum() == pytest.approx(1.0)
    assert alloc["res_ratio"].tolist() == [0.6, 0.39]


def test_zip_allocations_uds_is_one_to_one(uds):
    alloc = zip_allocations(pd.Series(["00601", "96939"]), uds)
    assert alloc["zcta_geoid"].tolist() == ["00601"]  # 96939 has no ZCTA
    assert alloc["weight"].tolist() == [1.0] and alloc["main_link"].tolist() == [True]


def test_zip_links_checks_its_arguments(uds):
    with pytest.raises(TypeError, match="zips must be a pandas Series"):
        zip_links(["00501"], uds)
    with pytest.raises(TypeError, match="crosswalk must be a pandas DataFrame"):
        zip_links(pd.Series(["00501"]), {"zip": []})
    with pytest.raises(ValueError, match="lacks column"):
        zip_links(pd.Series(["00501"]), uds.drop(columns="geoid"))
    mixed = pd.concat([uds, uds.assign(style="hud_tract")])
    with pytest.raises(ValueError, match="mixes styles"):
        zip_links(pd.Series(["00501"]), mixed)


def test_empty_inputs(uds):
    assert zip_links(pd.Series([], dtype="string"), uds).empty
    assert zip_allocations(pd.Series([], dtype="string"), uds).empty
    links = zip_links(pd.Series(["00501"]), uds.iloc[0:0])
    assert links["link_missing"].tolist() == ["zip_not_in_crosswalk"]


# -- the catalog -----------------------------------------------------------------------------


def test_the_catalog_vocabularies_are_consistent():
    from importlib import resources

    text = resources.files("sdoh_sources").joinpath("catalog", "zip_crosswalks.yaml").read_text()
    cat = yaml.safe_load(text)
    for style in cat["styles"].values():
        assert set(style.get("zip_types", {}).values()) <= set(cat["zip_types"])
        assert set(style.get("join_types", {}).values()) <= set(cat["join_types"])
    # Every join type zip_links can write is documented in the catalog.
    assert {"hud_max_res_ratio", "hud_max_tot_ratio", "not_recorded"} <= set(cat["join_types"])


def test_missing_reasons_are_the_documented_ones(uds):
    zips = pd.Series(["00501", "96939", "99999", None, "bad"])
    reasons = set(zip_links(zips, uds)["link_missing"].dropna())
    assert reasons == set(ZIP_LINK_MISSING_REASONS)
