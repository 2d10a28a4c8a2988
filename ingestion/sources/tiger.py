"""Download TIGER/Line and cartographic boundary shapefiles into a verified local cache.

`download_boundaries` fetches the Census Bureau's boundary zips (tracts, block groups,
counties, ZCTAs; TIGER/Line or cartographic boundary "cb" files) and returns their local
paths, ready for `ingestion.geo.boundaries.load_boundaries`. `boundary_url` builds one file's URL.

**URLs are data.** The patterns, the years each covers and why other years are refused live in
``sdoh_sources/catalog/boundaries.yaml``, each with the sources that corroborate it. There is
no default year: TIGER/Line files follow ``TIGER{year}/TRACT/tl_{year}_{ss}_tract.zip``, but
2010 has its own layout (``TIGER2010/TRACT/2010/tl_2010_{ss}_tract10.zip``), cartographic
boundary files have a ``shp/`` folder only from 2014, none exist for 2011 and 2012, and CB
ZCTAs stop at 2020. A year outside the catalog is a `ValueError` that says why; a year inside
an open-ended pattern that the Bureau has not published yet answers HTTP 404, reported as
`BoundaryDownloadError` with the URL and what to check.

**Cache.** Files are fetched by `ingestion.sources.download_cache.fetch_files`, the cache every
download shares: they land under ``cache_dir`` mirroring the URL, ``{cache_dir}/{host}/{path}``,
e.g. ``~/.cache/sdoh/www2.census.gov/geo/tiger/TIGER2020/TRACT/tl_2020_10_tract.zip``, each
with a manifest ``<file>.json`` (URL, size, SHA-256, download time, and here the catalog's
facts: GEOID field, boundary vintage, the zip's members). A file whose SHA-256 matches its
manifest is used without any HTTP request; one that does not is downloaded again with a warning.
Downloads resume after a dropped connection (``Range`` and ``If-Range``), and HTTP 429 and 5xx,
timeouts and dropped connections are retried by the retry policy every client shares
(`ingestion.sources.http.RetryPolicy`). HTTP 404 and other 4xx fail at once.

**Verification.** The Census Bureau publishes no checksums for these files, so what can be
checked is: the body's length against ``Content-Length`` (or ``Content-Range``), that the file
is a zip whose members pass their CRC check, and that it holds the ``.shp``, ``.shx``,
``.dbf`` and ``.prj`` a shapefile layer needs (`download_cache.check_zip`). Only then is the
manifest written and the file renamed into place (atomically).

**Concurrency.** Several states download on a pool of ``max_workers`` threads, each with its
own `requests.Session`, with a tqdm bar over files on a terminal.

Examples
--------
Here ``tiger_url`` is a local server holding the synthetic demo region's files (state 99); leave
``base_url`` out to download from the Census Bureau:

>>> paths = download_boundaries("block_group", 2020, "99", cache_dir=scratch.root, base_url=tiger_url)
>>> from ingestion.geo.boundaries import load_boundaries
>>> load_boundaries(paths[0], level="block_group", boundary_year=2020).shape
(43, 2)
>>> boundary_url("tract", 2010, "DE")
'https://www2.census.gov/geo/tiger/TIGER2010/TRACT/2010/tl_2010_10_tract10.zip'
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ingestion.core.geography import STATE_FIPS, normalize_state, normalize_states
from ingestion.sources import download_cache
from ingestion.sources.download_cache import CacheTarget, check_zip, fetch_files
from ingestion.sources.http import (
    FROM_ENVIRONMENT,
    CacheDefault,
    RetryPolicy,
    Service,
    cache_root,
    check_client_options,
    check_service_url,
    client_policy,
)
from sdoh_sources.boundaries import (
    CATALOG_FILE,
    DEFAULT_BASE_URL,
    KINDS,
    BoundaryPattern,
    load_boundary_catalog,
)
from sdoh_sources.errors import SdohError

__all__ = [
    "DEFAULT_BASE_URL",
    "KINDS",
    "LEVELS",
    "MANIFEST_FORMAT",
    "BoundaryDownloadError",
    "boundary_url",
    "download_boundaries",
    "read_manifest",
]

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = "sdoh-boundary-manifest/1"
_KIND_NAMES = {"tiger": "TIGER/Line", "cb": "cartographic boundary"}
_LEVEL_ALIASES = {"block group": "block_group", "zip code tabulation area": "zcta"}
# How errors name the file server, and what they advise (`Service`).
_SERVICE = Service(
    name="the Census boundary file server", url_option="--base-url (base_url=)",
    busy=" (files already downloaded are kept, and an interrupted one resumes)",
    offline="copy a --cache-dir (cache_dir=) filled on a machine with a network, or point "
            "--base-url (base_url=) at a mirror you can reach",
    refused="Check the level, year and state, and --base-url (base_url=) if you use a mirror.")


class BoundaryDownloadError(SdohError):
    """A boundary file could not be downloaded or verified; the message names the URL and why."""


#: The levels the catalog has patterns for (``load_boundaries``'s level names).
LEVELS: tuple[str, ...] = ("tract", "block_group", "county", "zcta")


# -- planning: which files, at which URLs -----------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """One file to fetch."""

    url: str
    pattern: BoundaryPattern
    year: int
    state: str | None
    resolution: str | None


def _resolve_level(level: Any) -> str:
    if not isinstance(level, str):
        raise TypeError(f"level must be a str such as 'tract', got {type(level).__name__}")
    name = " ".join(level.strip().lower().split())
    name = _LEVEL_ALIASES.get(name, name)
    if name not in load_boundary_catalog().levels:
        raise ValueError(f"unknown level {level!r}; expected one of {list(load_boundary_catalog().levels)} "
                         f"('block group' and 'zip code tabulation area' also accepted)")
    return name


def _check_year(year: Any) -> int:
    if isinstance(year, bool) or not isinstance(year, int):
        raise TypeError(f"year must be an int such as 2020 (there is no default vintage), "
                        f"got {year!r}")
    return year


def _check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)} ('tiger': TIGER/Line, 'cb': "
                         f"cartographic boundary), got {kind!r}")
    return kind


def _base(base_url: Any) -> str:
    return check_service_url(base_url)


def _patterns_for(level: str, year: int, kind: str) -> list[BoundaryPattern]:
    """The patterns covering a year, or a ValueError saying why there is none."""
    catalog = load_boundary_catalog()
    mine = [p for p in catalog.patterns if (p.level, p.kind) == (level, kind)]
    covering = [p for p in mine if p.covers(year)]
    if covering:
        return covering
    name = f"{_KIND_NAMES[kind]} {level} files"
    gap = next((g for g in catalog.gaps if (g.level, g.kind) == (level, kind) and g.covers(year)),
               None)
    spans = ", ".join(sorted({p.span for p in mine})) or "none"
    if gap is not None:
        raise ValueError(f"no {name} for {year}: {gap.reason} (the catalog covers {spans})")
    raise ValueError(f"no {name} for {year} in {CATALOG_FILE} (it covers {spans})")


def _resolution(pattern: BoundaryPattern, resolution: Any) -> str | None:
    if pattern.kind == "tiger":
        if resolution is not None:
            raise ValueError(f"resolution={resolution!r} applies to cartographic boundary files "
                             f"(kind='cb') only; TIGER/Line files are not generalised")
        return None
    chosen = "500k" if resolution is None else resolution
    if chosen not in pattern.resolutions:
        raise ValueError(f"cartographic boundary {pattern.level} files for {pattern.span} come "
                         f"in resolutions {list(pattern.resolutions)}, not {chosen!r}")
    return chosen


def _target(pattern: BoundaryPattern, year: int, state: str | None, resolution: Any,
            base_url: str) -> _Target:
    res = _resolution(pattern, resolution)
    path = pattern.path.format(year=year, state=state or "", resolution=res or "")
    return _Target(url=f"{base_url}/{path}", pattern=pattern, year=year, state=state,
                   resolution=res)


def _plan(level: Any, year: Any, state: Any, *, kind: Any, resolution: Any, base_url: Any,
          every_state: bool = True) -> list[_Target]:
    """The files to fetch; ``state=None`` means every state unless ``every_state`` is false."""
    level, year, kind = _resolve_level(level), _check_year(year), _check_kind(kind)
    base = _base(base_url)
    covering = _patterns_for(level, year, kind)
    by_scope = {p.scope: p for p in covering}
    name = f"{_KIND_NAMES[kind]} {level} files for {year}"
    if state is not None:
        states = normalize_states(state)
        if "state" not in by_scope:
            raise ValueError(f"{name} are national only ({by_scope['national'].path}): pass "
                             f"state=None and keep the states you need from the loaded frame "
                             f"(GEOIDs start with the state FIPS code)")
        return [_target(by_scope["state"], year, st, resolution, base) for st in states]
    if "national" in by_scope:
        return [_target(by_scope["national"], year, None, resolution, base)]
    if not every_state:
        raise ValueError(f"{name} are published per state: pass a state")
    logger.info("state=None: %s are published per state; planning the %d states, DC and "
                "Puerto Rico", name, len(STATE_FIPS) - 2)
    return [_target(by_scope["state"], year, st, resolution, base) for st in STATE_FIPS]


def boundary_url(level: str, year: int, state: str | int | None, *, kind: str = "tiger",
                 resolution: str | None = None, base_url: str = DEFAULT_BASE_URL) -> str:
    """Return the URL of one TIGER/Line or cartographic boundary file, from the catalog.

    Parameters
    ----------
    level : str
        ``"tract"``, ``"block_group"`` (or ``"block group"``), ``"county"`` or ``"zcta"`` (or
        ``"zip code tabulation area"``).
    year : int
        The file's vintage (``TIGER{year}``, ``GENZ{year}``); there is no default on purpose.
    state : str, int or None
        One state as FIPS code, postal code or name, for files published per state; None for
        a national file (counties, ZCTAs, and cartographic boundary tracts and block groups
        from 2019).
    kind : {"tiger", "cb"}
        TIGER/Line (default) or cartographic boundary file.
    resolution : str, optional
        For ``kind="cb"`` only: ``"500k"`` (the default), or ``"5m"``/``"20m"`` where the
        catalog lists them (counties).
    base_url : str
        The root the catalog's paths hang from; a mirror or a local server in tests.

    Returns
    -------
    str
        The file's URL.

    Raises
    ------
    ValueError
        For an unknown level, kind or state, a resolution the file does not come in, a year
        the catalog does not cover (the message gives the reason, e.g. that no cartographic
        boundary files exist for 2011 and 2012), a state for a national file or no state for
        a per-state file.
    TypeError
        If ``year`` is not an int.

    Examples
    --------
    >>> boundary_url("block_group", 2020, "DE")
    'https://www2.census.gov/geo/tiger/TIGER2020/BG/tl_2020_10_bg.zip'
    >>> boundary_url("county", 2022, None, kind="cb", resolution="20m")
    'https://www2.census.gov/geo/tiger/GENZ2022/shp/cb_2022_us_county_20m.zip'
    """
    if state is not None and not isinstance(state, (str, int)):
        raise TypeError(f"boundary_url takes one state (str or int) or None, got "
                        f"{type(state).__name__}; download_boundaries takes a list")
    fips = None if state is None else normalize_state(state)
    return _plan(level, year, fips, kind=kind, resolution=resolution, base_url=base_url,
                 every_state=False)[0].url


# -- downloading: the shared verified cache -------------------------------------------------------


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the manifest that `download_boundaries` wrote beside a downloaded file.

    Parameters
    ----------
    path : str or os.PathLike
        The downloaded zip (its manifest is ``<path>.json``).

    Returns
    -------
    dict
        ``url``, ``size``, ``sha256``, ``downloaded_at`` (UTC, ISO 8601), ``level``, ``year``,
        ``kind``, ``state``, ``resolution``, ``geoid_field``, ``boundary_vintage`` (the
        ``boundary_year`` to give `ingestion.geo.boundaries.load_boundaries`), ``members``,
        ``etag`` and ``last_modified``.

    Raises
    ------
    BoundaryDownloadError
        If there is no manifest or it cannot be read.

    Examples
    --------
    >>> paths = download_boundaries("block_group", 2020, "99", cache_dir=scratch.root,
    ...                             base_url=tiger_url)
    >>> read_manifest(paths[0])["boundary_vintage"]
    2020
    """
    return download_cache.read_manifest(path, error=BoundaryDownloadError,
                                        manifest_format=MANIFEST_FORMAT)


