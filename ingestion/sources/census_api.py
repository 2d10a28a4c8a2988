"""The Census Data API client: raw tables (`CensusClient.get_table`) and ACS estimates (`get_acs`).

The client talks to the real API (``https://api.census.gov/data``) or to anything answering in
its formats, such as `ingestion.demo.replay.CensusReplayServer`. It retries transient failures
(HTTP 429 and 5xx, connection errors, timeouts, truncated bodies) with exponential backoff and
jitter, honours ``Retry-After`` up to a cap (a 429 pauses every worker, not just the one that
got it), splits requests of more than 50 variables and joins the parts on the geography columns
(never on ``NAME``, whose format changed in 2024).

**Every answer is checked against its request** before it is used or cached: each requested
column and the level's geography columns present, no other column, one row per geography
(identical repeats are dropped, conflicting ones refused), no geography outside the ``for`` and
``in`` predicates, every code a ``for=`` list names present. The answers for one geography
request (its variable chunks and its datasets) must hold the same geographies: the API answers
a variable it does not publish at a level with null in the geography's row, never by leaving
the row out. An answer that fails is retried like a garbled body (a proxy may have altered
it); a disagreement between answers is fetched again once, bypassing the cache; then the
request fails with a `CensusApiError` naming the URL, the column or GEOID, and what to do.

**Table families.** `get_acs` takes variables without their E/M suffix and sends each to the
dataset that publishes it: detailed tables (``B01001_001``, ``C17002_002``) to ``acs/acs5``,
subject tables (``S1701_C03_001``) to ``acs/acs5/subject`` and data profiles to
``acs/acs5/profile`` (``DP03_0009`` is a count: ``DP03_0009E``/``M``; ``DP03_0009P`` its
percent: ``DP03_0009PE``/``PM``). The datasets are requested separately and joined on GEOID.

**Geographies.** ``state=`` takes one state or a list (FIPS, postal code or name), ``county=``
one county or a list (within a single state). ``state=None`` means every state: one national
request at state and county level; for tracts and block groups, which the API serves only
within a state, one request per state of the 50 states, DC and Puerto Rico (`STATE_FIPS`).
Block groups of a whole state are requested as ``in=state:SS&in=county:*&in=tract:*`` (the
API's geography.json lets county and tract be wildcards for block groups). ZCTAs are national:
the API has not nested them in states since 2019 and rejects ``in=state``, so ``zcta`` needs
``state=None``; ``zcta=`` filters the national table to a list of ZCTAs after the request.

**Cache.** With ``cache_dir=`` (or the ``SDOH_CACHE_DIR`` environment variable) every answered
request is written to disk as it completes, keyed by the service host, year, dataset, variable
chunk and geography predicates (never the API key), so a rerun makes no HTTP call and an
interrupted run resumes with the missing requests only. Errors are never cached, nor answers
that fail the checks above; a cache file that fails them is ignored and fetched again.

**Concurrency.** Requests (chunks x states/counties x datasets) run on a pool of
``max_workers`` threads (default 4), each with its own `requests.Session` (requests does not
document `Session` as thread-safe, psf/requests#2766), and a tqdm bar counts them on a
terminal; otherwise progress is logged. Results never depend on the order requests finish in.
Once one request has failed for good, the pull stops: requests not started are cancelled and
those retrying give up at their next attempt, so an outage gives one error, not one per request.

The API key comes from ``api_key=`` or else the ``CENSUS_API_KEY`` environment variable, and is
never shown: every URL in a log line or error reads ``key=REDACTED``; cache files never hold it.

Census annotation ("jam") values and JSON nulls never become numbers: `get_acs` turns them into
NaN with a typed reason taken from ``sdoh_sources/catalog/missing_reasons.yaml``.

Examples
--------
Detailed, subject and profile variables in one call; ``census`` is a `CensusClient` answered by
a local replay of the synthetic demo region (state 99). Leave ``client`` out to ask the real API:

>>> df = get_acs("tract", ["B19013_001", "S2701_C05_001", "DP03_0129P"], 2021, "99", client=census)
>>> list(df.columns)
['GEOID', 'variable', 'estimate', 'moe', 'estimate_missing', 'moe_missing']
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import itertools
import json
import logging
import math
import os
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlencode, urlsplit

import numpy as np
import pandas as pd
import requests
from tqdm import tqdm

from ingestion.core.errors import CensusApiError
from ingestion.core.geography import STATE_FIPS, normalize_counties, normalize_states, normalize_zctas
from ingestion.core.settings import load_settings, secret
from ingestion.sources.http import (
    CACHE_ENV,
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
    redact_key,
    response_message,
)
from ingestion.sources.workers import WorkerSessions
from sdoh_sources import load_catalog
from sdoh_sources.acs_tables import ACS5, FAMILIES, FAMILY_EXAMPLES, acs_dataset

__all__ = [
    "ACS5",
    "CACHE_ENV",
    "DEFAULT_BASE_URL",
    "GEOGRAPHIES",
    "MAX_VARIABLES",
    "NOT_PUBLISHED_AT_LEVEL",
    "STATE_FIPS",
    "CensusClient",
    "acs_dataset",
    "acs_from_table",
    "get_acs",
    "parse_value",
    "redact_key",
    "resolve_geography",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.census.gov/data"
# The API refuses a `get` of more than 50 variables ("error: 'get' is limited to 50 variables").
MAX_VARIABLES = 50
NOT_PUBLISHED_AT_LEVEL = "not_published_at_level"
MOE_UNKNOWN = "unknown"
OUTPUTS = ("tidy", "wide")
CACHE_FORMAT = "sdoh-census-cache/1"

# Geography level -> the API's geography columns that make up its GEOID, in order.
GEOGRAPHIES: dict[str, tuple[str, ...]] = {
    "state": ("state",),
    "county": ("state", "county"),
    "tract": ("state", "county", "tract"),
    "block group": ("state", "county", "tract", "block group"),
    "zip code tabulation area": ("zip code tabulation area",),
}
_ALIASES = {"block_group": "block group", "zcta": "zip code tabulation area"}
_GEO_WIDTHS = {"state": 2, "county": 3, "tract": 6, "block group": 1,
               "zip code tabulation area": 5}
_LEVEL_SLUGS = {"state": "state", "county": "county", "tract": "tract",
                "block group": "block_group", "zip code tabulation area": "zcta"}
# Values at or below this that the catalog does not know are unknown annotations, not data.
_ANNOTATION_FLOOR = -100_000_000

# ACS table families: the bare variable (no E/M suffix) -> the dataset under the survey path.
_BARE = re.compile(r"[A-Z0-9]+(?:_[A-Z0-9]+)*")

_DATASET = re.compile(r"[A-Za-z0-9_]+(/[A-Za-z0-9_]+)*")
_GET = re.compile(r"([?&]get=)([^&]*)")
# Variables of a `get=` list shown in messages; the rest are counted.
_SHOWN_VARIABLES = 4

# How errors name the API, and what they advise (`Service`).
_SERVICE = Service(
    name="the Census Data API", url_option="--base-url (base_url=)",
    busy=" (a key in CENSUS_API_KEY raises the rate limit)",
    offline="rerun with the --cache-dir (cache_dir=) of an earlier pull or point --base-url "
            "(base_url=) at a local replay server",
    refused="Check the year, dataset, variables, geography and API key of the request against "
            "the API's message.")


class _RedactKeyFilter(logging.Filter):
    """Redact ``key=...`` in urllib3's DEBUG lines, which print each request's URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "key=" in message.lower():
            record.msg, record.args = redact_key(message), None
        return True


