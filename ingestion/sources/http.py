"""The one HTTP retry policy and loop of the clients of public services, and what they share.

`CensusClient`, the Census Geocoder client and `download_boundaries` send every request through
`RetryPolicy.call`: a `tenacity.Retrying` built from one `RetryPolicy` (attempts, exponential
backoff with jitter capped at ``max_delay``, ``Retry-After`` honoured and capped too). A request
is retried after HTTP 429 or 5xx (`retryable_status`), a timeout or a dropped connection
(`RETRYABLE_EXCEPTIONS`), or a body that is not a complete answer; after an HTTP 429 every
thread using the policy waits, not just the one that was told to slow down. Every request has
the policy's timeout (`RetryPolicy.request`), each worker thread its own session
(`ingestion.sources.workers.WorkerSessions`). They also accept the same service URLs
(`check_service_url`): ``https://`` anywhere, plain ``http://`` only to a loopback host such as
a local replay server, since an API key or addresses would otherwise cross the network in
clear. A request that failed for good gets one message for every client (`Service.failure`):
the cause first (`response_message` shortens a service's error page), then the request (URL
with any API key redacted by `redact_key`, batch), then what to do, by kind of failure
(`Trouble`) in sentences shared by all, with what differs per service given as data.

Examples
--------
>>> check_client_options(timeout=30.0, max_retries=4, backoff=0.5, max_delay=60.0,
...                      max_workers=4, progress=None)
>>> policy = RetryPolicy(timeout=30.0, max_retries=4, backoff=0.5, max_delay=60.0)
>>> policy.delay(1, retry_after=120.0)
60.0
>>> check_service_url("http://127.0.0.1:8080/data/")
'http://127.0.0.1:8080/data'
>>> parse_retry_after("7"), redact_key("https://api.census.gov/data?get=NAME&key=abc123")
(7.0, 'https://api.census.gov/data?get=NAME&key=REDACTED')
"""

from __future__ import annotations

import datetime as dt
import email.utils
import enum
import html
import inspect
import ipaddress
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import tenacity

from ingestion.core.errors import ServiceUrlError
from ingestion.core.settings import load_settings

__all__ = [
    "CACHE_ENV",
    "FROM_ENVIRONMENT",
    "MAX_BODY_RETRIES",
    "RETRYABLE_EXCEPTIONS",
    "Attempt",
    "CacheDefault",
    "Cancelled",
    "RetryPolicy",
    "Service",
    "Trouble",
    "cache_root",
    "check_client_options",
    "check_service_url",
    "client_policy",
    "parse_retry_after",
    "redact_key",
    "response_message",
    "retryable_status",
]

# The environment variable naming the cache folder when a client's cache_dir is left out.
CACHE_ENV = "SDOH_CACHE_DIR"
# Truncated, empty or garbled 200 bodies are often transient (a proxy in between); retry them
# this many times at most.
MAX_BODY_RETRIES = 2
# Exceptions of requests worth another attempt: the network or the server may recover.
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError)

_URL = re.compile(r"(?i)(https?)://[^/?#]+")
_KEY_PARAM = re.compile(r"(?i)(\bkey=)[^&\s'\"#<>]*")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_KEY_WORD = re.compile(r"(?i)\b(invalid|missing) key\b")


class CacheDefault(enum.Enum):
    """Marks a ``cache_dir`` left out (distinct from an explicit None)."""

    FROM_ENVIRONMENT = "from the SDOH_CACHE_DIR environment variable"


FROM_ENVIRONMENT = CacheDefault.FROM_ENVIRONMENT


