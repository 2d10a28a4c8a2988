"""Where the patient lived then: address histories in, a geography timeline out.

Three steps, each a function:

1. `read_address_history` reads and validates a patient address history (CSV or Parquet) and
   returns the accepted periods and a record of every rejected row (file, line, field, reason).
2. `link_addresses` places each period's coordinates in the boundary polygons of every loaded
   boundary vintage (one vectorized point-in-polygon per vintage) and returns the patient
   geography timeline of `ingestion.core.datasets.geography_timeline_spec`, with a typed missing
   reason for every period that could not be linked.
3. `linkage_funnel` counts input rows and patients by outcome (rejected rows included, at
   their stage and reason), for reports.

Semantics
---------
* **Periods are half-open**: ``[valid_from, valid_to)``. ``valid_to`` is the first day at the
  next address, so a patient who moves on 2020-03-01 has one period ending 2020-03-01 and the
  next starting 2020-03-01; an event on 2020-03-01 belongs to the new address. An empty
  ``valid_to`` means "current address". Dates become 00:00 UTC; timestamps are stored at
  microsecond resolution.
* **Edges and vertices**: a point on the boundary shared by several polygons is assigned to the
  polygon with the smallest GEOID among those whose closure contains it (the polygons the
  point *intersects*). The answer is deterministic and does not depend on file order.
* **No residence, no link**: a PO box locates a post office, so PO-box periods are never linked
  even when coordinates are given (`ingestion.sources.geocoder.PO_BOX_PATTERN`, the one definition).
* **A ZIP is not an address**: a period known only by its ZIP (or whose street has no
  coordinates) can be linked through a ZIP crosswalk to the ZIP's ZCTA, flagged with link
  method ``zip_crosswalk`` and precision ``zcta``; it never gets a block group or tract.

Linking is local: no address leaves the machine (geocoding is a separate, opt-in step:
`ingestion.sources.geocoder`).
"""

from __future__ import annotations

import gzip
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from ingestion.core.datasets import (
    BOUNDARY_VINTAGES,
    GEOID_LENGTH,
    geography_timeline_spec,
)
from ingestion.core.errors import InputError, LinkageError
from ingestion.core.patient_data import ADDRESS_COLUMNS
from ingestion.geo.boundaries import BOUNDARY_CRS
from ingestion.geo.zip_crosswalk import zip_links
from ingestion.sources.geocoder import PO_BOX_PATTERN

__all__ = [
    "ADDRESS_COLUMNS",
    "LINK_MISSING_REASONS",
    "PO_BOX_PATTERN",
    "REJECT_COLUMNS",
    "REJECT_REASONS",
    "US_EXTENTS",
    "link_addresses",
    "linkage_funnel",
    "read_address_history",
]

logger = logging.getLogger(__name__)

_REQUIRED = ("patient_id", "valid_from")
_TEXT_COLUMNS = ("street", "city", "state", "zip")

#: Columns of the rejects frame. ``row`` is the 1-based line in a CSV (header = line 1) or the
#: 1-based record number in a Parquet file; ``value`` is the offending raw value.
REJECT_COLUMNS = ("source_file", "row", "patient_id", "field", "value", "reason", "message")

#: Why a row of an address history can be rejected.
REJECT_REASONS = {
    "empty_row": "The line holds no value at all",
    "missing_value": "A required field (patient_id, valid_from) is empty",
    "unparseable_date": "A date is not an ISO 8601 date or timestamp",
    "inverted_interval": "valid_to is on or before valid_from",
    "unparseable_number": "A coordinate is not a number",
    "impossible_coordinate": "|latitude| > 90 or |longitude| > 180 (or not finite)",
    "incomplete_coordinates": "Only one of latitude and longitude is given",
    "placeholder_coordinates": "Latitude and longitude are both 0 (a geocoder's 'no result')",
    "swapped_coordinates": "Latitude and longitude look swapped (see US_EXTENTS)",
    "invalid_zip": "The ZIP is not 5 digits, optionally followed by 4 (ZIP+4)",
    "duplicate_row": "The same period and address as an earlier row of the file",
    "overlapping_interval": "The period overlaps another period of the same patient",
}

#: The missing reasons `link_addresses` writes to ``link_missing`` (all in the catalog).
LINK_MISSING_REASONS = (
    "po_box", "zip_only", "zip_not_in_crosswalk", "zip_has_no_zcta", "invalid_zip",
    "geocode_failed", "geocoder_unavailable", "no_coordinates", "outside_boundaries",
)

#: Where U.S. addresses can be, as (min_lon, max_lon, min_lat, max_lat) boxes: North America
#: from Puerto Rico and the Virgin Islands to Alaska and Hawaii, the Aleutians west of the
#: antimeridian, Guam and the Northern Marianas, American Samoa. The swapped-coordinate rule:
#: a pair is swapped when (latitude, longitude) is in none of these boxes but (longitude,
#: latitude) is. No pair can be inside both ways (a U.S. longitude here is never a valid
#: U.S. latitude), so a correct U.S. point is never flagged, and a point elsewhere in the
#: world is never flagged either; it is left to link as ``outside_boundaries``.
US_EXTENTS = (
    (-180.0, -64.0, 17.0, 72.0),
    (172.0, 180.0, 51.0, 54.0),
    (144.0, 146.5, 13.0, 21.0),
    (-171.2, -168.0, -15.0, -11.0),
)

_ZIP_PATTERN = r"(\d{5})(?:-?\d{4})?"
# A far-future valid_to is a common "open-ended" convention; it means the current address.
_OPEN_ENDED = re.compile(r"9999-12-31(?:[T ]00:00(?::00(?:\.0+)?)?(?:Z|[+-]00:?00)?)?")
_TS_DTYPE = "datetime64[us, UTC]"
_LEVELS = ("block_group", "tract", "county")
# Preparing a polygon (an index over its edges) pays from about 10-15 points tested against
# it, whatever its vertex count (measured with shapely 2.2 / GEOS 3.14, 16 to 400 vertices).
_PREPARE_FROM = 16


# -- reading and validating ---------------------------------------------------------------------


