"""Worker threads and their HTTP sessions, shared by the clients that fetch in parallel.

requests does not promise that a `requests.Session` is thread-safe, so each worker thread of
a client gets its own session (with a small connection pool), made on first use and closed
with the client.

Examples
--------
>>> workers = WorkerSessions(max_workers=2, name="census-api", user_agent="sdoh-feature-store")
>>> workers.executor().submit(lambda: workers.session().headers["User-Agent"]).result()
'sdoh-feature-store'
>>> workers.close()
"""

from __future__ import annotations

import concurrent.futures
import threading

import requests
from requests.adapters import HTTPAdapter

__all__ = ["WorkerSessions"]


class WorkerSessions:
    """A thread pool, made on first use, and one HTTP session per thread that uses it.

    Parameters
    ----------
    max_workers : int
        Threads of the pool.
    name : str
        Prefix of the threads' names.
    user_agent : str
        The sessions' User-Agent header.
    """

    def __init__(self, *, max_workers: int, name: str, user_agent: str):
        self.max_workers = max_workers
        self.name = name
        self.user_agent = user_agent
        self.sessions: list[requests.Session] = []
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._lock = threading.Lock()

    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        """The pool, started on the first call."""
        with self._lock:
            if self.pool is None:
                self.pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.max_workers, thread_name_prefix=self.name)
            return self.pool

    def session(self) -> requests.Session:
        """The calling thread's session."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=2)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            with self._lock:
                self.sessions.append(session)
            self._local.session = session
        return session

    def close(self) -> None:
        """Stop the threads and close every session; the next call starts afresh."""
        with self._lock:
            pool, self.pool = self.pool, None
            sessions, self.sessions = self.sessions, []
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for session in sessions:
            session.close()
        self._local = threading.local()
