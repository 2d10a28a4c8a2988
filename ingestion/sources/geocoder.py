"""The Census Geocoder batch client: street addresses to coordinates, strictly opt-in.

Patient addresses are PHI (DESIGN.md section 7): linking runs locally, and this module is the one
place where addresses may leave the machine, only when the caller says so in so many words.
`geocode_addresses` (and `CensusGeocoder.geocode`) refuse to run without
``send_addresses_to_census_geocoder=True`` (CLI: ``--send-addresses-to-census-geocoder``) and
raise `GeocoderConsentRequired` explaining the flag; given it, they log one loud WARNING per call
saying how many addresses go to which host. No environment variable or config file can turn it
on. Reverse lookups of points (`CensusGeocoder.geographies_for_points`) send patient coordinates,
which are PHI too, and need ``send_coordinates_to_census_geocoder=True``.

**What is never sent.** PO boxes (`PO_BOX_PATTERN`: they locate a post office, not a residence;
missing reason ``po_box``); rows without a street (``zip_only`` when a ZIP is known, else
``no_coordinates``); the caller's ids (each distinct address is sent once, under a Unique ID
that is the 1-based position of the first input row holding it, and its answer goes to every
row holding it). Field values lose commas, double quotes and line breaks (each becomes a
space): the service splits a row on its commas (its batch instructions: "only four commas").
Nothing is cached on disk: the answers hold addresses.

**The service.** ``POST {base_url}/{geographies|locations}/addressbatch``, a multipart form with
``addressFile`` (a CSV file without header: Unique ID, street, city, state, ZIP), ``benchmark``
and, for geographies, ``vintage``; at most 10,000 rows a file (`MAX_BATCH_SIZE`). The answer is
a CSV without header, every field quoted, rows in any order (`ADDRESS_BATCH_COLUMNS`)::

    "3","3 Main St, Town, ST, 00000","Match","Exact","3 MAIN ST, TOWN, ST, 00000",
        "-76.9,38.8","1234","L","11","001","000100","1002"      (one line in the answer)
    "2","9 Nowhere Rd, Town, ST, ","No_Match"
    "1","7 Twin Ave, Town, ST, 00000","Tie"

Match rows carry the match type (``Exact``/``Non_Exact``), the matched address, one quoted
``"lon,lat"`` field, the TIGER line id and side (L/R), and for geographies the state, county,
tract and block codes (the block is empty in ACS vintages such as ``ACS2024_Current``).
``No_Match`` and ``Tie`` rows stop after the indicator: a tie (several candidates) has no
coordinates, and users report that ties vary with the batch (tidygeocoder#87, censusxy#26).
The echoed input address (column 2) is dropped: it is PHI and adds nothing. The coordinate
variant,
``POST {base_url}/geographies/coordinatesbatch`` with ``coordinatesFile`` (Unique ID, longitude,
latitude), answers id, longitude, latitude, match, state, county, tract, block
(`COORDINATES_BATCH_COLUMNS`), useful to cross-check a point-in-polygon link.

**Failures.** Every request has a timeout; HTTP 429 and 5xx, timeouts, connection errors and
bodies that are not a complete answer (truncated, a row missing, unknown Unique IDs) are retried
with exponential backoff and jitter (``Retry-After`` honoured up to a cap; a 429 pauses every
worker). Errors name the URL, the batch and the caller's row ids, never an address: the
service's own message is shortened and scrubbed of the batch's streets. A batch that still fails
stops the run (``on_batch_error="raise"``) or marks its rows ``geocoder_unavailable``
(``on_batch_error="mark"``). Batches run on ``max_workers`` threads, each with its own
`requests.Session`, behind a tqdm bar (on a terminal) counting addresses.

Examples
--------
>>> accepted, rejects = read_address_history("addresses.csv")  # doctest: +SKIP
>>> todo = accepted[accepted["latitude"].isna()]  # doctest: +SKIP
>>> geocoded = geocode_addresses(todo, send_addresses_to_census_geocoder=True,
...                              benchmark="Public_AR_Current", vintage=None)  # doctest: +SKIP
>>> timeline = link_addresses(apply_geocodes(accepted, geocoded), boundaries)  # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import itertools
import logging
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import requests
from tqdm import tqdm

from ingestion.sources.http import (
    Attempt,
    Retry,
    RetryPolicy,
    Service,
    check_client_options,
    check_service_url,
    client_policy,
    redact_key,
    response_message,
)
from ingestion.sources.workers import WorkerSessions
from sdoh_sources.errors import SdohError

__all__ = [
    "ADDRESS_BATCH_COLUMNS",
    "COORDINATES_BATCH_COLUMNS",
    "DEFAULT_GEOCODER_URL",
    "GEOCODE_COLUMNS",
    "GEOCODE_MISSING_REASONS",
    "MAX_BATCH_SIZE",
    "PO_BOX_PATTERN",
    "POINT_COLUMNS",
    "CensusGeocoder",
    "GeocoderConsentRequired",
    "GeocoderError",
    "apply_geocodes",
    "geocode_addresses",
    "is_po_box",
    "parse_address_batch",
    "parse_coordinates_batch",
]

logger = logging.getLogger(__name__)

DEFAULT_GEOCODER_URL = "https://geocoding.geo.census.gov/geocoder"
#: The service takes at most this many rows in one batch file.
MAX_BATCH_SIZE = 10_000

#: The columns of an address-batch answer, in order; ``locations`` stops after ``side``.
#: ``coordinates`` is one quoted ``"lon,lat"`` field.
ADDRESS_BATCH_COLUMNS = ("id", "input_address", "match", "match_type", "matched_address",
                         "coordinates", "tiger_line_id", "side", "state", "county", "tract",
                         "block")
#: The columns of a coordinates-batch answer, in order.
COORDINATES_BATCH_COLUMNS = ("id", "longitude", "latitude", "match", "state", "county", "tract",
                             "block")

#: What `geocode_addresses` returns, after the caller's id column.
GEOCODE_COLUMNS = (
    "latitude", "longitude", "geocode_match", "geocode_match_type", "geocode_precision",
    "geocode_matched_address", "geocode_tiger_line_id", "geocode_side", "geocode_county_geoid",
    "geocode_tract_geoid", "geocode_block_group_geoid", "geocode_block_geoid",
    "geocode_benchmark", "geocode_vintage", "geocode_missing",
)
#: What `CensusGeocoder.geographies_for_points` returns, after the caller's id column.
POINT_COLUMNS = (
    "geocode_match", "geocode_county_geoid", "geocode_tract_geoid", "geocode_block_group_geoid",
    "geocode_block_geoid", "geocode_benchmark", "geocode_vintage", "geocode_missing",
)

#: The reasons written to ``geocode_missing``. All but ``geocoder_unavailable`` are in
#: sdoh_sources/catalog/missing_reasons.yaml; that one is written only with
#: ``on_batch_error="mark"``.
GEOCODE_MISSING_REASONS = {
    "po_box": "a PO box (never sent)",
    "zip_only": "no street, only a ZIP (never sent)",
    "no_coordinates": "neither a street nor a ZIP (never sent); for points: no coordinates",
    "geocode_failed": "sent, and the service answered No_Match or Tie",
    "outside_boundaries": "a point the service placed in no geography (No_Match)",
    "geocoder_unavailable": "sent, but its batch failed after every retry",
}

#: A PO box or another address that locates mail, not a residence, case-insensitive:
#: "PO Box 12", "P.O. Box", "P O Box", "POBox 3", "PO Bx 9", "P.O.B. 4", "POB 4",
#: "Post Office Box 7", a street that is only "Box 123" (or "Box #12"), "PMB 456" and
#: "Private Mailbox 9" (a box at a mail agency, whose street address is the agency's) and
#: "General Delivery". Not "Box Elder Rd", "Boxwood Ln", "Pobst Rd", "Post Office Rd", nor
#: rural-route boxes such as "RR 2 Box 15" or "HC 65 Box 12", which are delivered at the
#: residence (and are left to the service). Every street that
#: `ingestion.geo.linking.PO_BOX_PATTERN` flags is flagged here too.
PO_BOX_PATTERN = re.compile(
    r"(?<![a-z0-9])(?:p\s*\.?\s*o\s*\.?\s*(?:box|bx|b\b\.?)|post\s+office\s+box|pob"
    r"|pmb|private\s+mail\s*box|general\s+delivery)(?![a-z])"
    r"|^\s*(?:box|bx)\s*(?:#|no\b\.?)?\s*\d",
    re.IGNORECASE,
)

_MATCHES = ("Match", "No_Match", "Tie")
_MATCH_TYPES = ("Exact", "Non_Exact")
_PRECISION = {"Exact": "street_address_exact", "Non_Exact": "street_address_nonexact"}
_WIDTHS = (("state", 2), ("county", 3), ("tract", 6), ("block", 4))
_NAME = re.compile(r"[A-Za-z0-9_]+")
_FIELD_NOISE = re.compile(r'[,"\r\n\t]+')
_SPACES = re.compile(r"\s+")
_HEADER_IDS = {"id", "unique id", "uniqueid", "record id"}
_ERROR_MODES = ("raise", "mark")
# How errors name the service, and what they advise (`Service`).
_SERVICE = Service(
    name="the Census Geocoder", url_option="--geocoder-url (base_url=)",
    busy=" with smaller batches (batch_size=) or fewer workers (max_workers=)",
    offline="point --geocoder-url (base_url=) at a Geocoder you can reach, or link without "
            "sending addresses (leave out --send-addresses-to-census-geocoder)",
    refused="Check the benchmark and vintage (--geocoder-benchmark, --geocoder-vintage) and "
            "that --geocoder-url (base_url=) points at a Census Geocoder.")
_STRING = "string"


class GeocoderError(SdohError):
    """A Census Geocoder request failed; the message names the URL, batch and row ids, no address."""


class GeocoderConsentRequired(GeocoderError):
    """Addresses or coordinates (PHI) would leave the machine, and the caller did not opt in."""


def is_po_box(street: str | None) -> bool:
    """Tell whether a street line is a PO box or another mail-only address (`PO_BOX_PATTERN`).

    Parameters
    ----------
    street : str or None
        A street line such as ``"PO Box 12"`` or ``"12 Boxwood Ln"``.

    Returns
    -------
    bool
        True for a PO box, a bare ``"Box 123"``, a PMB or General Delivery; False otherwise,
        including for None.

    Examples
    --------
    >>> is_po_box("P.O. Box 12"), is_po_box("Box 7"), is_po_box("12 Boxwood Ln")
    (True, True, False)
    """
    if street is None or street is pd.NA or (isinstance(street, float) and math.isnan(street)):
        return False
    if not isinstance(street, str):
        raise TypeError(f"street must be a str or None, got {type(street).__name__}")
    return PO_BOX_PATTERN.search(street) is not None


# -- parsing the service's answers ----------------------------------------------------------


def _code(value: str, name: str, width: int) -> str | None:
    """A geography code, zero-padded; None when empty; ValueError when not digits."""
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > width:
        raise ValueError(f"{name} is not a code of at most {width} digits")
    return value.zfill(width)


def _geoids(codes: dict[str, str | None]) -> dict[str, str | None]:
    """County, tract, block-group and block GEOIDs from state/county/tract/block codes."""
    state, county, tract, block = (codes.get(k) for k, _ in _WIDTHS)
    county_geoid = state + county if state and county else None
    tract_geoid = county_geoid + tract if county_geoid and tract else None
    return {
        "county_geoid": county_geoid,
        "tract_geoid": tract_geoid,
        "block_group_geoid": tract_geoid + block[0] if tract_geoid and block else None,
        "block_geoid": tract_geoid + block if tract_geoid and block else None,
    }


def _geographies(fields: list[str], start: int) -> dict[str, str | None]:
    codes = {name: _code(fields[start + i] if start + i < len(fields) else "", name, width)
             for i, (name, width) in enumerate(_WIDTHS)}
    return {**codes, **_geoids(codes)}


def _lonlat(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError("the coordinates are not one 'lon,lat' pair")
    lon, lat = (float(p) for p in parts)
    if not (math.isfinite(lon) and math.isfinite(lat) and abs(lon) <= 180 and abs(lat) <= 90):
        raise ValueError("the coordinates are out of range")
    return lon, lat


_EMPTY_GEO = {name: None for name, _ in _WIDTHS} | _geoids({})


def _address_row(fields: list[str], *, geographies: bool) -> dict[str, Any]:
    """One answer row as a dict; ValueError (naming no value) when it is malformed."""
    if len(fields) < 3:
        raise ValueError(f"it has {len(fields)} field(s), fewer than id, address and match")
    match = fields[2].strip()
    if match not in _MATCHES:
        raise ValueError("its match indicator is not Match, No_Match or Tie")
    out: dict[str, Any] = {"match": match, "match_type": None, "matched_address": None,
                           "longitude": math.nan, "latitude": math.nan, "tiger_line_id": None,
                           "side": None, **_EMPTY_GEO}
    if match != "Match":
        return out
    width = 12 if geographies else 8
    if len(fields) < width:
        raise ValueError(f"a Match row has {len(fields)} fields, expected {width}")
    if fields[3].strip() not in _MATCH_TYPES:
        raise ValueError("its match type is not Exact or Non_Exact")
    out["longitude"], out["latitude"] = _lonlat(fields[5])
    out.update(match_type=fields[3].strip(), matched_address=fields[4].strip() or None,
               tiger_line_id=fields[6].strip() or None, side=fields[7].strip() or None)
    if geographies:
        out.update(_geographies(fields, 8))
    return out


def _point_row(fields: list[str], *, geographies: bool = True) -> dict[str, Any]:
    """One coordinates-batch row as a dict; ValueError (naming no value) when malformed."""
    if len(fields) < 4:
        raise ValueError(f"it has {len(fields)} field(s), fewer than id, lon, lat and match")
    match = fields[3].strip()
    if match not in _MATCHES:
        raise ValueError("its match indicator is not Match, No_Match or Tie")
    try:
        lon, lat = float(fields[1]), float(fields[2])
    except ValueError:
        raise ValueError("its echoed longitude/latitude are not numbers") from None
    out: dict[str, Any] = {"longitude": lon, "latitude": lat, "match": match, **_EMPTY_GEO}
    if match == "Match":
        if len(fields) < 8:
            raise ValueError(f"a Match row has {len(fields)} fields, expected 8")
        out.update(_geographies(fields, 4))
    return out


def _decode(body: bytes) -> str:
    """The body as text: UTF-8, else Latin-1 (the service has answered in ISO-8859-1)."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def _parse(text: str, row: Callable[[list[str]], dict[str, Any]],
           ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Parse an answer into rows by Unique ID, with the problems found (no field values)."""
    results: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    number = 0
    try:
        for number, fields in enumerate(reader, start=1):
            if not any(f.strip() for f in fields):
                continue
            key = fields[0].strip()
            if not results and not problems and key.lower() in _HEADER_IDS:
                continue  # a header row: the service sends none, but a saved file may have one
            shown = repr(key) if key.isdigit() and len(key) <= 12 else "not a number"
            try:
                parsed = row(fields)
            except ValueError as exc:
                problems.append(f"line {number} (id {shown}): {exc}")
                continue
            if key in results:
                problems.append(f"line {number}: id {shown} is repeated")
            results[key] = parsed
    except csv.Error:
        problems.append(f"the CSV breaks off at line {number + 1} (an unclosed quote: the body "
                        "was probably truncated)")
    return results, problems


def _frame(results: dict[str, dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame([{"id": key, **value} for key, value in results.items()],
                         columns=["id", *columns])
    for column in frame.columns:
        if column not in ("longitude", "latitude"):
            frame[column] = frame[column].astype(_STRING)
    return frame.astype({"longitude": "float64", "latitude": "float64"})


_ADDRESS_FIELDS = ("match", "match_type", "matched_address", "longitude", "latitude",
                   "tiger_line_id", "side", "state", "county", "tract", "block", "county_geoid",
                   "tract_geoid", "block_group_geoid", "block_geoid")
_POINT_FIELDS = ("longitude", "latitude", "match", "state", "county", "tract", "block",
                 "county_geoid", "tract_geoid", "block_group_geoid", "block_geoid")


def parse_address_batch(text: str | bytes, *, geographies: bool = True) -> pd.DataFrame:
    """Parse the answer of an address batch (a CSV without header) into a table.

    Parameters
    ----------
    text : str or bytes
        The body as the service sent it (bytes are decoded as UTF-8, else Latin-1).
    geographies : bool
        True for ``geographies/addressbatch`` (12 columns per match), False for
        ``locations/addressbatch`` (8 columns, no geography codes).

    Returns
    -------
    pandas.DataFrame
        One row per answer row, in the answer's order: ``id``, ``match`` (Match, No_Match or
        Tie), ``match_type`` (Exact, Non_Exact), ``matched_address``, ``longitude``,
        ``latitude`` (float64, NaN unless matched), ``tiger_line_id``, ``side``, ``state``,
        ``county``, ``tract``, ``block`` (zero-padded codes) and ``county_geoid``,
        ``tract_geoid``, ``block_group_geoid`` (tract + first digit of the block) and
        ``block_geoid``; text as string dtype, null when absent. The echoed input address is
        dropped.

    Raises
    ------
    GeocoderError
        If a row is malformed (too few fields, an unknown match indicator or type, bad
        coordinates or codes, a repeated id) or the CSV breaks off; the message names the line
        and id, never an address.

    Examples
    --------
    >>> body = ('"2","9 Elm St, Town, ST, 00000","No_Match"\\n'
    ...         '"1","1 Main St, Town, ST, 00000","Match","Exact","1 MAIN ST, TOWN, ST, 00000",'
    ...         '"-77.03,38.89","1234","L","11","001","000100","1002"\\n')
    >>> parse_address_batch(body)[["id", "match", "latitude", "block_group_geoid"]]
      id     match  latitude block_group_geoid
    0  2  No_Match       NaN              <NA>
    1  1     Match     38.89      110010001001
    """
    if isinstance(text, bytes):
        text = _decode(text)
    results, problems = _parse(text, lambda f: _address_row(f, geographies=geographies))
    if problems:
        raise GeocoderError(f"malformed address-batch answer: {'; '.join(problems[:5])}")
    return _frame(results, _ADDRESS_FIELDS)


def parse_coordinates_batch(text: str | bytes) -> pd.DataFrame:
    """Parse the answer of a coordinates batch (a CSV without header) into a table.

    Parameters
    ----------
    text : str or bytes
        The body as the service sent it: rows of id, longitude, latitude, match, state,
        county, tract, block (`COORDINATES_BATCH_COLUMNS`), every field quoted.

    Returns
    -------
    pandas.DataFrame
        ``id``, ``longitude``, ``latitude`` (the point as echoed, float64), ``match``,
        ``state``, ``county``, ``tract``, ``block`` and ``county_geoid``, ``tract_geoid``,
        ``block_group_geoid``, ``block_geoid``. An empty block (ACS vintages) leaves the
        block and block-group GEOIDs null.

    Raises
    ------
    GeocoderError
        If a row is malformed or the CSV breaks off (the message names the line and id).

    Examples
    --------
    >>> row = parse_coordinates_batch('"1","-77.0365","38.8977","Match","11","001","980000",""')
    >>> row.loc[0, ["tract_geoid", "block_group_geoid"]].tolist()
    ['11001980000', <NA>]
    """
    if isinstance(text, bytes):
        text = _decode(text)
    results, problems = _parse(text, _point_row)
    if problems:
        raise GeocoderError(f"malformed coordinates-batch answer: {'; '.join(problems[:5])}")
    return _frame(results, _POINT_FIELDS)


# -- preparing the input -------------------------------------------------------------------


def _clean(values: pd.Series) -> np.ndarray:
    """Text fit for one CSV field: no commas, quotes or line breaks; "" when missing."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values.to_numpy(dtype=object)):
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            out[i] = ""
        else:
            out[i] = _SPACES.sub(" ", _FIELD_NOISE.sub(" ", str(value))).strip()
    return out


