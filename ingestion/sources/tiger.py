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

**Cache.** Files land under ``cache_dir`` mirroring the URL: ``{cache_dir}/{host}/{path}``,
e.g. ``~/.cache/sdoh/www2.census.gov/geo/tiger/TIGER2020/TRACT/tl_2020_10_tract.zip`` (the port
is left out, so a local test server can change port). Beside each file a manifest
``<file>.json`` records the URL, size, SHA-256, download time and the catalog's facts (GEOID
field, boundary vintage). A file whose SHA-256 matches its manifest is used without any HTTP
request; one that does not (corrupted, truncated, replaced by hand) is downloaded again with a
warning.

**Verification.** The Census Bureau publishes no checksums for these files, so what can be
checked is: the body's length against ``Content-Length`` (or ``Content-Range``), that the file
is a zip whose members pass their CRC check (`zipfile.ZipFile.testzip`), and that it holds the
``.shp``, ``.shx``, ``.dbf`` and ``.prj`` a shapefile layer needs. Only then is the manifest
written and the file renamed into place (atomically).

**Resume and retries.** A download goes to ``<file>.part``; after a dropped connection the next
attempt (in this call or a later one) asks for the rest with ``Range: bytes=N-`` (and
``If-Range`` with the first response's ETag or Last-Modified, so a file changed on the server is
not spliced). A ``206`` appends; a ``200`` (a server without range support, or a changed file)
starts again from the first byte. HTTP 429 and 5xx, timeouts and dropped connections are retried
by the retry policy every client shares (`ingestion.sources.http.RetryPolicy`): exponential
backoff and jitter, ``Retry-After`` honoured up to ``max_delay``, and after a 429 every worker
pauses, not just the one that got it. An attempt that brought new bytes does not use up a
retry. HTTP 404 and other 4xx fail at once.

**Concurrency.** Several states download on a pool of ``max_workers`` threads, each with its
own `requests.Session` (requests does not document `Session` as thread-safe), with a tqdm bar
over files on a terminal.

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

import concurrent.futures
import datetime as dt
import hashlib
import json
import logging
import os
import random
import re
import sys
import tempfile
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
import urllib3
from tqdm import tqdm

from ingestion.core.geography import STATE_FIPS, normalize_state, normalize_states
from ingestion.sources.http import (
    FROM_ENVIRONMENT,
    RETRYABLE_EXCEPTIONS,
    Attempt,
    CacheDefault,
    Retry,
    RetryPolicy,
    Service,
    Trouble,
    cache_root,
    check_client_options,
    check_service_url,
    client_policy,
)
from ingestion.sources.workers import WorkerSessions
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
_CHUNK = 1 << 16
# Resumes that made progress do not use up a retry, but there is a limit all the same.
_MAX_RESUMES = 100
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
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


# -- the cache: files mirror their URL, each with a manifest --------------------------------------


def _local_path(root: Path, url: str) -> Path:
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not parts.hostname or not segments or any(s in (".", "..") or "\\" in s
                                                  for s in segments):
        raise ValueError(f"cannot mirror {url!r} in the cache")
    return root.joinpath(parts.hostname, *segments)


def _identity(url: str) -> str:
    """Host and path: the manifest's URL must match on these (not on scheme or port)."""
    parts = urlsplit(url)
    return f"{parts.hostname}{parts.path}"


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
    manifest = _manifest_path(Path(path))
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BoundaryDownloadError(f"{manifest}: cannot read the download manifest ({exc})") \
            from exc
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise BoundaryDownloadError(f"{manifest}: not a {MANIFEST_FORMAT} manifest")
    return data


def _verified(dest: Path, url: str) -> bool:
    """Whether ``dest`` is in the cache and matches its manifest (warns when it does not)."""
    if not dest.exists():
        return False
    try:
        manifest = read_manifest(dest)
    except BoundaryDownloadError as exc:
        logger.warning("%s has no usable manifest (%s); downloading it again from %s",
                       dest, exc, url)
        return False
    if _identity(str(manifest.get("url", ""))) != _identity(url):
        logger.warning("%s was downloaded from %s, not %s; downloading it again", dest,
                       manifest.get("url"), url)
        return False
    size = dest.stat().st_size
    digest = _sha256(dest) if size == manifest.get("size") else None
    if digest is None or digest != manifest.get("sha256"):
        found = f"sha256 {digest}" if digest else f"{size} bytes"
        expected = (f"sha256 {manifest.get('sha256')}" if digest
                    else f"{manifest.get('size')} bytes")
        logger.warning("cached boundary file %s is corrupted (%s, its manifest says %s); "
                       "downloading it again from %s", dest, found, expected, url)
        return False
    logger.debug("using cached %s (sha256 verified)", dest)
    return True


