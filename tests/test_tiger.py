"""Tests of ingestion.sources.tiger: catalog URLs, and downloads from a local server with faults.

The server (tests/file_server.py) serves generated TIGER-like shapefile zips at the Census
Bureau's paths and can be told to fail. The real client runs against it over HTTP; nothing is
patched. How the shared cache resumes, verifies and reuses files is tested in
tests/test_download_cache.py; here, what TIGER adds: URLs, manifest facts, retries, the 404 hint.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import random
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
import requests
import shapely
from fake_clock import FakeClock
from file_server import LAST_MODIFIED, FileServer

from ingestion.core.errors import ServiceUrlError
from ingestion.geo.boundaries import load_boundaries
from ingestion.sources.http import RetryPolicy
from ingestion.sources.tiger import (
    DEFAULT_BASE_URL,
    LEVELS,
    MANIFEST_FORMAT,
    BoundaryDownloadError,
    _plan,
    boundary_url,
    download_boundaries,
    read_manifest,
)
from sdoh_sources.boundaries import load_boundary_catalog as _catalog
from sdoh_sources.boundaries import parse_boundary_catalog as _parse_catalog
from sdoh_sources.catalog import CatalogError
from sdoh_sources.errors import SdohError

CENSUS = "https://www2.census.gov/geo/tiger"
PREFIX = "/geo/tiger"


# -- generated boundary zips ------------------------------------------------------------------


def _shapes(n: int, x0: float) -> list[shapely.Polygon]:
    # Round-ish polygons with many vertices, so a zip is a few kilobytes and "half" means something.
    return [shapely.Point(x0 + i, 39.5).buffer(0.4, quad_segs=64) for i in range(n)]


def tract_frame(geoids: list[str], *, field: str, suffix: str = "") -> gpd.GeoDataFrame:
    """Columns named as in the TIGER/Line tract files (``suffix`` "10" for 2010)."""
    return gpd.GeoDataFrame({
        f"STATEFP{suffix}": [g[:2] for g in geoids],
        f"COUNTYFP{suffix}": [g[2:5] for g in geoids],
        f"TRACTCE{suffix}": [g[5:] for g in geoids],
        field: geoids,
        f"NAMELSAD{suffix}": [f"Census Tract {int(g[5:]) / 100:g}" for g in geoids],
    }, geometry=_shapes(len(geoids), -75.0), crs="EPSG:4269")


def zcta_frame(zctas: list[str]) -> gpd.GeoDataFrame:
    """Columns named as in tl_2020_us_zcta520."""
    return gpd.GeoDataFrame({"ZCTA5CE20": zctas, "GEOID20": zctas},
                            geometry=_shapes(len(zctas), -77.0), crs="EPSG:4269")


def county_gz2010_frame() -> gpd.GeoDataFrame:
    """Columns named as in the 2010 cartographic boundary files (GEO_ID, STATE, COUNTY)."""
    return gpd.GeoDataFrame({"GEO_ID": ["0500000US10001", "0500000US10003"],
                             "STATE": ["10", "10"], "COUNTY": ["001", "003"]},
                            geometry=_shapes(2, -75.5), crs="EPSG:4269")


def zipped(frame: gpd.GeoDataFrame, stem: str, folder: Path, *, drop: str | None = None) -> bytes:
    """The bytes of ``stem``.zip holding ``stem``.shp and its sidecars, as TIGER ships them."""
    where = folder / stem
    where.mkdir()
    frame.to_file(where / f"{stem}.shp", engine="pyogrio")
    if drop is not None:
        (where / f"{stem}{drop}").unlink()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for part in sorted(where.iterdir()):
            archive.write(part, part.name)
    return buffer.getvalue()


STATE_TRACTS = {"10": ["10001040100", "10001040200"], "11": ["11001000101", "11001000102"],
                "24": ["24001000100", "24001000200"], "42": ["42101000500", "42101000600"]}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    """Census path (under /geo/tiger) -> generated zip bytes."""
    folder = tmp_path_factory.mktemp("zips")
    out = {f"TIGER2020/TRACT/tl_2020_{st}_tract.zip":
           zipped(tract_frame(geoids, field="GEOID"), f"tl_2020_{st}_tract", folder)
           for st, geoids in STATE_TRACTS.items()}
    out["TIGER2010/TRACT/2010/tl_2010_10_tract10.zip"] = zipped(
        tract_frame(["10001040100", "10001040200"], field="GEOID10", suffix="10"),
        "tl_2010_10_tract10", folder)
    out["TIGER2020/ZCTA520/tl_2020_us_zcta520.zip"] = zipped(
        zcta_frame(["19901", "19904", "20001"]), "tl_2020_us_zcta520", folder)
    out["GENZ2010/gz_2010_us_050_00_20m.zip"] = zipped(
        county_gz2010_frame(), "gz_2010_us_050_00_20m", folder)
    out["TIGER2021/TRACT/tl_2021_10_tract.zip"] = zipped(
        tract_frame(["10001040100"], field="GEOID"), "tl_2021_10_tract", folder, drop=".prj")
    return out


# -- the server -------------------------------------------------------------------------------


class TigerServer(FileServer):
    """The file server with the Census Bureau's paths (under /geo/tiger)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(files, prefix=PREFIX)


