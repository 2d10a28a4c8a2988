"""Retry settings shared by the HTTP clients: argument checks, backoff delays, a shared pause.

`CensusClient`, the Census Geocoder client and `download_boundaries` all retry failed requests
the same way: exponential backoff with jitter, capped at ``max_delay``, honouring a server's
``Retry-After`` (also capped); after an HTTP 429 every worker thread waits, not just the one
that was told to slow down. This module holds that machinery once.

Examples
--------
>>> check_client_options(timeout=30.0, max_retries=4, backoff=0.5, max_delay=60.0,
...                      max_workers=4, progress=None)
>>> policy = RetryPolicy(timeout=30.0, max_retries=4, backoff=0.5, max_delay=60.0)
>>> policy.delay(1, retry_after=120.0)
60.0
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

__all__ = ["RetryPolicy", "check_client_options"]


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

    Examples
    --------
    >>> policy = RetryPolicy(timeout=30.0, max_retries=4, backoff=1.0, max_delay=3.0)
    >>> 2.0 <= policy.delay(2) <= 3.0  # about backoff * 2 ** (attempt - 1), jittered, capped
    True
    >>> policy.wait(0.01, rate_limited=True)  # a 429: pause every worker...
    >>> policy.wait_out_pause()  # ...which each calls before its next attempt
    """

    def __init__(self, *, timeout: float, max_retries: int, backoff: float,
                 max_delay: float) -> None:
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.max_delay = float(max_delay)
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
        return min(self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5), self.max_delay)

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
        while True:
            with self._lock:
                left = self._paused_until - time.monotonic()
            if left <= 0:
                return
            time.sleep(left)

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
            time.sleep(delay)
