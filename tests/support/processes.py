"""`pgtopo` run as a real process (the virtualenv's entry point), its output read while it runs:
for what only a separate process shows (Ctrl-C, two commands at once)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PGTOPO = str(Path(sys.executable).parent / "pgtopo")


class Pgtopo:
    """``pgtopo ARGS`` started in the background; stdout and stderr collected line by line."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc = subprocess.Popen([PGTOPO, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "COLUMNS": "250"})
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream: object, lines: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return "\n".join([*self.out, *self.err])

    def wait_for_line(self, pattern: str, *, timeout: float = 120) -> str:
        """The first stderr or stdout line matching ``pattern`` (a regex), waiting for it to be printed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in [*self.err, *self.out]:
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None and all(not t.is_alive() for t in self._readers):
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} from pgtopo {' '.join(self.args)}:\n{self.output()}")

    def interrupt(self) -> float:
        """Ctrl-C (SIGINT, as a terminal sends it); returns when it was sent (time.monotonic())."""
        self.proc.send_signal(signal.SIGINT)
        return time.monotonic()

    def finish(self, *, timeout: float = 300) -> int:
        """Wait for the exit code (the output is read to its end)."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"pgtopo {' '.join(self.args)} still running after {timeout} s:\n{self.output()}") from None
        for t in self._readers:
            t.join(timeout=10)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def pgtopo(*args: str, timeout: float = 300) -> tuple[int, str]:
    """Run ``pgtopo ARGS`` to its end: (exit code, stdout and stderr)."""
    p = Pgtopo(*args)
    rc = p.finish(timeout=timeout)
    return rc, p.output()