@pytest.fixture
def server(files):
    srv = TigerServer(files)
    yield srv
    srv.stop()


def fetch(server: TigerServer, tmp_path: Path, level: str, year: int, state, **options):
    options = {"base_url": server.base_url, "cache_dir": tmp_path / "cache", "backoff": 0.0,
               "progress": False, **options}
    return download_boundaries(level, year, state, **options)


def mirrored(tmp_path: Path, path: str) -> Path:
    return tmp_path / "cache" / "127.0.0.1" / "geo" / "tiger" / path


DE_2020 = "TIGER2020/TRACT/tl_2020_10_tract.zip"


# -- URLs from the catalog ---------------------------------------------------------------------


@pytest.mark.parametrize(("args", "options", "expected"), [
    (("tract", 2020, "DE"), {}, "TIGER2020/TRACT/tl_2020_10_tract.zip"),
    (("tract", 2020, "Delaware"), {}, "TIGER2020/TRACT/tl_2020_10_tract.zip"),
    (("tract", 2023, 6), {}, "TIGER2023/TRACT/tl_2023_06_tract.zip"),
    (("tract", 2010, "de"), {}, "TIGER2010/TRACT/2010/tl_2010_10_tract10.zip"),
    (("block_group", 2010, "11"), {}, "TIGER2010/BG/2010/tl_2010_11_bg10.zip"),
    (("block group", 2022, "PA"), {}, "TIGER2022/BG/tl_2022_42_bg.zip"),
    (("county", 2010, None), {}, "TIGER2010/COUNTY/2010/tl_2010_us_county10.zip"),
    (("county", 2023, None), {}, "TIGER2023/COUNTY/tl_2023_us_county.zip"),
    (("zcta", 2010, None), {}, "TIGER2010/ZCTA5/2010/tl_2010_us_zcta510.zip"),
    (("zcta", 2015, None), {}, "TIGER2015/ZCTA5/tl_2015_us_zcta510.zip"),
    (("zip code tabulation area", 2020, None), {}, "TIGER2020/ZCTA520/tl_2020_us_zcta520.zip"),
    (("tract", 2020, "DE"), {"kind": "cb"}, "GENZ2020/shp/cb_2020_10_tract_500k.zip"),
    (("tract", 2022, None), {"kind": "cb"}, "GENZ2022/shp/cb_2022_us_tract_500k.zip"),
    (("tract", 2013, "DE"), {"kind": "cb"}, "GENZ2013/cb_2013_10_tract_500k.zip"),
    (("tract", 2010, "DE"), {"kind": "cb"}, "GENZ2010/gz_2010_10_140_00_500k.zip"),
    (("block_group", 2010, "DE"), {"kind": "cb"}, "GENZ2010/gz_2010_10_150_00_500k.zip"),
    (("block_group", 2016, "DE"), {"kind": "cb"}, "GENZ2016/shp/cb_2016_10_bg_500k.zip"),
    (("county", 2020, None), {"kind": "cb", "resolution": "20m"},
     "GENZ2020/shp/cb_2020_us_county_20m.zip"),
    (("county", 2013, None), {"kind": "cb", "resolution": "5m"},
     "GENZ2013/cb_2013_us_county_5m.zip"),
    (("county", 2010, None), {"kind": "cb", "resolution": "5m"},
     "GENZ2010/gz_2010_us_050_00_5m.zip"),
    (("zcta", 2020, None), {"kind": "cb"}, "GENZ2020/shp/cb_2020_us_zcta520_500k.zip"),
    (("zcta", 2018, None), {"kind": "cb"}, "GENZ2018/shp/cb_2018_us_zcta510_500k.zip"),
    (("zcta", 2010, None), {"kind": "cb"}, "GENZ2010/gz_2010_us_860_00_500k.zip"),
])
def test_boundary_url_follows_the_catalog(args, options, expected):
    assert boundary_url(*args, **options) == f"{CENSUS}/{expected}"


