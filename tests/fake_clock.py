"""A clock of a test's own for `RetryPolicy`: it moves only when the test moves it.

Requests made one after another in a test stand in for workers running at the same time: with
the clock standing still, a later request still meets the pause an earlier one set, and every
wait of the policy is known exactly. Nothing process-wide (`time.sleep`, `time.monotonic`) is
touched.
"""

from __future__ import annotations


class FakeClock:
    """Seconds that pass only by `advance`; the policy's sleeps are recorded in ``waits``.

    Pass ``clock=clock`` and ``sleep=clock.sleep`` to a `RetryPolicy`.

    Examples
    --------
    >>> from ingestion.sources.http import RetryPolicy
    >>> clock = FakeClock()
    >>> policy = RetryPolicy(timeout=1.0, max_retries=1, backoff=0.0, max_delay=30.0,
    ...                      sleep=clock.sleep, clock=clock)
    >>> policy.pause(20.0); clock.advance(5.0); policy.wait_out_pause(); clock.waits
    [15.0]
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """Record a wait; the clock stands still (other workers are still waiting)."""
        self.waits.append(seconds)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds
