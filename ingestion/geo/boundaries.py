"""Boundary files in, one normalized polygon frame out: ``geoid`` and ``geometry`` in NAD83.

TIGER/Line files come as a ``.zip`` holding a shapefile whose GEOID column is named after the
vintage (``GEOID10`` in the 2010 files, ``GEOID`` or ``GEOID20`` in 2020 products). Any other
file geopandas reads (GeoJSON, GeoPackage, a folder shapefile) and GeoParquet are accepted too.
Whatever comes in, what goes out is the same: one row per geography, ``geoid`` a zero-padded
string of the level's length, valid polygonal ``geometry`` in EPSG:4269 (NAD83, TIGER's CRS),
sorted by ``geoid``.

Examples
--------
>>> from ingestion.geo.boundaries import load_boundaries
>>> bg = load_boundaries(demo / "tiger" / "tl_2020_99_bg.zip", level="block_group",
...                      boundary_year=2020)
>>> list(bg.columns)
['geoid', 'geometry']
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS

from ingestion.core.datasets import GEOID_LENGTH
from ingestion.core.errors import InputError

__all__ = ["BOUNDARY_CRS", "load_boundaries", "load_boundary_set"]

logger = logging.getLogger(__name__)

#: TIGER/Line's CRS: NAD83 geographic. EPSG:4326 (WGS84) and OGC:CRS84 input is relabelled,
#: not transformed: the two datums differ by about a metre, far below boundary accuracy.
BOUNDARY_CRS = "EPSG:4269"
_LONLAT_EQUIVALENT_EPSG = (4269, 4326)

# The GEOID of a level is the concatenation of these TIGER components.
_COMPONENTS = {
    "state": ("STATEFP",),
    "county": ("STATEFP", "COUNTYFP"),
    "tract": ("STATEFP", "COUNTYFP", "TRACTCE"),
    "block_group": ("STATEFP", "COUNTYFP", "TRACTCE", "BLKGRPCE"),
    "zcta": ("ZCTA5CE",),
}
_POLYGONAL = ("Polygon", "MultiPolygon")
# Cartographic-boundary ids: summary level (150 = block group, 140 tract, 050 county, 860 ZCTA),
# geographic component, "US", then the GEOID: "1500000US240010001001".
_SUMMARY_LEVEL_PREFIX = r"^\d{7}US"
# Connecticut's county-equivalents: counties up to the 2021 files, planning regions from 2022.
_CT_COUNTIES = frozenset(f"09{code:03d}" for code in range(1, 16, 2))
_CT_PLANNING_REGIONS = frozenset(f"09{code:03d}" for code in range(110, 191, 10))


def load_boundaries(
    path: str | os.PathLike[str],
    *,
    level: str,
    boundary_year: int,
    layer: str | None = None,
    repair: bool = True,
) -> gpd.GeoDataFrame:
    """Read a boundary file and normalize it to ``geoid`` and ``geometry`` in EPSG:4269.

    The GEOID column is found by name, case-insensitively, preferring the one that matches
    the decade of ``boundary_year`` (``GEOID10`` for 2010-2019, then ``GEOID``; ``GEOID`` for
    2020-2029, then ``GEOID20``, as in the 2020-vintage ZCTA files of later years). A file with
    only another decade's column (``GEOID10`` given as 2020) is refused. Without one, the
    cartographic-boundary id ``GEO_ID`` (2010 ``gz_`` files) or ``AFFGEOID`` gives the GEOID
    after its summary-level prefix (``1500000US240010001001`` -> ``240010001001``); without
    that, it is built from the TIGER components (``STATEFP``, ``COUNTYFP``, ``TRACTCE``,
    ``BLKGRPCE``, ``ZCTA5CE``, with the decade suffix if any). Integer GEOIDs (a reader that
    dropped the leading zero) are zero-padded; text GEOIDs must already have the right length.
    Connecticut's 8 counties (09001-09015, files up to 2021) and 9 planning regions
    (09110-09190, from 2022) both load, but not together in one file.

    Parameters
    ----------
    path
        A ``.zip`` holding one shapefile (TIGER/Line as distributed), a GeoJSON, GeoPackage,
        shapefile or GeoParquet (``.parquet``) file.
    level
        ``"block_group"`` (12-digit GEOIDs), ``"tract"`` (11), ``"county"`` (5), ``"zcta"``
        (5) or ``"state"`` (2).
    boundary_year
        The boundary vintage, e.g. 2010 or 2020; selects the GEOID column and is recorded in
        ``attrs["boundary_year"]``.
    layer
        Which layer (or, in a zip, which ``.shp`` member) to read when there are several.
    repair
        Repair invalid geometries with ``shapely.make_valid`` (keeping the polygonal part and
        logging a warning). If false, an invalid geometry raises `InputError`.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``geoid`` (string dtype) and ``geometry``, CRS EPSG:4269, sorted by ``geoid``
        with a fresh index; ``attrs`` holds ``level``, ``boundary_year`` and ``source_file``.

    Raises
    ------
    InputError
        The file cannot be read, has no GEOID, a GEOID of the wrong length, a duplicated
        GEOID, both Connecticut counties and planning regions, a missing, empty,
        non-polygonal or (with ``repair=False``) invalid geometry, or no CRS and coordinates
        that are not longitude/latitude. The message names the file, the first bad row
        (1-based feature number) and the field.
    ValueError
        ``level`` is unknown.
    TypeError
        ``boundary_year`` is not an integer.

    Examples
    --------
    >>> tracts = load_boundaries(real_data / "phl_tracts2020" / "philadelphia_tracts_2020.geojson",
    ...                          level="tract", boundary_year=2020)
    >>> tracts.crs.to_epsg(), tracts["geoid"].str.len().unique().tolist()
    (4269, [11])
    """
    if level not in GEOID_LENGTH:
        raise ValueError(f"level must be one of {sorted(GEOID_LENGTH)}, got {level!r}")
    if isinstance(boundary_year, bool) or not isinstance(boundary_year, (int, np.integer)):
        raise TypeError(f"boundary_year must be an int such as 2020, got {boundary_year!r}")
    boundary_year = int(boundary_year)
    path = Path(path)
    frame = _read(path, layer=layer)
    geoid = _find_geoid(frame, path=path, level=level, boundary_year=boundary_year)
    _check_connecticut(geoid, path=path, level=level)
    geometry = _check_geometry(frame.geometry.array, path=path, repair=repair)
    out = gpd.GeoDataFrame(
        {"geoid": pd.array(geoid, dtype="string")}, geometry=geometry, crs=frame.crs
    )
    out = _to_boundary_crs(out, path=path)
    out = out.sort_values("geoid", kind="stable").reset_index(drop=True)
    out.attrs.update(level=level, boundary_year=boundary_year, source_file=str(path))
    logger.info("loaded %d %s boundaries (%d) from %s", len(out), level, boundary_year, path)
    return out


def load_boundary_set(
    paths_by_year: Mapping[int, str | os.PathLike[str]],
    *,
    level: str = "block_group",
    repair: bool = True,
) -> dict[int, gpd.GeoDataFrame]:
    """Load one boundary file per boundary vintage, e.g. the 2010 and 2020 block groups.

    Parameters
    ----------
    paths_by_year
        Boundary vintage to file, e.g. ``{2010: "tl_2010_42_bg10.zip", 2020:
        "tl_2020_42_bg.zip"}``.
    level
        The geography level of every file; block groups unless told otherwise.
    repair
        Passed to `load_boundaries`.

    Returns
    -------
    dict of int to geopandas.GeoDataFrame
        Boundary vintage to its normalized frame (see `load_boundaries`), in year order.

    Raises
    ------
    InputError
        A file is malformed (see `load_boundaries`).
    TypeError
        ``paths_by_year`` is not a mapping of integer years.

    Examples
    --------
    >>> sets = load_boundary_set({2010: demo / "tiger" / "tl_2010_99_bg10.zip",
    ...                           2020: demo / "tiger" / "tl_2020_99_bg.zip"})
    >>> sorted(sets)
    [2010, 2020]
    """
    if not isinstance(paths_by_year, Mapping):
        raise TypeError(
            f"paths_by_year must map boundary years to files, got {type(paths_by_year).__name__}"
        )
    return {
        int(year): load_boundaries(
            paths_by_year[year], level=level, boundary_year=year, repair=repair
        )
        for year in sorted(paths_by_year)
    }


# -- reading ----------------------------------------------------------------------------------


def _read(path: Path, *, layer: str | None) -> gpd.GeoDataFrame:
    if not path.exists():
        raise InputError(f"{path}: boundary file not found")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            return gpd.read_parquet(path)
        if path.suffix.lower() == ".zip":
            return gpd.read_file(_zip_source(path, layer=layer), engine="pyogrio")
        if layer is None:
            layers = pyogrio.list_layers(path)
            if len(layers) > 1:
                names = [str(name) for name in layers[:, 0]]
                raise InputError(f"{path}: holds {len(layers)} layers {names}; pass layer=")
        return gpd.read_file(path, layer=layer, engine="pyogrio")
    except InputError:
        raise
    except Exception as exc:  # the readers raise many types; all mean "not a boundary file"
        raise InputError(f"{path}: cannot read as a boundary file: {exc}") from exc


def _zip_source(path: Path, *, layer: str | None) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.lower().endswith(".shp")]
    except zipfile.BadZipFile as exc:
        raise InputError(f"{path}: not a readable zip file ({exc})") from exc
    if layer is not None:
        members = [m for m in members if Path(m).stem == layer or m == layer]
        if not members:
            raise InputError(f"{path}: no shapefile named {layer!r} in the zip")
    if not members:
        # Not a shapefile inside: let GDAL open the archive (a zipped GeoPackage, ...).
        return f"/vsizip/{path.resolve()}"
    if len(members) > 1:
        raise InputError(f"{path}: holds {len(members)} shapefiles {members}; pass layer=")
    return f"/vsizip/{path.resolve()}/{members[0]}"


# -- GEOID --------------------------------------------------------------------------------------


def _find_geoid(
    frame: pd.DataFrame, *, path: Path, level: str, boundary_year: int
) -> np.ndarray:
    """The file's GEOIDs, normalized (see `load_boundaries` for the columns looked for).

    Examples
    --------
    >>> frame = gpd.GeoDataFrame({"GEO_ID": ["0500000US09001"]},
    ...                          geometry=[shapely.box(-74, 41, -73, 42)])
    >>> _find_geoid(frame, path=Path("gz_2010_us_050_00_500k.shp"), level="county",
    ...             boundary_year=2010).tolist()
    ['09001']
    """
    by_upper = {str(c).upper(): c for c in frame.columns if c != frame.geometry.name}
    suffix = f"{boundary_year // 10 * 10 % 100:02d}"  # the decade's geography: GEOID10, GEOID20
    if boundary_year < 2020:
        candidates = ["GEOID" + suffix, "GEOID"]
    else:
        candidates = ["GEOID", "GEOID" + suffix]
    prefixed = [name for name in ("GEO_ID", "AFFGEOID", "AFFGEOID" + suffix) if name in by_upper]
    column = next((by_upper[c] for c in candidates if c in by_upper), None)
    if column is not None:
        values = frame[column]
    elif prefixed:
        column = by_upper[prefixed[0]]
        values = _strip_summary_level(frame[column])
    else:
        others = sorted(c for c in by_upper if re.fullmatch(r"(?:AFF)?GEOID\d\d", c))
        if others:
            raise InputError(
                f"{path}: field {others[0]} belongs to another boundary vintage than "
                f"boundary_year={boundary_year} (expected one of {candidates})"
            )
        built = _geoid_from_components(frame, by_upper, level=level, suffix=suffix)
        if built is None:
            raise InputError(
                f"{path}: no GEOID field (looked for {candidates}, GEO_ID, AFFGEOID or the "
                f"TIGER components {list(_COMPONENTS[level])}); fields are {list(by_upper)}"
            )
        column, values = built
    return _normalize_geoid(values, path=path, field=str(column), level=level)


def _strip_summary_level(values: pd.Series) -> pd.Series:
    """GEOIDs from cartographic-boundary ids: the digits after the summary-level prefix.

    Examples
    --------
    >>> _strip_summary_level(pd.Series(["1500000US240010001001", "8600000US01001"])).tolist()
    ['240010001001', '01001']
    """
    return values.astype("string").str.strip().str.replace(_SUMMARY_LEVEL_PREFIX, "", n=1,
                                                           regex=True)


def _geoid_from_components(
    frame: pd.DataFrame, by_upper: dict[str, object], *, level: str, suffix: str
) -> tuple[str, pd.Series] | None:
    for sfx in (suffix, ""):
        names = [name + sfx for name in _COMPONENTS[level]]
        if all(name in by_upper for name in names):
            parts = [frame[by_upper[name]].astype("string").str.strip() for name in names]
            joined = parts[0]
            for part in parts[1:]:
                joined = joined + part
            return "+".join(names), joined
    return None


def _normalize_geoid(values: pd.Series, *, path: Path, field: str, level: str) -> np.ndarray:
    width = GEOID_LENGTH[level]
    if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("Int64")
    if pd.api.types.is_integer_dtype(values):
        # The reader took the GEOID for a number and dropped its leading zero: put it back.
        text = values.astype("string").str.zfill(width)
    else:
        text = values.astype("string").str.strip()
    good = text.str.fullmatch(rf"\d{{{width}}}").fillna(False).to_numpy(dtype=bool)
    if not good.all():
        i = int(np.flatnonzero(~good)[0])
        value = values.iloc[i]
        hint = ""
        if isinstance(text.iloc[i], str):
            other = [lv for lv, n in GEOID_LENGTH.items() if n == len(text.iloc[i]) and lv != level]
            if other:
                hint = f"; it looks like a {' or '.join(other)} GEOID: is level={level!r} right?"
        raise InputError(
            f"{path}: row {i + 1} (1-based feature number), field {field}: GEOID {value!r} is "
            f"not a {width}-digit {level} GEOID ({int((~good).sum())} bad rows in all){hint}"
        )
    array = text.to_numpy(dtype=object)
    duplicated = pd.Series(array).duplicated(keep="first").to_numpy()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated)[0])
        first = int(np.flatnonzero(array == array[i])[0])
        raise InputError(
            f"{path}: row {i + 1} (1-based feature number), field {field}: GEOID {array[i]} "
            f"repeats row {first + 1}; expected one feature per geography"
        )
    return array


def _check_connecticut(geoids: np.ndarray, *, path: Path, level: str) -> None:
    """Refuse a file holding both Connecticut's counties and its planning regions.

    Either is a valid boundary vintage: the 8 counties (09001-09015) up to the 2021 files, the
    9 planning regions (09110-09190) from 2022. Together they would overlap.

    Examples
    --------
    >>> _check_connecticut(np.array(["09001", "09003"]), path=Path("c.shp"), level="county")
    >>> _check_connecticut(np.array(["09001", "09110"]), path=Path("c.shp"), level="county")
    Traceback (most recent call last):
    ...
    ingestion.core.errors.InputError: c.shp: row 2 (1-based feature number), field geoid: 09110...
    """
    if level not in ("county", "tract", "block_group"):
        return
    county = pd.Series(geoids, dtype=object).str.slice(0, 5)
    legacy = county.isin(_CT_COUNTIES).to_numpy()
    regions = county.isin(_CT_PLANNING_REGIONS).to_numpy()
    if legacy.any() and regions.any():
        i, j = int(np.flatnonzero(regions)[0]), int(np.flatnonzero(legacy)[0])
        raise InputError(
            f"{path}: row {i + 1} (1-based feature number), field geoid: {geoids[i]} lies in a "
            f"Connecticut planning region (09110-09190, 2022 on) but row {j + 1} ({geoids[j]}) "
            "in a Connecticut county (09001-09015, up to 2021): load one boundary vintage per file"
        )
    if regions.any():
        logger.info("%s: Connecticut by planning regions (09110-09190)", path)


# -- geometry ----------------------------------------------------------------------------------


def _check_geometry(geoms: np.ndarray, *, path: Path, repair: bool) -> np.ndarray:
    geoms = np.asarray(geoms, dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise InputError(f"{path}: row {i + 1} (1-based feature number), field geometry: "
                         "missing or empty geometry")
    types = shapely.get_type_id(geoms)
    polygonal = np.isin(types, (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON))
    if not polygonal.all():
        i = int(np.flatnonzero(~polygonal)[0])
        raise InputError(
            f"{path}: row {i + 1} (1-based feature number), field geometry: "
            f"{geoms[i].geom_type} is not a polygon (expected Polygon or MultiPolygon)"
        )
    invalid = ~shapely.is_valid(geoms)
    if not invalid.any():
        return geoms
    first = int(np.flatnonzero(invalid)[0])
    reason = shapely.is_valid_reason(geoms[first])
    if not repair:
        raise InputError(
            f"{path}: row {first + 1} (1-based feature number), field geometry: invalid "
            f"geometry ({reason}); {int(invalid.sum())} invalid in all (repair=True fixes them)"
        )
    fixed = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
    fixed = np.array([_polygonal_part(g) for g in fixed], dtype=object)
    empty = shapely.is_empty(fixed)
    if empty.any():
        i = int(np.flatnonzero(invalid)[np.flatnonzero(empty)[0]])
        raise InputError(f"{path}: row {i + 1} (1-based feature number), field geometry: "
                         "invalid geometry with no polygonal area left after repair")
    geoms = geoms.copy()
    geoms[invalid] = fixed
    logger.warning("%s: repaired %d invalid geometries (first: row %d, %s)",
                   path, int(invalid.sum()), first + 1, reason)
    return geoms


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry:
    if geom.geom_type in _POLYGONAL:
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in _POLYGONAL]
    return shapely.union_all(parts) if parts else shapely.Polygon()


# -- CRS -----------------------------------------------------------------------------------------


def _to_boundary_crs(frame: gpd.GeoDataFrame, *, path: Path) -> gpd.GeoDataFrame:
    crs = frame.crs
    if crs is None:
        minx, miny, maxx, maxy = frame.total_bounds
        if -180 <= minx and maxx <= 180 and -90 <= miny and maxy <= 90:
            logger.warning("%s has no CRS; its coordinates look like lon/lat: assuming %s",
                           path, BOUNDARY_CRS)
            return frame.set_crs(BOUNDARY_CRS)
        raise InputError(f"{path}: no CRS and coordinates are not longitude/latitude "
                         f"(bounds {[minx, miny, maxx, maxy]}); expected {BOUNDARY_CRS}")
    if _is_lonlat_equivalent(crs):
        return frame.set_crs(BOUNDARY_CRS, allow_override=True)
    logger.info("%s: reprojecting from %s to %s", path, crs.to_string(), BOUNDARY_CRS)
    return frame.to_crs(BOUNDARY_CRS)


def _is_lonlat_equivalent(crs: CRS) -> bool:
    crs = CRS.from_user_input(crs)
    if crs.to_epsg(min_confidence=70) in _LONLAT_EQUIVALENT_EPSG:
        return True
    return crs.equals(CRS("OGC:CRS84")) or crs.equals(CRS("OGC:CRS83"))
