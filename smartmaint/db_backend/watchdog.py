"""A client-side deadline for SQL statements, for a database that stops answering altogether.

``statement_timeout`` is enforced by the server; a frozen server (a hung host, a stalled network path, a
SIGSTOPped process) enforces nothing, and its kernel still acknowledges our packets, so TCP never gives up
either: the query, and the web worker thread running it, would wait for ever. One daemon thread per process
watches the statements in flight and shuts down the socket of any that outlives its deadline; psycopg then
raises OperationalError (a 503 for API clients), and Django discards the broken connection.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count

# How often the watchdog looks at the deadlines: a statement may outlive its deadline by this much.
TICK = 0.25


class Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadlines: dict[int, tuple[float, int]] = {}  # token -> (deadline, socket fd)
        self._tokens = count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def guard(self, fd: int, seconds: float) -> Iterator[None]:
        """Within the block, the socket ``fd`` is shut down once ``seconds`` have passed."""
        token = next(self._tokens)
        with self._lock:
            self._deadlines[token] = (time.monotonic() + seconds, fd)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sql-watchdog", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._deadlines.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(TICK)
            now = time.monotonic()
            with self._lock:
                # Under the lock: an entry still present means its statement still runs, so the fd is still
                # that connection's socket (it cannot have been closed and reused meanwhile).
                for token, (deadline, fd) in list(self._deadlines.items()):
                    if deadline <= now:
                        del self._deadlines[token]
                        _shut_down(fd)


def _shut_down(fd: int) -> None:
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to wake


WATCHDOG = Watchdog()
