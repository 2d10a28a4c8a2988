"""The Census Data API client: raw tables (`CensusClient.get_table`) and ACS estimates (`get_acs`).

The client talks to the real API (``https://api.census.gov/data``) or to anything answering in
its formats, such as `ingestion.replay.CensusReplayServer`. It retries transient failures
(HTTP 429 and 5xx, connection errors, timeouts, truncated bodies) with exponential backoff and
jitter, honours ``Retry-After`` up to a cap, splits requests of more than 50 variables and joins
the parts on the geography columns (never on ``NAME``, whose format changed in 2024).

The API key comes from ``api_key=`` or else the ``CENSUS_API_KEY`` environment variable, and is
never shown: every URL in a log line or error reads ``key=REDACTED``.

Census annotation ("jam") values and JSON nulls never become numbers: `get_acs` turns them into
NaN with a typed reason taken from ``sdoh_sources/catalog/missing_reasons.yaml``.

Examples
--------
>>> df = get_acs("tract", ["B19013_001"], 2024, "DC")  # doctest: +SKIP
>>> list(df.columns)  # doctest: +SKIP
['GEOID', 'variable', 'estimate', 'moe', 'estimate_missing', 'moe_missing']
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import pandas as pd
import requests

from ingestion.errors import CensusApiError
from ingestion.geography import normalize_county, normalize_state
from sdoh_sources import load_catalog

__all__ = [
    "DEFAULT_BASE_URL",
    "GEOGRAPHIES",
    "MAX_VARIABLES",
    "NOT_PUBLISHED_AT_LEVEL",
    "CensusClient",
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
# Truncated or garbled 200 bodies are transient; retry them this many times at most.
MAX_BODY_RETRIES = 2
NOT_PUBLISHED_AT_LEVEL = "not_published_at_level"
MOE_UNKNOWN = "unknown"
OUTPUTS = ("tidy", "wide")

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
# Values at or below this that the catalog does not know are unknown annotations, not data.
_ANNOTATION_FLOOR = -100_000_000

_KEY_PARAM = re.compile(r"(?i)(\bkey=)[^&\s'\"#<>]*")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_KEY_WORD = re.compile(r"(?i)\b(invalid|missing) key\b")
_DATASET = re.compile(r"[A-Za-z0-9_]+(/[A-Za-z0-9_]+)*")


def redact_key(text: str, key: str | None = None) -> str:
    """Hide an API key in a URL or message: ``key=...`` becomes ``key=REDACTED``.

    Parameters
    ----------
    text : str
        A URL, log line or error message.
    key : str, optional
        The key itself; where given (and at least 8 characters long) any bare occurrence is
        replaced too.

    Returns
    -------
    str
        ``text`` with the key hidden.

    Examples
    --------
    >>> redact_key("https://api.census.gov/data/2024/acs/acs5?get=NAME&key=abc123")
    'https://api.census.gov/data/2024/acs/acs5?get=NAME&key=REDACTED'
    """
    text = _KEY_PARAM.sub(r"\1REDACTED", text)
    if key and len(key) >= 8:
        text = text.replace(key, "REDACTED").replace(quote(key, safe=""), "REDACTED")
    return text


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


def _predicates(level: str, state: str | int | None,
                county: str | int | None) -> list[tuple[str, str]]:
    """Build the ``for``/``in`` query parameters selecting ``level`` in state and county."""
    st = None if state is None else normalize_state(state)
    co = None if county is None else normalize_county(county)
    if co is not None and st is None:
        raise ValueError(f"county={county!r} needs a state")
    if level in ("state", "zip code tabulation area") and co is not None:
        raise ValueError(f"county= cannot narrow geography {level!r}")
    if level == "state":
        return [("for", f"state:{st or '*'}")]
    if level == "zip code tabulation area":
        if st is not None:
            raise ValueError("the API does not nest ZCTAs within states (since 2019): "
                             "pass state=None and filter the ZCTAs afterwards")
        return [("for", "zip code tabulation area:*")]
    if level == "county":
        return [("for", f"county:{co or '*'}")] + ([("in", f"state:{st}")] if st else [])
    if st is None:
        raise ValueError(f"geography {level!r} needs a state")
    if level == "tract":
        return [("for", "tract:*"), ("in", f"state:{st}" + (f" county:{co}" if co else ""))]
    return [("for", "block group:*"), ("in", f"state:{st} county:{co or '*'}")]


def _html_text(body: str) -> str:
    """Extract the page's <title> (or <h1>, or else its text), unescaped, on one line."""
    match = _TITLE.search(body) or _H1.search(body)
    text = match.group(1) if match else _TAG.sub(" ", body)
    text = html.unescape(" ".join(_TAG.sub(" ", text).split()))
    if _KEY_WORD.search(body):
        text += " (the API key is missing or invalid: pass api_key= or set CENSUS_API_KEY)"
    return text