def cache_root(cache_dir: str | os.PathLike[str] | None | CacheDefault) -> Path | None:
    """The cache folder a client uses: ``cache_dir``, or ``SDOH_CACHE_DIR`` if left out.

    Parameters
    ----------
    cache_dir : str, os.PathLike, None or FROM_ENVIRONMENT
        A folder; None for no cache; `FROM_ENVIRONMENT` (a left-out argument) for the
        ``SDOH_CACHE_DIR`` environment variable, or no cache when it is unset or empty.

    Returns
    -------
    pathlib.Path or None
        The folder, ``~`` expanded, or None for no cache.

    Raises
    ------
    TypeError
        If ``cache_dir`` is neither a non-empty path nor None.

    Examples
    --------
    >>> cache_root("~/.cache/sdoh") == Path.home() / ".cache" / "sdoh"
    True
    >>> cache_root(None) is None
    True
    """
    if cache_dir is FROM_ENVIRONMENT:
        cache_dir = load_settings().cache_dir
    if cache_dir is None:
        return None
    if not isinstance(cache_dir, (str, os.PathLike)) or not str(cache_dir).strip():
        raise TypeError(f"cache_dir must be a folder path or None, got {cache_dir!r}")
    return Path(cache_dir).expanduser()


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


def _html_text(body: str) -> str:
    """Extract the page's <title> (or <h1>, or else its text), unescaped, on one line."""
    match = _TITLE.search(body) or _H1.search(body)
    text = match.group(1) if match else _TAG.sub(" ", body)
    text = html.unescape(" ".join(_TAG.sub(" ", text).split()))
    if _KEY_WORD.search(body):
        text += " (the API key is missing or invalid: pass api_key= or set CENSUS_API_KEY)"
    return text


def response_message(body: bytes, content_type: str) -> str:
    """Shorten an error body (plain text or an HTML page) to a single-line message.

    Parameters
    ----------
    body : bytes
        The response body (or its first bytes).
    content_type : str
        The response's ``Content-Type`` header ("" when absent).

    Returns
    -------
    str
        The page's title (or first heading, or text) or the plain text on one line, at most
        300 characters; ``"(empty body)"`` for an empty one.

    Examples
    --------
    >>> response_message(b"<html><title>502 Bad Gateway</title><p>proxy</p></html>", "text/html")
    '502 Bad Gateway'
    >>> response_message(b"error: unknown variable 'B99999_001E'", "text/plain")
    "error: unknown variable 'B99999_001E'"
    """
    text = body.decode("utf-8", errors="replace").strip()
    if "html" in content_type.lower() or text.startswith("<"):
        text = _html_text(text)
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= 300 else text[:297] + "..."


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date).

    Parameters
    ----------
    value : str or None
        The header's value.

    Returns
    -------
    float or None
        Seconds from now, at least 0; None when the header is absent or unreadable.

    Examples
    --------
    >>> parse_retry_after("120"), parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT")
    (120.0, 0.0)
    >>> parse_retry_after(None) is None and parse_retry_after("soon") is None
    True
    """
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


def retryable_status(status: int) -> bool:
    """Whether an HTTP status is worth another attempt: 429 Too Many Requests or any 5xx.

    Examples
    --------
    >>> [retryable_status(s) for s in (200, 404, 429, 503)]
    [False, False, True, True]
    """
    return status == 429 or status >= 500


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_service_url(url: Any, *, what: str = "base_url") -> str:
    """Check a service URL a client will send requests to, and return it without trailing ``/``.

    The one rule for every client: ``https://`` to any host; plain ``http://`` only to a
    loopback host (``localhost``, ``127.0.0.0/8``, ``::1``: the replay servers of the tests and
    the offline demo), because an API key, addresses or coordinates would otherwise travel the
    network unencrypted.

    Parameters
    ----------
    url : str
        The service root, e.g. ``https://api.census.gov/data``.
    what : str
        How the caller names the setting in messages (``"base_url"``, ``"--geocoder-url"``).

    Returns
    -------
    str
        ``url`` without trailing slashes.

    Raises
    ------
    ServiceUrlError
        (a `ValueError`) If ``url`` is not an http(s) URL with a host, or is plain http to a
        host that is not loopback.

    Examples
    --------
    >>> check_service_url("https://api.census.gov/data")
    'https://api.census.gov/data'
    >>> check_service_url("http://api.census.gov/data")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ingestion.core.errors.ServiceUrlError: base_url 'http://api.census.gov/data' is plain http ...
    """
    match = _URL.match(url) if isinstance(url, str) else None
    if match is None:
        raise ServiceUrlError(f"{what} must be an http(s) URL such as https://api.census.gov/data,"
                              f" got {url!r}")
    host = urlsplit(url).hostname or ""
    if match.group(1).lower() == "http" and not _is_loopback(host):
        raise ServiceUrlError(
            f"{what} {url!r} is plain http to a host that is not loopback: the request (and any "
            f"API key or address in it) would cross the network unencrypted; use https:// "
            f"(plain http:// is only for a local server such as http://127.0.0.1:PORT)")
    return url.rstrip("/")


def check_client_options(*, timeout: Any, max_retries: Any, backoff: Any, max_delay: Any,
                         max_workers: Any, progress: Any) -> None:
    """Check the retry and concurrency arguments every HTTP client takes.

    Parameters
    ----------
    timeout : float
        Seconds per request; must be > 0.
    max_retries : int
        Retries after the first attempt; an int >= 0.
    backoff : float
        Seconds before the first retry; >= 0.
    max_delay : float
        Cap on any one wait; >= 0.
    max_workers : int
        Worker threads; an int >= 1.
    progress : bool or None
        Whether to show a progress bar (None: only on a terminal).

    Raises
    ------
    ValueError
        If a value is out of range or ``max_retries``/``max_workers`` is not an int.
    TypeError
        If ``progress`` is not True, False or None.

    Examples
    --------
    >>> check_client_options(timeout=0, max_retries=4, backoff=0.5, max_delay=60.0,
    ...                      max_workers=4, progress=None)
    Traceback (most recent call last):
    ...
    ValueError: timeout must be > 0 seconds, got 0
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
    if backoff < 0 or max_delay < 0:
        raise ValueError(f"backoff and max_delay must be >= 0, got {backoff!r}, {max_delay!r}")
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, got {progress!r}")