def test_boundary_url_takes_a_mirror():
    assert boundary_url("tract", 2020, "DE", base_url="https://mirror.example/tiger/") == \
        "https://mirror.example/tiger/TIGER2020/TRACT/tl_2020_10_tract.zip"


@pytest.mark.parametrize(("args", "options", "error", "match"), [
    (("tract", 2011, "DE"), {"kind": "cb"}, ValueError, r"no cartographic boundary files for 2011"),
    (("county", 2012, None), {"kind": "cb"}, ValueError, r"tigris#145"),
    (("zcta", 2022, None), {"kind": "cb"}, ValueError, r"no cartographic boundary ZCTA file after 2020"),
    (("zcta", 2011, None), {}, ValueError, r"2011 ZCTA file could be verified"),
    (("tract", 2009, "DE"), {}, ValueError, r"before the 2010 vintage are not supported"),
    (("county", 2020, "DE"), {}, ValueError, r"national only .*pass state=None"),
    (("zcta", 2020, "DE"), {}, ValueError, r"national only"),
    (("tract", 2020, None), {}, ValueError, r"published per state: pass a state"),
    (("tract", 2020, "DE"), {"resolution": "500k"}, ValueError, r"kind='cb'"),
    (("tract", 2020, "DE"), {"kind": "cb", "resolution": "20m"}, ValueError,
     r"come in resolutions \['500k'\], not '20m'"),
    (("tract", 2020, "DE"), {"kind": "genz"}, ValueError, r"kind must be one of"),
    (("blocks", 2020, "DE"), {}, ValueError, r"unknown level 'blocks'"),
    (("tract", 2020, "Atlantis"), {}, ValueError, r"unknown state 'Atlantis'"),
    (("tract", 2020, "DE"), {"base_url": "ftp://x"}, ValueError, r"base_url"),
    (("tract", 2020, "DE"), {"base_url": "http://mirror.example/tiger"}, ServiceUrlError,
     r"plain http to a host that is not loopback.*use https://"),
    (("tract", "2020", "DE"), {}, TypeError, r"no default vintage"),
    (("tract", True, "DE"), {}, TypeError, r"year must be an int"),
    (("tract", 2020, ["DE"]), {}, TypeError, r"one state"),
])
def test_boundary_url_refuses_what_the_catalog_does_not_cover(args, options, error, match):
    with pytest.raises(error, match=match):
        boundary_url(*args, **options)


def test_state_none_means_every_state_for_per_state_files():
    targets = _plan("tract", 2020, None, kind="tiger", resolution=None, base_url=CENSUS)
    assert len(targets) == 52 and targets[0].url.endswith("tl_2020_01_tract.zip")
    assert targets[-1].url.endswith("tl_2020_72_tract.zip")


def test_catalog_cites_a_source_for_every_pattern():
    catalog = _catalog()
    assert set(LEVELS) == set(catalog.levels)
    assert catalog.base_url == DEFAULT_BASE_URL == CENSUS
    for pattern in catalog.patterns:
        assert pattern.sources and set(pattern.sources) <= set(catalog.sources), pattern.path
        assert pattern.path.endswith(".zip")
    assert all("github.com" in text or "NSAPH" in text for text in catalog.sources.values())


def _mini_catalog(**changes):
    entry = {"years": [2011, None], "scope": "state", "geoid_field": "GEOID",
             "path": "TIGER{year}/TRACT/tl_{year}_{state}_tract.zip", "boundary_vintage": "decade",
             "sources": ["pygris"]}
    data = {"format": "sdoh-boundary-catalog/1", "required_members": [".shp"],
            "sources": {"pygris": "https://github.com/walkerke/pygris"},
            "layers": {"tract": {"tiger": [entry]}}}
    for key, value in changes.items():
        if key == "second":
            data["layers"]["tract"]["tiger"].append({**entry, **value})
        else:
            entry[key] = value
    return data