def _cache_target(target: _Target, required: tuple[str, ...]) -> CacheTarget:
    """The download of a planned file: a zip with the shapefile's parts, and its facts."""
    pattern = target.pattern
    return CacheTarget(
        url=target.url,
        check=functools.partial(check_zip, required_suffixes=required),
        describe={"level": pattern.level, "year": target.year, "kind": pattern.kind,
                  "state": target.state, "resolution": target.resolution,
                  "geoid_field": pattern.geoid_field,
                  "boundary_vintage": pattern.vintage(target.year)})


def _not_found_hint(url: str) -> str:
    folder = url.rsplit("/", 1)[0] + "/"
    return (f"No file at this URL: the Census Bureau may not publish this layer for this year "
            f"(yet), or not for this state; see what {folder} lists")


def download_boundaries(
    level: str,
    year: int,
    state: str | int | Sequence[str | int] | None,
    *,
    kind: str = "tiger",
    resolution: str | None = None,
    cache_dir: str | os.PathLike[str] | CacheDefault = FROM_ENVIRONMENT,
    base_url: str = DEFAULT_BASE_URL,
    session: requests.Session | None = None,
    timeout: float = 60.0,
    max_retries: int = 4,
    backoff: float = 1.0,
    max_delay: float = 60.0,
    max_workers: int = 4,
    progress: bool | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    retry: RetryPolicy | None = None,
) -> list[Path]:
    """Download TIGER/Line or cartographic boundary zips into the cache; return their paths.

    Parameters
    ----------
    level : str
        ``"tract"``, ``"block_group"`` (or ``"block group"``), ``"county"`` or ``"zcta"`` (or
        ``"zip code tabulation area"``): the level names of `ingestion.geo.boundaries.load_boundaries`.
    year : int
        The file vintage, e.g. 2020 for ``TIGER2020``; there is no default on purpose. Which
        years exist, and why others do not, is in ``sdoh_sources/catalog/boundaries.yaml``.
    state : str, int, sequence of them, or None
        For files published per state (tracts, block groups): one state or a list, each a
        FIPS code, postal code or name. None: the national file where one exists (counties,
        ZCTAs, cartographic boundary tracts and block groups from 2019), else every state's
        file (the 50 states, DC and Puerto Rico). Counties and ZCTAs are national only, so a
        state there is a `ValueError`.
    kind : {"tiger", "cb"}
        TIGER/Line files (default; full detail, for linking) or cartographic boundary files
        (generalised and clipped to the shoreline, for maps).
    resolution : str, optional
        For ``kind="cb"`` only: ``"500k"`` (the default), ``"5m"`` or ``"20m"`` where the
        catalog lists them (counties).
    cache_dir : str or os.PathLike, optional
        The folder files are kept in, mirroring their URL (``{cache_dir}/{host}/{path}``).
        Left out: the ``SDOH_CACHE_DIR`` environment variable. One of the two is required.
    base_url : str
        The root of the files; the Census Bureau's by default, a mirror or a local server
        otherwise.
    session : requests.Session, optional
        The session to send every request with (e.g. with a proxy or extra CA certificates);
        shared by the worker threads, not closed. By default each worker thread makes its
        own, closed at the end of the call.
    timeout : float
        Seconds to wait for a connection and between bytes; every request has it.
    max_retries : int
        Retries per file after HTTP 429/5xx, timeouts, dropped connections or a file that is
        not a valid zip. An attempt that brought new bytes resumes without using one up.
    backoff : float
        The first retry waits about ``backoff`` seconds, doubling each retry, with jitter.
    max_delay : float
        Cap on any single wait, including one asked for by ``Retry-After``.
    max_workers : int
        Files downloaded at once (default 4).
    progress : bool, optional
        A tqdm bar over files: True always, False never, None (default) when stderr is a
        terminal.
    rng : random.Random, optional
        The source of the backoff jitter (see `ingestion.sources.http.RetryPolicy`).
    sleep : callable
        How to wait between attempts, `time.sleep` by default; tests pass their own rather
        than patching `time.sleep` for every thread.
    retry : RetryPolicy, optional
        A policy shared with other clients: one HTTP 429 pauses all of them. It then sets
        timeout, max_retries, backoff, max_delay, rng and sleep, which must be left out.

    Returns
    -------
    list of pathlib.Path
        The verified local zips, in the order of ``state`` (or of `STATE_FIPS`). Each has a
        manifest beside it (see `read_manifest`), whose ``boundary_vintage`` is the
        ``boundary_year`` to give `load_boundaries`.

    Raises
    ------
    BoundaryDownloadError
        A file could not be downloaded or verified after the retries: HTTP 404 (the URL and a
        hint that the year or state may not be published), another 4xx, repeated 5xx,
        timeouts, truncated bodies, or a file that is not a zip with the shapefile's parts.
        With several files, the others are still downloaded and one error lists every failure.
    ValueError
        For an unknown level, kind or state, a year the catalog does not cover (with the
        reason), a resolution the file does not come in, a state for a national-only level,
        no cache folder, or bad retry settings.
    TypeError
        If ``year`` is not an int.

    Examples
    --------
    ``tiger_url`` is a local server holding the synthetic demo region's files (state 99);
    without ``base_url`` they come from the Census Bureau:

    >>> paths = download_boundaries("block_group", 2020, "99", cache_dir=scratch.root,
    ...                             base_url=tiger_url)
    >>> [p.name for p in paths]
    ['tl_2020_99_bg.zip']

    A national cartographic boundary file is one download (`boundary_url` names it):

    >>> boundary_url("county", 2023, None, kind="cb", resolution="5m")
    'https://www2.census.gov/geo/tiger/GENZ2023/shp/cb_2023_us_county_5m.zip'
    """
    check_client_options(timeout=timeout, max_retries=max_retries, backoff=backoff,
                         max_delay=max_delay, max_workers=max_workers, progress=progress)
    root = cache_root(cache_dir)
    if root is None:
        raise ValueError("download_boundaries needs a folder to keep files in: pass "
                         "cache_dir= or set the SDOH_CACHE_DIR environment variable")
    targets = _plan(level, year, state, kind=kind, resolution=resolution, base_url=base_url)
    for pattern in dict.fromkeys(t.pattern for t in targets):
        if not pattern.loadable:
            warnings.warn(f"{pattern.path}: {pattern.note or 'load_boundaries cannot read it'}",
                          stacklevel=2)
        elif pattern.note:
            logger.info("%s: %s", pattern.path, pattern.note)
    first = targets[0]
    policy = client_policy(retry, download_boundaries, timeout=timeout, max_retries=max_retries,
                           backoff=backoff, max_delay=max_delay, rng=rng, sleep=sleep)
    required = load_boundary_catalog().required_members
    return fetch_files(
        [_cache_target(t, required) for t in targets], cache_dir=root, retry=policy,
        service=_SERVICE, error=BoundaryDownloadError, session=session,
        max_workers=max_workers, progress=progress,
        label=f"{_KIND_NAMES[first.pattern.kind]} {first.pattern.level} {first.year}",
        manifest_format=MANIFEST_FORMAT, not_found_hint=_not_found_hint,
        user_agent="sdoh-feature-store boundary downloader")