class Trouble(enum.Enum):
    """The kind of a failed request, which decides what its error advises (`Service.advice`)."""

    BUSY = "busy"  # HTTP 429 or 5xx, a timeout: the service is failing, slow or rate-limiting
    NETWORK = "network"  # no connection, or it dropped
    ALTERED = "altered"  # a 200 that is not a complete answer: a proxy or mirror may alter it
    REFUSED = "refused"  # the service refused the request as asked


@dataclass(frozen=True)
class Service:
    """A public service as its client's errors name it, and what they advise when it fails.

    The sentences are the same for every client (`advice`, `failure`); a client gives only
    what differs, as data.

    Parameters
    ----------
    name : str
        The service in a sentence, e.g. ``"the Census Geocoder"``.
    url_option : str
        The setting of its URL, e.g. ``"--geocoder-url (base_url=)"``.
    busy : str
        Added to "try again later" when it is failing, slow or rate-limiting.
    offline : str
        What to do without a network, e.g. "rerun with the --cache-dir of an earlier pull".
    refused : str
        What to do when it refuses a request.

    Examples
    --------
    >>> demo = Service(name="the demo API", url_option="--base-url (base_url=)",
    ...                offline="point --base-url (base_url=) at a local replay server",
    ...                refused="Check the request's arguments.")
    >>> demo.advice(Trouble.BUSY)
    'The demo API is failing, slow or rate-limiting: try again later.'
    """

    name: str
    url_option: str
    busy: str = ""
    offline: str = ""
    refused: str = ""

    def advice(self, trouble: Trouble) -> str:
        """What to do after a failure of kind ``trouble``: the last sentence of its error.

        Examples
        --------
        >>> Service(name="the demo API", url_option="--base-url", offline="use the cache"
        ...         ).advice(Trouble.NETWORK)
        'Check the network connection (and any proxy settings), then run again; without a network, use the cache.'
        """  # noqa: E501 (a doctest's output is one line)
        if trouble is Trouble.BUSY:
            return f"{_capital(self.name)} is failing, slow or rate-limiting: try again later{self.busy}."
        if trouble is Trouble.NETWORK:
            return ("Check the network connection (and any proxy settings), then run again; "
                    f"without a network, {self.offline}.")
        if trouble is Trouble.ALTERED:
            return ("Nothing was cached: run again to fetch afresh; if it persists, a proxy or "
                    f"mirror between you and {self.name} ({self.url_option}) may be altering its "
                    f"answers.")
        return self.refused

    def failure(self, outcome: Attempt, *, attempts: int, method: str, url: str,
                what: str = "") -> str:
        """The error message of a request that failed for good: cause, request, what to do.

        Parameters
        ----------
        outcome : Attempt
            The last attempt (its problem is the cause; its kind decides the advice).
        attempts : int
            Attempts made; named when the failure was retryable (the retries ran out).
        method, url : str
            The request, ``url`` with any API key already redacted.
        what : str
            What the request carried, e.g. ``"batch 2 of 3 (rows 1001-2000)"``.

        Returns
        -------
        str
            ``"A request to <name> failed after N attempts: <problem> (<METHOD> <url>,
            <what>). <advice>"``.

        Examples
        --------
        >>> demo = Service(name="the demo API", url_option="--base-url (base_url=)")
        >>> demo.failure(Attempt(problem="HTTP 503: busy", retryable=True), attempts=4,
        ...              method="GET", url="https://example.org/data?key=REDACTED")
        'A request to the demo API failed after 4 attempts: HTTP 503: busy (GET https://example.org/data?key=REDACTED). The demo API is failing, slow or rate-limiting: try again later.'
        """  # noqa: E501 (a doctest's output is one line)
        tried = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if outcome.retryable \
            else ""
        request = f"{method} {url}, {what}" if what else f"{method} {url}"
        advice = self.advice(outcome.kind)
        return (f"A request to {self.name} failed{tried}: {outcome.problem} ({request})."
                + (f" {advice}" if advice else ""))


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