@pytest.mark.parametrize(("changes", "match"), [
    ({"sources": ["nowhere"]}, r"not in the sources table"),
    ({"sources": []}, r"cite its sources"),
    ({"second": {"years": [2015, 2016], "path": "X/{state}.zip"}}, r"cover the same years"),
    ({"path": "TIGER{year}/TRACT/tl_{year}_us_tract.zip"}, r"must contain \{state\}"),
    ({"path": "TIGER{year}/{layer}.zip"}, r"only \['resolution', 'state', 'year'\]"),
    ({"years": [2016, 2011]}, r"first year after last"),
    ({"resolutions": ["500k"]}, r"no resolution"),
])
def test_catalog_errors_are_caught(changes, match):
    assert _parse_catalog(_mini_catalog())  # the unchanged mini catalog is fine
    with pytest.raises(CatalogError, match=match):
        _parse_catalog(_mini_catalog(**changes))


# -- downloads --------------------------------------------------------------------------------


def test_download_mirrors_the_url_records_a_manifest_and_loads(server, files, tmp_path):
    paths = fetch(server, tmp_path, "tract", 2020, ["DE", "District of Columbia"])
    assert paths == [mirrored(tmp_path, "TIGER2020/TRACT/tl_2020_10_tract.zip"),
                     mirrored(tmp_path, "TIGER2020/TRACT/tl_2020_11_tract.zip")]
    manifest = read_manifest(paths[0])
    data = files[DE_2020]
    assert manifest["format"] == MANIFEST_FORMAT
    assert manifest["url"] == f"{server.base_url}/{DE_2020}"
    assert manifest["size"] == len(data) == paths[0].stat().st_size
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert dt.datetime.fromisoformat(manifest["downloaded_at"]).tzinfo is not None
    assert (manifest["level"], manifest["year"], manifest["state"]) == ("tract", 2020, "10")
    assert (manifest["geoid_field"], manifest["boundary_vintage"]) == ("GEOID", 2020)
    assert {Path(m).suffix for m in manifest["members"]} >= {".shp", ".shx", ".dbf", ".prj"}
    assert manifest["last_modified"] == LAST_MODIFIED
    assert not list(paths[0].parent.glob("*.part*"))
    tracts = load_boundaries(paths[0], level="tract", boundary_year=manifest["boundary_vintage"])
    assert tracts["geoid"].tolist() == STATE_TRACTS["10"]
    assert tracts.crs.to_epsg() == 4269


@pytest.mark.parametrize(("level", "year", "state", "path", "geoids"), [
    ("tract", 2010, "DE", "TIGER2010/TRACT/2010/tl_2010_10_tract10.zip",
     ["10001040100", "10001040200"]),
    ("zcta", 2020, None, "TIGER2020/ZCTA520/tl_2020_us_zcta520.zip", ["19901", "19904", "20001"]),
])
def test_special_layouts_download_and_load(server, tmp_path, level, year, state, path, geoids):
    [got] = fetch(server, tmp_path, level, year, state)
    assert got == mirrored(tmp_path, path)
    vintage = read_manifest(got)["boundary_vintage"]
    assert load_boundaries(got, level=level, boundary_year=vintage)["geoid"].tolist() == geoids


def test_a_rerun_makes_no_request(server, tmp_path):
    first = fetch(server, tmp_path, "tract", 2020, ["DE", "DC"])
    assert len(server.served()) == 2
    again = fetch(server, tmp_path, "tract", 2020, ["DE", "DC"])
    assert again == first
    assert len(server.served()) == 2  # nothing asked of the server the second time


@pytest.mark.parametrize("statuses", [(500,), (502, 503), (429,)])
def test_5xx_and_429_are_retried(server, files, tmp_path, caplog, statuses):
    server.fault(DE_2020, *statuses)
    with caplog.at_level(logging.WARNING, logger="ingestion.sources.download_cache"):
        [path] = fetch(server, tmp_path, "tract", 2020, "DE")
    assert path.read_bytes() == files[DE_2020]
    assert [r.status for r in server.served(DE_2020)] == [*statuses, 200]
    assert f"HTTP {statuses[0]}" in caplog.text and "retry 1 of 4" in caplog.text


def test_retries_are_bounded_and_the_error_names_the_url(server, tmp_path):
    server.fault(DE_2020, 500, 500, 500)
    with pytest.raises(BoundaryDownloadError, match=r"^A request to the Census boundary file "
                       r"server failed after 3 attempts: HTTP 500: .* \(GET http://127\.0\.0\.1:"
                       r"\d+/geo/tiger/TIGER2020/TRACT/tl_2020_10_tract\.zip\)\. The Census "
                       r"boundary file server is failing, slow or rate-limiting: try again later "
                       r"\(files already downloaded are kept"):
        fetch(server, tmp_path, "tract", 2020, "DE", max_retries=2)
    assert not mirrored(tmp_path, DE_2020).exists()