class _BadFile(Exception):
    """A complete download that is not the boundary zip it should be."""


def _check_zip(path: Path, required: tuple[str, ...]) -> list[str]:
    """Test every member's CRC and that the shapefile parts are there; return the members."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError,
            NotImplementedError) as exc:
        with open(path, "rb") as handle:
            head = handle.read(60)
        hint = " (an HTML page, not a zip)" if head.lstrip()[:1] == b"<" else ""
        raise _BadFile(f"not a valid zip file ({exc}); it begins {head!r}{hint}") from None
    if broken is not None:
        raise _BadFile(f"zip member {broken!r} fails its CRC check")
    missing = [ext for ext in required if not any(n.lower().endswith(ext) for n in names)]
    if missing:
        raise _BadFile(f"the zip lacks the shapefile parts {missing} (it holds {names})")
    return names


# -- downloading ---------------------------------------------------------------------------------


class _Downloader:
    """Fetches targets into the cache with resume, retries and verification."""

    def __init__(self, *, root: Path, session: Callable[[], requests.Session],
                 retry: RetryPolicy) -> None:
        self.root = root
        self.session = session  # the calling thread's session
        self.retry = retry
        self.timeout = retry.timeout
        self.max_retries = retry.max_retries
        self.required = load_boundary_catalog().required_members

    def ensure(self, target: _Target) -> tuple[Path, bool]:
        """Return the verified local file of ``target`` and whether it was downloaded now."""
        dest = _local_path(self.root, target.url)
        if _verified(dest, target.url):
            return dest, False
        dest.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        manifest = self._download(target, dest)
        logger.info("downloaded %s (%d bytes, sha256 %s) in %.1f s", target.url,
                    manifest["size"], manifest["sha256"][:12], time.monotonic() - started)
        return dest, True

    def _download(self, target: _Target, dest: Path) -> dict[str, Any]:
        part = dest.with_name(dest.name + ".part")
        state_file = dest.with_name(dest.name + ".part.json")

        def on_retry(retry: Retry) -> None:
            if retry.resumed:
                logger.warning("GET %s: %s; resuming at once", target.url, retry.attempt.problem)
            else:
                logger.warning("GET %s: %s; retry %d of %d in %.2f s", target.url,
                               retry.attempt.problem, retry.failures, self.max_retries,
                               retry.delay)

        outcome, attempts = self.retry.call(lambda: self._verified_attempt(target.url, part,
                                                                           state_file),
                                            on_retry=on_retry, max_resumes=_MAX_RESUMES)
        if outcome.ok:
            return self._install(target, dest, part, state_file, outcome.value)
        raise BoundaryDownloadError(_SERVICE.failure(outcome, attempts=attempts, method="GET",
                                                     url=target.url))

    def _verified_attempt(self, url: str, part: Path, state_file: Path) -> Attempt:
        """One GET; a complete file is checked as a boundary zip (its members the value)."""
        outcome = self._attempt(url, part, state_file)
        if not outcome.ok:
            return outcome
        try:
            return Attempt(value=_check_zip(part, self.required))
        except _BadFile as exc:
            part.unlink(missing_ok=True)
            state_file.unlink(missing_ok=True)
            return Attempt(problem=f"the downloaded file is not a usable boundary zip: {exc}",
                           retryable=True, trouble=Trouble.ALTERED)

    def _attempt(self, url: str, part: Path, state_file: Path) -> Attempt:
        """One GET into ``part``: value True once the whole file is there."""
        offset = part.stat().st_size if part.exists() else 0
        saved = self._saved_state(state_file, url) if offset else {}
        if offset and saved.get("total") == offset:
            return Attempt(value=True)  # complete before an interruption: just verify it
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            validator = saved.get("etag") or saved.get("last_modified")
            if validator:
                headers["If-Range"] = validator
        logger.debug("GET %s %s", url, headers.get("Range", ""))
        try:
            with self.retry.request(self.session(), "GET", url, headers=headers,
                                    stream=True) as response:
                return self._receive(response, url, part, state_file, offset)
        except requests.RequestException as exc:
            return Attempt.from_exception(exc, timeout=self.timeout, describe=_exception_problem)

    @staticmethod
    def _saved_state(state_file: Path, url: str) -> dict[str, Any]:
        try:
            saved = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(saved, dict) or _identity(str(saved.get("url", ""))) != _identity(url):
            return {}
        return saved

    def _receive(self, response: requests.Response, url: str, part: Path, state_file: Path,
                 offset: int) -> Attempt:
        before = offset  # bytes in hand before this attempt: progress is growing past it
        status = response.status_code
        if status == 416 and offset:
            part.unlink(missing_ok=True)
            state_file.unlink(missing_ok=True)
            return Attempt(problem=f"HTTP 416 for a partial download of {offset} bytes (the "
                           f"file changed or is shorter); starting again", resume=True, retryable=True)
        if status not in (200, 206):
            return self._refusal(response, url)
        total: int | None
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is None or int(match.group(1)) != offset:
                part.unlink(missing_ok=True)
                state_file.unlink(missing_ok=True)
                return Attempt(problem=f"HTTP 206 with Content-Range "
                               f"{response.headers.get('Content-Range')!r}, not from "
                               f"byte {offset}; starting again", resume=True, retryable=True)
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        else:
            if offset:
                logger.info("%s answered a Range request with the whole file (HTTP 200): "
                            "starting again from the first byte", url)
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if status == 200 or not state_file.exists():
            etag = response.headers.get("ETag")
            _write_json(state_file, {
                "url": url, "total": total,
                "etag": etag if etag and not etag.startswith("W/") else None,
                "last_modified": response.headers.get("Last-Modified"),
            })
        written, broken = 0, None
        with open(part, mode) as out:
            try:
                for chunk in _chunks(response):
                    out.write(chunk)
                    written += len(chunk)
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                broken = exc  # keep what arrived: the next attempt resumes from there
            out.flush()
            os.fsync(out.fileno())
        size = offset + written
        why = f"; the connection broke ({type(broken).__name__})" if broken else ""
        if total is not None and size < total:
            return Attempt(problem=f"truncated download: received {size} of the {total} bytes "
                           f"announced (Content-Length){why}", resume=size > before, retryable=True,
                           trouble=Trouble.NETWORK)
        if total is not None and size > total:
            part.unlink(missing_ok=True)
            state_file.unlink(missing_ok=True)
            return Attempt(problem=f"received {size} bytes, more than the {total} announced "
                           f"(Content-Length); starting again", retryable=True,
                           trouble=Trouble.ALTERED)
        if broken is not None:
            return Attempt(problem=f"connection lost after {size} bytes ({type(broken).__name__})",
                           resume=size > before, retryable=True, trouble=Trouble.NETWORK)
        return Attempt(value=True)

    @staticmethod
    def _refusal(response: requests.Response, url: str) -> Attempt:
        body = response.raw.read(4096, decode_content=True) if response.raw is not None else b""
        refused = Attempt.from_status(response.status_code, body or b"", response.headers)
        if response.status_code != 404:
            return refused
        folder = url.rsplit("/", 1)[0] + "/"
        return Attempt(problem=(
            f"{refused.problem}. No file at this URL: the Census Bureau may not publish this "
            f"layer for this year (yet), or not for this state; see what {folder} lists"))

    @staticmethod
    def _install(target: _Target, dest: Path, part: Path, state_file: Path,
                 members: list[str]) -> dict[str, Any]:
        saved = _Downloader._saved_state(state_file, target.url)
        manifest = {
            "format": MANIFEST_FORMAT,
            "url": target.url,
            "size": part.stat().st_size,
            "sha256": _sha256(part),
            "downloaded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "level": target.pattern.level,
            "year": target.year,
            "kind": target.pattern.kind,
            "state": target.state,
            "resolution": target.resolution,
            "geoid_field": target.pattern.geoid_field,
            "boundary_vintage": target.pattern.vintage(target.year),
            "members": members,
            "etag": saved.get("etag"),
            "last_modified": saved.get("last_modified"),
        }
        # The manifest first: a file in place is always one whose manifest is written.
        _write_json(_manifest_path(dest), manifest)
        os.replace(part, dest)
        state_file.unlink(missing_ok=True)
        return manifest


def _chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives, undecoded, keeping every byte received before a drop.

    urllib3 2's ``read(amt)`` (under ``iter_content``) waits to fill ``amt`` and loses what it
    buffered if the connection breaks first; ``read1`` hands over whatever has arrived, so a
    resumed download starts exactly where the last byte on disk ends.
    """
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # urllib3 1.x
        yield from response.iter_content(chunk_size=_CHUNK)
        return
    while chunk := read1(_CHUNK, decode_content=False):
        yield chunk


