"""Settings shared by the HTTP clients: argument checks, the service URL rule, backoff delays.

`CensusClient`, the Census Geocoder client and `download_boundaries` all retry failed requests
the same way: exponential backoff with jitter, capped at ``max_delay``, honouring a server's
``Retry-After`` (also capped); after an HTTP 429 every worker thread waits, not just the one
that was told to slow down. They also accept the same service URLs (`check_service_url`):
``https://`` anywhere, plain ``http://`` only to a loopback host such as a local replay server,
since an API key or addresses would otherwise cross the network in clear. This module holds
that machinery once.

Examples
--------
>>> check_client_options(timeout=30.0, max_retries=4, backoff=0.5, max_delay=60.0,
...                      max_workers=4, progress=None)
>>> policy = RetryPolicy(timeout=30.0, max_retries=4, backoff=0.5, max_delay=60.0)
>>> policy.delay(1, retry_after=120.0)
60.0
>>> check_service_url("http://127.0.0.1:8080/data/")
'http://127.0.0.1:8080/data'
"""

from __future__ import annotations

import ipaddress
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ingestion.core.errors import ServiceUrlError

__all__ = ["RetryPolicy", "check_client_options", "check_service_url"]

_URL = re.compile(r"(?i)(https?)://[^/?#]+")


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


class RetryPolicy:
    """How long to wait between attempts, and a pause shared by every thread using the policy.

    Thread-safe: one policy is shared by all the workers of a client, so a pause set by one
    worker (after an HTTP 429) holds every worker back.

    Parameters
    ----------
    timeout : float
        Seconds per request (kept here for the clients; the policy does not use it).
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
        How to wait a number of seconds; `time.sleep` otherwise. Tests pass their own (for
        example ``list.append``) instead of patching `time.sleep` for every thread.

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
    """

    def __init__(self, *, timeout: float, max_retries: int, backoff: float,
                 max_delay: float, rng: random.Random | None = None,
                 sleep: Callable[[float], Any] = time.sleep) -> None:
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.max_delay = float(max_delay)
        self.sleep = sleep
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
            self._paused_until = max(self._paused_until, time.monotonic() + delay)

    def wait_out_pause(self) -> None:
        """Sleep until any pause set by `pause` is over; call it before each attempt.

        Examples
        --------
        >>> RetryPolicy(timeout=1.0, max_retries=2, backoff=0.1, max_delay=5.0).wait_out_pause()
        """
        slept_until = 0.0
        while True:  # again if another thread extended the pause meanwhile
            with self._lock:
                until = self._paused_until
            left = until - time.monotonic()
            if until <= slept_until or left <= 0:
                return
            self.sleep(left)
            slept_until = until

    def wait(self, delay: float, *, rate_limited: bool) -> None:
        """Wait ``delay`` seconds before a retry: all threads if ``rate_limited``, else this one.

        When ``rate_limited`` the shared pause is set and the wait happens at the next
        `wait_out_pause` (which every worker calls before each attempt).

        Examples
        --------
        >>> RetryPolicy(timeout=1.0, max_retries=2, backoff=0.1, max_delay=5.0).wait(
        ...     0.01, rate_limited=False)
        """
        if rate_limited:
            self.pause(delay)  # every worker waits, not just this one
        else:
            self.sleep(delay)