class Cancelled(Exception):  # noqa: N818 (not an error: another request failed for good)
    """A request given up before an attempt because its caller's cancel event was set."""


@dataclass(frozen=True)
class Attempt:
    """What one request gave: a value, or a problem and whether another attempt may help.

    Parameters
    ----------
    value : object, optional
        The answer (rows, results, a verified file's members); None when the attempt failed.
    problem : str
        Why it failed, cause first (the URL is added by the client's error).
    retryable : bool
        Whether another attempt may succeed (HTTP 429/5xx, a timeout, a dropped connection, an
        incomplete body).
    retry_after : float, optional
        Seconds the server asked to wait (``Retry-After``).
    rate_limited : bool
        An HTTP 429: every thread using the policy pauses, not just this one.
    bad_body : bool
        A 200 whose body is not a complete answer; such retries are limited on their own.
    resume : bool
        Progress was made (a partial download grew): retry at once, not counted as a failure.
    trouble : Trouble, optional
        The kind of failure, which decides the advice of the error (`Service.advice`); left
        out, it follows from the flags (see `kind`).

    Examples
    --------
    >>> Attempt(value=[["NAME"], ["Delaware"]]).ok, Attempt(problem="HTTP 503: busy").ok
    (True, False)
    """

    value: Any = None
    problem: str = ""
    retryable: bool = False
    retry_after: float | None = None
    rate_limited: bool = False
    bad_body: bool = False
    resume: bool = False
    trouble: Trouble | None = None

    @property
    def ok(self) -> bool:
        """Whether the attempt gave an answer."""
        return self.value is not None

    @property
    def kind(self) -> Trouble:
        """The kind of failure: ``trouble`` if given, else told by the flags.

        An incomplete body is `Trouble.ALTERED`, another retryable failure `Trouble.BUSY`,
        the rest `Trouble.REFUSED`.

        Examples
        --------
        >>> Attempt(problem="HTTP 503: busy", retryable=True).kind
        <Trouble.BUSY: 'busy'>
        """
        if self.trouble is not None:
            return self.trouble
        if self.bad_body:
            return Trouble.ALTERED
        return Trouble.BUSY if self.retryable else Trouble.REFUSED

    @classmethod
    def from_status(cls, status: int, body: bytes, headers: Mapping[str, str], *,
                    clean: Callable[[str], str] = redact_key) -> Attempt:
        """The failure of a response with an error status, retryable if the status is.

        Parameters
        ----------
        status : int
            The HTTP status, not a success.
        body : bytes
            The body (or its first bytes), shortened by `response_message`.
        headers : mapping
            The response headers (``Content-Type``, ``Retry-After``).
        clean : callable
            Applied to the service's message: `redact_key` by default; a client adds its own
            scrubbing (addresses).

        Examples
        --------
        >>> failed = Attempt.from_status(429, b"slow down", {"Retry-After": "2"})
        >>> failed.problem, failed.retryable, failed.retry_after, failed.rate_limited
        ('HTTP 429: slow down', True, 2.0, True)
        """
        problem = f"HTTP {status}: {clean(response_message(body, headers.get('Content-Type', '')))}"
        if not retryable_status(status):
            return cls(problem=problem)
        return cls(problem=problem, retryable=True,
                   retry_after=parse_retry_after(headers.get("Retry-After")),
                   rate_limited=status == 429)

    @classmethod
    def from_exception(cls, exc: requests.RequestException, *, timeout: float,
                       describe: Callable[[requests.RequestException], str]) -> Attempt:
        """The failure of a request that raised, retryable if `RETRYABLE_EXCEPTIONS` has it.

        A timeout is `Trouble.BUSY` (the service is slow); another retryable exception is
        `Trouble.NETWORK` (no connection, or it dropped).

        Parameters
        ----------
        exc : requests.RequestException
            What the request raised.
        timeout : float
            The request's timeout, named when it ran out.
        describe : callable
            The problem of any other exception, redacted and scrubbed by the client.

        Examples
        --------
        >>> Attempt.from_exception(requests.ReadTimeout(), timeout=2.0, describe=str).problem
        'timed out after 2 s (ReadTimeout)'
        """
        if isinstance(exc, requests.Timeout):
            return cls(problem=f"timed out after {timeout:g} s ({type(exc).__name__})",
                       retryable=True)
        if isinstance(exc, RETRYABLE_EXCEPTIONS):
            return cls(problem=describe(exc), retryable=True, trouble=Trouble.NETWORK)
        return cls(problem=describe(exc))


