"""A deadline for client operations: a partition blackholes traffic (sockets stay open, nothing
answers) and a paused node never replies, so a client waiting on its socket would wait forever.

:class:`Deadlines` runs one thread; ``with deadlines.guard(conn, seconds):`` shuts the
connection's socket down if the block is still running when the time is up, which makes the
blocked psycopg call fail at once (the connection is then broken, as after a network error).
The socket is shut down through a duplicate descriptor and never closed, so the descriptor
cannot be reused under psycopg's feet.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg


def cut(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket down (both ways); psycopg then sees the server gone."""
    with contextlib.suppress(OSError, psycopg.Error, ValueError):
        fd = os.dup(conn.pgconn.socket)
        s = socket.socket(fileno=fd)
        try:
            s.shutdown(socket.SHUT_RDWR)
        finally:
            s.close()


class Deadlines:
    def __init__(self, *, tick: float = 0.05) -> None:
        self._tick = tick
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[float, psycopg.Connection[Any]]] = {}
        self._ids = itertools.count()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-deadlines", daemon=True)
        self.fired = 0
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.wait(self._tick):
            now = time.monotonic()
            with self._lock:
                due = [k for k, (at, _c) in self._armed.items() if at <= now]
                for k in due:
                    _at, conn = self._armed.pop(k)
                    cut(conn)
                    self.fired += 1

    def arm(self, conn: psycopg.Connection[Any], seconds: float) -> int:
        """Cut ``conn`` in ``seconds`` unless :meth:`disarm` is called with the key returned first."""
        key = next(self._ids)
        with self._lock:
            self._armed[key] = (time.monotonic() + seconds, conn)
        return key

    def disarm(self, key: int) -> None:
        with self._lock:
            self._armed.pop(key, None)

    @contextlib.contextmanager
    def guard(self, conn: psycopg.Connection[Any], seconds: float) -> Iterator[None]:
        key = self.arm(conn, seconds)
        try:
            yield
        finally:
            self.disarm(key)

    def close(self) -> None:
        self._halt.set()
        self._thread.join(timeout=5)
