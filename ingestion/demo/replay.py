"""A local HTTP server that answers like the Census Data API, from a folder of API responses.

The offline demo and the tests point the real `ingestion.sources.census_api.CensusClient` at it, so
the client's query building, retries and parsing run exactly as against the real service.

The folder holds one full API response per dataset and level::

    {root}/{year}/{dataset}/{level}.json     e.g. root/2024/acs/acs5/tract.json
                                                  root/2024/acs/acs5/subject/county.json
                                                  root/2024/acs/acs5/profile/tract.json

with ``level`` one of ``state``, ``county``, ``tract``, ``block_group``, ``zcta``, and
``dataset`` any path (``acs/acs5``, ``acs/acs5/subject``, ``acs/acs5/profile``). Each file is
a JSON array of arrays, header first, with the geography columns (``state``, ``county``,
``tract``, ``block group``, ``zip code tabulation area``) as the API returns them.

A request ``GET /data/{year}/{dataset}?get=V1,V2&for=tract:*&in=state:11`` is answered with the
requested columns in the requested order, then the file's geography columns, filtered by the
``for`` and ``in`` clauses (``in`` may repeat or hold several space-separated clauses; codes may
be comma lists). The ``in`` clauses follow the API's geography.json for ``acs/acs5``: a county
may be in a state (``state`` may be ``*``); a tract needs a state and may name a county (or
``*``); a block group needs a state and a county and may name a tract (county and tract may be
``*``); states and ZCTAs take no ``in`` (ZCTAs have not nested in states since 2019).

Errors follow the API: an unknown variable (including one of another dataset, such as a subject
table variable asked of ``acs/acs5``) is HTTP 400 ``error: unknown variable 'X'``, more than 50
variables HTTP 400 ``error: 'get' is limited to 50 variables``, a level without a file or an
``in`` outside the hierarchy HTTP 400 ``error: unknown/unsupported geography heirarchy`` (sic),
a dataset without files HTTP 404, no matching rows HTTP 204.

Faults (`CensusReplayServer.inject`) make the next answers misbehave the way a failing service
or a proxy in between would: another status (429 with ``Retry-After``, 500, 503), an HTML page or
any body with status 200, a stall past the client's timeout, a body cut short, an empty body, a
connection reset, or a table altered in one way (``alter=``): a column dropped, a geography
repeated with another value, a geography added that nobody asked for or one left out.

Examples
--------
The synthetic demo region's responses (``demo``), the next request rate limited once:

>>> from ingestion.sources.census_api import CensusClient
>>> with CensusReplayServer(demo / "census_api") as server, \\
...         CensusClient(base_url=server.base_url, cache_dir=None) as client:
...     server.inject(429, headers={"Retry-After": "0"})
...     table = client.get_table(2021, "acs/acs5", ["B01003_001E"], "county", state="99")
>>> table["GEOID"].tolist()
['99001']
"""

from __future__ import annotations

import collections
import http
import json
import logging
import os
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["ALTERATIONS", "LEVEL_FILES", "CensusReplayServer"]

logger = logging.getLogger(__name__)

# The `for` level -> its file name in a dataset folder.
LEVEL_FILES = {
    "state": "state.json",
    "county": "county.json",
    "tract": "tract.json",
    "block group": "block_group.json",
    "zip code tabulation area": "zcta.json",
}
GEOGRAPHY_COLUMNS = tuple(LEVEL_FILES)
MAX_VARIABLES = 50
HIERARCHY_ERROR = "error: unknown/unsupported geography heirarchy"  # the API's own spelling
# Per level, as geography.json of acs/acs5 has it: the `in` levels required, those also
# accepted, and those that may be the wildcard `*`.
_REQUIRES = {"state": (), "county": (), "tract": ("state",), "block group": ("state", "county"),
             "zip code tabulation area": ()}
_OPTIONAL = {"state": (), "county": ("state",), "tract": ("county",), "block group": ("tract",),
             "zip code tabulation area": ()}
_WILDCARD = {"county": ("state",), "tract": ("county",), "block group": ("county", "tract")}

_CLAUSE = re.compile(r"([a-z][a-z ]*?):(\S+)")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_KEY = re.compile(r"(?i)(\bkey=)[^&\s\"]*")

# What the API shows (after a redirect, with status 200) for a missing or wrong key.
_KEY_PAGE = ("<!DOCTYPE html><html><head><title>{title}</title></head><body>"
             "<div class=\"content\"><h1>{title}</h1><p>{text} Check your key and try again."
             "</p></div></body></html>")