def test_backoff_grows_with_jitter(server, tmp_path):
    waits: list[float] = []  # the download's own sleep: nothing else in the process is touched
    server.fault(DE_2020, 500, 500, 500)
    fetch(server, tmp_path, "tract", 2020, "DE", backoff=1.0, max_delay=3.0,
          rng=random.Random(7), sleep=waits.append)
    # backoff * 2 ** (n - 1), times the seeded jitter factor in [0.5, 1.5], capped at max_delay
    jitter = random.Random(7)
    assert waits == [min(2 ** n * jitter.uniform(0.5, 1.5), 3.0) for n in range(3)]
    assert waits[0] < waits[1] and waits[2] == 3.0


def test_a_429_pauses_for_its_retry_after_capped_at_max_delay(server, files, tmp_path,
                                                               monkeypatch):
    server.retry_after = "30"
    server.fault(DE_2020, 429)
    clock = FakeClock()
    policy = RetryPolicy(timeout=5.0, max_retries=4, backoff=0.0, max_delay=0.2,
                         sleep=clock.sleep, clock=clock)
    pauses = []
    pause = policy.pause  # this policy's own method: nothing process-wide is patched
    monkeypatch.setattr(policy, "pause", lambda delay: (pauses.append(delay), pause(delay)))
    [path] = download_boundaries("tract", 2020, "DE", base_url=server.base_url,
                                 cache_dir=tmp_path / "cache", progress=False, retry=policy)
    assert path.read_bytes() == files[DE_2020]
    assert pauses == [0.2]  # Retry-After: 30 capped at max_delay, a pause for every worker
    assert clock.waits == [0.2]  # waited out before the next attempt
    assert [r.status for r in server.served(DE_2020)] == [429, 200]


def test_a_429_holds_back_the_other_files_too(server, files, tmp_path):
    clock = FakeClock()  # stands still: MD's request comes while the pause is on
    server.retry_after = "30"
    server.fault(DE_2020, 429)
    policy = RetryPolicy(timeout=5.0, max_retries=4, backoff=0.0, max_delay=30.0,
                         sleep=clock.sleep, clock=clock)
    paths = download_boundaries("tract", 2020, ["DE", "MD"], base_url=server.base_url,
                                cache_dir=tmp_path / "cache", progress=False, max_workers=1,
                                retry=policy)
    assert [p.name for p in paths] == ["tl_2020_10_tract.zip", "tl_2020_24_tract.zip"]
    # DE's retry and MD's first request (which got no 429) both wait out the shared pause;
    # a wait of the failed request alone would give one wait, not two.
    assert clock.waits == [30.0, 30.0]
    assert [r.status for r in server.served()] == [429, 200, 200]


def test_retry_settings_and_a_shared_policy_are_not_both_given(server, tmp_path):
    policy = RetryPolicy(timeout=5.0, max_retries=1, backoff=0.0, max_delay=1.0)
    with pytest.raises(ValueError, match=r"retry= and \['max_retries', 'timeout'\] were both "
                                         r"given"):
        download_boundaries("tract", 2020, "DE", base_url=server.base_url,
                            cache_dir=tmp_path / "cache", retry=policy, timeout=9.0,
                            max_retries=2)
    assert server.served() == []


def test_a_timeout_is_retried(server, files, tmp_path):
    server.slow_seconds = 1.0
    server.fault(DE_2020, "slow")
    [path] = fetch(server, tmp_path, "tract", 2020, "DE", timeout=0.25)
    assert path.read_bytes() == files[DE_2020]


def test_404_names_the_url_and_what_may_be_wrong_without_retrying(server, tmp_path):
    with pytest.raises(BoundaryDownloadError) as caught:
        fetch(server, tmp_path, "tract", 2031, "DE")
    message = str(caught.value)
    assert message.startswith("A request to the Census boundary file server failed: HTTP 404: "
                              "404 Not Found. No file at this URL: the Census Bureau may not "
                              "publish this layer for this year (yet), or not for this state; "
                              f"see what {server.base_url}/TIGER2031/TRACT/ lists (GET "
                              f"{server.base_url}/TIGER2031/TRACT/tl_2031_10_tract.zip). ")
    assert message.endswith("Check the level, year and state, and --base-url (base_url=) if "
                            "you use a mirror.")
    assert isinstance(caught.value, SdohError)
    assert len(server.served()) == 1