_ZIP = re.compile(r"(\d{5})(?:-?\d{4})?")


def _clean_zip(values: pd.Series) -> np.ndarray:
    """ZIPs as 5 digits where they look like one (a number that lost its leading zeros too)."""
    raw = values.to_numpy(dtype=object)
    fixed = [f"{int(v):05d}" if isinstance(v, (int, float, np.integer, np.floating))
             and not isinstance(v, bool) and math.isfinite(v) and float(v).is_integer()
             and 0 <= v < 100_000 else v for v in raw]
    out = _clean(pd.Series(fixed, dtype=object))
    for i, value in enumerate(out):
        if value.isdigit() and len(value) < 5:
            out[i] = value.zfill(5)
        elif match := _ZIP.fullmatch(value):
            out[i] = match.group(1)
    return out


def _check_ids(frame: pd.DataFrame, id_column: str, what: str) -> pd.Series:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    if not isinstance(id_column, str) or id_column not in frame.columns:
        raise ValueError(f"{what} has no id column {id_column!r} (id_column=); its columns are "
                         f"{list(frame.columns)}")
    ids = frame[id_column].reset_index(drop=True)
    if ids.isna().any():
        raise ValueError(f"{what}[{id_column!r}] is empty at row position "
                         f"{int(np.flatnonzero(ids.isna().to_numpy())[0])}; every row needs an id")
    repeated = ids.duplicated()
    if repeated.any():
        raise ValueError(f"{what}[{id_column!r}] repeats id {ids[repeated].iloc[0]}; ids must "
                         "be unique to join the answers back")
    return ids


