"""Tests of ingestion.geo.boundaries: TIGER/Line zips and other files normalized to geoid + geometry."""

from __future__ import annotations

import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from needs import real_path

from ingestion.core.errors import InputError
from ingestion.geo.boundaries import load_boundaries, load_boundary_set
from ingestion.geo.linking import link_addresses

PHL_TRACTS = ("phl_tracts2020", "philadelphia_tracts_2020.geojson")
CITY_HALL = shapely.Point(-75.1635, 39.9526)


def _squares(n: int = 3) -> list[shapely.Polygon]:
    return [shapely.box(-75 + i, 39, -74 + i, 40) for i in range(n)]


def tiger_frame(*, year: int, geoid_field: str = "GEOID", n: int = 3,
                geoids: list[str] | None = None) -> gpd.GeoDataFrame:
    """Columns named as in the TIGER/Line block-group shapefiles of ``year``."""
    sfx = "10" if year == 2010 else ""
    geoids = geoids or [f"99001000100{i + 1}" for i in range(n)]
    return gpd.GeoDataFrame({
        f"STATEFP{sfx}": [g[:2] for g in geoids],
        f"COUNTYFP{sfx}": [g[2:5] for g in geoids],
        f"TRACTCE{sfx}": [g[5:11] for g in geoids],
        f"BLKGRPCE{sfx}": [g[11:] for g in geoids],
        geoid_field: geoids,
        f"NAMELSAD{sfx}": [f"Block Group {g[11:]}" for g in geoids],
        f"ALAND{sfx}": np.arange(len(geoids), dtype="int64") * 1000,
    }, geometry=_squares(len(geoids)), crs="EPSG:4269")


def write_tiger_zip(frame: gpd.GeoDataFrame, folder: Path, stem: str) -> Path:
    """Write ``frame`` as ``stem``.shp with its sidecars, zipped as TIGER distributes it."""
    shp_dir = folder / f"{stem}_shp"
    shp_dir.mkdir()
    frame.to_file(shp_dir / f"{stem}.shp", engine="pyogrio")
    path = folder / f"{stem}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for part in sorted(shp_dir.iterdir()):
            archive.write(part, part.name)
    return path


@pytest.mark.parametrize(("year", "geoid_field", "stem"), [
    (2020, "GEOID", "tl_2020_99_bg"),
    (2020, "GEOID20", "tl_2020_99_bg20"),
    (2010, "GEOID10", "tl_2010_99_bg10"),
])
def test_tiger_zip_loads_and_normalizes(tmp_path, year, geoid_field, stem):
    path = write_tiger_zip(tiger_frame(year=year, geoid_field=geoid_field), tmp_path, stem)
    out = load_boundaries(path, level="block_group", boundary_year=year)
    assert list(out.columns) == ["geoid", "geometry"]
    assert out["geoid"].tolist() == ["990010001001", "990010001002", "990010001003"]
    assert str(out["geoid"].dtype) == "string"
    assert out.crs.to_epsg() == 4269
    assert out.geometry.is_valid.all()
    assert out.attrs == {"level": "block_group", "boundary_year": year,
                         "source_file": str(path)}


def test_rows_are_sorted_by_geoid(tmp_path):
    frame = tiger_frame(year=2020, geoids=["420030001003", "010010201001", "420030001001"])
    path = write_tiger_zip(frame, tmp_path, "tl_2020_99_bg")
    out = load_boundaries(path, level="block_group", boundary_year=2020)
    assert out["geoid"].tolist() == ["010010201001", "420030001001", "420030001003"]


def test_bad_geoid_names_file_and_row(tmp_path):
    frame = tiger_frame(year=2020)
    frame.loc[1, "GEOID"] = "99001000100"  # 11 digits: a tract GEOID in a block-group file
    frame.loc[2, "GEOID"] = "9900100010x3"
    path = write_tiger_zip(frame, tmp_path, "tl_2020_99_bg")
    with pytest.raises(InputError, match=r"tl_2020_99_bg\.zip: row 2 .*field GEOID: GEOID "
                                         r"'99001000100' is not a 12-digit block_group GEOID "
                                         r"\(2 bad rows.*looks like a tract GEOID"):
        load_boundaries(path, level="block_group", boundary_year=2020)


