"""A Redis server of a test's own: a free loopback port, no persistence, stopped by its PID.

Tests that empty, kill or restart Redis use one, never the shared 127.0.0.1:6379 (other test
runs use it at the same time: a FLUSHDB there removes their keys mid-test).
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis
from needs import skip_or_fail


class RedisServer:
    """``redis-server`` on a free 127.0.0.1 port, without persistence (a restart starts empty).

    Examples
    --------
    >>> server = RedisServer(tmp_path).start()  # doctest: +SKIP
    >>> server.address  # doctest: +SKIP
    '127.0.0.1:40123'
    """

    STARTUP_S = 30  # generous: a loaded machine may take a while to start a process

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """``host:port``, as SDOH_REDIS takes it."""
        return f"127.0.0.1:{self.port}"

    def client(self, db: int = 0) -> redis.Redis:
        """A client of this server's database ``db``."""
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=10)

    def start(self) -> "RedisServer":
        """Start (again, on the same port) and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            skip_or_fail("redis-server is not installed: tests of a Redis of their own need it",
                         "SDOH_REQUIRE_SERVICES")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.STARTUP_S
        while True:
            try:
                if redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping():
                    return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}; see "
                                       f"{self.folder / 'redis.log'}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL by PID and reap it: the data is gone (no persistence)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def freeze(self) -> None:
        """SIGSTOP by PID: connections are accepted but nothing is answered."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT by PID."""
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM by PID and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.thaw()  # a stopped process would not act on SIGTERM
            self.process.terminate()
            self.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