def read_address_history(
    path: str | os.PathLike[str],
    *,
    check_swapped: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and validate a patient address history; return accepted and rejected rows.

    Every row is checked. A row that fails a check is not accepted and gets one record per
    problem in the rejects frame; nothing is dropped without a record. The checks (reason
    codes in `REJECT_REASONS`): empty line; missing ``patient_id`` or ``valid_from``; dates
    that are not ISO 8601 (``2020-03-01`` or a timestamp; naive times are UTC; a
    ``valid_to`` of ``9999-12-31`` means current); ``valid_to`` on or before ``valid_from``;
    a coordinate that is not a number, out of range, alone (latitude without longitude or the
    reverse), (0, 0), or probably swapped (see `US_EXTENTS`); a ZIP that is not ``12345`` or
    ``12345-6789``. Rows passing those checks are then checked together: an exact duplicate
    of an earlier row is rejected (the first is kept), and all periods of a patient that
    overlap another of the patient's periods are rejected, since which address held then is
    unknown. Periods are half-open ``[valid_from, valid_to)``: a period ending on the day the
    next one starts does not overlap it; two current (open-ended) periods do.

    Parameters
    ----------
    path
        A ``.csv`` (optionally ``.csv.gz``) or ``.parquet`` file with columns
        `ADDRESS_COLUMNS` (names are matched case-insensitively); ``patient_id`` and
        ``valid_from`` are required, the others optional. Other columns are ignored.
    check_swapped
        Reject probably swapped latitude/longitude pairs (a U.S. rule; turn off for addresses
        outside the United States).

    Returns
    -------
    accepted : pandas.DataFrame
        `ADDRESS_COLUMNS` plus ``row`` (where it came from), sorted by ``patient_id`` and
        ``valid_from``: ``valid_from``/``valid_to`` as ``datetime64[us, UTC]`` (``valid_to``
        NaT = current), coordinates as float64, ``zip`` as its 5 digits, text as string dtype.
    rejects : pandas.DataFrame
        `REJECT_COLUMNS`, one row per problem, sorted by ``row``.

    Raises
    ------
    InputError
        The file cannot be read or lacks a required column (names the file and column).

    Examples
    --------
    >>> path = scratch.root / "addresses.csv"
    >>> _ = path.write_text("patient_id,valid_from,latitude,longitude\\n"
    ...                     "P1,2019-05-01,38.13,-69.89\\n"
    ...                     "P2,May 2019,38.28,-69.71\\n")
    >>> accepted, rejects = read_address_history(path)
    >>> rejects[["row", "field", "reason"]]
       row       field            reason
    0    3  valid_from  unparseable_date
    """
    path = Path(path)
    raw, rows = _read_table(path)
    text = {c: _clean_text(raw[c]) for c in raw.columns}
    text["zip"] = _zip_text(raw["zip"], text["zip"])
    problems: list[pd.DataFrame] = []
    rejected = np.zeros(len(raw), dtype=bool)

    def reject(mask: np.ndarray, field: str, reason: str, message: str,
               value: pd.Series | None = None) -> None:
        nonlocal rejected
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        shown = raw[field] if value is None and field in raw.columns else value
        problems.append(pd.DataFrame({
            "row": rows[mask],
            "patient_id": text["patient_id"].to_numpy(dtype=object)[mask],
            "field": field,
            "value": (shown.astype("string").to_numpy(dtype=object)[mask]
                      if shown is not None else None),
            "reason": reason,
            "message": message,
        }))
        rejected |= mask

    empty = np.logical_and.reduce([text[c].isna().to_numpy() for c in text])
    reject(empty, "", "empty_row", "the line holds no value")
    live = ~empty

    reject(live & text["patient_id"].isna().to_numpy(), "patient_id", "missing_value",
           "patient_id is required")
    reject(live & text["valid_from"].isna().to_numpy(), "valid_from", "missing_value",
           "valid_from is required")
    start, bad_start = _parse_dates(raw["valid_from"], open_ended=False)
    reject(live & bad_start, "valid_from", "unparseable_date",
           "valid_from is not an ISO 8601 date (YYYY-MM-DD) or timestamp")
    end, bad_end = _parse_dates(raw["valid_to"], open_ended=True)
    reject(live & bad_end, "valid_to", "unparseable_date",
           "valid_to is not an ISO 8601 date (YYYY-MM-DD) or timestamp (empty = current)")
    inverted = (end.notna() & start.notna() & (end <= start)).to_numpy()
    reject(live & inverted, "valid_to", "inverted_interval",
           "valid_to must be after valid_from (periods are [valid_from, valid_to))")

    lat, bad_lat = _parse_numbers(raw["latitude"])
    lon, bad_lon = _parse_numbers(raw["longitude"])
    reject(live & bad_lat, "latitude", "unparseable_number", "latitude is not a number")
    reject(live & bad_lon, "longitude", "unparseable_number", "longitude is not a number")
    numbers_ok = live & ~bad_lat & ~bad_lon
    pair = text["latitude"].fillna("") + ", " + text["longitude"].fillna("")
    coordinate_problems = _coordinate_problems(lat, lon, check_swapped=check_swapped)
    for (field, reason), mask in coordinate_problems.items():
        shown = pair if reason in ("placeholder_coordinates", "swapped_coordinates") else None
        reject(numbers_ok & mask, field, reason, _COORDINATE_MESSAGES[field, reason],
               value=shown)

    zip_code = text["zip"]
    bad_zip = (zip_code.notna() & ~zip_code.str.fullmatch(_ZIP_PATTERN).fillna(False)).to_numpy()
    reject(live & bad_zip, "zip", "invalid_zip", "ZIP must be 12345 or 12345-6789")

    accepted = pd.DataFrame({
        "patient_id": text["patient_id"],
        "valid_from": start,
        "valid_to": end,
        "street": text["street"],
        "city": text["city"],
        "state": text["state"].str.upper(),
        "zip": zip_code.str.extract(rf"^{_ZIP_PATTERN}$", expand=False).astype("string"),
        "latitude": lat,
        "longitude": lon,
        "row": rows,
    })[~rejected]

    accepted, group_problems = _check_periods(accepted)
    problems.extend(group_problems)
    accepted = (accepted.sort_values(["patient_id", "valid_from"], kind="stable")
                .reset_index(drop=True))
    rejects = _rejects_frame(problems, source_file=str(path))
    logger.info("%s: %d address periods accepted, %d rows rejected (%d problems)", path,
                len(accepted), rejects["row"].nunique(), len(rejects))
    return accepted, rejects


def _read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read the file: its columns (names lower-cased) and each record's row number."""
    if not path.exists():
        raise InputError(f"{path}: address history not found")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            raw = pd.read_parquet(path)
            rows = np.arange(1, len(raw) + 1, dtype=np.int64)
        elif ".csv" in suffixes or ".txt" in suffixes:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                              skip_blank_lines=False, encoding="utf-8-sig")
            rows = _csv_line_numbers(raw, path)
        else:
            raise InputError(f"{path}: expected a .csv or .parquet address history")
    except InputError:
        raise
    except Exception as exc:  # pandas and pyarrow raise many types for a malformed file
        raise InputError(f"{path}: cannot read the address history: {exc}") from exc
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    duplicated = raw.columns[raw.columns.duplicated()].tolist()
    if duplicated:
        raise InputError(f"{path}: row 1 (header): column {duplicated[0]!r} appears twice")
    for column in _REQUIRED:
        if column not in raw.columns:
            raise InputError(f"{path}: row 1 (header): required column {column!r} is missing "
                             f"(found {list(raw.columns)}; expected {list(ADDRESS_COLUMNS)})")
    for column in ADDRESS_COLUMNS:
        if column not in raw.columns:
            raw[column] = None
    return raw[list(ADDRESS_COLUMNS)].reset_index(drop=True), rows


def _csv_line_numbers(raw: pd.DataFrame, path: Path) -> np.ndarray:
    """Line of each record: header is line 1; quoted fields may span lines."""
    rows = np.arange(2, len(raw) + 2, dtype=np.int64)
    if _count_lines(path) == len(raw) + 1:
        return rows  # one line per record: no field holds a line break
    extra = np.zeros(len(raw), dtype=np.int64)
    for column in raw.columns:
        values = raw[column]
        if values.notna().any():
            extra += values.str.count("\n").fillna(0).to_numpy(dtype=np.int64)
    before = np.concatenate([[0], np.cumsum(extra)[:-1]]) if len(raw) else extra
    return rows + before