def _install_urllib3_redaction() -> None:
    target = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactKeyFilter) for f in target.filters):
        target.addFilter(_RedactKeyFilter())


def resolve_geography(geography: str) -> str:
    """Return the API's name of a geography level, accepting ``block_group`` and ``zcta`` too.

    Parameters
    ----------
    geography : str
        One of ``"state"``, ``"county"``, ``"tract"``, ``"block group"`` (or
        ``"block_group"``), ``"zip code tabulation area"`` (or ``"zcta"``).

    Returns
    -------
    str
        The level as the API spells it in ``for=``.

    Raises
    ------
    ValueError
        If the level is not one of those.

    Examples
    --------
    >>> resolve_geography("block_group")
    'block group'
    """
    if not isinstance(geography, str):
        raise TypeError(f"geography must be a str, got {type(geography).__name__}")
    name = " ".join(geography.strip().lower().split())
    name = _ALIASES.get(name, name)
    if name not in GEOGRAPHIES:
        raise ValueError(f"unknown geography {geography!r}; expected one of "
                         f"{sorted([*GEOGRAPHIES, *_ALIASES])}")
    return name


Predicates = tuple[tuple[str, str], ...]


def _geography_requests(level: str, state: Any, county: Any, zcta: Any,
                        ) -> tuple[list[Predicates], tuple[str, ...] | None]:
    """Plan the ``for``/``in`` predicates of each request for a level and its filters.

    Returns the predicate sets (one request per set and variable chunk) and the ZCTAs to keep
    (None: keep all).
    """
    states = None if state is None else normalize_states(state)
    counties = None if county is None else normalize_counties(county)
    zctas = None if zcta is None else normalize_zctas(zcta)
    if zctas is not None and level != "zip code tabulation area":
        raise ValueError(f"zcta= only narrows geography 'zcta', not {level!r}")
    if counties is not None and level in ("state", "zip code tabulation area"):
        raise ValueError(f"county= cannot narrow geography {level!r}")
    if counties is not None and states is None:
        raise ValueError(f"county={county!r} needs a state")
    if counties is not None and len(states or ()) > 1:
        raise ValueError(f"county={county!r} needs a single state (county codes repeat across "
                         f"states), got {len(states or ())} states")
    if level == "state":
        return [(("for", "state:" + (",".join(states) if states else "*")),)], None
    if level == "zip code tabulation area":
        if states is not None:
            raise ValueError("the API does not nest ZCTAs within states (since 2019): "
                             "pass state=None, and zcta= to keep only some ZCTAs")
        return [(("for", "zip code tabulation area:*"),)], zctas
    if level == "county":
        if states is None:
            return [(("for", "county:*"),)], None
        if counties is not None:
            return [(("for", "county:" + ",".join(counties)), ("in", f"state:{states[0]}"))], None
        return [(("for", "county:*"), ("in", f"state:{st}")) for st in states], None
    if states is None:
        logger.info("state=None: requesting %s state by state for the %d states, DC and Puerto "
                    "Rico", level, len(STATE_FIPS) - 2)
        states = STATE_FIPS
    tail = (("in", "tract:*"),) if level == "block group" else ()
    sets: list[Predicates] = []
    for st in states:
        for co in counties or ("*",):
            if level == "tract" and co == "*":
                sets.append((("for", "tract:*"), ("in", f"state:{st}")))
            else:
                sets.append((("for", f"{level}:*"), ("in", f"state:{st}"), ("in", f"county:{co}"),
                             *tail))
    return sets, zctas


class _BadAnswer(Exception):  # noqa: N818 (internal: becomes a retry, then a CensusApiError)
    """An answer that does not fit its request: a column or geography missing, extra or twice."""


def _shorten_url(url: str) -> str:
    """A URL for messages: a long ``get=`` list cut to its first variables and a count."""
    def cut(match: re.Match[str]) -> str:
        names = match.group(2).split(",")
        if len(names) <= _SHOWN_VARIABLES + 1:
            return match.group(0)
        rest = len(names) - _SHOWN_VARIABLES
        return f"{match.group(1)}{','.join(names[:_SHOWN_VARIABLES])},...(+{rest} more)"
    return _GET.sub(cut, url)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions behind it (causes, contexts, urllib3 reasons and arguments)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [e for e in (current.__cause__, current.__context__,
                             getattr(current, "reason", None), *current.args)
                 if isinstance(e, BaseException)]
    return seen


