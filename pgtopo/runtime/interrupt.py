"""Ctrl-C reaches every thread of a command, so that it answers at once.

Python delivers SIGINT to the main thread only, as ``KeyboardInterrupt``. A command whose steps
run in worker threads (`up`'s waves, a failover's parallel waits) would then sit in its thread
pool's exit until they end: minutes, for a subscription's initial copy. So:

- `install` (the CLI calls it once) makes SIGINT also raise a flag; `check`, which
  `pgtopo.runtime.waiting.poll` calls on every round, raises `Cancelled` in a worker thread once
  the flag is up. A worker that waits stops within a fraction of a second. The main thread
  already has its ``KeyboardInterrupt``, and keeps waiting (a cleanup it does, such as restarting
  a stopped node, is not cut short).
- `Pool` is a thread pool whose ``with`` block, left by a ``KeyboardInterrupt``, raises the flag
  too, cancels what has not started and does not wait for the workers.
- `leave` ends an interrupted process without waiting for a worker stuck in a call that cannot
  be interrupted (a ``docker exec`` of pg_basebackup): whatever it left half done, the next run of
  the command finds and repairs (the steps are written so).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from types import FrameType, TracebackType

_cancelled = False  # a plain flag: the signal handler must not take locks (an Event would)


class Cancelled(KeyboardInterrupt):
    """Raised in a worker thread that was waiting when the command was interrupted."""


def _on_sigint(_signum: int, _frame: FrameType | None) -> None:
    global _cancelled
    _cancelled = True
    raise KeyboardInterrupt


def install() -> None:
    """Ctrl-C: KeyboardInterrupt in the main thread, as always, and the flag for the others."""
    signal.signal(signal.SIGINT, _on_sigint)


def cancel() -> None:
    """Raise the flag (a KeyboardInterrupt that did not come through `install`'s handler)."""
    global _cancelled
    _cancelled = True


def reset() -> None:
    """Lower the flag: the interrupted command is over (for callers that go on in the same process)."""
    global _cancelled
    _cancelled = False


def cancelled() -> bool:
    return _cancelled


def check() -> None:
    """In a worker thread of an interrupted command: raise `Cancelled`."""
    if _cancelled and threading.current_thread() is not threading.main_thread():
        raise Cancelled


class Pool(ThreadPoolExecutor):
    """A thread pool that, left by Ctrl-C, stops its waiting workers and does not wait for the rest."""

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            cancel()
            self.shutdown(wait=False, cancel_futures=True)
            return False
        return super().__exit__(exc_type, exc, tb)


def leave(code: int) -> None:
    """End the process with ``code`` now if a worker thread is still busy; else return (normal exit).

    Only after an interrupt: a normal exit would wait for those threads.
    """
    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if not busy:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