def _count_lines(path: Path) -> int:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    newlines, last = 0, b"\n"
    with opener(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    return newlines + (last != b"\n")


def _clean_text(values: pd.Series) -> pd.Series:
    """Text as string dtype, stripped, empty as missing."""
    if pd.api.types.is_datetime64_any_dtype(values):
        values = values.dt.strftime("%Y-%m-%d")
    text = values.astype("string")
    if not [v for v in text.to_numpy(dtype=object) if v is not pd.NA and (not v or v.strip() != v)]:
        return text  # already clean (astype copied it): the common case, 2-3x faster
    text = text.str.strip()
    return text.mask(text == "")


def _zip_text(values: pd.Series, text: pd.Series) -> pd.Series:
    """ZIPs as text; a numeric column lost its leading zeros, so they are put back."""
    if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("Int64")
    if pd.api.types.is_integer_dtype(values):
        return values.astype("string").str.zfill(5)
    return text


def _parse_dates(values: pd.Series, *, open_ended: bool) -> tuple[pd.Series, np.ndarray]:
    """UTC microsecond timestamps and a mask of values that are given but not parseable."""
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values if values.dt.tz is not None else values.dt.tz_localize("UTC")
        ts = ts.dt.tz_convert("UTC").astype(_TS_DTYPE)
        if open_ended:
            ts = ts.mask(ts >= pd.Timestamp("9999-12-31", tz="UTC"))
        return ts, np.zeros(len(values), dtype=bool)
    text = _clean_text(values)
    if open_ended:
        text = text.mask(text.str.fullmatch(_OPEN_ENDED.pattern).fillna(False))
    parsed = pd.to_datetime(text.astype(object), format="ISO8601", utc=True, errors="coerce")
    # format="ISO8601" also takes "2020" or "2020-03" as a date: a period needs a day.
    has_day = text.str.match(r"\d{4}-\d{2}-\d{2}").fillna(False).to_numpy(dtype=bool)
    bad = text.notna().to_numpy() & (parsed.isna().to_numpy() | ~has_day)
    parsed = pd.Series(parsed, index=values.index).mask(bad)
    return parsed.astype(_TS_DTYPE), bad


def _parse_numbers(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64"), np.zeros(len(values), dtype=bool)
    text = _clean_text(values)
    number = pd.to_numeric(text.astype(object), errors="coerce").astype("float64")
    bad = text.notna().to_numpy() & number.isna().to_numpy()
    return number, bad


def _in_us(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    inside = np.zeros(lon.shape, dtype=bool)
    for min_lon, max_lon, min_lat, max_lat in US_EXTENTS:
        inside |= (lon >= min_lon) & (lon <= max_lon) & (lat >= min_lat) & (lat <= max_lat)
    return inside


_COORDINATE_MESSAGES = {
    ("latitude", "incomplete_coordinates"): "longitude given without latitude",
    ("longitude", "incomplete_coordinates"): "latitude given without longitude",
    ("latitude", "impossible_coordinate"): "latitude must be within [-90, 90]",
    ("longitude", "impossible_coordinate"): "longitude must be within [-180, 180]",
    ("latitude", "placeholder_coordinates"): "(0, 0) is a geocoder's 'no result' placeholder",
    ("latitude", "swapped_coordinates"):
        "latitude and longitude look swapped: (longitude, latitude) is in the U.S.",
}


def _coordinate_problems(lat: pd.Series, lon: pd.Series, *,
                         check_swapped: bool) -> dict[tuple[str, str], np.ndarray]:
    a = lat.to_numpy(dtype="float64")
    o = lon.to_numpy(dtype="float64")
    has_a, has_o = ~np.isnan(a), ~np.isnan(o)
    both = has_a & has_o
    with np.errstate(invalid="ignore"):
        swapped = both & ~_in_us(o, a) & _in_us(a, o) if check_swapped else both & False
        placeholder = both & (a == 0) & (o == 0)
        bad_a = both & ~swapped & ~(np.abs(a) <= 90)
        bad_o = both & ~swapped & ~(np.abs(o) <= 180)
    return {
        ("latitude", "incomplete_coordinates"): has_o & ~has_a,
        ("longitude", "incomplete_coordinates"): has_a & ~has_o,
        ("latitude", "impossible_coordinate"): bad_a,
        ("longitude", "impossible_coordinate"): bad_o,
        ("latitude", "placeholder_coordinates"): placeholder,
        ("latitude", "swapped_coordinates"): swapped,
    }


def _check_periods(accepted: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Reject exact duplicates (keeping the first) and every period that overlaps another."""
    problems = []
    duplicate = accepted.drop(columns="row").duplicated(keep="first")
    if duplicate.any():
        first_row = accepted.groupby(
            [accepted[c].astype("string").fillna("\0") for c in ADDRESS_COLUMNS],
            sort=False,
        )["row"].transform("min")
        dup = accepted[duplicate]
        problems.append(pd.DataFrame({
            "row": dup["row"].to_numpy(), "patient_id": dup["patient_id"].to_numpy(dtype=object),
            "field": "", "value": None, "reason": "duplicate_row",
            "message": [f"same period and address as row {r}" for r in first_row[duplicate]],
        }))
        accepted = accepted[~duplicate]

    ordered = accepted.sort_values(["patient_id", "valid_from", "row"], kind="stable")
    overlap, other_row = _overlaps(ordered)
    if overlap.any():
        bad = ordered[overlap]
        problems.append(pd.DataFrame({
            "row": bad["row"].to_numpy(), "patient_id": bad["patient_id"].to_numpy(dtype=object),
            "field": "valid_from",
            "value": bad["valid_from"].dt.strftime("%Y-%m-%d").to_numpy(dtype=object),
            "reason": "overlapping_interval",
            "message": [f"overlaps row {r} of the same patient (periods are "
                        "[valid_from, valid_to); both rows are rejected)"
                        for r in other_row[overlap]],
        }))
    return ordered[~overlap], problems


def _overlaps(ordered: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Which periods overlap another of the patient's, and the row of one they overlap.

    ``ordered`` is sorted by patient and start. A period overlaps a later one if it ends
    after the next period starts; it overlaps an earlier one if it starts before the latest
    end so far. Open ends count as +infinity. Vectorized: no loop per row.
    """
    n = len(ordered)
    if n == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    patient = ordered["patient_id"].to_numpy(dtype=object)
    start = _micros(ordered["valid_from"])
    end = _micros(ordered["valid_to"])
    end[end == np.iinfo(np.int64).min] = np.iinfo(np.int64).max  # NaT: open-ended
    rows = ordered["row"].to_numpy(dtype=np.int64)
    same_next = np.zeros(n, dtype=bool)
    same_next[:-1] = patient[1:] == patient[:-1]
    same_prev = np.roll(same_next, 1)
    same_prev[0] = False
    with_next = same_next & (end > np.roll(start, -1))

    group = np.concatenate([[0], np.cumsum(~same_next[:-1])])
    running_max = pd.Series(end).groupby(group).cummax().to_numpy()
    # The position of the period holding the running maximum end (the latest one if tied).
    holder = np.where(end == running_max, np.arange(n), -1)
    holder = pd.Series(holder).groupby(group).cummax().to_numpy()
    with_prev = same_prev & (start < np.roll(running_max, 1))
    other = np.where(with_next, np.roll(rows, -1), rows[np.roll(holder, 1)])
    return with_next | with_prev, other


def _micros(values: pd.Series) -> np.ndarray:
    """Microseconds since the epoch (NaT as the smallest int64)."""
    return pd.DatetimeIndex(values).as_unit("us").asi8.copy()


def _rejects_frame(problems: list[pd.DataFrame], *, source_file: str) -> pd.DataFrame:
    frames = [p for p in problems if len(p)]
    if frames:
        out = pd.concat(frames, ignore_index=True)
    else:
        out = pd.DataFrame({c: [] for c in REJECT_COLUMNS if c != "source_file"})
    out.insert(0, "source_file", source_file)
    out = out.astype({"source_file": "string", "row": "int64", "patient_id": "string",
                      "field": "string", "value": "string", "reason": "string",
                      "message": "string"})
    return out[list(REJECT_COLUMNS)].sort_values(["row", "field", "reason"], kind="stable") \
        .reset_index(drop=True)


# -- rejects of a run ---------------------------------------------------------------------------

# -- linking ----------------------------------------------------------------------------------


def link_addresses(
    history: pd.DataFrame,
    boundaries: Mapping[int, gpd.GeoDataFrame],
    *,
    level: str = "block_group",
    zcta_boundaries: Mapping[int, gpd.GeoDataFrame] | None = None,
    zip_crosswalk: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Link each address period to the geographies of every loaded boundary vintage.

    Periods with coordinates (and no PO box) are placed by point-in-polygon, once per boundary
    vintage: the points are binned once in a grid that every polygon queries by bounding box,
    and shapely tests the candidate pairs exactly (vectorized; no loop per point). A point on
    an edge or vertex shared by several polygons goes to the smallest GEOID among the polygons
    it intersects. The tract and county GEOIDs are the first 11 and 5 digits of the block
    group's; the ZCTA comes from its own polygons (``zcta_boundaries``), since ZCTAs do not
    nest. A period without coordinates but with a
    ZIP falls back to the ZIP crosswalk, which gives the ZCTA (UDS) or county (HUD county
    file) of the ZIP, never a tract or block group. Each period gets one outcome:

    =========================  ======================  ===========  ================
    the period has             link_missing            precision    link_method
    =========================  ======================  ===========  ================
    a PO-box street            po_box                  none         none
    coordinates, in polygons   (null)                  coordinate   point_in_polygon
    coordinates, outside       outside_boundaries      none         none
    a street, no coordinates   geocode_failed [1]      none [2]     none [2]
    only a ZIP                 zip_only [3]            zip [2]      none [2]
    nothing usable             no_coordinates          none         none
    =========================  ======================  ===========  ================

    [1] ``geocoder_unavailable`` when the history carries a ``geocode_missing`` column (from
    `ingestion.sources.geocoder.apply_geocodes`) saying the Census Geocoder batch failed.
    [2] With a ``zip_crosswalk`` that links the ZIP: precision ``zcta`` (or ``county``), link
    method ``zip_crosswalk``, the ZCTA (or county) GEOID of the crosswalk's boundary vintage
    and the ``zip_*`` columns; ``link_missing`` still says why there is no block group.
    [3] With a ``zip_crosswalk`` that cannot link the ZIP: its reason instead
    (``zip_not_in_crosswalk``, ``zip_has_no_zcta``, ``invalid_zip``).

    A point inside the polygons of one loaded vintage but outside another's keeps the GEOIDs
    it has, with link method ``point_in_polygon``, precision ``coordinate`` and
    ``link_missing`` ``outside_boundaries`` explaining the null GEOIDs. The columns of a
    boundary vintage that was not loaded are null; ``nonresidential_zip`` is true only for a
    ZIP the crosswalk flags as a PO-box, unique or military ZIP.

    Parameters
    ----------
    history
        Address periods, e.g. the accepted frame of `read_address_history`: ``patient_id``,
        ``valid_from`` and optionally ``valid_to``, ``street``, ``zip``, ``latitude``,
        ``longitude`` (longitude/latitude in NAD83 or WGS84 degrees), ``geocode_missing``.
        Other columns are ignored.
    boundaries
        Boundary vintage (2010, 2020) to polygons with columns ``geoid`` and ``geometry``, as
        `ingestion.geo.boundaries.load_boundary_set` returns them. A frame in another CRS is
        fine: the points are transformed to it.
    level
        The level of the polygons: ``"block_group"`` (all three GEOID columns filled),
        ``"tract"`` (tract and county) or ``"county"``.
    zcta_boundaries
        Boundary vintage to ZCTA polygons (5-digit ``geoid``), to fill ``zcta_geoid_<year>``
        of periods with coordinates.
    zip_crosswalk
        A UDS ZIP-to-ZCTA or HUD ZIP-to-county crosswalk from
        `ingestion.geo.zip_crosswalk.read_zip_crosswalk`, with its ``boundary_year`` known.

    Returns
    -------
    pandas.DataFrame
        Exactly the columns of `ingestion.core.datasets.geography_timeline_spec`, in order, one row
        per period, sorted by ``patient_id`` and ``valid_from``: timestamps
        ``datetime64[us, UTC]`` (``valid_to`` NaT = current), text as string dtype,
        ``patient_id_scheme`` ``raw``.

    Raises
    ------
    LinkageError
        ``history`` lacks a required column, has unparseable or inverted dates, a repeated
        (patient_id, valid_from) or overlapping periods; ``boundaries`` is empty, holds a
        year other than 2010 or 2020, or a frame without ``geoid``/geometry or with GEOIDs
        of another level; ``zip_crosswalk`` is a HUD ZIP-to-tract file (it would give tract
        precision) or lacks its boundary vintage.
    ValueError
        ``level`` is not one of block_group, tract, county.
    TypeError
        ``history`` is not a DataFrame.

    Examples
    --------
    >>> import geopandas as gpd, pandas as pd, shapely
    >>> squares = gpd.GeoDataFrame({"geoid": ["421010005001"]},
    ...                            geometry=[shapely.box(-76, 39, -75, 40)], crs=4269)
    >>> history = pd.DataFrame({"patient_id": ["p1"], "valid_from": ["2019-05-01"],
    ...                         "latitude": [39.95], "longitude": [-75.16]})
    >>> link_addresses(history, {2020: squares})[["tract_geoid_2020", "precision"]]
      tract_geoid_2020   precision
    0      42101000500  coordinate
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {list(_LEVELS)}, got {level!r}")
    if not isinstance(history, pd.DataFrame):
        raise TypeError(f"history must be a pandas DataFrame, got {type(history).__name__}")
    polygons = _check_boundaries(boundaries, level=level)
    zctas = _check_boundaries(zcta_boundaries, level="zcta") if zcta_boundaries else {}
    crosswalk = _check_zip_crosswalk(zip_crosswalk)
    periods = _prepare_history(history)
    n = len(periods)

    street = periods["street"]
    has_street = street.notna().to_numpy()
    po_box = np.zeros(n, dtype=bool)
    if has_street.any():
        po_box[has_street] = street[has_street].str.contains(PO_BOX_PATTERN) \
            .fillna(False).to_numpy(dtype=bool)
    lat = periods["latitude"].to_numpy(dtype="float64")
    lon = periods["longitude"].to_numpy(dtype="float64")
    has_coords = np.isfinite(lat) & np.isfinite(lon)
    to_link = has_coords & ~po_box
    has_zip = periods["zip"].notna().to_numpy()

    spec = geography_timeline_spec()
    # GEOID columns as object arrays (pd.NA where missing); None: all missing.
    geoids: dict[str, np.ndarray | None] = {c: None for c in spec.column_names if "_geoid_" in c}
    found = _add_point_geoids(geoids, lon, lat, to_link, polygons, zctas, level=level)
    attempt = ~po_box & ~has_coords & has_zip
    links = _zip_fallback(periods["zip"], attempt, crosswalk)
    by_zip = np.zeros(n, dtype=bool) if links is None else \
        (links["link_method"] == "zip_crosswalk").fillna(False).to_numpy(dtype=bool)
    if links is not None:
        _add_zip_geoids(geoids, links, by_zip)

    all_found = np.logical_and.reduce(list(found.values()))
    any_found = np.logical_or.reduce(list(found.values()))
    # link_missing as codes into `reasons`, assigned from the lowest priority up (the first
    # rule that holds wins): po_box, linked, outside, no geocode, ZIP, nothing usable.
    reasons: list[str | None] = [None, "po_box", "outside_boundaries", "geocoder_unavailable",
                                 "geocode_failed", "zip_only", "no_coordinates"]
    code = np.full(n, reasons.index("no_coordinates"), dtype=np.int64)
    if links is None:
        code[has_zip] = reasons.index("zip_only")
    elif has_zip.any():
        zip_reason = links["link_missing"].to_numpy(dtype=object)[has_zip]
        zip_reason[pd.isna(zip_reason)] = "zip_only"
        zip_code, zip_reasons = pd.factorize(zip_reason)
        offset = len(reasons)
        reasons += list(zip_reasons)
        code[has_zip] = zip_code + offset
    if has_street.any():
        unavailable = periods["geocode_missing"].eq("geocoder_unavailable").fillna(False) \
            .to_numpy(dtype=bool)
        code[has_street] = np.where(unavailable, reasons.index("geocoder_unavailable"),
                                    reasons.index("geocode_failed"))[has_street]
    code[to_link] = reasons.index("outside_boundaries")
    code[to_link & all_found] = 0
    code[po_box] = reasons.index("po_box")

    by_point = to_link & any_found
    method = np.full(n, 2, dtype=np.int64)  # none
    method[by_zip] = 1
    method[by_point] = 0
    only_zip = ~po_box & ~has_coords & ~has_street & has_zip
    precision = np.full(n, 4, dtype=np.int64)  # none
    precision[only_zip] = 3
    if links is not None:
        precision[by_zip] = np.where(links["zcta_geoid"].notna().to_numpy(), 1, 2)[by_zip]
    precision[by_point] = 0

    columns: dict[str, object] = {
        "patient_id": periods["patient_id"].array.copy(),
        "valid_from": periods["valid_from"].array.copy(),
        "valid_to": periods["valid_to"].array.copy(),
    }
    for name, values in geoids.items():
        columns[name] = _strings(values, n)
    columns["link_method"] = _strings(
        _table("point_in_polygon", "zip_crosswalk", "none")[method], n)
    columns["precision"] = _strings(
        _table("coordinate", "zcta", "county", "zip", "none")[precision], n)
    columns["link_missing"] = _strings(_table(*reasons)[code], n)
    if links is None:
        columns["zip_join_type"] = _strings(None, n)
        columns["zip_link_ratio"] = np.full(n, np.nan)
        columns["nonresidential_zip"] = np.zeros(n, dtype=bool)
        columns["zip_crosswalk_vintage"] = _strings(None, n)
    else:
        columns["zip_join_type"] = links["join_type"].astype("string").array
        columns["zip_link_ratio"] = links["ratio"].astype("float64").to_numpy()
        columns["nonresidential_zip"] = links["nonresidential_zip"].astype("boolean") \
            .fillna(False).astype(bool).to_numpy()
        columns["zip_crosswalk_vintage"] = links["crosswalk_vintage"].astype("string").array
    columns["patient_id_scheme"] = _strings(np.full(n, "raw", dtype=object), n)
    out = pd.DataFrame({c: columns[c] for c in spec.column_names}, copy=False)
    if logger.isEnabledFor(logging.INFO):
        counts = dict(zip(reasons, np.bincount(code, minlength=len(reasons)).tolist(),
                          strict=True))
        logger.info("linked %d of %d address periods by point, %d more by ZIP (%s)",
                    int(by_point.sum()), n, int(by_zip.sum()),
                    ", ".join(f"{r}: {counts.get(r, 0)}" for r in LINK_MISSING_REASONS))
    return out


def _table(*values: str | None) -> np.ndarray:
    """An object array of ``values``, None as pd.NA: index it with codes to get strings."""
    return np.array([pd.NA if v is None else v for v in values] + [pd.NA], dtype=object)[:-1]


def _strings(values: np.ndarray | None, n: int) -> pd.api.extensions.ExtensionArray:
    """A string array of an object array of str and pd.NA (None: ``n`` missing values)."""
    if values is None:
        return pd.Series(pd.NA, index=range(n), dtype="string").array
    return pd.array(values, dtype="string")


def _add_point_geoids(geoids: dict[str, np.ndarray | None], lon: np.ndarray, lat: np.ndarray,
                      to_link: np.ndarray, polygons: Mapping[int, _Polygons],
                      zctas: Mapping[int, _Polygons], *, level: str) -> dict[int, np.ndarray]:
    """Fill ``<level>_geoid_<year>`` (the levels ``level`` nests in, the ZCTAs) of the points.

    Returns which periods each vintage's ``polygons`` hold (the ZCTAs do not count).

    Examples
    --------
    >>> geoids = {"zcta_geoid_2020": None}
    >>> squares = _check_boundaries({2020: gpd.GeoDataFrame(
    ...     {"geoid": ["08540"]}, geometry=[shapely.box(-75, 40, -74, 41)], crs=4269)},
    ...     level="zcta")
    >>> _add_point_geoids(geoids, np.array([-74.5]), np.array([40.5]), np.array([True]),
    ...                   {}, squares, level="block_group")
    {}
    >>> geoids["zcta_geoid_2020"].tolist()
    ['08540']
    """
    sets = {**{(level, year): p for year, p in polygons.items()},
            **{("zcta", year): p for year, p in zctas.items()}}
    located = _locate(lon[to_link], lat[to_link], sets)
    found = {}
    for (lv_set, year), frame in sets.items():
        codes = np.full(len(to_link), -1, dtype=np.int64)
        codes[to_link] = located[lv_set, year]
        if lv_set == level:
            found[year] = codes >= 0
        nested = _LEVELS[_LEVELS.index(lv_set):] if lv_set in _LEVELS else (lv_set,)
        for lv in nested:
            width = GEOID_LENGTH[lv]
            table = np.array([g[:width] for g in frame.geoid] + [pd.NA], dtype=object)
            geoids[f"{lv}_geoid_{year}"] = table[codes]  # -1: the last, pd.NA
    return found


def _check_zip_crosswalk(crosswalk: pd.DataFrame | None) -> pd.DataFrame | None:
    """The crosswalk if the timeline can use it: one style, not HUD tract, boundary year known."""
    if crosswalk is None:
        return None
    if not isinstance(crosswalk, pd.DataFrame) or "boundary_year" not in crosswalk.columns:
        raise LinkageError("zip_crosswalk must be a frame from "
                           "ingestion.geo.zip_crosswalk.read_zip_crosswalk")
    source = crosswalk["source_file"].iloc[0] if len(crosswalk) else "the ZIP crosswalk"
    if (crosswalk["style"] == "hud_tract").any():
        raise LinkageError(
            f"{source}: a HUD ZIP-to-tract crosswalk would give ZIP-only patients tract "
            "precision; use a UDS ZIP-to-ZCTA crosswalk or a HUD ZIP-to-county file (for "
            "area-weighted tract analyses see ingestion.geo.zip_crosswalk.zip_allocations)")
    if len(crosswalk) and crosswalk["boundary_year"].isna().any():
        raise LinkageError(
            f"{source}: the crosswalk does not say which boundary vintage its ZCTAs are (UDS "
            "files do not): read it with read_zip_crosswalk(..., boundary_year=2010 or 2020), "
            "or pass --zip-crosswalk-year to sdoh link")
    return crosswalk


def _zip_fallback(zips: pd.Series, attempt: np.ndarray,
                  crosswalk: pd.DataFrame | None) -> pd.DataFrame | None:
    """`zip_links` of the periods in ``attempt`` (others null); None without a crosswalk.

    Examples
    --------
    >>> _zip_fallback(pd.Series(["19107"]), np.array([True]), None) is None
    True
    """
    if crosswalk is None:
        return None
    return zip_links(zips[attempt], crosswalk).reindex(zips.index)


def _add_zip_geoids(geoids: dict[str, np.ndarray | None], links: pd.DataFrame,
                    by_zip: np.ndarray) -> None:
    """Fill the ZCTA or county GEOID of the crosswalk's boundary vintage for ZIP-linked periods."""
    for year in links.loc[by_zip, "boundary_year"].dropna().unique():
        rows = by_zip & (links["boundary_year"] == year).fillna(False).to_numpy(dtype=bool)
        for lv in ("zcta", "county"):
            column = f"{lv}_geoid_{int(year)}"
            values = geoids[column]
            if values is None:
                values = np.full(len(by_zip), pd.NA, dtype=object)
            values[rows] = links[f"{lv}_geoid"].astype("string").to_numpy(dtype=object)[rows]
            geoids[column] = values


class _Polygons(NamedTuple):
    """One boundary vintage's polygons, sorted by GEOID (str), and their CRS."""

    geoid: list[str]
    geometry: np.ndarray
    crs: CRS | None


def _check_boundaries(boundaries: Mapping[int, gpd.GeoDataFrame], *,
                      level: str) -> dict[int, _Polygons]:
    if not isinstance(boundaries, Mapping) or not boundaries:
        raise LinkageError("boundaries must map a boundary vintage (2010, 2020) to polygons; "
                           f"got {boundaries!r:.80}")
    width = GEOID_LENGTH[level]
    checked = {}
    for year, frame in boundaries.items():
        if year not in BOUNDARY_VINTAGES:
            raise LinkageError(f"boundary year {year!r} is not one of {BOUNDARY_VINTAGES}")
        if not isinstance(frame, gpd.GeoDataFrame) or "geoid" not in frame.columns:
            raise LinkageError(f"boundaries[{year}] must be a GeoDataFrame with a 'geoid' "
                               "column (see ingestion.geo.boundaries.load_boundaries)")
        geoid = frame["geoid"].astype("string")
        values = geoid.to_numpy(dtype=object)
        # Same as fullmatch(r"\d{width}"): \d is a Unicode decimal digit, as isdecimal() is.
        right = np.array([g is not pd.NA and len(g) == width and g.isdecimal()
                          for g in values], dtype=bool)
        if not right.all():
            raise LinkageError(
                f"boundaries[{year}] holds GEOID {values[~right][0]!r}; level={level!r} "
                f"expects {width} digits"
            )
        geometry = np.asarray(frame.geometry.array, dtype=object)
        if not geoid.is_monotonic_increasing:
            # Sorted by GEOID, so the smallest polygon index is the smallest GEOID.
            order = np.argsort(values, kind="stable")
            values, geometry = values[order], geometry[order]
        checked[int(year)] = _Polygons(values.tolist(), geometry, frame.crs)
    return checked


def _prepare_history(history: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _REQUIRED if c not in history.columns]
    if missing:
        raise LinkageError(f"history lacks column(s) {missing}; found {list(history.columns)}")
    n = len(history)
    columns: dict[str, object] = {}

    def given(column: str) -> pd.Series | None:
        return history[column].reset_index(drop=True) if column in history.columns else None

    patient_id = _clean_text(given("patient_id"))
    if patient_id.isna().any():
        raise LinkageError("history has an empty patient_id "
                           f"(row index {int(np.flatnonzero(patient_id.isna())[0])})")
    columns["patient_id"] = patient_id
    for column in ("valid_from", "valid_to"):
        values = given(column)
        if values is None:
            values = pd.Series(pd.NaT, index=range(n))
        parsed, bad = _parse_dates(values, open_ended=column == "valid_to")
        if bad.any():
            raise LinkageError(f"history column {column} has an unparseable date at row index "
                               f"{int(np.flatnonzero(bad)[0])}: {values.iloc[bad.argmax()]!r}")
        columns[column] = parsed
    if columns["valid_from"].isna().any():
        raise LinkageError("history has an empty valid_from (row index "
                           f"{int(np.flatnonzero(columns['valid_from'].isna())[0])})")
    start, end = _micros(columns["valid_from"]), _micros(columns["valid_to"])
    end[end == np.iinfo(np.int64).min] = np.iinfo(np.int64).max  # NaT: open-ended
    inverted = end <= start
    if inverted.any():
        raise LinkageError("history has valid_to on or before valid_from at row index "
                           f"{int(np.flatnonzero(inverted)[0])}")
    for column in ("street", "zip", "geocode_missing"):
        values = given(column)
        columns[column] = (_clean_text(values) if values is not None
                           else pd.Series(pd.NA, index=range(n), dtype="string"))
    for column in ("latitude", "longitude"):
        values = given(column)
        columns[column] = (np.full(n, np.nan) if values is None else
                           pd.to_numeric(values, errors="coerce").astype("float64").to_numpy())
    columns["_index"] = np.arange(n)
    periods = pd.DataFrame({c: getattr(v, "array", v) for c, v in columns.items()}, copy=False)

    patient = periods["patient_id"].to_numpy(dtype=object)
    same = patient[1:] == patient[:-1]
    in_order = (same & (start[1:] >= start[:-1])) | (patient[1:] > patient[:-1])
    if not in_order.all():
        periods = periods.sort_values(["patient_id", "valid_from"], kind="stable") \
            .reset_index(drop=True)
        order = periods["_index"].to_numpy()
        patient, start, end = patient[order], start[order], end[order]
        same = patient[1:] == patient[:-1]
    # Sorted: a repeated (patient_id, valid_from) follows its first occurrence.
    repeated = np.r_[False, same & (start[1:] == start[:-1])]
    if repeated.any():
        raise LinkageError("history repeats (patient_id, valid_from) at row index "
                           f"{int(periods['_index'][repeated].iloc[0])}")
    # With no repeated start and no inverted period, a patient's periods overlap if and only if
    # one ends after the next one starts (then the ends increase, so no earlier one reaches
    # further); `_overlaps` finds all of them for the message.
    if (same & (end[:-1] > start[1:])).any():
        overlap, _ = _overlaps(periods.assign(row=periods["_index"]))
        raise LinkageError(
            f"history has {int(overlap.sum())} overlapping periods (first at row index "
            f"{int(periods['_index'][overlap].iloc[0])}); validate it with read_address_history"
        )
    return periods


def _locate(lon: np.ndarray, lat: np.ndarray,
            polygons: Mapping[object, _Polygons]) -> dict[object, np.ndarray]:
    """Index into each set of polygons (sorted by GEOID) of each point's polygon, else -1.

    The points are binned once per CRS into a grid (`_PointGrid`) that every polygon set of
    that CRS queries by bounding box; `_first_intersecting` then tests the candidate pairs
    exactly, so a point on an edge or vertex is in every polygon that shares it. Of the
    polygons a point intersects, the smallest index, i.e. the smallest GEOID, wins.

    Examples
    --------
    >>> halves = _Polygons(["1", "2"], np.array([shapely.box(0, 0, 1, 1),
    ...                                          shapely.box(1, 0, 2, 1)]), None)
    >>> _locate(np.array([0.5, 1.0, 5.0]), np.array([0.5, 0.5, 5.0]), {2020: halves})
    {2020: array([ 0,  0, -1])}
    """
    if len(lon) == 0 or not polygons:
        return {key: np.zeros(0, dtype=np.int64) for key in polygons}
    groups: dict[str, list[object]] = {}
    for key, frame in polygons.items():
        crs = frame.crs
        groups.setdefault("lonlat" if crs is None or _same_lonlat(crs) else crs.to_wkt(),
                          []).append(key)
    located = {}
    for crs_key, keys in groups.items():
        x, y = lon, lat
        if crs_key != "lonlat":
            crs = polygons[keys[0]].crs
            x, y = Transformer.from_crs(BOUNDARY_CRS, crs, always_xy=True).transform(x, y)
            x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
        bounds = {key: shapely.bounds(polygons[key].geometry) for key in keys}
        grid = _PointGrid(x, y, list(bounds.values()))
        for key in keys:
            located[key] = _first_intersecting(polygons[key].geometry, bounds[key], grid)
    return located


class _PointGrid:
    """Points binned in a regular grid, for finding the points in many bounding boxes.

    The cells are about half the median polygon's bounding box (fewer if that would make more
    than 4 cells per point); the points are sorted by cell, column by column, so the points of
    one column of a box are one slice. ``candidates`` gives every (polygon, point) pair whose
    point lies in the polygon's bounding box (edges included), as an STRtree query would.

    Examples
    --------
    >>> grid = _PointGrid(np.array([0.5, 1.0, 5.0]), np.array([0.5, 0.5, 5.0]),
    ...                   [np.array([[0.0, 0.0, 1.0, 1.0]])])
    >>> [a.tolist() for a in grid.candidates(np.array([[0.0, 0.0, 1.0, 1.0]]))]
    [[0, 0], [0, 1]]
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, bounds: list[np.ndarray]) -> None:
        self.x, self.y = x, y
        usable = np.isfinite(x) & np.isfinite(y)
        self.empty = not usable.any()
        if self.empty:
            return
        xu, yu = x[usable], y[usable]
        self.x0, self.y0 = float(xu.min()), float(yu.min())
        self.x1, self.y1 = float(xu.max()), float(yu.max())
        sizes = np.concatenate([np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) for b in bounds])
        sizes = sizes[np.isfinite(sizes) & (sizes > 0)]
        span = max(self.x1 - self.x0, self.y1 - self.y0)
        cell = float(np.median(sizes)) / 2 if len(sizes) else span
        most = max(4 * len(xu), 1024)
        while True:
            cell = cell if cell > 0 else 1.0
            self.nx = int((self.x1 - self.x0) / cell) + 1
            self.ny = int((self.y1 - self.y0) / cell) + 1
            if self.nx * self.ny <= most:
                break
            cell *= np.sqrt(self.nx * self.ny / most) * 1.01
        self.cell = cell
        ix, iy = self._cells(xu, self.x0, self.nx), self._cells(yu, self.y0, self.ny)
        cell_of = ix * self.ny + iy
        self.order = np.flatnonzero(usable)[np.argsort(cell_of)]  # any order in a cell
        self.start = np.zeros(self.nx * self.ny + 1, dtype=np.int64)
        np.cumsum(np.bincount(cell_of, minlength=self.nx * self.ny), out=self.start[1:])
        self.xs, self.ys = x[self.order], y[self.order]

    def _cells(self, values: np.ndarray, origin: float, count: int) -> np.ndarray:
        # floor, then clipped: monotonic, so a point within [lo, hi] is in a cell within theirs.
        with np.errstate(invalid="ignore"):
            return np.clip(np.floor((values - origin) / self.cell), 0, count - 1).astype(np.int64)

    def candidates(self, bounds: np.ndarray, *,
                   most: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(polygon, point) pairs, by polygon, whose point is in the box; None if over ``most``."""
        if self.empty:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        minx, miny, maxx, maxy = bounds.T
        with np.errstate(invalid="ignore"):
            use = np.flatnonzero((maxx >= self.x0) & (minx <= self.x1)
                                 & (maxy >= self.y0) & (miny <= self.y1))
        ix0, ix1 = self._cells(minx[use], self.x0, self.nx), self._cells(maxx[use], self.x0,
                                                                          self.nx)
        iy0, iy1 = self._cells(miny[use], self.y0, self.ny), self._cells(maxy[use], self.y0,
                                                                          self.ny)
        # One entry per polygon and grid column its box spans: a slice of the sorted points.
        columns = ix1 - ix0 + 1
        entry = np.repeat(np.arange(len(use)), columns)
        column = ix0[entry] + np.arange(len(entry)) - np.repeat(np.cumsum(columns) - columns,
                                                                columns)
        first = self.start[column * self.ny + iy0[entry]]
        count = self.start[column * self.ny + iy1[entry] + 1] - first
        total = int(count.sum())
        if most is not None and total > most:
            return None
        pair_entry = np.repeat(entry, count)
        at = np.repeat(first - (np.cumsum(count) - count), count) + np.arange(total)
        polygon = use[pair_entry]
        xs, ys = self.xs[at], self.ys[at]
        inside = ((xs >= minx[polygon]) & (xs <= maxx[polygon])
                  & (ys >= miny[polygon]) & (ys <= maxy[polygon]))
        return polygon[inside], self.order[at[inside]]


def _first_intersecting(geometries: np.ndarray, bounds: np.ndarray,
                        grid: _PointGrid) -> np.ndarray:
    """For each point of ``grid``, the smallest index of a polygon that intersects it, or -1.

    Candidate pairs come from the bounding boxes (the grid; an STRtree over the points if the
    grid would give far more pairs than an index should); ``intersects_xy`` (exact, edges and
    vertices included) decides. A polygon with many candidate points is prepared first (see
    `_PREPARE_FROM`); one with few is faster tested as it is.

    Examples
    --------
    >>> squares = np.array([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)])
    >>> x, y = np.array([1.0, 1.5, 3.0]), np.array([1.0, 0.5, 0.5])
    >>> bounds = shapely.bounds(squares)
    >>> _first_intersecting(squares, bounds, _PointGrid(x, y, [bounds]))
    array([ 0,  1, -1])
    """
    x, y = grid.x, grid.y
    pairs = grid.candidates(bounds, most=32 * (len(x) + len(geometries)) + 1_000_000)
    if pairs is None:  # boxes far larger than the cells: let an STRtree sort it out
        usable = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
        polygon, point = shapely.STRtree(shapely.points(x[usable], y[usable])).query(geometries)
        point = usable[point]
    else:
        polygon, point = pairs
    busy = np.bincount(polygon, minlength=len(geometries)) >= _PREPARE_FROM
    prepared_here = geometries[busy & ~shapely.is_prepared(geometries)]
    shapely.prepare(prepared_here)
    try:
        inside = shapely.intersects_xy(geometries[polygon], x[point], y[point])
    finally:
        shapely.destroy_prepared(prepared_here)  # leave the caller's polygons as they were
    best = np.full(len(x), len(geometries), dtype=np.int64)
    np.minimum.at(best, point[inside], polygon[inside])
    best[best == len(geometries)] = -1
    return best


def _same_lonlat(crs: CRS) -> bool:
    crs = CRS.from_user_input(crs)
    return crs.to_epsg(min_confidence=70) in (4269, 4326) or crs.equals(CRS("OGC:CRS84"))


# -- reporting ------------------------------------------------------------------------------


def _rejected_rows(rejects: pd.DataFrame) -> pd.DataFrame:
    """One row per rejected input row (a row can have several problems): its first reason."""
    missing = [c for c in ("source_file", "row", "patient_id", "reason") if c not in rejects.columns]
    if missing:
        raise LinkageError(f"rejects lack column(s) {missing}; expected the rejects frame of "
                           f"read_address_history (columns {list(REJECT_COLUMNS)})")
    unknown = sorted(set(rejects["reason"]) - set(REJECT_REASONS))
    if unknown:
        raise LinkageError(f"rejects hold unknown reason(s) {unknown}; expected "
                           f"{list(REJECT_REASONS)}")
    return rejects.drop_duplicates(["source_file", "row"])


def linkage_funnel(timeline: pd.DataFrame, *, rejects: pd.DataFrame | None = None) -> pd.DataFrame:
    """Count input rows (address periods) and patients by outcome, rejected rows included.

    Parameters
    ----------
    timeline
        A patient geography timeline, as `link_addresses` returns it.
    rejects
        The rejects frame of `read_address_history` for the same file: each rejected row is
        counted once, at stage ``reading`` under its first reason, so shares are of every
        input row. None when no rejected rows are known (e.g. a published timeline): the
        funnel then counts the timeline's periods only.

    Returns
    -------
    pandas.DataFrame
        One row per outcome, in the order ``all``, ``linked``, each reason of
        `LINK_MISSING_REASONS` (stage ``linking``), then with ``rejects`` one
        ``rejected_<reason>`` per reason of `REJECT_REASONS` (stage ``reading``); zero counts
        included. Columns ``outcome``, ``stage``, ``address_periods`` (input rows),
        ``share_of_periods`` (of all input rows; 0 when there are none), ``patients``
        (distinct patients with at least one row of that outcome, so a patient who moved can
        count under several outcomes) and ``zip_fallback`` (periods of that outcome that still
        got a ZCTA or county from the ZIP crosswalk). ``linked`` means a GEOID in every loaded
        vintage.

    Raises
    ------
    LinkageError
        ``timeline`` lacks ``patient_id``, ``link_missing`` or ``link_method``, or holds an
        unknown reason; ``rejects`` lacks its columns or holds an unknown reason.

    Examples
    --------
    The synthetic demo region's address histories (``demo``) on its 2010 and 2020 block groups:

    >>> from ingestion.geo.boundaries import load_boundary_set
    >>> accepted, rejects = read_address_history(demo / "patients" / "address_history.csv")
    >>> boundaries = load_boundary_set({2010: demo / "tiger" / "tl_2010_99_bg10.zip",
    ...                                 2020: demo / "tiger" / "tl_2020_99_bg.zip"})
    >>> funnel = linkage_funnel(link_addresses(accepted, boundaries), rejects=rejects)
    >>> funnel.loc[funnel["address_periods"] > 0, ["outcome", "stage", "address_periods", "patients"]]
      outcome    stage  address_periods  patients
    0     all    input               27        20
    1  linked  linking               25        19
    2  po_box  linking                2         2
    """
    missing = [c for c in ("patient_id", "link_missing", "link_method")
               if c not in timeline.columns]
    if missing:
        raise LinkageError(f"timeline lacks column(s) {missing}; expected the columns of "
                           "geography_timeline_spec()")
    outcome = timeline["link_missing"].astype("string").fillna("linked")
    unknown = sorted(set(outcome) - {"linked", *LINK_MISSING_REASONS})
    if unknown:
        raise LinkageError(f"timeline holds unknown link_missing value(s) {unknown}; "
                           f"expected {list(LINK_MISSING_REASONS)}")
    rejected = _rejected_rows(rejects) if rejects is not None else None
    rows = pd.DataFrame({"outcome": outcome.to_numpy(), "patient_id": timeline["patient_id"].to_numpy(),
                         "zip": (timeline["link_method"] == "zip_crosswalk").to_numpy()})
    stages = {o: "linking" for o in ("linked", *LINK_MISSING_REASONS)}
    if rejected is not None:
        stages |= {f"rejected_{r}": "reading" for r in REJECT_REASONS}
        rows = pd.concat([rows, pd.DataFrame({
            "outcome": "rejected_" + rejected["reason"].astype(str),
            "patient_id": rejected["patient_id"].mask(rejected["patient_id"].eq("")).to_numpy(),
            "zip": False})],
            ignore_index=True)
    periods = rows["outcome"].value_counts()
    patients = rows.groupby("outcome")["patient_id"].nunique()
    by_zip = rows.groupby("outcome")["zip"].sum()
    total = len(rows)
    funnel = pd.DataFrame({
        "outcome": ["all", *stages],
        "stage": ["input", *stages.values()],
        "address_periods": [total, *(int(periods.get(o, 0)) for o in stages)],
        "patients": [int(rows["patient_id"].nunique()), *(int(patients.get(o, 0)) for o in stages)],
        "zip_fallback": [int(rows["zip"].sum()), *(int(by_zip.get(o, 0)) for o in stages)],
    })
    funnel.insert(3, "share_of_periods", funnel["address_periods"] / total if total else 0.0)
    return funnel