def _connection_problem(exc: BaseException, url: str) -> str:
    """A short cause, first, for a request that could not connect or lost its connection."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    where = f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    chain = _causes(exc)
    unresolved = next((e for e in chain if isinstance(e, socket.gaierror)), None)
    if unresolved is not None or any(type(e).__name__ == "NameResolutionError" for e in chain):
        detail = f" ({unresolved})" if unresolved is not None else ""
        return f"cannot resolve {host}: no network or DNS failure{detail}"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return f"cannot connect to {where}: connection refused (nothing listens there)"
    if any(isinstance(e, (ConnectionResetError, ConnectionAbortedError)) for e in chain) or any(
            type(e).__name__ in ("RemoteDisconnected", "ProtocolError") for e in chain):
        return f"the connection to {where} was reset or closed before a full answer"
    first = str(exc).splitlines()[0] if str(exc) else ""
    first = first if len(first) <= 200 else first[:197] + "..."
    return f"cannot reach {where}: {type(exc).__name__}: {first}"


def _check_shape(data: Any) -> str | None:
    """Why ``data`` is not an API table (array of arrays, string header first), or None."""
    if not isinstance(data, list) or not data or not isinstance(data[0], list):
        return "the JSON is not an array of arrays with a header row"
    header = data[0]
    if not all(isinstance(name, str) for name in header):
        return "the header row holds non-string names"
    for number, row in enumerate(data[1:], start=1):
        if not isinstance(row, list) or len(row) != len(header):
            return f"row {number} does not have the header's {len(header)} fields"
    return None


def _code(value: Any, column: str) -> str:
    """A geography code of an answer, zero-padded; `_BadAnswer` if it is not one."""
    text = str(value).strip() if isinstance(value, (str, int)) else ""
    if not text.isdigit() or len(text) > _GEO_WIDTHS[column]:
        raise _BadAnswer(f"the answer holds {column}={value!r}, which is not a code of at most "
                         f"{_GEO_WIDTHS[column]} digits")
    return text.zfill(_GEO_WIDTHS[column])


def _answer_geoids(rows: list[list[Any]], geo_columns: tuple[str, ...]) -> list[str]:
    """The GEOID of every row of a checked answer, in its order."""
    position = [rows[0].index(c) for c in geo_columns]
    return ["".join(_code(row[i], c) for i, c in zip(position, geo_columns, strict=True))
            for row in rows[1:]]


def _checked(request: _Request, rows: list[list[Any]]) -> list[list[Any]]:
    """The answer to ``request`` once it passed every check, identical repeated rows dropped.

    Raises `_BadAnswer` naming the column or GEOID when a requested or geography column is
    missing, a column nobody asked for is there, a geography lies outside the predicates or
    repeats with other values, or a code named by a ``for=`` list is absent.
    """
    header = rows[0]
    geo_columns = GEOGRAPHIES[request.level]
    absent = [n for n in request.names if n not in header]
    if absent:
        more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
        raise _BadAnswer(f"the answer lacks the requested column(s) {absent[:5]}{more}")
    absent = [c for c in geo_columns if c not in header]
    if absent:
        raise _BadAnswer(f"the answer lacks the geography column(s) {absent}")
    unasked = [c for c in header if c not in request.names and c not in _GEO_WIDTHS]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if unasked or repeated:
        raise _BadAnswer(f"the answer holds columns nobody asked for: {unasked or repeated}")
    wanted = []  # (column, clause, codes) of each predicate naming codes rather than `*`
    for _, clause in request.predicates:
        column, codes = clause.split(":", 1)
        if codes != "*":
            width = _GEO_WIDTHS[column]
            wanted.append((column, clause, {c.zfill(width) for c in codes.split(",")}))
    position = {c: header.index(c) for c in geo_columns}
    for_column = request.level  # the `for` predicate's level: the last geography column
    kept: dict[str, list[Any]] = {}
    found: set[str] = set()
    for row in rows[1:]:
        codes = {c: _code(row[position[c]], c) for c in geo_columns}
        geoid = "".join(codes.values())
        for column, clause, allowed in wanted:
            if codes[column] not in allowed:
                raise _BadAnswer(f"the answer holds GEOID {geoid}, which was not asked for "
                                 f"({column} {codes[column]} is outside {clause})")
        first = kept.setdefault(geoid, row)
        if first is not row and first != row:
            i = next(i for i, (a, b) in enumerate(zip(first, row, strict=True)) if a != b)
            raise _BadAnswer(f"the answer holds GEOID {geoid} twice with different values "
                             f"({header[i]}: {first[i]!r} and {row[i]!r})")
        found.add(codes[for_column])
    if wanted and wanted[0][0] == for_column:  # `for=` names codes: each must be answered
        _, clause, allowed = wanted[0]
        missing = sorted(allowed - found)
        if missing:
            raise _BadAnswer(f"the answer lacks {for_column} {missing} asked for by for={clause} "
                             f"(if a code does not exist in {request.year}, leave it out)")
    if len(kept) < len(rows) - 1:
        logger.debug("dropped %d identical repeated row(s) of an answer", len(rows) - 1 - len(kept))
    return [header, *kept.values()]


@dataclass(frozen=True)
class _Request:
    """One API request: a dataset, a chunk of at most 50 variables and a geography."""

    year: int
    dataset: str
    names: tuple[str, ...]
    predicates: Predicates

    @property
    def query(self) -> str:
        return urlencode([("get", ",".join(self.names)), *self.predicates], safe=":*,",
                         quote_via=quote_plus)

    @property
    def level(self) -> str:
        return self.predicates[0][1].split(":", 1)[0]


class _ResponseCache:
    """API answers on disk, one JSON file per request, written atomically as each completes.

    Layout: ``{root}/{year}/{dataset}/{level}/{sha256}.json``, where the hash covers the
    service (host and path of the base URL, not its port: a replay server picks a new port each
    run), year, dataset, variables and predicates. A file holds that request description and the
    API's table (public data); never the API key, which is not part of a request here.
    """

    def __init__(self, root: Path, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.root = root
        self.service = f"{parts.hostname or ''}{parts.path.rstrip('/')}"

    def identity(self, request: _Request) -> dict[str, Any]:
        return {"service": self.service, "year": request.year, "dataset": request.dataset,
                "get": list(request.names), "predicates": [list(p) for p in request.predicates]}

    def path(self, request: _Request) -> Path:
        text = json.dumps(self.identity(request), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return (self.root / str(request.year) / Path(*request.dataset.split("/"))
                / _LEVEL_SLUGS.get(request.level, "other") / f"{digest}.json")

    def load(self, request: _Request) -> list[list[Any]] | None:
        path = self.path(request)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable cache file %s (%s); fetching again", path, exc)
            return None
        rows = entry.get("rows") if isinstance(entry, dict) else None
        if (entry.get("format") != CACHE_FORMAT or entry.get("request") != self.identity(request)
                or _check_shape(rows) is not None):
            logger.warning("ignoring cache file %s: it does not hold this request's table; "
                           "fetching again", path)
            return None
        try:
            return _checked(request, rows)
        except _BadAnswer as bad:
            logger.warning("ignoring cache file %s: %s; fetching again", path, bad)
            return None

    def discard(self, request: _Request) -> None:
        """Remove the entry of ``request`` (an answer that disagrees with its siblings)."""
        self.path(request).unlink(missing_ok=True)

    def store(self, request: _Request, rows: list[list[Any]]) -> None:
        path = self.path(request)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"format": CACHE_FORMAT, "request": self.identity(request),
                 "fetched_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                 "rows": rows}
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(entry, out, separators=(",", ":"), ensure_ascii=False)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class CensusClient:
    """A Census Data API client with retries, key redaction, a disk cache and a thread pool.

    Parameters
    ----------
    base_url : str
        The API root, default ``https://api.census.gov/data``; a replay server's
        ``base_url`` in tests and the offline demo. Plain ``http://`` only to a loopback host
        (the key would otherwise cross the network in clear; see
        `ingestion.sources.http.check_service_url`).
    api_key : str, optional
        The API key. An explicit key wins over the ``CENSUS_API_KEY`` environment variable;
        without either, requests go without a key (the API allows a few per day).
    timeout : float
        Seconds to wait for connecting and for each read; every request has it.
    max_retries : int
        Retries after the first attempt for HTTP 429/5xx, connection errors and timeouts.
    backoff : float
        The first retry waits about ``backoff`` seconds, doubling each retry, with jitter.
    max_delay : float
        Cap on any single wait, including one asked for by ``Retry-After``.
    cache_dir : str, os.PathLike or None, optional
        Folder of the on-disk cache of API answers. Left out: the ``SDOH_CACHE_DIR``
        environment variable if set, else no cache. ``None``: no cache, whatever the
        environment says. Entries never expire (ACS releases are fixed once published): delete
        the folder to fetch again. Use one folder per source of data (the real API, a mirror):
        entries are keyed by host and path of ``base_url``, not its port.
    max_workers : int
        Requests in flight at once (default 4), across variable chunks, states or counties
        and datasets; 1 runs them one after another in the calling thread. Each thread has
        its own `requests.Session` (requests does not document `Session` as thread-safe);
        a 429 with ``Retry-After`` pauses all of them.
    progress : bool, optional
        Show a tqdm bar over requests: True always, False never, None (default) only when
        stderr is a terminal. Without a bar, progress is logged at INFO.
    retry : RetryPolicy, optional
        A policy shared with other clients (`ingestion.sources.http.RetryPolicy`): one HTTP
        429 pauses all of them. It then sets timeout, max_retries, backoff and max_delay,
        which must be left out.

    Examples
    --------
    Against the real API, ``CensusClient(api_key="...", cache_dir="~/.cache/sdoh")``; here
    ``census`` is one whose ``base_url`` is a local replay of the synthetic demo region:

    >>> census.get_table(2021, "acs/acs5", ["B01003_001E"], "tract", state="99").shape
    (14, 5)
    """

    def __init__(self, *, base_url: str = DEFAULT_BASE_URL, api_key: str | None = None,
                 timeout: float = 30.0, max_retries: int = 4, backoff: float = 0.5,
                 max_delay: float = 60.0,
                 cache_dir: str | os.PathLike[str] | None | CacheDefault = FROM_ENVIRONMENT,
                 max_workers: int = 4, progress: bool | None = None,
                 retry: RetryPolicy | None = None) -> None:
        self.base_url = check_service_url(base_url)
        check_client_options(timeout=timeout, max_retries=max_retries, backoff=backoff,
                             max_delay=max_delay, max_workers=max_workers, progress=progress)
        self._retry = client_policy(retry, CensusClient, timeout=timeout,
                                    max_retries=max_retries, backoff=backoff, max_delay=max_delay)
        self.timeout, self.max_retries = self._retry.timeout, self._retry.max_retries
        self.backoff, self.max_delay = self._retry.backoff, self._retry.max_delay
        self.max_workers = max_workers
        self.progress = progress
        root = cache_root(cache_dir)
        self.cache_dir = root
        self._cache = None if root is None else _ResponseCache(root, self.base_url)
        self._api_key = api_key if api_key else secret(load_settings().census_api_key)
        self._workers = WorkerSessions(max_workers=self.max_workers, name="census-api",
                                       user_agent="sdoh-feature-store census client")
        _install_urllib3_redaction()

    def __repr__(self) -> str:
        key = "<set>" if self._api_key else None
        return (f"CensusClient(base_url={self.base_url!r}, api_key={key}, "
                f"timeout={self.timeout}, max_retries={self.max_retries}, "
                f"cache_dir={None if self.cache_dir is None else str(self.cache_dir)!r}, "
                f"max_workers={self.max_workers})")

    def __enter__(self) -> CensusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker threads and close the HTTP sessions."""
        self._workers.close()

    def get_table(self, year: int, dataset: str, variables: Sequence[str] | str,
                  geography: str, *, state: str | int | Sequence[str | int] | None = None,
                  county: str | int | Sequence[str | int] | None = None,
                  zcta: str | int | Sequence[str | int] | None = None) -> pd.DataFrame:
        """Fetch a table as the API gives it, one row per geography, plus a ``GEOID`` column.

        Parameters
        ----------
        year : int
            The vintage, e.g. ``2024`` for ACS 2020-2024 (no default on purpose).
        dataset : str
            The dataset path, e.g. ``"acs/acs5"``.
        variables : sequence of str
            API variable names as the API spells them (``"B19013_001E"``, ``"NAME"``). More
            than 50 are split into several requests joined on the geography columns.
        geography : str
            ``"state"``, ``"county"``, ``"tract"``, ``"block group"`` or
            ``"zip code tabulation area"`` (``"block_group"`` and ``"zcta"`` also accepted).
        state : str, int, sequence of them, or None
            One state or a list, each a FIPS code, postal code or name. None (the default) is
            every state: one national request for states and counties, one request per state
            of the 50 states, DC and Puerto Rico for tracts and block groups. Not allowed for
            ZCTAs, which the API does not nest in states.
        county : str, int, sequence of them, or None
            County FIPS code(s) within a single ``state``.
        zcta : str, int, sequence of them, or None
            For ``geography="zcta"`` only: keep these ZCTAs of the national table (the request
            itself is national, so every ZCTA list reuses one cached answer).

        Returns
        -------
        pandas.DataFrame
            Columns ``GEOID`` (zero-padded string), the variables in the order given, then the
            API's geography columns; object dtype with the values exactly as the API gave
            them (strings, numbers or None); states in the order given, then the API's order.

        Raises
        ------
        CensusApiError
            If the API answers with an error, no data (HTTP 204), an unreadable body or an
            answer that does not fit the request (see the module notes), or keeps failing after
            the retries. The message names the cause first (the status and the API's own
            message, the column or GEOID, or the network failure), then the URL (key
            redacted) and what to do.
        ValueError
            For an unknown geography, a bad dataset name or an inconsistent state/county.

        Examples
        --------
        >>> census.get_table(2021, "acs/acs5", ["B01003_001E"], "tract", state="99").columns.tolist()
        ['GEOID', 'B01003_001E', 'state', 'county', 'tract']
        """
        dataset = _check_dataset(dataset)
        names = _variable_list(variables)
        return self._get_tables(year, [(dataset, names)], geography, state=state, county=county,
                                zcta=zcta)[0]

    def _get_tables(self, year: int, parts: list[tuple[str, list[str]]], geography: str, *,
                    state: Any, county: Any, zcta: Any) -> list[pd.DataFrame]:
        """Fetch several datasets' variables for one geography, all requests in one pool."""
        if isinstance(year, bool) or not isinstance(year, int):
            raise TypeError(f"year must be an int such as 2024, got {year!r}")
        level = resolve_geography(geography)
        sets, zctas = _geography_requests(level, state, county, zcta)
        plan = [[[_Request(year, dataset, tuple(names[i:i + MAX_VARIABLES]), predicates)
                  for i in range(0, len(names), MAX_VARIABLES)] for predicates in sets]
                for dataset, names in parts]
        flat = [r for by_set in plan for chunks in by_set for r in chunks]
        survey = "ACS" if all(d.startswith("acs/") for d, _ in parts) else "Census API"
        label = f"{survey} {year} {level}"
        answers = dict(zip(flat, self._run(flat, label), strict=True))
        for index in range(len(sets)):  # one geography request: its chunks and its datasets
            group = [r for by_set in plan for r in by_set[index]]
            if _disagreement(group, answers) is not None:
                logger.warning("%s: the answers for %s disagree on geographies; fetching them "
                               "again", label, _predicate_text(group[0].predicates))
                answers.update(zip(group, self._run(group, label, use_cache=False), strict=True))
                problem = _disagreement(group, answers)
                if problem is not None:
                    for request in group:
                        if self._cache is not None:
                            self._cache.discard(request)
                    raise CensusApiError(f"Census API answers disagree: {problem}. "
                                         f"{_SERVICE.advice(Trouble.ALTERED)}")
        frames = []
        for (_, names), by_set in zip(parts, plan, strict=True):
            pieces = [_join_chunks([answers[r] for r in chunks], names, GEOGRAPHIES[level])
                      for chunks in by_set]
            frame = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]
            if zctas is not None:
                frame = _keep_zctas(frame, zctas)
            frames.append(frame)
        return frames

    def _run(self, plan: list[_Request], label: str, *,
             use_cache: bool = True) -> list[list[list[Any]]]:
        """Answer every request (from the cache where it can), in the order planned.

        The first request to fail for good stops the pull: the others are cancelled or give up
        at their next attempt, and its error is raised.
        """
        answers: list[list[list[Any]] | None] = [None] * len(plan)
        pull = _Pull()
        todo = []
        for i, request in enumerate(plan):
            if use_cache and self._cache is not None:
                answers[i] = self._cache.load(request)
            if answers[i] is None:
                todo.append(i)
        cached = len(plan) - len(todo)
        logger.info("%s: %d request(s), %d from the cache, %d to fetch with %d worker(s)",
                    label, len(plan), cached, len(todo), min(self.max_workers, len(todo) or 1))
        shown = self.progress if self.progress is not None else sys.stderr.isatty()
        started = time.monotonic()
        finished = 0
        with tqdm(total=len(plan), initial=cached, desc=label, unit="req", disable=not shown,
                  leave=False) as bar:
            def done(i: int, rows: list[list[Any]]) -> None:
                nonlocal finished
                answers[i] = rows
                finished += 1
                bar.update()
                if not shown and len(todo) >= 10 and finished % max(1, len(todo) // 10) == 0:
                    logger.info("%s: fetched %d of %d", label, finished, len(todo))

            if self.max_workers == 1 or len(todo) <= 1:
                for i in todo:
                    done(i, self._answer(plan[i], pull))
            else:
                pool = self._workers.executor()
                futures = {pool.submit(self._answer, plan[i], pull): i for i in todo}
                try:
                    for future in concurrent.futures.as_completed(futures):
                        done(futures[future], future.result())
                except BaseException as exc:
                    pull.stop.set()  # requests retrying give up at their next attempt
                    for future in futures:
                        future.cancel()
                    if isinstance(exc, Exception):  # let requests in flight finish and be cached
                        concurrent.futures.wait(futures)
                    raise
        if todo:
            logger.info("%s: fetched %d request(s) in %.1f s", label, len(todo),
                        time.monotonic() - started)
        return answers  # type: ignore[return-value]

    def _answer(self, request: _Request, pull: _Pull) -> list[list[Any]]:
        """Fetch one request and, once its answer passed the checks, cache it."""
        url = f"{self.base_url}/{request.year}/{request.dataset}?{request.query}"
        if self._api_key is None:
            rows = self._fetch(request, url, url, pull)
        else:
            rows = self._fetch(request, f"{url}&key={quote(self._api_key, safe='')}",
                               f"{url}&key=REDACTED", pull)
        if self._cache is not None:
            self._cache.store(request, rows)
        return rows

    def _fetch(self, request: _Request, url: str, shown: str, pull: _Pull) -> list[list[Any]]:
        """GET ``url`` until its answer passes the checks; ``shown`` is the redacted URL."""
        shown = _shorten_url(shown)
        attempts = self.max_retries + 1
        made = itertools.count(1)

        def attempt() -> Attempt:
            logger.debug("GET %s (attempt %d of %d)", shown, next(made), attempts)
            return self._checked_attempt(request, url)

        def on_retry(retry: Retry) -> None:
            level = logging.WARNING if pull.first_time(retry.attempt.problem) else logging.DEBUG
            logger.log(level, "Census API: %s; retrying in %.2f s (attempt %d of %d): GET %s",
                       retry.attempt.problem, retry.delay, retry.failures + 1, attempts, shown)

        outcome, made_attempts = self._retry.call(attempt, on_retry=on_retry, cancel=pull.stop)
        if outcome.ok:
            return outcome.value
        raise CensusApiError(_SERVICE.failure(outcome, attempts=made_attempts,
                                                     method="GET", url=shown))

    def _checked_attempt(self, request: _Request, url: str) -> Attempt:
        """One GET whose table, if any, passed the checks against ``request``."""
        outcome = self._attempt(url)
        if not outcome.ok:
            return outcome
        try:
            return Attempt(value=_checked(request, outcome.value))
        except _BadAnswer as bad:
            return Attempt(problem=f"HTTP 200 but {self._redact(str(bad))}", retryable=True,
                           bad_body=True)

    def _attempt(self, url: str) -> Attempt:
        """One GET; exceptions are turned into redacted problems, never re-raised with the key."""
        try:
            response = self._retry.request(self._workers.session(), "GET", url)
        except requests.RequestException as exc:
            return Attempt.from_exception(exc, timeout=self.timeout,
                                          describe=lambda e: self._exception_problem(e, url))
        return self._read(response)

    def _exception_problem(self, exc: requests.RequestException, url: str) -> str:
        if isinstance(exc, RETRYABLE_EXCEPTIONS):
            return self._redact(_connection_problem(exc, url))
        first = self._redact(str(exc)).splitlines()[0] if str(exc) else ""
        return f"{type(exc).__name__}: {first[:300]}"

    def _read(self, response: requests.Response) -> Attempt:
        status, body = response.status_code, response.content
        if status == 200:
            return self._parse(body, response.headers.get("Content-Type", ""))
        if status == 204:
            return Attempt(problem="HTTP 204 No Content: the API has no data for this query")
        return Attempt.from_status(status, body, response.headers, clean=self._redact)

    def _parse(self, body: bytes, content_type: str) -> Attempt:
        text = body.decode("utf-8", errors="replace")
        if "html" in content_type.lower() or text.lstrip().startswith("<"):
            page = self._redact(response_message(body, "text/html"))
            return Attempt(problem=f"HTTP 200 with an HTML page instead of JSON: {page}")
        try:
            data = json.loads(text)
        except ValueError:
            if not text.strip():
                return Attempt(problem="HTTP 200 with an empty body", retryable=True,
                               bad_body=True)
            tail = self._redact(text[-40:])
            return Attempt(problem=f"HTTP 200 but the body is not valid JSON ({len(body)} bytes, "
                                   f"probably truncated; it ends with {tail!r})",
                           retryable=True, bad_body=True)
        why = _check_shape(data)
        if why is not None:
            return Attempt(problem=f"HTTP 200 but not a Census API table: {why}")
        return Attempt(value=data)

    def _redact(self, text: str) -> str:
        return redact_key(text, self._api_key)


class _Pull:
    """What the requests of one `CensusClient._run` share: a stop signal and the warnings given."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def first_time(self, problem: str) -> bool:
        """Whether ``problem`` is new to this pull (warn once; repeats are logged at DEBUG)."""
        with self._lock:
            new = problem not in self._warned
            self._warned.add(problem)
        return new


def _predicate_text(predicates: Predicates) -> str:
    return "&".join(f"{name}={clause}" for name, clause in predicates)


def _disagreement(group: list[_Request], answers: dict[_Request, list[list[Any]]]) -> str | None:
    """Why the answers for one geography request hold different geographies, or None."""
    geo_columns = GEOGRAPHIES[group[0].level]
    first = set(_answer_geoids(answers[group[0]], geo_columns))
    for request in group[1:]:
        other = set(_answer_geoids(answers[request], geo_columns))
        if other != first:
            only_first, only_other = sorted(first - other), sorted(other - first)
            geoid, holder, lacker = ((only_first[0], group[0], request) if only_first
                                     else (only_other[0], request, group[0]))
            count = len(only_first) + len(only_other)
            return (f"GEOID {geoid} is in the answer of {holder.dataset} "
                    f"{_shorten_url('?get=' + ','.join(holder.names))[1:]} but not in that of "
                    f"{lacker.dataset} {_shorten_url('?get=' + ','.join(lacker.names))[1:]} "
                    f"({count} GEOID(s) differ; {_predicate_text(group[0].predicates)}, "
                    f"{group[0].year})")
    return None


def _variable_list(variables: Sequence[str] | str) -> list[str]:
    """Variable names as a list without duplicates, order kept."""
    names = [variables] if isinstance(variables, str) else list(variables)
    if not names:
        raise ValueError("variables is empty; give at least one variable name")
    bad = [v for v in names if not isinstance(v, str) or not v.strip()]
    if bad:
        raise TypeError(f"variable names must be non-empty strings, got {bad!r}")
    clash = [v for v in names if v.strip() in _GEO_WIDTHS]
    if clash:
        raise ValueError(f"{clash} are geography columns, which the API adds by itself")
    return list(dict.fromkeys(v.strip() for v in names))


def _join_chunks(tables: list[list[list[Any]]], names: list[str],
                 geo_columns: tuple[str, ...]) -> pd.DataFrame:
    """Join the checked tables of a split request on GEOID (never on NAME).

    The tables hold the same geographies (checked by `_disagreement` before).
    """
    records: dict[str, dict[str, Any]] = {}
    extra: list[str] = []  # geography columns the API returned, in its order
    for table in tables:
        header = table[0]
        extra += [c for c in header if c not in names and c not in extra]
        for geoid, row in zip(_answer_geoids(table, geo_columns), table[1:], strict=True):
            records.setdefault(geoid, {}).update(zip(header, row, strict=True))
    columns = [*names, *extra]
    frame = pd.DataFrame([[r.get(c) for c in columns] for r in records.values()],
                         columns=columns, dtype=object)
    frame.insert(0, "GEOID", pd.Series(list(records), dtype=object))
    frame["GEOID"] = frame["GEOID"].astype(object)
    return frame


def _check_dataset(dataset: Any) -> str:
    name = dataset.strip("/") if isinstance(dataset, str) else dataset
    if not isinstance(name, str) or not _DATASET.fullmatch(name):
        raise ValueError(f"dataset must look like 'acs/acs5', got {dataset!r}")
    return name


def _keep_zctas(frame: pd.DataFrame, zctas: tuple[str, ...]) -> pd.DataFrame:
    """Keep the rows of the given ZCTAs; log the ones the API does not have."""
    absent = sorted(set(zctas) - set(frame["GEOID"]))
    if absent:
        logger.warning("%d of the %d ZCTAs asked for are not in the API's table (e.g. %s); "
                       "a ZIP code is not always a ZCTA", len(absent), len(zctas), absent[:5])
    return frame[frame["GEOID"].isin(zctas)].reset_index(drop=True)


def _join_datasets(frames: list[pd.DataFrame], names: list[list[str]]) -> pd.DataFrame:
    """Join the tables of several datasets on GEOID (the same geographies: see `_disagreement`)."""
    if len(frames) == 1:
        return frames[0]
    records: dict[str, dict[str, Any]] = {}
    for frame, columns in zip(frames, names, strict=True):
        for geoid, *values in frame[["GEOID", *columns]].itertuples(index=False, name=None):
            records.setdefault(geoid, {}).update(zip(columns, values, strict=True))
    every = [c for columns in names for c in columns]
    joined = pd.DataFrame([[r.get(c) for c in every] for r in records.values()],
                          columns=every, dtype=object)
    joined.insert(0, "GEOID", pd.Series(list(records), dtype=object))
    return joined


def parse_value(raw: Any, *, kind: str = "estimate") -> tuple[float, str | None]:
    """Parse one API value into a number and its missing reason.

    Parameters
    ----------
    raw : str, int, float or None
        The value as the API gave it: ``"1262"``, ``"41.9"``, ``"-666666666.0"``, a JSON
        number, or None (JSON null).
    kind : {"estimate", "moe"}
        Estimates map annotation values to the catalog's reasons (``insufficient_sample``
        ...) and null to ``not_published_at_level``. MOEs map -555555555 to 0.0 (a controlled
        estimate has no sampling error; not missing) and other annotations or null to NaN with
        reason ``"unknown"``.

    Returns
    -------
    tuple of (float, str or None)
        The number (NaN when missing) and the missing reason (None when present). Top-coded
        values such as 250001 stay numbers.

    Raises
    ------
    ValueError
        If ``raw`` is not a number, or is an annotation value the catalog does not know.
    TypeError
        If ``raw`` has a type the API never sends.

    Examples
    --------
    >>> parse_value("-666666666.0")
    (nan, 'insufficient_sample')
    >>> parse_value("-555555555", kind="moe"), parse_value("250001")
    ((0.0, None), (250001.0, None))
    """
    if kind not in ("estimate", "moe"):
        raise ValueError(f"kind must be 'estimate' or 'moe', got {kind!r}")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return math.nan, NOT_PUBLISHED_AT_LEVEL if kind == "estimate" else MOE_UNKNOWN
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise TypeError(f"an API value must be str, number or null, got {type(raw).__name__}")
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{raw!r} is not a finite number")
    if number < 0 and number.is_integer():
        return _annotation(int(number), raw, kind=kind)
    return number, None


def _annotation(code: int, raw: Any, *, kind: str) -> tuple[float, str | None]:
    catalog = load_catalog()
    table = catalog.estimate_annotations if kind == "estimate" else catalog.moe_annotations
    if code in table:
        if kind == "estimate":
            return math.nan, table[code]
        return (0.0, None) if table[code] == "zero" else (math.nan, MOE_UNKNOWN)
    if code <= _ANNOTATION_FLOOR:
        raise ValueError(f"{raw!r} looks like a Census annotation value that "
                         f"missing_reasons.yaml does not know; add it there")
    return float(code), None


_PLAIN_TYPES = {str, int, float, type(None)}


def _parse_column(frame: pd.DataFrame, column: str, kind: str) -> tuple[list[float], list[Any]]:
    """Parse a column like `parse_value` cell by cell, vectorised for the plain numbers.

    Only nulls, negatives and what pandas cannot read as a finite number go through
    `parse_value` one by one; the results are the same as parsing every cell that way.
    """
    if column not in frame.columns:  # an estimates-only table: the MOE is unknown
        return [math.nan] * len(frame), [MOE_UNKNOWN] * len(frame)
    values = frame[column].to_numpy(dtype=object)
    if {type(v) for v in values} <= _PLAIN_TYPES:
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
            dtype=float, copy=True)
        with np.errstate(invalid="ignore"):
            slow = ~np.isfinite(numbers) | (numbers < 0)
    else:
        numbers, slow = np.full(len(values), math.nan), np.ones(len(values), dtype=bool)
    reasons: list[Any] = [None] * len(values)
    geoids = frame["GEOID"].to_numpy(dtype=object)
    for i in np.flatnonzero(slow):
        try:
            numbers[i], reasons[i] = parse_value(values[i], kind=kind)
        except (TypeError, ValueError) as exc:
            raise CensusApiError(f"{column} for GEOID {geoids[i]}: {exc}") from None
    return numbers.tolist(), reasons


def _bare_variables(variables: Sequence[str] | str) -> list[str]:
    names = _variable_list(variables)
    suffixed = [v for v in names if not _BARE.fullmatch(v) or v[-1] in "EM"]
    if suffixed:
        raise ValueError(f"give ACS variables without the E/M suffix (e.g. 'B19013_001', "
                         f"'S1701_C03_001', 'DP03_0009P'), got {suffixed}")
    return names


def _route(names: list[str], dataset: str | None) -> list[tuple[str, list[str]]]:
    """Group variables by the dataset publishing them, datasets in order of first use."""
    if dataset is not None:
        return [(_check_dataset(dataset), names)]
    unknown = [v for v in names if not any(p.fullmatch(v) for _, _, p in FAMILIES)]
    if unknown:
        raise ValueError(f"cannot tell the table family of {unknown}; expected {FAMILY_EXAMPLES}"
                         f" (or pass dataset= to send every variable to one dataset)")
    groups: dict[str, list[str]] = {}
    for v in names:
        groups.setdefault(acs_dataset(v), []).append(v)
    return list(groups.items())


def acs_from_table(table: pd.DataFrame, variables: Sequence[str] | str, *,
                   output: str = "tidy") -> pd.DataFrame:
    """Turn a raw table of ``{v}E``/``{v}M`` columns into parsed estimates with MOEs.

    Parameters
    ----------
    table : pandas.DataFrame
        A `CensusClient.get_table` result: a ``GEOID`` column and the API's raw values.
    variables : sequence of str
        Variables without the E/M suffix, e.g. ``["B19013_001"]``. ``{v}E`` must be a column;
        where ``{v}M`` is not (a file of estimates only), moe is NaN with reason ``"unknown"``.
    output : {"tidy", "wide"}
        ``"tidy"``: one row per GEOID and variable, columns GEOID, variable, estimate, moe,
        estimate_missing, moe_missing, sorted by GEOID then variable. ``"wide"``: one row per
        GEOID with ``{v}E``, ``{v}M``, ``{v}E_missing``, ``{v}M_missing``, sorted by GEOID.

    Returns
    -------
    pandas.DataFrame
        Estimates and MOEs as float64 (NaN when missing); the missing columns hold a reason
        from the catalog or None.

    Raises
    ------
    ValueError
        For an unknown ``output``, a suffixed variable or an absent estimate column.
    CensusApiError
        If a value is neither a number, a known annotation nor null.

    Examples
    --------
    >>> raw = pd.DataFrame({"GEOID": ["11001000101"], "B19013_001E": ["250001"],
    ...                     "B19013_001M": ["-555555555"]})
    >>> row = acs_from_table(raw, ["B19013_001"]).iloc[0]
    >>> float(row["estimate"]), float(row["moe"]), row["moe_missing"]
    (250001.0, 0.0, None)
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; expected one of {list(OUTPUTS)}")
    names = _bare_variables(variables)
    absent = [f"{v}E" for v in names if f"{v}E" not in table.columns]
    if absent or "GEOID" not in table.columns:
        raise ValueError(f"the table lacks columns {absent or ['GEOID']}")
    geoids = table["GEOID"].astype(str).tolist()
    parsed = {v: (_parse_column(table, f"{v}E", "estimate"), _parse_column(table, f"{v}M", "moe"))
              for v in names}
    if output == "wide":
        wide: dict[str, Any] = {"GEOID": geoids}
        for v, ((est, est_why), (moe, moe_why)) in parsed.items():
            wide.update({f"{v}E": est, f"{v}M": moe, f"{v}E_missing": est_why,
                         f"{v}M_missing": moe_why})
        frame = pd.DataFrame(wide).astype({f"{v}{s}": object for v in names
                                           for s in ("E_missing", "M_missing")})
        return frame.sort_values("GEOID", kind="stable").reset_index(drop=True)
    # One block per variable, stacked, then ordered by (GEOID, variable) with a stable sort;
    # built from arrays because concatenating object columns of None is slow in pandas.
    n, k = len(geoids), len(names)

    def stacked(position: int, which: int) -> np.ndarray:
        out = np.empty(n * k, dtype=float if which == 0 else object)
        for i, v in enumerate(names):
            out[i * n:(i + 1) * n] = parsed[v][position][which]
        return out

    _, geo_rank = np.unique(np.asarray(geoids, dtype=str), return_inverse=True)
    _, name_rank = np.unique(np.asarray(names, dtype=str), return_inverse=True)
    order = np.lexsort((np.repeat(name_rank, n), np.tile(geo_rank, k)))
    columns = {"GEOID": np.tile(np.asarray(geoids, dtype=object), k),
               "variable": np.repeat(np.asarray(names, dtype=object), n),
               "estimate": stacked(0, 0), "moe": stacked(1, 0),
               "estimate_missing": stacked(0, 1), "moe_missing": stacked(1, 1)}
    return pd.DataFrame({name: values[order] for name, values in columns.items()})