def _check_name(value: Any, name: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        example = "'Current_Current', 'ACS2024_Current'" if name == "vintage" \
            else "'Public_AR_Current'"
        raise ValueError(f"{name} must be a Census Geocoder {name} name such as {example}"
                         f"{' (or None for coordinates only)' if optional else ''}, got {value!r}")
    return value


def _check_consent(flag: Any, *, name: str, count: int, what: str, host: str) -> None:
    if not isinstance(flag, bool):
        raise TypeError(f"{name} must be True or False, got {flag!r}")
    if not flag:
        cli = "--" + name.replace("_", "-")
        raise GeocoderConsentRequired(
            f"this would send {count} {what} (patient PHI) to the Census Geocoder at {host}, "
            f"outside this machine. Pass {name}=True (CLI: {cli}) only if your data use "
            "agreement or IRB allows disclosing them to the U.S. Census Bureau; otherwise "
            "geocode locally and give latitude/longitude in the address history, which is "
            "linked without any address leaving the machine")


# -- the client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Batch:
    """One batch file: the Unique IDs sent, the body and what errors may name."""

    number: int
    total: int
    endpoint: str
    file_field: str
    form: tuple[tuple[str, str], ...]
    keys: tuple[str, ...]
    row_ids: tuple[Any, ...]
    body: bytes = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    row: Callable[[list[str]], dict[str, Any]] = field(repr=False)
    sent: dict[str, tuple[float, float]] | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """``batch 2 of 5 (3 rows; row ids 4, 5, 9)``: what an error may say about a batch."""
        shown = ", ".join(str(i) for i in self.row_ids[:5])
        more = f", ... (+{len(self.row_ids) - 5} more)" if len(self.row_ids) > 5 else ""
        return (f"batch {self.number} of {self.total} ({len(self.keys)} rows; row ids "
                f"{shown}{more})")


class CensusGeocoder:
    """A Census Geocoder batch client: retries, bounded concurrency, no PHI in logs or errors.

    Parameters
    ----------
    base_url : str
        The service root, default ``https://geocoding.geo.census.gov/geocoder``; a local
        server's in tests. Plain ``http://`` only to a loopback host.
    timeout : float
        Seconds to wait for connecting and for each read (a 10,000-row batch can take minutes
        to answer); every request has it.
    max_retries : int
        Retries after the first attempt for HTTP 429/5xx, connection errors, timeouts and
        incomplete bodies (at most two of the latter).
    backoff : float
        The first retry waits about ``backoff`` seconds, doubling each retry, with jitter.
    max_delay : float
        Cap on any single wait, including one asked for by ``Retry-After``.
    batch_size : int
        Rows per batch file, 1 to 10,000 (`MAX_BATCH_SIZE`, the service's limit and the
        default).
    max_workers : int
        Batches in flight at once (default 2); 1 sends them one after another in the calling
        thread. Each thread has its own `requests.Session`.
    progress : bool, optional
        Show a tqdm bar over addresses: True always, False never, None (default) only when
        stderr is a terminal.
    retry : RetryPolicy, optional
        A policy shared with other clients (`ingestion.sources.http.RetryPolicy`): one HTTP
        429 pauses all of them. It then sets timeout, max_retries, backoff and max_delay,
        which must be left out.

    Examples
    --------
    >>> with CensusGeocoder(batch_size=5_000) as geocoder:  # doctest: +SKIP
    ...     out = geocoder.geocode(addresses, send_addresses_to_census_geocoder=True,
    ...                            benchmark="Public_AR_Current", vintage="Current_Current")
    """

    def __init__(self, *, base_url: str = DEFAULT_GEOCODER_URL, timeout: float = 600.0,
                 max_retries: int = 4, backoff: float = 1.0, max_delay: float = 120.0,
                 batch_size: int = MAX_BATCH_SIZE, max_workers: int = 2,
                 progress: bool | None = None, retry: RetryPolicy | None = None) -> None:
        base_url = check_service_url(base_url)
        check_client_options(timeout=timeout, max_retries=max_retries, backoff=backoff,
                             max_delay=max_delay, max_workers=max_workers, progress=progress)
        if (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                or not 1 <= batch_size <= MAX_BATCH_SIZE):
            raise ValueError(f"batch_size must be an int from 1 to {MAX_BATCH_SIZE} (the "
                             f"service's limit), got {batch_size!r}")
        self.base_url = base_url
        self._retry = client_policy(retry, CensusGeocoder, timeout=timeout,
                                    max_retries=max_retries, backoff=backoff, max_delay=max_delay)
        self.timeout, self.max_retries = self._retry.timeout, self._retry.max_retries
        self.backoff, self.max_delay = self._retry.backoff, self._retry.max_delay
        self.batch_size = batch_size
        self.max_workers = max_workers
        self.progress = progress
        parts = urlsplit(self.base_url)
        self.host = parts.netloc.rsplit("@", 1)[-1]
        self._workers = WorkerSessions(max_workers=self.max_workers, name="census-geocoder",
                                       user_agent="sdoh-feature-store census geocoder client")

    def __repr__(self) -> str:
        return (f"CensusGeocoder(base_url={self.base_url!r}, timeout={self.timeout}, "
                f"max_retries={self.max_retries}, batch_size={self.batch_size}, "
                f"max_workers={self.max_workers})")

    def __enter__(self) -> CensusGeocoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker threads and close the HTTP sessions."""
        self._workers.close()

    # -- addresses ---------------------------------------------------------------------------

    def geocode(self, addresses: pd.DataFrame, *, send_addresses_to_census_geocoder: bool = False,
                benchmark: str, vintage: str | None, id_column: str = "row",
                on_batch_error: str = "raise") -> pd.DataFrame:
        """Geocode street addresses in batches; every input row gets an outcome.

        Parameters
        ----------
        addresses : pandas.DataFrame
            One row per address: ``id_column`` (unique, non-null), ``street`` and optionally
            ``city``, ``state``, ``zip`` (the columns of `ingestion.geo.linking.ADDRESS_COLUMNS`;
            others are ignored). A ZIP read as a number gets its leading zeros back; ZIP+4
            is sent as its 5 digits.
        send_addresses_to_census_geocoder : bool
            Must be True: the streets, cities, states and ZIPs of the rows below leave this
            machine for the service's host. Anything else raises `GeocoderConsentRequired`.
        benchmark : str
            The locator release, e.g. ``"Public_AR_Current"`` (no default on purpose).
        vintage : str or None
            The geography vintage of the GEOIDs, e.g. ``"Current_Current"``,
            ``"ACS2024_Current"`` or ``"Census2020_Current"`` (``geographies/addressbatch``);
            None asks ``locations/addressbatch`` for coordinates only (GEOIDs null).
        id_column : str
            The column identifying rows, default ``"row"`` (as `read_address_history`
            returns it). Ids never leave the machine.
        on_batch_error : {"raise", "mark"}
            When a batch still fails after its retries: raise `GeocoderError` (default), or
            give its rows ``geocode_missing="geocoder_unavailable"`` and go on.

        Returns
        -------
        pandas.DataFrame
            One row per input row, in input order: ``id_column`` then `GEOCODE_COLUMNS`:
            ``latitude``/``longitude`` (float64, NaN unless matched), ``geocode_match``
            (Match, No_Match, Tie; null when not sent), ``geocode_match_type`` (Exact,
            Non_Exact), ``geocode_precision`` (``street_address_exact``,
            ``street_address_nonexact`` or ``none``), ``geocode_matched_address`` (the
            service's standardized address: PHI), ``geocode_tiger_line_id``, ``geocode_side``,
            the county, tract, block-group (tract + first digit of the block) and block
            GEOIDs of ``vintage``, ``geocode_benchmark``, ``geocode_vintage``, and
            ``geocode_missing`` (`GEOCODE_MISSING_REASONS`; null when matched).

        Raises
        ------
        GeocoderConsentRequired
            Without ``send_addresses_to_census_geocoder=True``; nothing is sent.
        GeocoderError
            If a batch fails after its retries (with ``on_batch_error="raise"``); the message
            names the URL, the batch and its first row ids, never an address.
        ValueError
            For a missing or repeated id, no ``street`` column, a malformed benchmark or
            vintage name, or an unknown ``on_batch_error``.
        TypeError
            If ``addresses`` is not a DataFrame or the consent flag is not a bool.

        Examples
        --------
        >>> geocoder = CensusGeocoder(base_url=server.base_url)  # doctest: +SKIP
        >>> geocoder.geocode(history, send_addresses_to_census_geocoder=True,
        ...                  benchmark="Public_AR_Current", vintage="Current_Current"
        ...                  )[["row", "latitude", "geocode_missing"]]  # doctest: +SKIP
           row   latitude geocode_missing
        0    2  38.898754            <NA>
        1    3        NaN          po_box
        """
        ids = _check_ids(addresses, id_column, "addresses")
        if "street" not in addresses.columns:
            raise ValueError(f"addresses has no 'street' column; its columns are "
                             f"{list(addresses.columns)}")
        benchmark = _check_name(benchmark, "benchmark")
        vintage = _check_name(vintage, "vintage", optional=True)
        _check_mode(on_batch_error)
        n = len(addresses)
        text = {c: (_clean_zip if c == "zip" else _clean)(
                    addresses[c] if c in addresses.columns else pd.Series([None] * n))
                for c in ("street", "city", "state", "zip")}
        street = text["street"]
        has_street = street != ""
        po_box = np.array([bool(PO_BOX_PATTERN.search(s)) for s in street], dtype=bool)
        send = has_street & ~po_box
        missing = np.select([po_box, ~has_street & (text["zip"] != "")], ["po_box", "zip_only"],
                            default="no_coordinates").astype(object)
        keys = pd.Series([f"{a.upper()}\x1f{b.upper()}\x1f{c.upper()}\x1f{d}" for a, b, c, d
                          in zip(street, text["city"], text["state"], text["zip"], strict=True)])
        positions = np.flatnonzero(send)
        codes, first = _distinct(keys.to_numpy(dtype=object)[positions], positions)
        _check_consent(send_addresses_to_census_geocoder,
                       name="send_addresses_to_census_geocoder", count=len(first),
                       what="distinct street addresses", host=self.host)
        endpoint = f"{'geographies' if vintage else 'locations'}/addressbatch"
        form = (("benchmark", benchmark),) + ((("vintage", vintage),) if vintage else ())
        row_ids = ids.to_numpy(dtype=object)
        holders = _holders(codes, positions, len(first))

        def batch_body(members: np.ndarray) -> tuple[bytes, tuple[str, ...]]:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONE)
            secrets = set()
            for p in members:
                fields = [street[p], text["city"][p], text["state"][p], text["zip"][p]]
                writer.writerow([p + 1, *fields])
                # What the service may echo: the street, the "street, city, state, zip" of its
                # answers and the line as sent.
                secrets.update((street[p], ", ".join(fields), ",".join(fields)))
            return buffer.getvalue().encode("utf-8"), tuple(secrets)

        batches = self._plan(first, endpoint, "addressFile", form, batch_body, holders,
                             row_ids, lambda f: _address_row(f, geographies=vintage is not None))
        if len(first):
            logger.warning(
                "PHI LEAVES THIS MACHINE: sending %d distinct street addresses (of %d rows) to "
                "the Census Geocoder at %s in %d batch(es), because "
                "send_addresses_to_census_geocoder=True; %d rows are not sent (%d PO boxes, %d "
                "without a street)", len(first), n, self.host, len(batches), n - len(positions),
                int(po_box.sum()), int((~has_street).sum()))
        results, failed = self._run(batches, on_batch_error, "address")
        return _address_outcomes(ids, id_column, send, missing, codes, positions, first,
                                 results, failed, benchmark, vintage)

    # -- points ------------------------------------------------------------------------------

    def geographies_for_points(self, points: pd.DataFrame, *,
                               send_coordinates_to_census_geocoder: bool = False,
                               benchmark: str, vintage: str, id_column: str = "row",
                               on_batch_error: str = "raise") -> pd.DataFrame:
        """Look up the Census geographies of points with the coordinates batch (reverse lookup).

        Useful to cross-check a local point-in-polygon link against the service.

        Parameters
        ----------
        points : pandas.DataFrame
            ``id_column``, ``latitude`` and ``longitude`` (degrees, NAD83/WGS84). Rows
            without both coordinates are not sent (``no_coordinates``).
        send_coordinates_to_census_geocoder : bool
            Must be True: patients' coordinates are PHI and leave this machine.
        benchmark : str
            E.g. ``"Public_AR_Current"``.
        vintage : str
            The geography vintage, e.g. ``"Current_Current"`` or ``"ACS2024_Current"`` (whose
            answers leave the block empty: block and block-group GEOIDs are then null).
        id_column : str
            The column identifying rows (unique), default ``"row"``.
        on_batch_error : {"raise", "mark"}
            As in `geocode`.

        Returns
        -------
        pandas.DataFrame
            One row per input row, in input order: ``id_column`` then `POINT_COLUMNS`;
            ``geocode_missing`` is ``outside_boundaries`` when the service places the point
            in no geography, ``no_coordinates`` when it was not sent.

        Raises
        ------
        GeocoderConsentRequired
            Without ``send_coordinates_to_census_geocoder=True``; nothing is sent.
        GeocoderError
            If a batch fails after its retries (with ``on_batch_error="raise"``).
        ValueError
            For missing columns or ids, coordinates out of range, or malformed names.

        Examples
        --------
        >>> geocoder.geographies_for_points(points, send_coordinates_to_census_geocoder=True,
        ...     benchmark="Public_AR_Current", vintage="Current_Current")  # doctest: +SKIP
        """
        ids = _check_ids(points, id_column, "points")
        absent = [c for c in ("latitude", "longitude") if c not in points.columns]
        if absent:
            raise ValueError(f"points lacks column(s) {absent}; its columns are "
                             f"{list(points.columns)}")
        benchmark = _check_name(benchmark, "benchmark")
        vintage = _check_name(vintage, "vintage")
        _check_mode(on_batch_error)
        lat = pd.to_numeric(points["latitude"], errors="coerce").to_numpy(dtype="float64")
        lon = pd.to_numeric(points["longitude"], errors="coerce").to_numpy(dtype="float64")
        send = np.isfinite(lat) & np.isfinite(lon)
        wrong = send & ((np.abs(lat) > 90) | (np.abs(lon) > 180))
        if wrong.any():
            raise ValueError(f"points has coordinates out of range at id "
                             f"{ids.iloc[int(np.flatnonzero(wrong)[0])]!r}")
        positions = np.flatnonzero(send)
        keys = np.array([f"{float(lon[p])!r},{float(lat[p])!r}" for p in positions], dtype=object)
        codes, first = _distinct(keys, positions)
        _check_consent(send_coordinates_to_census_geocoder,
                       name="send_coordinates_to_census_geocoder", count=len(first),
                       what="distinct patient coordinates", host=self.host)
        row_ids = ids.to_numpy(dtype=object)
        holders = _holders(codes, positions, len(first))

        def batch_body(members: np.ndarray) -> tuple[bytes, tuple[str, ...]]:
            lines = "".join(f"{p + 1},{float(lon[p])!r},{float(lat[p])!r}\n" for p in members)
            return lines.encode("ascii"), ()

        sent = {str(p + 1): (float(lon[p]), float(lat[p])) for p in first}
        batches = self._plan(first, "geographies/coordinatesbatch", "coordinatesFile",
                             (("benchmark", benchmark), ("vintage", vintage)), batch_body,
                             holders, row_ids, _point_row, sent=sent)
        if len(first):
            logger.warning(
                "PHI LEAVES THIS MACHINE: sending %d distinct patient coordinates (of %d rows) "
                "to the Census Geocoder at %s in %d batch(es), because "
                "send_coordinates_to_census_geocoder=True", len(first), len(points), self.host,
                len(batches))
        results, failed = self._run(batches, on_batch_error, "point")
        n = len(points)
        out = {name: np.full(n, None, dtype=object) for name in POINT_COLUMNS}
        out["geocode_missing"][:] = "no_coordinates"
        for i, p in enumerate(positions):
            key = str(first[codes[i]] + 1)
            found = results.get(key)
            if found is None:
                out["geocode_missing"][p] = "geocoder_unavailable" if key in failed else None
                continue
            out["geocode_match"][p] = found["match"]
            for level in ("county", "tract", "block_group", "block"):
                out[f"geocode_{level}_geoid"][p] = found[f"{level}_geoid"]
            out["geocode_missing"][p] = None if found["match"] == "Match" else "outside_boundaries"
        out["geocode_benchmark"][:] = benchmark
        out["geocode_vintage"][:] = vintage
        frame = pd.DataFrame({id_column: ids})
        for name in POINT_COLUMNS:
            frame[name] = pd.Series(out[name], dtype=_STRING)
        return frame

    # -- batches -----------------------------------------------------------------------------

    def _plan(self, first: np.ndarray, endpoint: str, file_field: str,
              form: tuple[tuple[str, str], ...],
              body: Callable[[np.ndarray], tuple[bytes, tuple[str, ...]]],
              holders: list[list[int]], row_ids: np.ndarray,
              row: Callable[[list[str]], dict[str, Any]],
              sent: dict[str, tuple[float, float]] | None = None) -> list[_Batch]:
        """Cut the distinct inputs (by first position) into batches of ``batch_size``."""
        total = math.ceil(len(first) / self.batch_size)
        batches = []
        for number, start in enumerate(range(0, len(first), self.batch_size), start=1):
            members = first[start:start + self.batch_size]
            data, secrets = body(members)
            holding = [row_ids[p] for u in range(start, start + len(members))
                       for p in holders[u]]
            batches.append(_Batch(number, total, endpoint, file_field, form,
                                  tuple(str(p + 1) for p in members), tuple(holding), data,
                                  secrets, row, sent))
        return batches

    def _run(self, batches: list[_Batch], on_batch_error: str, unit: str,
             ) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """Send every batch; return the answers by Unique ID and the ids of failed batches."""
        results: dict[str, dict[str, Any]] = {}
        failed: set[str] = set()
        if not batches:
            return results, failed
        shown = self.progress if self.progress is not None else sys.stderr.isatty()
        started = time.monotonic()
        total = sum(len(b.keys) for b in batches)
        with tqdm(total=total, desc="Census Geocoder", unit=unit, disable=not shown,
                  leave=False) as bar:
            def done(batch: _Batch, answer: dict[str, dict[str, Any]] | GeocoderError) -> None:
                if isinstance(answer, GeocoderError):
                    if on_batch_error == "raise":
                        raise answer
                    logger.error("%s; its %d rows are marked geocoder_unavailable", answer,
                                 len(batch.row_ids))
                    failed.update(batch.keys)
                else:
                    results.update(answer)
                bar.update(len(batch.keys))
                if not shown:
                    logger.info("Census Geocoder: %s answered", batch.label.split(" (")[0])

            if self.max_workers == 1 or len(batches) == 1:
                for batch in batches:
                    done(batch, self._send(batch))
            else:
                pool = self._workers.executor()
                futures = {pool.submit(self._send, batch): batch for batch in batches}
                try:
                    for future in concurrent.futures.as_completed(futures):
                        done(futures[future], future.result())
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        logger.info("Census Geocoder: %d batch(es) in %.1f s (%d failed)", len(batches),
                    time.monotonic() - started,
                    sum(1 for b in batches if b.keys and b.keys[0] in failed))
        return results, failed

    def _send(self, batch: _Batch) -> dict[str, dict[str, Any]] | GeocoderError:
        """POST one batch with retries; a final failure is returned, not raised, for `_run`."""
        url = f"{self.base_url}/{batch.endpoint}"
        shown = redact_key(url)
        attempts = self.max_retries + 1
        made = itertools.count(1)

        def attempt() -> Attempt:
            logger.debug("POST %s, %s (attempt %d of %d)", shown, batch.label, next(made),
                         attempts)
            return self._attempt(url, batch)

        def on_retry(retry: Retry) -> None:
            logger.warning("Census Geocoder %s; retrying POST %s, %s in %.2f s (attempt %d of "
                           "%d)", retry.attempt.problem, shown, batch.label, retry.delay,
                           retry.failures + 1, attempts)

        outcome, made_attempts = self._retry.call(attempt, on_retry=on_retry)
        if outcome.ok:
            return outcome.value
        return GeocoderError(_SERVICE.failure(outcome, attempts=made_attempts, method="POST",
                                              url=shown, what=batch.label))

    def _attempt(self, url: str, batch: _Batch) -> Attempt:
        """One POST; exceptions become problems naming their type, never re-raised."""
        files = {batch.file_field: (f"{batch.file_field}.csv", batch.body, "text/csv")}
        try:
            response = self._retry.request(self._workers.session(), "POST", url,
                                           data=dict(batch.form), files=files)
        except requests.RequestException as exc:
            return Attempt.from_exception(exc, timeout=self.timeout, describe=lambda e: (
                f"{type(e).__name__}: {_scrub(redact_key(str(e)), batch)}"))
        if response.status_code == 200:
            return _answer(response.content, response.headers.get("Content-Type", ""), batch)
        return Attempt.from_status(response.status_code, response.content, response.headers,
                                   clean=lambda text: _scrub(redact_key(text), batch))


def _check_mode(on_batch_error: Any) -> None:
    if on_batch_error not in _ERROR_MODES:
        raise ValueError(f"on_batch_error must be one of {list(_ERROR_MODES)}, "
                         f"got {on_batch_error!r}")


def _distinct(keys: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of each key among the distinct keys, and the first position holding each."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    codes, _ = pd.factorize(pd.Series(keys, dtype=object))
    first = np.full(codes.max() + 1, -1, dtype=np.int64)
    for i in range(len(codes) - 1, -1, -1):
        first[codes[i]] = positions[i]
    return codes, first


def _holders(codes: np.ndarray, positions: np.ndarray, n_distinct: int) -> list[list[int]]:
    holders: list[list[int]] = [[] for _ in range(n_distinct)]
    for code, p in zip(codes, positions, strict=True):
        holders[code].append(int(p))
    return holders


def _scrub(text: str, batch: _Batch) -> str:
    """Hide any of the batch's addresses (or streets) that the service or an exception echoed."""
    secrets = sorted((s for s in batch.secrets if len(s) >= 4), key=len, reverse=True)
    if not secrets or not text:
        return text
    pattern = re.compile("|".join(re.escape(s) for s in secrets), re.IGNORECASE)
    return pattern.sub("[address]", text)


def _answer(body: bytes, content_type: str, batch: _Batch) -> Attempt:
    """Check a 200 body: every row sent answered once, nothing else; rows by Unique ID."""
    text = _decode(body)
    if "html" in content_type.lower() or text.lstrip().startswith("<"):
        page = _scrub(response_message(body, "text/html"), batch)
        return Attempt(problem=f"HTTP 200 with an HTML page instead of a CSV answer: {page}")
    results, problems = _parse(text, batch.row)
    expected = set(batch.keys)
    unknown = [k for k in results if k not in expected]
    if unknown:
        problems.append(f"{len(unknown)} row(s) answer ids that were not sent")
    if batch.sent is not None:
        moved = [k for k, r in results.items() if k in batch.sent
                 and max(abs(r["longitude"] - batch.sent[k][0]),
                         abs(r["latitude"] - batch.sent[k][1])) > 1e-4]
        if moved:
            problems.append(f"{len(moved)} row(s) echo other coordinates than those sent")
    absent = len(expected) - len(expected & set(results))
    if absent:
        problems.append(f"{absent} of the {len(expected)} rows sent are not answered")
    if problems and not results and len(text) < 500:  # perhaps a one-line message, not a CSV
        problems.insert(0, f"the body reads {_scrub(response_message(body, content_type), batch)!r}")
    if problems:
        return Attempt(problem=f"HTTP 200 but an incomplete answer ({len(body)} bytes): "
                                f"{'; '.join(problems[:3])}", retryable=True, bad_body=True)
    return Attempt(value=results)


def _address_outcomes(ids: pd.Series, id_column: str, send: np.ndarray, missing: np.ndarray,
                      codes: np.ndarray, positions: np.ndarray, first: np.ndarray,
                      results: dict[str, dict[str, Any]], failed: set[str], benchmark: str,
                      vintage: str | None) -> pd.DataFrame:
    """One outcome per input row, from the answers by Unique ID."""
    n = len(ids)
    text_columns = [c for c in GEOCODE_COLUMNS if c not in ("latitude", "longitude")]
    out = {name: np.full(n, None, dtype=object) for name in text_columns}
    lat, lon = np.full(n, math.nan), np.full(n, math.nan)
    out["geocode_missing"][~send] = missing[~send]
    out["geocode_precision"][:] = "none"
    counts = {"Match": 0, "No_Match": 0, "Tie": 0, "unavailable": 0}
    for i, p in enumerate(positions):
        key = str(first[codes[i]] + 1)
        found = results.get(key)
        if found is None:
            out["geocode_missing"][p] = "geocoder_unavailable" if key in failed else None
            counts["unavailable"] += 1
            continue
        match = found["match"]
        counts[match] += 1
        out["geocode_match"][p] = match
        if match != "Match":
            out["geocode_missing"][p] = "geocode_failed"
            continue
        lat[p], lon[p] = found["latitude"], found["longitude"]
        out["geocode_match_type"][p] = found["match_type"]
        out["geocode_precision"][p] = _PRECISION[found["match_type"]]
        out["geocode_matched_address"][p] = found["matched_address"]
        out["geocode_tiger_line_id"][p] = found["tiger_line_id"]
        out["geocode_side"][p] = found["side"]
        for level in ("county", "tract", "block_group", "block"):
            out[f"geocode_{level}_geoid"][p] = found[f"{level}_geoid"]
    out["geocode_benchmark"][:] = benchmark
    out["geocode_vintage"][:] = vintage
    frame = pd.DataFrame({id_column: ids})
    frame["latitude"], frame["longitude"] = lat, lon
    for name in text_columns:
        frame[name] = pd.Series(out[name], dtype=_STRING)
    frame = frame[[id_column, *GEOCODE_COLUMNS]]
    logger.info("Census Geocoder: %d of %d rows matched (%d rows No_Match, %d Tie, %d "
                "unavailable); %d not sent", counts["Match"], n, counts["No_Match"],
                counts["Tie"], counts["unavailable"], int((~send).sum()))
    return frame


def geocode_addresses(addresses: pd.DataFrame, *, send_addresses_to_census_geocoder: bool = False,
                      benchmark: str, vintage: str | None, id_column: str = "row",
                      on_batch_error: str = "raise",
                      client: CensusGeocoder | None = None) -> pd.DataFrame:
    """Geocode street addresses with the Census Geocoder; addresses leave the machine (opt-in).

    See `CensusGeocoder.geocode` for the batching, the retries and every column.

    Parameters
    ----------
    addresses : pandas.DataFrame
        ``id_column``, ``street`` and optionally ``city``, ``state``, ``zip``.
    send_addresses_to_census_geocoder : bool
        Must be True, saying that patient addresses (PHI) may be sent to the U.S. Census
        Bureau's server; otherwise `GeocoderConsentRequired` is raised and nothing is sent.
        PO boxes and rows without a street are never sent.
    benchmark : str
        E.g. ``"Public_AR_Current"``.
    vintage : str or None
        E.g. ``"Current_Current"`` or ``"ACS2024_Current"``; None for coordinates only.
    id_column : str
        The unique row id column, default ``"row"``.
    on_batch_error : {"raise", "mark"}
        Raise on a batch that fails after its retries, or mark its rows
        ``geocoder_unavailable``.
    client : CensusGeocoder, optional
        The client to use (e.g. pointed at a local server, with another batch size); a
        default one is made and closed otherwise.

    Returns
    -------
    pandas.DataFrame
        ``id_column`` then `GEOCODE_COLUMNS`, one row per input row in input order; give it to
        `apply_geocodes` to fill an address history's coordinates for
        `ingestion.geo.linking.link_addresses`.

    Raises
    ------
    GeocoderConsentRequired
        Without the opt-in.
    GeocoderError
        If a batch fails after its retries (``on_batch_error="raise"``).
    ValueError
        For bad ids, columns, names or modes.

    Examples
    --------
    >>> out = geocode_addresses(todo, send_addresses_to_census_geocoder=True,
    ...                         benchmark="Public_AR_Current", vintage=None)  # doctest: +SKIP
    >>> out["geocode_missing"].value_counts(dropna=False)  # doctest: +SKIP
    """
    own = client is None
    client = client if client is not None else CensusGeocoder()
    try:
        return client.geocode(addresses,
                              send_addresses_to_census_geocoder=send_addresses_to_census_geocoder,
                              benchmark=benchmark, vintage=vintage, id_column=id_column,
                              on_batch_error=on_batch_error)
    finally:
        if own:
            client.close()


def apply_geocodes(history: pd.DataFrame, geocoded: pd.DataFrame, *,
                   id_column: str = "row") -> pd.DataFrame:
    """Fill an address history's missing coordinates from geocodes, for `link_addresses`.

    Parameters
    ----------
    history : pandas.DataFrame
        Address periods with ``id_column`` (e.g. `read_address_history`'s accepted frame and
        its ``row``) and optionally ``latitude``/``longitude``.
    geocoded : pandas.DataFrame
        `geocode_addresses` output for some or all of those rows (ids unique).
    id_column : str
        The column joining the two, default ``"row"``.

    Returns
    -------
    pandas.DataFrame
        ``history`` (same rows, order and index) where a row without both coordinates takes
        the geocode's ``latitude``/``longitude`` (coordinates already given win), plus the
        ``geocode_*`` columns (null for rows not geocoded). `link_addresses` ignores the
        extra columns and links the filled points; a geocode's GEOIDs are the service's, for
        cross-checking the point-in-polygon link.

    Raises
    ------
    ValueError
        If ``id_column`` is absent from either frame, repeated in ``geocoded``, or
        ``history`` already has ``geocode_*`` columns.
    TypeError
        If either argument is not a DataFrame.

    Examples
    --------
    >>> history = pd.DataFrame({"row": [2, 3], "latitude": [None, 39.9],
    ...                         "longitude": [None, -75.1]})
    >>> geocoded = pd.DataFrame({"row": [2], "latitude": [38.9], "longitude": [-77.0],
    ...                          "geocode_match": ["Match"]})
    >>> apply_geocodes(history, geocoded)[["row", "latitude", "geocode_match"]]
       row  latitude geocode_match
    0    2      38.9         Match
    1    3      39.9           NaN
    """
    for name, frame in (("history", history), ("geocoded", geocoded)):
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
        if id_column not in frame.columns:
            raise ValueError(f"{name} has no id column {id_column!r}; its columns are "
                             f"{list(frame.columns)}")
    if geocoded[id_column].duplicated().any():
        raise ValueError(f"geocoded[{id_column!r}] repeats ids; give one geocode per row")
    extra = [c for c in geocoded.columns if c.startswith("geocode_")]
    clash = [c for c in extra if c in history.columns]
    if clash:
        raise ValueError(f"history already has {clash}; drop them before applying new geocodes")
    right = geocoded[[id_column, *extra]].copy()
    for axis in ("latitude", "longitude"):
        right[f"_geocoded_{axis}"] = (pd.to_numeric(geocoded[axis], errors="coerce")
                                      if axis in geocoded.columns else math.nan)
    merged = history.merge(right, on=id_column, how="left", validate="many_to_one")
    merged.index = history.index
    given = {axis: (pd.to_numeric(merged[axis], errors="coerce").astype("float64")
                    if axis in merged.columns else pd.Series(math.nan, index=merged.index))
             for axis in ("latitude", "longitude")}
    fill = (given["latitude"].isna() & given["longitude"].isna()
            & merged["_geocoded_latitude"].notna() & merged["_geocoded_longitude"].notna())
    for axis in ("latitude", "longitude"):
        merged[axis] = given[axis].where(~fill, merged[f"_geocoded_{axis}"])
    return merged.drop(columns=["_geocoded_latitude", "_geocoded_longitude"])