@pytest.mark.parametrize("value", [None, "", "12345678901234"])
def test_missing_or_long_geoid_is_rejected(tmp_path, value):
    frame = tiger_frame(year=2020)
    frame.loc[0, "GEOID"] = value
    path = tmp_path / "bg.geojson"
    frame.to_file(path)
    with pytest.raises(InputError, match=r"bg\.geojson: row 1 .*field GEOID"):
        load_boundaries(path, level="block_group", boundary_year=2020)


def test_other_vintage_geoid_field_is_refused(tmp_path):
    path = write_tiger_zip(tiger_frame(year=2010, geoid_field="GEOID10"), tmp_path,
                           "tl_2010_99_bg10")
    with pytest.raises(InputError, match=r"field GEOID10 belongs to another boundary vintage "
                                         r"than boundary_year=2020"):
        load_boundaries(path, level="block_group", boundary_year=2020)


def test_geoid_built_from_tiger_components_when_absent(tmp_path):
    frame = tiger_frame(year=2010, geoid_field="GEOID10").drop(columns="GEOID10")
    path = write_tiger_zip(frame, tmp_path, "tl_2010_99_bg10")
    out = load_boundaries(path, level="block_group", boundary_year=2010)
    assert out["geoid"].tolist() == ["990010001001", "990010001002", "990010001003"]


def test_no_geoid_at_all(tmp_path):
    frame = gpd.GeoDataFrame({"NAME": ["a"]}, geometry=_squares(1), crs=4269)
    path = tmp_path / "noid.geojson"
    frame.to_file(path)
    with pytest.raises(InputError, match=r"noid\.geojson: no GEOID field"):
        load_boundaries(path, level="tract", boundary_year=2020)


def test_integer_geoid_gets_its_leading_zero_back(tmp_path):
    # A GeoJSON writer that took the GEOID for a number: Alabama's 01 lost its zero.
    frame = gpd.GeoDataFrame({"GEOID": [1001020100, 1001020200]}, geometry=_squares(2),
                             crs=4326)
    path = tmp_path / "al_tracts.geojson"
    frame.to_file(path)
    out = load_boundaries(path, level="tract", boundary_year=2020)
    assert out["geoid"].tolist() == ["01001020100", "01001020200"]


def test_duplicate_geoid_is_rejected(tmp_path):
    frame = tiger_frame(year=2020, geoids=["990010001001", "990010001002", "990010001001"])
    path = write_tiger_zip(frame, tmp_path, "tl_2020_99_bg")
    with pytest.raises(InputError, match=r"row 3 .*990010001001 repeats row 1"):
        load_boundaries(path, level="block_group", boundary_year=2020)


def _bowtie() -> shapely.Polygon:
    return shapely.Polygon([(-75, 39), (-74, 40), (-74, 39), (-75, 40), (-75, 39)])


def test_invalid_geometry_is_repaired(tmp_path, caplog):
    frame = tiger_frame(year=2020, n=2)
    frame.loc[1, "geometry"] = _bowtie()
    path = tmp_path / "bg.gpkg"
    frame.to_file(path)
    with caplog.at_level("WARNING", logger="ingestion.geo.boundaries"):
        out = load_boundaries(path, level="block_group", boundary_year=2020)
    assert out.geometry.is_valid.all()
    assert set(out.geom_type) <= {"Polygon", "MultiPolygon"}
    assert out.geometry.iloc[1].area == pytest.approx(0.5)
    assert "repaired 1 invalid geometries" in caplog.text


def test_invalid_geometry_raises_without_repair(tmp_path):
    frame = tiger_frame(year=2020, n=2)
    frame.loc[1, "geometry"] = _bowtie()
    path = tmp_path / "bg.gpkg"
    frame.to_file(path)
    with pytest.raises(InputError, match=r"bg\.gpkg: row 2 .*invalid geometry \(Self-inter"):
        load_boundaries(path, level="block_group", boundary_year=2020, repair=False)


def test_non_polygon_is_rejected(tmp_path):
    frame = gpd.GeoDataFrame({"GEOID": ["99001000100"]}, geometry=[shapely.Point(-75, 39)],
                             crs=4269)
    path = tmp_path / "points.geojson"
    frame.to_file(path)
    with pytest.raises(InputError, match=r"row 1 .*Point is not a polygon"):
        load_boundaries(path, level="tract", boundary_year=2020)