@dataclass(frozen=True)
class Retry:
    """What a client's ``on_retry`` hears before the next attempt (see `RetryPolicy.call`).

    Parameters
    ----------
    attempt : Attempt
        The attempt that failed.
    delay : float
        Seconds before the next attempt (0 for a resume).
    failures : int
        Failed attempts counted so far; resumes are not counted.
    resumed : bool
        Whether the next attempt resumes at once after progress.

    Examples
    --------
    >>> heard = []
    >>> policy = RetryPolicy(timeout=1.0, max_retries=1, backoff=0.0, max_delay=1.0)
    >>> _ = policy.call(lambda: Attempt(problem="HTTP 503: busy", retryable=True),
    ...                 on_retry=heard.append)
    >>> [(r.attempt.problem, r.delay, r.failures, r.resumed) for r in heard]
    [('HTTP 503: busy', 0.0, 1, False)]
    """

    attempt: Attempt
    delay: float
    failures: int
    resumed: bool


class _Tally:
    """The counts of one `RetryPolicy.call`: failures, incomplete bodies and resumes."""

    def __init__(self, *, max_failures: int, max_bad_bodies: int, max_resumes: int) -> None:
        self.max_failures, self.max_bad_bodies = max_failures, max_bad_bodies
        self.max_resumes = max_resumes
        self.failures = self.bad_bodies = self.resumes = 0
        self.resumed = False
        self.last = Attempt()

    def count(self, state: tenacity.RetryCallState) -> None:
        """Tenacity's ``after``: called once per attempt worth retrying."""
        self.last = state.outcome.result()  # type: ignore[union-attr]
        self.resumed = self.last.resume and self.resumes < self.max_resumes
        if self.resumed:
            self.resumes += 1
        else:
            self.failures += 1
            self.bad_bodies += self.last.bad_body

    def exhausted(self, state: tenacity.RetryCallState) -> bool:
        """Tenacity's ``stop``."""
        return not self.resumed and (self.failures > self.max_failures
                                     or self.bad_bodies > self.max_bad_bodies)


