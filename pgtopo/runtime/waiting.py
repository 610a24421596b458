"""The one way pgtopo waits: poll a check until it holds, with a deadline.

:func:`poll` returns what the check returned, or None when the time is up (for measuring);
:func:`wait_for` fails instead, with ``OperationFailed`` naming the node and the step and
carrying the container's last log lines, and notices a container that stopped meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

from pgtopo.errors import OperationFailed
from pgtopo.runtime import gateway, interrupt

if TYPE_CHECKING:  # only gateway.py imports docker at run time
    from docker.models.containers import Container

T = TypeVar("T")
_SLICE = 0.25  # longest sleep between two looks at the interrupt flag
_STOPPED = object()


def poll(check: Callable[[], T | None], *, timeout: float, interval: float = 0.2) -> T | None:
    """``check()`` until it returns a truthy value (returned) or ``timeout`` s pass (None).

    In a worker thread of a command interrupted by Ctrl-C it raises ``interrupt.Cancelled`` at
    the next round (sleeps are cut into short slices for that).
    """
    deadline = time.monotonic() + timeout
    while True:
        interrupt.check()
        result = check()
        if result:
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        wake = time.monotonic() + min(interval, left)
        while (rest := wake - time.monotonic()) > 0:
            time.sleep(min(rest, _SLICE))
            interrupt.check()


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str, step: str, node: str | None = None,
             container: Container | None = None, interval: float = 0.2,
             last_seen: Callable[[], str] | None = None) -> T:
    """``check()`` until it returns a truthy value, which is returned.

    Fails after ``timeout`` s ("timed out after N s waiting for WHAT (LAST SEEN)") or as soon as
    ``container`` is no longer running; the error names ``node`` and ``step`` and carries the
    container's last log lines when a container is given. Errors raised by ``check`` propagate:
    a check that should survive a failed attempt catches it and returns None.
    """
    stopped = False

    def attempt() -> T | None:
        nonlocal stopped
        if container is not None and gateway.status(container) != "running":
            stopped = True
            return cast(T, _STOPPED)  # truthy: ends the polling at once
        return check()

    result = poll(attempt, timeout=timeout, interval=interval)
    if result is not None and not stopped:
        return result
    why = (f"the container stopped while waiting for {what}" if stopped
           else f"timed out after {timeout:.0f} s waiting for {what}")
    seen = last_seen() if last_seen is not None else ""
    raise OperationFailed(f"{why} ({seen})" if seen else why, node=node, step=step,
                          logs=gateway.logs(container) if container is not None else None)