def test_a_zip_without_the_projection_is_rejected(server, tmp_path):
    with pytest.raises(BoundaryDownloadError, match=r"no member ending in \['\.prj'\]"):
        fetch(server, tmp_path, "tract", 2021, "DE", max_retries=0)


def test_several_states_download_on_a_bounded_pool(server, tmp_path):
    server.delay = 0.15
    paths = fetch(server, tmp_path, "tract", 2020, ["PA", "DE", "MD", "DC"], max_workers=2,
                  progress=True)
    assert [p.name for p in paths] == ["tl_2020_42_tract.zip", "tl_2020_10_tract.zip",
                                       "tl_2020_24_tract.zip", "tl_2020_11_tract.zip"]
    assert server.max_in_flight == 2


def test_one_failed_state_is_reported_and_the_others_are_kept(server, tmp_path):
    with pytest.raises(BoundaryDownloadError, match=r"HTTP 404: .* \(GET http://.*/"
                                                    r"tl_2020_44_tract\.zip\)"):
        fetch(server, tmp_path, "tract", 2020, ["DE", "RI", "DC"], max_workers=3)
    assert mirrored(tmp_path, DE_2020).exists()
    assert mirrored(tmp_path, "TIGER2020/TRACT/tl_2020_11_tract.zip").exists()
    server.fault("TIGER2020/TRACT/tl_2020_24_tract.zip", 404)
    with pytest.raises(BoundaryDownloadError, match=r"2 of 3 downloads failed"):
        fetch(server, tmp_path, "tract", 2020, ["DE", "RI", "MD"], max_workers=3,
              max_retries=0)


def test_a_given_session_is_used_and_left_open(server, tmp_path):
    calls = []

    class Counting(requests.Session):
        def request(self, method, url, *args, **kwargs):
            calls.append((url, kwargs.get("timeout")))
            return super().request(method, url, *args, **kwargs)

    with Counting() as session:
        fetch(server, tmp_path, "tract", 2020, "DE", session=session, timeout=7.0)
        assert calls == [(f"{server.base_url}/{DE_2020}", (7.0, 7.0))]
        assert session.get(f"{server.base_url}/{DE_2020}").status_code == 200  # still open


def test_the_cache_folder_comes_from_the_argument_or_the_environment(server, tmp_path,
                                                                     monkeypatch):
    monkeypatch.delenv("SDOH_CACHE_DIR", raising=False)
    with pytest.raises(ValueError, match=r"pass cache_dir= or set the SDOH_CACHE_DIR"):
        download_boundaries("tract", 2020, "DE", base_url=server.base_url, progress=False)
    monkeypatch.setenv("SDOH_CACHE_DIR", str(tmp_path / "env"))
    [path] = download_boundaries("tract", 2020, "DE", base_url=server.base_url, progress=False)
    assert path == tmp_path / "env" / "127.0.0.1" / "geo" / "tiger" / DE_2020


def test_a_2010_cartographic_file_downloads_without_a_warning_and_loads(server, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the catalog no longer says load_boundaries cannot read it
        [path] = fetch(server, tmp_path, "county", 2010, None, kind="cb", resolution="20m")
    assert path.name == "gz_2010_us_050_00_20m.zip"
    manifest = read_manifest(path)
    assert (manifest["geoid_field"], manifest["boundary_vintage"]) == ("GEO_ID", 2010)
    counties = load_boundaries(path, level="county", boundary_year=2010)
    assert counties["geoid"].tolist() == ["10001", "10003"]  # GEO_ID after its '0500000US'


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"max_workers": 0}, ValueError, "max_workers"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"max_retries": -1}, ValueError, "max_retries"),
    ({"progress": "yes"}, TypeError, "progress"),
    ({"session": object()}, TypeError, "requests.Session"),
])
def test_bad_settings_are_refused(server, tmp_path, options, error, match):
    with pytest.raises(error, match=match):
        fetch(server, tmp_path, "tract", 2020, "DE", **options)


def test_read_manifest_of_a_file_without_one(tmp_path):
    with pytest.raises(BoundaryDownloadError, match="cannot read the download manifest"):
        read_manifest(tmp_path / "tl_2020_10_tract.zip")
    (tmp_path / "x.zip.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(BoundaryDownloadError, match="not a sdoh-boundary-manifest/1"):
        read_manifest(tmp_path / "x.zip")