_KEY_PAGES = {
    "/data/invalid_key.html": _KEY_PAGE.format(
        title="Invalid Key", text="Each data API request needs a valid key; this one is not."),
    "/data/missing_key.html": _KEY_PAGE.format(
        title="Missing Key", text="Each data API request needs a key; none was given."),
}

Answer = tuple[int, bytes, str, dict[str, str]]

# What `inject(alter=...)` can do to an answer: table changes, then transport faults.
ALTERATIONS = ("drop_column", "conflicting_duplicate", "extra_geography", "drop_geography",
               "empty_body", "reset")


@dataclass
class _Fault:
    """A queued misbehaviour for the next ``times`` requests."""

    status: int | None
    times: int
    body: str | None
    delay: float
    truncate: bool
    headers: dict[str, str]
    alter: str | None = None
    column: str | None = None


def _altered(payload: bytes, alter: str, column: str | None) -> bytes:
    """A JSON table answer changed in one way (see `ALTERATIONS`); other answers unchanged."""
    if alter == "empty_body":
        return b""
    try:
        table = json.loads(payload)
    except ValueError:
        return payload
    header, rows = table[0], table[1:]
    if not rows:
        return payload
    if alter == "drop_column":
        name = column if column is not None else header[0]
        if name not in header:
            return payload
        at = header.index(name)
        table = [[v for i, v in enumerate(row) if i != at] for row in table]
    elif alter == "conflicting_duplicate":
        at = header.index(column) if column in header else 0
        twin = list(rows[0])
        twin[at] = "1" if twin[at] != "1" else "2"
        table = [header, *rows, twin]
    elif alter == "extra_geography":  # the first geography column moved outside the request
        at = next(i for i, name in enumerate(header) if name in GEOGRAPHY_COLUMNS)
        stray = list(rows[0])
        code = str(stray[at])
        stray[at] = str((int(code) + 1) % 10 ** len(code)).zfill(len(code))
        table = [header, *rows, stray]
    elif alter == "drop_geography":
        table = [header, *rows[:-1]]
    return ("[" + ",\n".join(_dumps(row) for row in table) + "]").encode("utf-8")


def _text(status: int, message: str) -> Answer:
    return status, message.encode("utf-8"), "text/plain;charset=utf-8", {}


def _dumps(row: list[Any]) -> str:
    """One row as the API writes it: compact, UTF-8 left as is."""
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False)


def _default_body(status: int) -> str:
    if status == 429:
        return "error: too many requests; slow down"
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    return f"error: {phrase}"


def _in_hierarchy(level: str, within: list[tuple[str, set[str] | None]]) -> bool:
    """Whether the ``in`` clauses fit the level the way the API's geography.json allows."""
    names = [name for name, _ in within]
    allowed = (*_REQUIRES.get(level, ()), *_OPTIONAL.get(level, ()))
    if len(set(names)) != len(names) or not set(names) <= set(allowed):
        return False
    if not set(_REQUIRES.get(level, ())) <= set(names):
        return False
    return all(codes is not None or name in _WILDCARD.get(level, ()) for name, codes in within)