def _exception_problem(exc: requests.RequestException) -> str:
    if isinstance(exc, RETRYABLE_EXCEPTIONS):
        return f"connection failed ({type(exc).__name__}: {exc})"
    return f"{type(exc).__name__}: {exc}"


def _run(targets: list[_Target], fetch: Callable[[_Target], tuple[Path, bool]], *,
         max_workers: int, label: str, shown: bool) -> list[Path]:
    """Fetch every target on a bounded pool; raise one error naming every failed URL."""
    results: list[Path | None] = [None] * len(targets)
    errors: list[tuple[_Target, BaseException]] = []
    fetched = 0
    with tqdm(total=len(targets), desc=label, unit="file", disable=not shown,
              leave=False) as bar:
        def done(i: int, outcome: tuple[Path, bool]) -> None:
            nonlocal fetched
            results[i] = outcome[0]
            fetched += outcome[1]
            bar.update()

        if max_workers == 1 or len(targets) == 1:
            for i, target in enumerate(targets):
                try:
                    done(i, fetch(target))
                except (BoundaryDownloadError, OSError) as exc:
                    errors.append((target, exc))
                    bar.update()
        else:
            with concurrent.futures.ThreadPoolExecutor(
                    max_workers=min(max_workers, len(targets)),
                    thread_name_prefix="tiger-download") as pool:
                futures = {pool.submit(fetch, t): i for i, t in enumerate(targets)}
                try:
                    for future in concurrent.futures.as_completed(futures):
                        i = futures[future]
                        try:
                            done(i, future.result())
                        except (BoundaryDownloadError, OSError) as exc:
                            errors.append((targets[i], exc))
                            bar.update()
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    logger.info("%s: %d file(s), %d downloaded, %d from the cache, %d failed", label,
                len(targets), fetched, len(targets) - fetched - len(errors), len(errors))
    if errors:
        if len(errors) == 1:
            error = errors[0][1]
            if isinstance(error, BoundaryDownloadError):
                raise error
            raise BoundaryDownloadError(f"boundary download of {errors[0][0].url} failed: "
                                        f"{error}") from error
        lines = "\n".join(f"  - {exc}" for _, exc in errors[:10])
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise BoundaryDownloadError(f"{len(errors)} of {len(targets)} boundary downloads "
                                    f"failed (the others are cached):\n{lines}{more}")
    return [path for path in results if path is not None]


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
    if session is not None and not isinstance(session, requests.Session):
        raise TypeError(f"session must be a requests.Session, got {type(session).__name__}")
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
    label = f"{_KIND_NAMES[first.pattern.kind]} {first.pattern.level} {first.year}"
    policy = client_policy(retry, download_boundaries, timeout=timeout, max_retries=max_retries,
                           backoff=backoff, max_delay=max_delay, rng=rng, sleep=sleep)
    workers = WorkerSessions(max_workers=max_workers, name="tiger-download",
                             user_agent="sdoh-feature-store boundary downloader")
    shown = progress if progress is not None else sys.stderr.isatty()
    try:
        downloader = _Downloader(root=root, retry=policy,
                                 session=workers.session if session is None else lambda: session)
        return _run(targets, downloader.ensure, max_workers=max_workers, label=label,
                    shown=shown)
    finally:
        workers.close()

