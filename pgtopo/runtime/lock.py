"""The command lock: one command at a time changes a topology.

Two commands that change the same topology at once undo each other: two `up`s remove each other's
half-built containers, an `up` begun before a failover writes the old primary back. So every
command that changes a topology holds its command lock from start to end, and a second one waits
for it (or, told not to wait, refuses) naming the holder. Commands that only read never take it.

It is an ``flock`` on ``command.lock`` in the topology's state directory, separate from the short
lock `state.update` holds around one read-modify-write: the kernel releases it when the process
ends, however it ends, so a lock whose holder died is free. The holder writes who it is (pid,
command line, start time) into the file, which a waiting command reads to say what it waits for.

Only `up` creates the state directory to lock in. Without one nothing of the topology runs
(`up` writes the passwords there before it creates anything), so another command has nothing to
wait for: it goes on unlocked, and bad input is refused without leaving a directory behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pgtopo.errors import PgtopoError
from pgtopo.progress import Progress, quiet
from pgtopo.runtime.state import topology_dir
from pgtopo.runtime.waiting import poll

LOCK_FILE = "command.lock"
WAIT_S = 900.0  # longer than a slow `up` (each subscription's initial copy may take 300 s)
REMIND_S = 30.0  # a waiting command says again, now and then, that it is still waiting



class _Held(threading.local):
    """Names this thread holds, with how often: a nested acquisition (an entry point that locks,
    called inside a command that holds the lock) must not wait for itself, since two flocks on the
    same file conflict even within one process. Another thread of the process does wait."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}


_held = _Held()


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    started: float  # time.time()

    def describe(self, *, now: float | None = None) -> str:
        ago = max(0.0, (time.time() if now is None else now) - self.started)
        at = time.strftime("%H:%M:%S", time.localtime(self.started))
        return f"`{self.command}` (pid {self.pid}, started {at}, {ago:.0f} s ago)"


class TopologyBusy(PgtopoError):
    """Another command holds the topology's command lock (refused with --no-wait, or waited too long)."""


def lock_path(name: str) -> Path:
    return topology_dir(name) / LOCK_FILE


def holder(name: str) -> Holder | None:
    """Who holds the lock, as it wrote itself down (None: nobody wrote, or it is being written)."""
    try:
        data = json.loads(lock_path(name).read_text() or "null")
        return Holder(pid=int(data["pid"]), command=str(data["command"]), started=float(data["started"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _who(h: Holder | None) -> str:
    return h.describe() if h is not None else "another pgtopo command"


@contextmanager
def command_lock(name: str, *, command: str, wait: bool = True, timeout: float | None = None,
                 progress: Progress = quiet, create: bool = False) -> Iterator[None]:
    """Hold topology ``name``'s command lock for the block; ``command`` is what others see waiting.

    Taken at once when free; else ``wait`` polls until it is free (saying so through ``progress``,
    and again every ``REMIND_S``) and fails after ``timeout`` s (default ``WAIT_S``), and
    ``wait=False`` fails at once: both with ``TopologyBusy`` naming the holder. Without ``create``,
    a topology that has no state directory is not locked (see the module's description).
    """
    counts = _held.counts
    if counts.get(name, 0) > 0:
        counts[name] += 1
        try:
            yield
        finally:
            counts[name] -= 1
        return
    if not create and not topology_dir(name).is_dir():
        yield
        return
    path = lock_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd, name, wait=wait, timeout=WAIT_S if timeout is None else timeout, progress=progress)
        record = json.dumps({"pid": os.getpid(), "command": command, "started": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode() + b"\n", 0)
        counts[name] = 1
        try:
            yield
        finally:
            counts.pop(name, None)
            os.ftruncate(fd, 0)  # nobody holds it: a waiter reading now must not name this command
    finally:
        os.close(fd)  # releases the flock


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _acquire(fd: int, name: str, *, wait: bool, timeout: float, progress: Progress) -> None:
    if _try(fd):
        return
    if not wait:
        raise TopologyBusy(f"topology '{name}' is busy: {_who(holder(name))} is changing it",
                           details=["try again when it has finished, or leave out --no-wait to wait for it"])
    started = time.monotonic()
    said = -REMIND_S

    def free() -> bool:
        nonlocal said
        if _try(fd):
            return True
        waited = time.monotonic() - started
        h = holder(name)
        # The holder writes its name just after it took the lock: give it a moment before saying
        # "another pgtopo command".
        if waited - said >= REMIND_S and (h is not None or waited >= 1.0):
            said = waited
            still = f" (still, after {waited:.0f} s)" if waited >= REMIND_S else ""
            progress("lock", f"waiting for {_who(h)} to finish{still}")
        return False

    if not poll(free, timeout=timeout, interval=0.2):
        raise TopologyBusy(f"gave up after {timeout:.0f} s waiting for {_who(holder(name))} to finish "
                           f"changing topology '{name}'", details=["try again when it has finished"])