def _clauses(value: str) -> list[tuple[str, set[str] | None]]:
    """``"state:11 county:001,003"`` -> [("state", {"11"}), ("county", {"001", "003"})].

    A ``*`` value gives None (no filter).
    """
    found = _CLAUSE.findall(value.strip())
    if not found:
        raise ValueError(value)
    return [(name.strip(), None if codes == "*" else set(codes.split(",")))
            for name, codes in found]


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        """Answer one request, applying the next queued fault if there is one."""
        replay = self.server.replay
        fault = replay._arrive(self.path)
        if replay.latency > 0:
            time.sleep(replay.latency)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
        if fault is not None and fault.alter == "reset":
            self._reset()
            return
        if fault is not None and (fault.body is not None or fault.status not in (None, 200)):
            status = fault.status or 200
            body = fault.body if fault.body is not None else _default_body(status)
            html = body.lstrip().startswith("<")
            answer: Answer = (status, body.encode("utf-8"),
                              "text/html;charset=utf-8" if html else "text/plain;charset=utf-8",
                              {})
        else:
            answer = replay._answer(self.path)
        status, payload, content_type, headers = answer
        if fault is not None:
            headers = {**headers, **fault.headers}
            if fault.alter is not None and status == 200:
                payload = _altered(payload, fault.alter, fault.column)
            if fault.truncate and payload:
                payload = payload[: max(1, len(payload) // 2)]
        self._send(status, payload, content_type, headers)

    def _reset(self) -> None:
        """Drop the connection without an answer: a TCP reset (SO_LINGER 0, then close)."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _send(self, status: int, payload: bytes, content_type: str,
              headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            if status != 204:
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if status != 204:
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. a timeout)
            logger.debug("replay client disconnected before the answer to %s",
                         _KEY.sub(r"\1REDACTED", self.path))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (inherited name)
        """Log through `logging` at DEBUG, key redacted, instead of writing to stderr."""
        logger.debug("replay: " + _KEY.sub(r"\1REDACTED", format % args))


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True  # a slow (delayed) answer must not hold up stop()
    replay: CensusReplayServer


class CensusReplayServer:
    """Serve a folder of Census API responses on 127.0.0.1 the way the API would.

    The server listens as soon as it is made, on a free port, from a daemon thread; use it as
    a context manager or call `stop`.

    Parameters
    ----------
    root : str or os.PathLike
        The folder holding ``{year}/{dataset}/{level}.json`` files.
    host : str
        The address to listen on, default ``127.0.0.1``.
    port : int
        The port; 0 picks a free one.
    api_key : str, optional
        When given, a request with another key or none is redirected (HTTP 302) to an HTML
        "Invalid Key" / "Missing Key" page served with status 200, as the API does.
    latency : float
        Seconds to wait before every answer (default 0), to mimic the real API's round trip
        when measuring concurrency; requests are answered in parallel threads.

    Attributes
    ----------
    requests : list of str
        Path and query of every request received, in order, with ``key=REDACTED``.

    Raises
    ------
    ValueError
        If ``root`` is not a folder.

    Examples
    --------
    >>> with CensusReplayServer(demo / "census_api") as server:
    ...     server.base_url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(self, root: str | os.PathLike[str], *, host: str = "127.0.0.1",
                 port: int = 0, api_key: str | None = None, latency: float = 0.0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"replay root {str(self.root)!r} is not a folder; expected a "
                             f"folder of {{year}}/{{dataset}}/{{level}}.json files")
        if not latency >= 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency!r}")
        self.api_key = api_key
        self.latency = float(latency)
        self.requests: list[str] = []
        self._faults: collections.deque[_Fault] = collections.deque()
        self._lock = threading.Lock()
        self._tables: dict[Path, tuple[float, list[list[Any]]]] = {}
        self._httpd = _HttpServer((host, port), _Handler)
        self._httpd.replay = self
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="census-replay", daemon=True)
        self._thread.start()
        self._stopped = False
        logger.debug("census replay server on %s serving %s", self.base_url, self.root)

    @property
    def base_url(self) -> str:
        """The URL to give `CensusClient` as ``base_url``, e.g. ``http://127.0.0.1:PORT/data``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/data"

    def __enter__(self) -> CensusReplayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving and close the socket; calling it again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def inject(self, status: int | None = 429, *, times: int = 1, body: str | None = None,
               delay: float = 0.0, truncate: bool = False,
               headers: dict[str, str] | None = None, alter: str | None = None,
               column: str | None = None) -> None:
        """Queue a fault for the next ``times`` requests (faults apply in the order queued).

        Parameters
        ----------
        status : int or None
            The status to answer with (default 429). None (or 200 without ``body``) answers
            the request normally, so that only ``delay``, ``truncate`` and ``headers`` apply.
        times : int
            How many consecutive requests get this fault.
        body : str, optional
            The body to send; defaults to an ``error: ...`` line. A body starting with ``<``
            is sent as ``text/html`` (an HTML error page).
        delay : float
            Seconds to wait before answering (longer than a client's timeout to make it time
            out).
        truncate : bool
            Send only the first half of the body (with a matching Content-Length), like a
            body cut short on the way.
        headers : dict, optional
            Extra response headers, e.g. ``{"Retry-After": "1"}``.
        alter : str, optional
            Change a normal answer (use with ``status=None``): ``"drop_column"`` removes
            ``column`` (default the first), ``"conflicting_duplicate"`` repeats the first row with
            another value in ``column`` (default the first), ``"extra_geography"`` adds a copy of
            the first row whose first geography code (the state, for most levels) was not asked
            for, ``"drop_geography"`` leaves the last row out, ``"empty_body"`` answers 200
            with no body, ``"reset"`` drops the connection without an answer (a TCP reset).
        column : str, optional
            The column ``alter`` acts on.

        Raises
        ------
        ValueError
            If ``times`` < 1, ``delay`` < 0 or ``alter`` is not one of `ALTERATIONS`.

        Examples
        --------
        >>> with CensusReplayServer(demo / "census_api") as server:
        ...     server.inject(500, times=2)
        ...     server.inject(None, truncate=True)
        ...     server.inject(None, alter="conflicting_duplicate", column="B01003_001E")
        """
        if times < 1 or delay < 0:
            raise ValueError(f"times must be >= 1 and delay >= 0, got {times!r}, {delay!r}")
        if alter is not None and alter not in ALTERATIONS:
            raise ValueError(f"alter must be one of {list(ALTERATIONS)}, got {alter!r}")
        fault = _Fault(status, times, body, delay, truncate, dict(headers or {}), alter, column)
        with self._lock:
            self._faults.append(fault)

    def _arrive(self, path: str) -> _Fault | None:
        """Record a request and take the fault (if any) that applies to it."""
        with self._lock:
            self.requests.append(_KEY.sub(r"\1REDACTED", path))
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times == 0:
                self._faults.popleft()
            return fault

    def _table(self, path: Path) -> list[list[Any]]:
        mtime = path.stat().st_mtime
        with self._lock:
            cached = self._tables.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        table = json.loads(path.read_text(encoding="utf-8"))
        with self._lock:
            self._tables[path] = (mtime, table)
        return table

    def _answer(self, raw_path: str) -> Answer:
        """Answer ``raw_path`` (path and query) from the files under root, as the API would."""
        split = urlsplit(raw_path)
        if split.path in _KEY_PAGES:
            return 200, _KEY_PAGES[split.path].encode("utf-8"), "text/html;charset=utf-8", {}
        if self.api_key is not None:
            given = parse_qs(split.query).get("key", [None])[-1]
            if given != self.api_key:
                page = "/data/missing_key.html" if given is None else "/data/invalid_key.html"
                return 302, b"", "text/plain", {"Location": page}
        segments = split.path.strip("/").split("/")
        if len(segments) < 3 or segments[0] != "data" or not all(
                _SEGMENT.fullmatch(s) for s in segments[1:]):
            return _text(404, f"error: unknown dataset {split.path!r}")
        folder = self.root.joinpath(*segments[1:])
        if not folder.is_dir() or not any((folder / f).is_file() for f in LEVEL_FILES.values()):
            return _text(404, f"error: unknown dataset {split.path!r}")
        params = parse_qs(split.query, keep_blank_values=True)
        names = [n for n in ",".join(params.get("get", [])).split(",") if n]
        if not names:
            return _text(400, "error: missing 'get' parameter")
        if len(names) > MAX_VARIABLES:
            return _text(400, f"error: 'get' is limited to {MAX_VARIABLES} variables")
        try:
            (level, wanted), = _clauses(params.get("for", [""])[-1])
            within = [c for value in params.get("in", []) for c in _clauses(value)]
        except ValueError:
            return _text(400, "error: invalid 'for' or 'in' clause")
        if level not in LEVEL_FILES or not _in_hierarchy(level, within):
            return _text(400, HIERARCHY_ERROR)
        if not (folder / LEVEL_FILES[level]).is_file():
            return _text(400, HIERARCHY_ERROR)
        return self._select(self._table(folder / LEVEL_FILES[level]), names,
                            [(level, wanted), *within])

    @staticmethod
    def _select(table: list[list[Any]], names: list[str],
                clauses: list[tuple[str, set[str] | None]]) -> Answer:
        header = table[0]
        position = {name: i for i, name in enumerate(header)}
        if any(name not in position for name, _ in clauses):
            return _text(400, HIERARCHY_ERROR)
        unknown = next((n for n in names if n not in position), None)
        if unknown is not None:
            return _text(400, f"error: unknown variable '{unknown}'")
        geography = [c for c in header if c in GEOGRAPHY_COLUMNS]
        columns = [position[c] for c in [*names, *geography]]
        filters = [(position[name], codes) for name, codes in clauses if codes is not None]
        rows = [[row[i] for i in columns] for row in table[1:]
                if all(str(row[i]) in codes for i, codes in filters)]
        if not rows:
            return 204, b"", "", {}
        lines = [_dumps([*names, *geography]), *(_dumps(row) for row in rows)]
        body = "[" + ",\n".join(lines) + "]"
        return 200, body.encode("utf-8"), "application/json;charset=utf-8", {}