def _message(body: bytes, content_type: str) -> str:
    """Shorten an error body (plain text or an HTML page) to a single-line message."""
    text = body.decode("utf-8", errors="replace").strip()
    if "html" in content_type.lower() or text.startswith("<"):
        text = _html_text(text)
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= 300 else text[:297] + "..."


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


@dataclass(frozen=True)
class _Outcome:
    """What one attempt gave: rows, or a problem and whether it is worth retrying."""

    rows: list[list[Any]] | None = None
    problem: str = ""
    retryable: bool = False
    retry_after: float | None = None
    bad_body: bool = False


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


class CensusClient:
    """A Census Data API client with one HTTP session, retries and key redaction.

    Parameters
    ----------
    base_url : str
        The API root, default ``https://api.census.gov/data``; a replay server's
        ``base_url`` in tests and the offline demo.
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

    Examples
    --------
    >>> with CensusClient(api_key="...") as client:  # doctest: +SKIP
    ...     table = client.get_table(2024, "acs/acs5", ["B01003_001E"], "tract", state="DC")
    """

    def __init__(self, *, base_url: str = DEFAULT_BASE_URL, api_key: str | None = None,
                 timeout: float = 30.0, max_retries: int = 4, backoff: float = 0.5,
                 max_delay: float = 60.0) -> None:
        if not isinstance(base_url, str) or not re.match(r"https?://", base_url):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if backoff < 0 or max_delay < 0:
            raise ValueError(f"backoff and max_delay must be >= 0, got {backoff!r}, {max_delay!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.max_delay = float(max_delay)
        self._api_key = api_key if api_key else (os.environ.get("CENSUS_API_KEY") or None)
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "sdoh-feature-store census client"
        _install_urllib3_redaction()

    def __repr__(self) -> str:
        key = "<set>" if self._api_key else None
        return (f"CensusClient(base_url={self.base_url!r}, api_key={key}, "
                f"timeout={self.timeout}, max_retries={self.max_retries})")

    def __enter__(self) -> CensusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def get_table(self, year: int, dataset: str, variables: Sequence[str] | str,
                  geography: str, *, state: str | int | None = None,
                  county: str | int | None = None) -> pd.DataFrame:
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
        state : str or int, optional
            FIPS code, postal code or name; required for tracts and block groups, not allowed
            for ZCTAs.
        county : str or int, optional
            County FIPS code within ``state``.

        Returns
        -------
        pandas.DataFrame
            Columns ``GEOID`` (zero-padded string), the variables in the order given, then the
            API's geography columns; object dtype with the values exactly as the API gave
            them (strings, numbers or None), in the API's row order.

        Raises
        ------
        CensusApiError
            If the API answers with an error, no data (HTTP 204) or an unreadable body, or
            keeps failing after the retries. The message names the URL (key redacted), the
            status and the API's own message.
        ValueError
            For an unknown geography, a bad dataset name or an inconsistent state/county.

        Examples
        --------
        >>> client = CensusClient(base_url=server.base_url)  # doctest: +SKIP
        >>> client.get_table(2024, "acs/acs5", ["B01003_001E"], "tract", state="11").shape
        ... # doctest: +SKIP
        (206, 5)
        """
        if isinstance(year, bool) or not isinstance(year, int):
            raise TypeError(f"year must be an int such as 2024, got {year!r}")
        dataset = dataset.strip("/") if isinstance(dataset, str) else dataset
        if not isinstance(dataset, str) or not _DATASET.fullmatch(dataset):
            raise ValueError(f"dataset must look like 'acs/acs5', got {dataset!r}")
        names = _variable_list(variables)
        level = resolve_geography(geography)
        predicates = _predicates(level, state, county)
        chunks = [names[i:i + MAX_VARIABLES] for i in range(0, len(names), MAX_VARIABLES)]
        tables = [self._request(year, dataset, chunk, predicates) for chunk in chunks]
        return _join_chunks(tables, names, GEOGRAPHIES[level])

    def _request(self, year: int, dataset: str, names: list[str],
                 predicates: list[tuple[str, str]]) -> list[list[Any]]:
        query = urlencode([("get", ",".join(names)), *predicates], safe=":*,",
                          quote_via=quote_plus)
        url = f"{self.base_url}/{year}/{dataset}?{query}"
        if self._api_key is None:
            return self._fetch(url, url)
        return self._fetch(f"{url}&key={quote(self._api_key, safe='')}", f"{url}&key=REDACTED")

    def _fetch(self, url: str, shown: str) -> list[list[Any]]:
        """GET ``url`` with retries; ``shown`` is the redacted URL used in logs and errors."""
        attempts = self.max_retries + 1
        bad_bodies = 0
        for attempt in range(1, attempts + 1):
            logger.debug("GET %s (attempt %d of %d)", shown, attempt, attempts)
            outcome = self._attempt(url)
            if outcome.rows is not None:
                return outcome.rows
            if not outcome.retryable:
                raise CensusApiError(f"Census API request failed: GET {shown} -> "
                                     f"{outcome.problem}")
            bad_bodies += outcome.bad_body
            if attempt == attempts or bad_bodies > MAX_BODY_RETRIES:
                break
            delay = self._delay(attempt, outcome.retry_after)
            logger.warning("Census API %s; retrying GET %s in %.2f s (attempt %d of %d)",
                           outcome.problem, shown, delay, attempt + 1, attempts)
            time.sleep(delay)
        raise CensusApiError(f"Census API request failed after {attempt} attempt(s): "
                             f"GET {shown} -> {outcome.problem}")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        return min(self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5), self.max_delay)

    def _attempt(self, url: str) -> _Outcome:
        """One GET; exceptions are turned into redacted problems, never re-raised with the key."""
        try:
            response = self._session.get(url, timeout=self.timeout)
        except requests.Timeout as exc:
            return _Outcome(problem=f"timed out after {self.timeout:g} s ({type(exc).__name__})",
                            retryable=True)
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            return _Outcome(problem=f"{type(exc).__name__}: {self._redact(str(exc))}",
                            retryable=True)
        except requests.RequestException as exc:
            return _Outcome(problem=f"{type(exc).__name__}: {self._redact(str(exc))}")
        return self._read(response)

    def _read(self, response: requests.Response) -> _Outcome:
        status, body = response.status_code, response.content
        content_type = response.headers.get("Content-Type", "")
        if status == 200:
            return self._parse(body, content_type)
        if status == 204:
            return _Outcome(problem="HTTP 204 No Content: the API has no data for this query")
        problem = f"HTTP {status}: {self._redact(_message(body, content_type))}"
        if status == 429 or status >= 500:
            wait = _retry_after(response.headers.get("Retry-After"))
            return _Outcome(problem=problem, retryable=True, retry_after=wait)
        return _Outcome(problem=problem)

    def _parse(self, body: bytes, content_type: str) -> _Outcome:
        text = body.decode("utf-8", errors="replace")
        if "html" in content_type.lower() or text.lstrip().startswith("<"):
            page = self._redact(_message(body, "text/html"))
            return _Outcome(problem=f"HTTP 200 with an HTML page instead of JSON: {page}")
        try:
            data = json.loads(text)
        except ValueError:
            tail = self._redact(text[-40:])
            return _Outcome(problem=f"HTTP 200 but the body is not valid JSON ({len(body)} bytes, "
                                    f"probably truncated; it ends with {tail!r})",
                            retryable=True, bad_body=True)
        why = _check_shape(data)
        if why is not None:
            return _Outcome(problem=f"HTTP 200 but not a Census API table: {why}")
        return _Outcome(rows=data)

    def _redact(self, text: str) -> str:
        return redact_key(text, self._api_key)


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


def _geoid(record: dict[str, Any], geo_columns: tuple[str, ...]) -> str:
    parts = []
    for column in geo_columns:
        value = str(record[column]).strip()
        if not value.isdigit() or len(value) > _GEO_WIDTHS[column]:
            raise CensusApiError(f"the API returned {column}={record[column]!r}, which is not "
                                 f"a code of at most {_GEO_WIDTHS[column]} digits")
        parts.append(value.zfill(_GEO_WIDTHS[column]))
    return "".join(parts)


def _join_chunks(tables: list[list[list[Any]]], names: list[str],
                 geo_columns: tuple[str, ...]) -> pd.DataFrame:
    """Join the tables of a split request on the geography columns (never on NAME)."""
    records: dict[tuple[Any, ...], dict[str, Any]] = {}
    extra: list[str] = []  # geography columns the API returned, in its order
    for table in tables:
        header = table[0]
        missing = [c for c in geo_columns if c not in header]
        if missing:
            raise CensusApiError(f"the API response lacks the geography columns {missing}; "
                                 f"its header is {header}")
        extra += [c for c in header if c not in names and c not in extra]
        positions = {name: i for i, name in enumerate(header)}
        for row in table[1:]:
            key = tuple(row[positions[c]] for c in geo_columns)
            record = records.setdefault(key, {})
            record.update(zip(header, row, strict=True))
    if len(tables) > 1 and any(len(t) - 1 != len(records) for t in tables):
        logger.warning("the %d parts of a split request returned different geographies; "
                       "values absent from a part are None", len(tables))
    columns = [*names, *extra]
    frame = pd.DataFrame([[r.get(c) for c in columns] for r in records.values()],
                         columns=columns, dtype=object)
    frame.insert(0, "GEOID", [_geoid(r, geo_columns) for r in records.values()])
    frame["GEOID"] = frame["GEOID"].astype(object)
    return frame


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


def _parse_column(frame: pd.DataFrame, column: str, kind: str) -> tuple[list[float], list[Any]]:
    numbers: list[float] = []
    reasons: list[Any] = []
    if column not in frame.columns:  # an estimates-only table: the MOE is unknown
        return [math.nan] * len(frame), [MOE_UNKNOWN] * len(frame)
    for geoid, raw in zip(frame["GEOID"], frame[column], strict=True):
        try:
            number, reason = parse_value(raw, kind=kind)
        except (TypeError, ValueError) as exc:
            raise CensusApiError(f"{column} for GEOID {geoid}: {exc}") from None
        numbers.append(number)
        reasons.append(reason)
    return numbers, reasons


def _bare_variables(variables: Sequence[str] | str) -> list[str]:
    names = _variable_list(variables)
    suffixed = [v for v in names if not v[-1].isdigit()]
    if suffixed:
        raise ValueError(f"give ACS variables without the E/M suffix (e.g. 'B19013_001'), "
                         f"got {suffixed}")
    return names


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
    parts = [pd.DataFrame({"GEOID": geoids, "variable": v, "estimate": est, "moe": moe,
                           "estimate_missing": pd.Series(est_why, dtype=object),
                           "moe_missing": pd.Series(moe_why, dtype=object)})
             for v, ((est, est_why), (moe, moe_why)) in parsed.items()]
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values(["GEOID", "variable"], kind="stable").reset_index(drop=True)


def get_acs(geography: str, variables: Sequence[str] | str, year: int,
            state: str | int | None, *, county: str | int | None = None,
            dataset: str = "acs/acs5", output: str = "tidy",
            client: CensusClient | None = None) -> pd.DataFrame:
    """Fetch ACS estimates with their margins of error, annotations turned into typed reasons.

    Parameters
    ----------
    geography : str
        ``"state"``, ``"county"``, ``"tract"``, ``"block group"`` or
        ``"zip code tabulation area"`` (``"block_group"`` and ``"zcta"`` also accepted).
    variables : sequence of str
        Variables without the E/M suffix, e.g. ``["B19013_001"]``; both ``{v}E`` and ``{v}M``
        are requested.
    year : int
        The ACS vintage (end year); there is no default on purpose.
    state : str, int or None
        FIPS code, postal code or name. None for all states (state or county level) and for
        ZCTAs, which the API does not nest in states.
    county : str or int, optional
        County FIPS code within ``state``.
    dataset : str
        The dataset path, default ``"acs/acs5"``.
    output : {"tidy", "wide"}
        The shape of the result; see `acs_from_table`.
    client : CensusClient, optional
        The client to use (e.g. pointed at a replay server); a default one is made and closed
        otherwise.

    Returns
    -------
    pandas.DataFrame
        Tidy: GEOID, variable, estimate, moe, estimate_missing, moe_missing. Wide: GEOID and
        ``{v}E``, ``{v}M``, ``{v}E_missing``, ``{v}M_missing`` per variable.

    Raises
    ------
    ValueError
        For an unknown geography or output, or variables given with their E/M suffix.
    CensusApiError
        If the API request fails; see `CensusClient.get_table`.

    Examples
    --------
    >>> get_acs("tract", ["B19013_001"], 2024, "DC",
    ...         client=CensusClient(base_url=server.base_url))  # doctest: +SKIP
    """
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; expected one of {list(OUTPUTS)}")
    level = resolve_geography(geography)
    names = _bare_variables(variables)
    requested = [f"{v}{suffix}" for v in names for suffix in ("E", "M")]
    own = client is None
    client = client if client is not None else CensusClient()
    try:
        table = client.get_table(year, dataset, requested, level, state=state, county=county)
    finally:
        if own:
            client.close()
    return acs_from_table(table, names, output=output)