def get_acs(geography: str, variables: Sequence[str] | str, year: int,
            state: str | int | Sequence[str | int] | None, *,
            county: str | int | Sequence[str | int] | None = None,
            zcta: str | int | Sequence[str | int] | None = None,
            dataset: str | None = None, output: str = "tidy",
            client: CensusClient | None = None) -> pd.DataFrame:
    """Fetch ACS estimates with their margins of error, annotations turned into typed reasons.

    Parameters
    ----------
    geography : str
        ``"state"``, ``"county"``, ``"tract"``, ``"block group"`` or
        ``"zip code tabulation area"`` (``"block_group"`` and ``"zcta"`` also accepted).
    variables : sequence of str
        Variables without the E/M suffix; both ``{v}E`` and ``{v}M`` are requested. Table
        families may be mixed: detailed (``"B19013_001"``, ``"C17002_002"``), subject
        (``"S1701_C03_001"``) and data profile (``"DP03_0009"`` count, ``"DP03_0009P"``
        percent) variables each go to their dataset (see `acs_dataset`), requested in chunks of
        at most 50 API variables and joined on GEOID.
    year : int
        The ACS vintage (end year); there is no default on purpose.
    state : str, int, sequence of them, or None
        One state or a list (FIPS code, postal code or name). None is every state: one
        national request at state and county level; one request per state of the 50 states,
        DC and Puerto Rico for tracts and block groups. Must be None for ZCTAs, which the API
        does not nest in states (since 2019).
    county : str, int, sequence of them, or None
        County FIPS code(s) within a single ``state``.
    zcta : str, int, sequence of them, or None
        For ``geography="zcta"``: keep only these ZCTAs of the national table.
    dataset : str, optional
        Send every variable to this dataset (e.g. ``"acs/acs1"``) instead of routing each by
        its table family to the ACS 5-year datasets.
    output : {"tidy", "wide"}
        The shape of the result; see `acs_from_table`.
    client : CensusClient, optional
        The client to use (e.g. pointed at a replay server, with a cache folder or more
        workers); a default one is made and closed otherwise.

    Returns
    -------
    pandas.DataFrame
        Tidy: GEOID, variable (the bare name, e.g. ``"DP03_0009P"``), estimate, moe,
        estimate_missing, moe_missing. Wide: GEOID and ``{v}E``, ``{v}M``, ``{v}E_missing``,
        ``{v}M_missing`` per variable. A value the API gives as null (not published at the
        level) is NaN with reason ``not_published_at_level``.

    Raises
    ------
    ValueError
        For an unknown geography or output, variables given with their E/M suffix or of no
        known table family, or inconsistent geography filters.
    CensusApiError
        If an API request fails, an answer lacks a requested E or M column, repeats a
        geography with other values or holds one not asked for, or the datasets' answers hold
        different geographies; see `CensusClient.get_table`.

    Examples
    --------
    >>> get_acs("tract", ["B19013_001"], 2021, "99", client=census).iloc[0]
    GEOID               99001000100
    variable             B19013_001
    estimate               116684.0
    moe                      9323.0
    estimate_missing           None
    moe_missing                None
    Name: 0, dtype: object
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; expected one of {list(OUTPUTS)}")
    resolve_geography(geography)
    names = _bare_variables(variables)
    parts = _route(names, dataset)
    requested = [(ds, [f"{v}{suffix}" for v in group for suffix in ("E", "M")])
                 for ds, group in parts]
    own = client is None
    client = client if client is not None else CensusClient()
    try:
        frames = client._get_tables(year, requested, geography, state=state, county=county,
                                    zcta=zcta)
    finally:
        if own:
            client.close()
    table = _join_datasets(frames, [columns for _, columns in requested])
    return acs_from_table(table, names, output=output)