class RetryPolicy:
    """The one retry policy of the HTTP clients, with a pause shared by every thread using it.

    Thread-safe: one policy is shared by all the workers of a client (or by several clients),
    so a pause set by one worker after an HTTP 429 holds every worker back.

    Parameters
    ----------
    timeout : float
        Seconds to connect and between bytes, given to every request (`request`).
    max_retries : int
        Retries after the first attempt.
    backoff : float
        The first retry waits about ``backoff`` seconds, doubling each retry, with jitter.
    max_delay : float
        Cap in seconds on any one wait, ``Retry-After`` included.
    rng : random.Random, optional
        The source of the jitter; a generator of the policy's own otherwise. Pass a seeded one
        for reproducible delays.
    sleep : callable, optional
        How to wait a number of seconds. By default real time (`time.sleep`), cut short by a
        caller's cancel event (see `call`). Tests pass their own (for example
        ``list.append``) instead of patching `time.sleep` for every thread.
    clock : callable, optional
        Seconds on a steady clock, which the shared pause is kept on: `time.monotonic` by
        default. Tests pass their own, so that the waits of a pause are known exactly.

    Examples
    --------
    >>> policy = RetryPolicy(timeout=30.0, max_retries=4, backoff=1.0, max_delay=3.0)
    >>> 1.0 <= policy.delay(2) <= 3.0  # about backoff * 2 ** (attempt - 1), jittered, capped
    True
    >>> policy.wait(0.01, rate_limited=True)  # a 429: pause every worker...
    >>> policy.wait_out_pause()  # ...which each calls before its next attempt
    >>> waits = []
    >>> quiet = RetryPolicy(timeout=1.0, max_retries=2, backoff=1.0, max_delay=5.0,
    ...                     rng=random.Random(0), sleep=waits.append)
    >>> quiet.wait(quiet.delay(1), rate_limited=False); waits
    [1.3444218515250481]
    >>> now = [100.0]
    >>> held = RetryPolicy(timeout=1.0, max_retries=2, backoff=1.0, max_delay=5.0,
    ...                    sleep=waits.append, clock=lambda: now[0])
    >>> held.pause(4.0); now[0] += 1.5; held.wait_out_pause(); waits[-1]
    2.5
    """

    def __init__(self, *, timeout: float, max_retries: int, backoff: float,
                 max_delay: float, rng: random.Random | None = None,
                 sleep: Callable[[float], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.max_delay = float(max_delay)
        self.sleep: Callable[[float], Any] = sleep if sleep is not None else time.sleep
        self._real_time = sleep is None
        self.clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()
        self._paused_until = 0.0

    def __repr__(self) -> str:
        return (f"RetryPolicy(timeout={self.timeout}, max_retries={self.max_retries}, "
                f"backoff={self.backoff}, max_delay={self.max_delay})")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (counting from 1).

        ``retry_after`` (the server's ``Retry-After``, in seconds) wins when given; either way
        the result is at most ``max_delay``.

        Examples
        --------
        >>> RetryPolicy(timeout=1.0, max_retries=2, backoff=0.0, max_delay=5.0).delay(3)
        0.0
        """
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        with self._lock:  # random.Random is not documented as thread-safe
            jitter = self._rng.uniform(0.5, 1.5)
        return min(self.backoff * 2 ** (attempt - 1) * jitter, self.max_delay)

    def pause(self, delay: float) -> None:
        """Hold every thread back for ``delay`` seconds from now (see `wait_out_pause`).

        Examples
        --------
        >>> RetryPolicy(timeout=1.0, max_retries=2, backoff=0.1, max_delay=5.0).pause(0.01)
        """
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + delay)

    def wait_out_pause(self) -> None:
        """Sleep until any pause set by `pause` is over; `call` does before each attempt.

        Examples
        --------
        >>> RetryPolicy(timeout=1.0, max_retries=2, backoff=0.1, max_delay=5.0).wait_out_pause()
        """
        slept_until = 0.0
        while True:  # again if another thread extended the pause meanwhile
            with self._lock:
                until = self._paused_until
            left = until - self.clock()
            if until <= slept_until or left <= 0:
                return
            self.sleep(left)
            slept_until = until

    def wait(self, delay: float, *, rate_limited: bool,
             cancel: threading.Event | None = None) -> None:
        """Wait ``delay`` seconds before a retry: all threads if ``rate_limited``, else this one.

        When ``rate_limited`` the shared pause is set and the wait happens at the next
        `wait_out_pause` (which every attempt of `call` starts with). Otherwise a real-time
        wait ends early when ``cancel`` is set.

        Examples
        --------
        >>> RetryPolicy(timeout=1.0, max_retries=2, backoff=0.1, max_delay=5.0).wait(
        ...     0.01, rate_limited=False)
        """
        if rate_limited:
            self.pause(delay)  # every worker waits, not just this one
        elif cancel is not None and self._real_time:
            cancel.wait(delay)
        elif delay > 0:
            self.sleep(delay)

    def request(self, session: requests.Session, method: str, url: str,
                **kwargs: Any) -> requests.Response:
        """Send one request with the policy's timeout (to connect, and between bytes).

        Examples
        --------
        A local replay server of the Census Data API, serving an empty folder:

        >>> import tempfile
        >>> from ingestion.demo.replay import CensusReplayServer
        >>> policy = RetryPolicy(timeout=5.0, max_retries=0, backoff=0.0, max_delay=0.0)
        >>> with tempfile.TemporaryDirectory() as root, CensusReplayServer(root) as server, \\
        ...         requests.Session() as session:
        ...     answer = policy.request(session, "GET", f"{server.base_url}/2024/acs/acs5")
        >>> answer.status_code, response_message(answer.content, "text/plain")
        (404, "error: unknown dataset '/data/2024/acs/acs5'")
        """
        return session.request(method, url, timeout=(self.timeout, self.timeout), **kwargs)

    def retrying(self, *, on_retry: Callable[[Retry], Any] | None = None,
                 cancel: threading.Event | None = None, max_bad_bodies: int = MAX_BODY_RETRIES,
                 max_resumes: int = 0) -> tenacity.Retrying:
        """A `tenacity.Retrying` for one request, built from this policy; see `call`.

        Called with a function making one attempt (returning an `Attempt`), it returns the
        first successful `Attempt`, the first that is not retryable, or the last once the
        retries are used up; ``statistics["attempt_number"]`` then says how many were made.

        Examples
        --------
        >>> policy = RetryPolicy(timeout=1.0, max_retries=1, backoff=0.0, max_delay=1.0)
        >>> retrying = policy.retrying()
        >>> retrying(lambda: Attempt(problem="HTTP 503: busy", retryable=True)).problem
        'HTTP 503: busy'
        >>> retrying.statistics["attempt_number"]
        2
        """
        tally = _Tally(max_failures=self.max_retries, max_bad_bodies=max_bad_bodies,
                       max_resumes=max_resumes)

        def before(state: tenacity.RetryCallState) -> None:
            self.wait_out_pause()
            if cancel is not None and cancel.is_set():
                raise Cancelled

        def wait(state: tenacity.RetryCallState) -> float:
            if tally.resumed or tally.exhausted(state):  # no jitter drawn for nothing
                return 0.0
            return self.delay(tally.failures, tally.last.retry_after)

        def announce(state: tenacity.RetryCallState) -> None:
            if on_retry is not None:
                delay = state.next_action.sleep if state.next_action is not None else 0.0
                on_retry(Retry(tally.last, float(delay), tally.failures, tally.resumed))

        return tenacity.Retrying(
            sleep=lambda seconds: self.wait(seconds, rate_limited=tally.last.rate_limited,
                                            cancel=cancel),
            stop=tally.exhausted,
            wait=wait,
            retry=tenacity.retry_if_result(lambda attempt: not attempt.ok and attempt.retryable),
            before=before,
            after=tally.count,
            before_sleep=announce,
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        )

    def call(self, attempt: Callable[[], Attempt], *,
             on_retry: Callable[[Retry], Any] | None = None,
             cancel: threading.Event | None = None, max_bad_bodies: int = MAX_BODY_RETRIES,
             max_resumes: int = 0) -> tuple[Attempt, int]:
        """Make attempts until one succeeds, one fails for good, or the retries are used up.

        Before each attempt the shared pause is waited out. A failed retryable attempt is
        followed by a wait of `delay` (its ``Retry-After`` if any, capped); after an HTTP 429
        that wait is the shared pause, so every thread using the policy holds back. At most
        ``max_retries`` failures are retried, and at most ``max_bad_bodies`` incomplete
        bodies; an attempt that made progress (``resume``) is retried at once without using up
        a retry, ``max_resumes`` times at most.

        Parameters
        ----------
        attempt : callable
            Makes one attempt and returns its `Attempt`; exceptions it raises propagate.
        on_retry : callable, optional
            Told of each retry (a `Retry`) before its wait, e.g. to log it.
        cancel : threading.Event, optional
            Once set, the next attempt is not made (`Cancelled` is raised) and a real-time
            wait ends early: another request of the same run failed for good.
        max_bad_bodies : int
            Retries of incomplete bodies (``Attempt.bad_body``).
        max_resumes : int
            Immediate retries of attempts that made progress.

        Returns
        -------
        tuple of (Attempt, int)
            The last attempt and the number of attempts made.

        Raises
        ------
        Cancelled
            If ``cancel`` was set before an attempt.

        Examples
        --------
        >>> waits, answers = [], iter([Attempt(problem="HTTP 503: busy", retryable=True),
        ...                            Attempt(value="rows")])
        >>> policy = RetryPolicy(timeout=1.0, max_retries=3, backoff=1.0, max_delay=5.0,
        ...                      rng=random.Random(0), sleep=waits.append)
        >>> outcome, attempts = policy.call(lambda: next(answers))
        >>> outcome.value, attempts, waits
        ('rows', 2, [1.3444218515250481])
        """
        retrying = self.retrying(on_retry=on_retry, cancel=cancel,
                                 max_bad_bodies=max_bad_bodies, max_resumes=max_resumes)
        outcome = retrying(attempt)
        return outcome, int(retrying.statistics["attempt_number"])


def client_policy(retry: RetryPolicy | None, client: Callable[..., Any],
                  **settings: Any) -> RetryPolicy:
    """The policy a client uses: ``retry`` if given (shared), else one made of its settings.

    Parameters
    ----------
    retry : RetryPolicy or None
        A policy shared with other clients (one 429 pause for all of them), or None.
    client : callable
        The client's function or class, whose signature gives the settings' defaults.
    **settings
        The client's ``timeout``, ``max_retries``, ``backoff``, ``max_delay`` (and ``rng``,
        ``sleep`` where it takes them).

    Returns
    -------
    RetryPolicy
        ``retry``, or a new policy of ``settings``.

    Raises
    ------
    ValueError
        If ``retry`` is given together with a setting other than its default: the policy
        holds those settings, and one of them would silently not apply.
    TypeError
        If ``retry`` is not a `RetryPolicy`.

    Examples
    --------
    >>> def client(*, timeout=30.0, max_retries=4, backoff=0.5, max_delay=60.0, retry=None):
    ...     return client_policy(retry, client, timeout=timeout, max_retries=max_retries,
    ...                          backoff=backoff, max_delay=max_delay)
    >>> client(timeout=5.0).timeout
    5.0
    >>> shared = RetryPolicy(timeout=9.0, max_retries=1, backoff=0.0, max_delay=1.0)
    >>> client(retry=shared) is shared
    True
    """
    if retry is None:
        return RetryPolicy(**settings)
    if not isinstance(retry, RetryPolicy):
        raise TypeError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
    defaults = inspect.signature(client).parameters
    clash = sorted(name for name, value in settings.items()
                   if value is not defaults[name].default and value != defaults[name].default)
    if clash:
        raise ValueError(f"retry= and {clash} were both given: the shared policy sets them "
                         f"({retry!r}); leave {clash} out or pass no retry=")
    return retry