def test_wgs84_is_relabelled_not_moved(tmp_path):
    frame = tiger_frame(year=2020).set_crs(4326, allow_override=True)
    path = tmp_path / "bg.geojson"
    frame.to_file(path)
    out = load_boundaries(path, level="block_group", boundary_year=2020)
    assert out.crs.to_epsg() == 4269
    np.testing.assert_array_equal(out.total_bounds, frame.total_bounds)


def test_projected_crs_is_reprojected(tmp_path):
    frame = tiger_frame(year=2020)
    path = tmp_path / "bg_3857.gpkg"
    frame.to_crs(3857).to_file(path)
    out = load_boundaries(path, level="block_group", boundary_year=2020)
    assert out.crs.to_epsg() == 4269
    np.testing.assert_allclose(out.total_bounds, frame.total_bounds, atol=1e-6)


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_missing_crs_with_lonlat_coordinates_is_assumed_nad83(tmp_path):
    frame = tiger_frame(year=2020).set_crs(None, allow_override=True)
    path = write_tiger_zip(frame, tmp_path, "tl_2020_99_bg")
    out = load_boundaries(path, level="block_group", boundary_year=2020)
    assert out.crs.to_epsg() == 4269


def test_zip_with_two_shapefiles_needs_layer(tmp_path):
    first = write_tiger_zip(tiger_frame(year=2020), tmp_path, "tl_2020_98_bg")
    second = write_tiger_zip(tiger_frame(year=2020, n=2), tmp_path, "tl_2020_99_bg")
    both = tmp_path / "both.zip"
    with zipfile.ZipFile(both, "w") as out:
        for source in (first, second):
            with zipfile.ZipFile(source) as archive:
                for name in archive.namelist():
                    out.writestr(name, archive.read(name))
    with pytest.raises(InputError, match=r"holds 2 shapefiles .*pass layer="):
        load_boundaries(both, level="block_group", boundary_year=2020)
    picked = load_boundaries(both, level="block_group", boundary_year=2020,
                             layer="tl_2020_99_bg")
    assert len(picked) == 2


@pytest.mark.parametrize(("name", "content", "match"), [
    ("absent.zip", None, "boundary file not found"),
    ("broken.zip", b"not a zip", "not a readable zip file"),
    ("broken.geojson", b"{", "cannot read as a boundary file"),
])
def test_unreadable_files(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=match):
        load_boundaries(path, level="block_group", boundary_year=2020)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"level": "blockgroup", "boundary_year": 2020}, ValueError, "level must be one of"),
    ({"level": "tract", "boundary_year": "2020"}, TypeError, "boundary_year must be an int"),
])
def test_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_boundaries(tmp_path / "x.zip", **kwargs)


