"""Another process holding a topology's command lock, as a concurrent pgtopo command would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLD = """
import sys, time
from pgtopo.runtime import lock
with lock.command_lock(sys.argv[1], command=sys.argv[2], create=True):
    print("held", flush=True)
    sys.stdin.readline()  # until told (or killed)
print("released", flush=True)
"""


@contextmanager
def held_elsewhere(name: str, *, state_dir: Path, command: str = "pgtopo failover t.yaml --yes"
                   ) -> Iterator[subprocess.Popen[str]]:
    """A child process that holds ``name``'s command lock until a line is written to its stdin."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, name, command], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PGTOPO_STATE_DIR": str(state_dir)})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def release(proc: subprocess.Popen[str]) -> None:
    """Let the holder leave its lock."""
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