def test_load_boundary_set_reads_each_vintage(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    p2010 = write_tiger_zip(tiger_frame(year=2010, geoid_field="GEOID10", n=2),
                            tmp_path / "a", "tl_2010_99_bg10")
    p2020 = write_tiger_zip(tiger_frame(year=2020), tmp_path / "b", "tl_2020_99_bg")
    sets = load_boundary_set({2020: p2020, 2010: p2010})
    assert list(sets) == [2010, 2020]
    assert [len(sets[2010]), len(sets[2020])] == [2, 3]
    assert sets[2010].attrs["boundary_year"] == 2010


def test_load_boundary_set_needs_a_mapping():
    with pytest.raises(TypeError, match="must map boundary years to files"):
        load_boundary_set(["tl_2020_99_bg.zip"])


def test_real_philadelphia_tracts():
    tracts = load_boundaries(real_path(*PHL_TRACTS), level="tract", boundary_year=2020)
    assert len(tracts) == 390
    assert tracts.crs.to_epsg() == 4269
    assert tracts["geoid"].str.fullmatch(r"42101\d{6}").all()
    assert tracts.loc[tracts.intersects(CITY_HALL), "geoid"].tolist() == ["42101000500"]


# -- cartographic boundary ids, ZCTAs and counties ------------------------------------------------


def _frame(columns: dict[str, list], geometries: list[shapely.Polygon] | None = None,
           ) -> gpd.GeoDataFrame:
    n = len(next(iter(columns.values())))
    return gpd.GeoDataFrame(columns, geometry=geometries or _squares(n), crs="EPSG:4269")


@pytest.mark.parametrize(("level", "summary_level", "geoids"), [
    ("block_group", "150", ["240010001001", "240010001002"]),
    ("tract", "140", ["24001000100", "24001000200"]),
    ("county", "050", ["24001", "24003"]),
    ("zcta", "860", ["01001", "01002"]),
])
def test_2010_cartographic_geo_id_gives_the_trailing_geoid(tmp_path, level, summary_level,
                                                           geoids):
    # gz_2010_24_150_00_500k.shp: GEO_ID, STATE, COUNTY, ..., NAME, LSAD, CENSUSAREA
    frame = _frame({"GEO_ID": [f"{summary_level}0000US{g}" for g in geoids],
                    "STATE": [g[:2] for g in geoids], "NAME": ["1", "2"],
                    "LSAD": ["BG", "BG"], "CENSUSAREA": [0.5, 0.7]})
    path = write_tiger_zip(frame, tmp_path, f"gz_2010_24_{summary_level}_00_500k")
    out = load_boundaries(path, level=level, boundary_year=2010)
    assert out["geoid"].tolist() == geoids


def test_affgeoid_alone_gives_the_geoid(tmp_path):
    frame = _frame({"AFFGEOID": ["1500000US240010001002", "1500000US240010001001"]})
    path = tmp_path / "cb_2020_24_bg_500k.gpkg"
    frame.to_file(path)
    out = load_boundaries(path, level="block_group", boundary_year=2020)
    assert out["geoid"].tolist() == ["240010001001", "240010001002"]


def test_geo_id_of_another_level_is_refused(tmp_path):
    frame = _frame({"GEO_ID": ["1400000US24001000100"]}, _squares(1))
    path = write_tiger_zip(frame, tmp_path, "gz_2010_24_140_00_500k")
    with pytest.raises(InputError, match=r"field GEO_ID: GEOID '24001000100' is not a "
                                         r"12-digit block_group GEOID.*looks like a tract"):
        load_boundaries(path, level="block_group", boundary_year=2010)


@pytest.mark.parametrize(("stem", "columns", "boundary_year"), [
    ("tl_2010_us_zcta510", {"ZCTA5CE10": ["01001", "01002"], "GEOID10": ["01001", "01002"],
                            "CLASSFP10": ["B5", "B5"]}, 2010),
    ("tl_2015_us_zcta510", {"ZCTA5CE10": ["01001", "01002"], "GEOID10": ["01001", "01002"]},
     2015),
    ("tl_2020_us_zcta520", {"ZCTA5CE20": ["01001", "01002"], "GEOID20": ["01001", "01002"],
                            "CLASSFP20": ["B5", "B5"]}, 2020),
    ("tl_2022_us_zcta520", {"ZCTA5CE20": ["01001", "01002"], "GEOID20": ["01001", "01002"]},
     2022),
    ("cb_2020_us_zcta520_500k", {"ZCTA5CE20": ["01001", "01002"],
                                 "AFFGEOID20": ["8600000US01001", "8600000US01002"],
                                 "GEOID20": ["01001", "01002"]}, 2020),
    ("zcta_components_only", {"ZCTA5CE20": ["01001", "01002"]}, 2020),
])
def test_zcta_files_load(tmp_path, stem, columns, boundary_year):
    path = write_tiger_zip(_frame(columns), tmp_path, stem)
    out = load_boundaries(path, level="zcta", boundary_year=boundary_year)
    assert out["geoid"].tolist() == ["01001", "01002"]


@pytest.mark.parametrize(("stem", "columns", "boundary_year"), [
    ("tl_2010_us_county10", {"STATEFP10": ["01", "01"], "COUNTYFP10": ["001", "003"],
                             "GEOID10": ["01001", "01003"], "NAME10": ["Autauga", "Baldwin"]},
     2010),
    ("tl_2020_us_county", {"STATEFP": ["01", "01"], "COUNTYFP": ["001", "003"],
                           "GEOID": ["01001", "01003"], "NAME": ["Autauga", "Baldwin"]}, 2020),
    ("cb_2020_us_county_500k", {"AFFGEOID": ["0500000US01001", "0500000US01003"],
                                "GEOID": ["01001", "01003"]}, 2020),
    ("county_components_only", {"STATEFP": ["01", "01"], "COUNTYFP": ["001", "003"]}, 2020),
])
def test_county_files_load(tmp_path, stem, columns, boundary_year):
    frame = _frame(columns)
    path = tmp_path / f"{stem}.gpkg"
    frame.to_file(path)
    out = load_boundaries(path, level="county", boundary_year=boundary_year)
    assert out["geoid"].tolist() == ["01001", "01003"]


# -- Connecticut: counties up to 2021, planning regions from 2022 --------------------------------

BRIDGEPORT = (41.18, -73.19)  # latitude, longitude
CT_FILES = {
    # Fairfield and New Haven counties, as in tl_2020_us_county (and tl_2010_us_county10).
    2020: {"09001": shapely.box(-73.73, 41.0, -73.0, 41.6),
           "09009": shapely.box(-73.0, 41.2, -72.7, 41.6)},
    # Western, Greater Bridgeport and South Central planning regions, as in tl_2022_us_county.
    2022: {"09190": shapely.box(-73.73, 41.0, -73.3, 41.6),
           "09120": shapely.box(-73.3, 41.0, -73.0, 41.6),
           "09170": shapely.box(-73.0, 41.2, -72.7, 41.6)},
}


def write_ct_counties(folder: Path, year: int) -> Path:
    """A county file of ``year`` holding Connecticut's county-equivalents of that year."""
    shapes = CT_FILES[2020 if year < 2022 else year]
    sfx = "10" if year == 2010 else ""
    frame = _frame({f"STATEFP{sfx}": ["09"] * len(shapes),
                    f"COUNTYFP{sfx}": [g[2:] for g in shapes], f"GEOID{sfx}": list(shapes)},
                   list(shapes.values()))
    (folder / str(year)).mkdir()
    return write_tiger_zip(frame, folder / str(year), f"tl_{year}_us_county{sfx}")


@pytest.mark.parametrize(("year", "geoids"), [
    (2020, ["09001", "09009"]),
    (2022, ["09120", "09170", "09190"]),
])
def test_connecticut_counties_and_planning_regions_both_load(tmp_path, year, geoids):
    # A 2022 county file is of the 2020 boundary vintage (ACS 2022+ publishes on it).
    out = load_boundaries(write_ct_counties(tmp_path, year), level="county", boundary_year=2020)
    assert out["geoid"].tolist() == geoids


def test_connecticut_counties_and_planning_regions_do_not_mix(tmp_path):
    shapes = {**CT_FILES[2020], "09190": shapely.box(-74.5, 41.0, -73.8, 41.6)}
    frame = _frame({"GEOID": list(shapes)}, list(shapes.values()))
    path = tmp_path / "ct_mixed.gpkg"
    frame.to_file(path)
    with pytest.raises(InputError, match=r"row 3 .*09190 lies in a Connecticut planning region "
                                         r".* row 1 \(09001\) in a Connecticut county"):
        load_boundaries(path, level="county", boundary_year=2020)


@pytest.mark.parametrize(("county_file_2020", "county_2020"), [(2020, "09001"), (2022, "09120")])
def test_connecticut_point_gets_the_county_of_the_loaded_vintage(tmp_path, county_file_2020,
                                                                 county_2020):
    boundaries = {
        2010: load_boundaries(write_ct_counties(tmp_path, 2010), level="county",
                              boundary_year=2010),
        2020: load_boundaries(write_ct_counties(tmp_path, county_file_2020), level="county",
                              boundary_year=2020),
    }
    lat, lon = BRIDGEPORT
    history = pd.DataFrame({"patient_id": ["p1"], "valid_from": ["2019-01-01"],
                            "latitude": [lat], "longitude": [lon]})
    got = link_addresses(history, boundaries, level="county").iloc[0]
    assert (got["county_geoid_2010"], got["county_geoid_2020"]) == ("09001", county_2020)
    assert pd.isna(got["tract_geoid_2020"]) and pd.isna(got["link_missing"])
