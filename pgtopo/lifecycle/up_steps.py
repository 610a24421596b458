"""What an `up` did so far, told by its own progress: what an interrupted `up` reports."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from pgtopo.model.topology import Topology
from pgtopo.progress import Progress


class UpSteps:
    """`up`'s progress, passed on and remembered: what an interrupted `up` says it did."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._guard = threading.Lock()  # the workers of a wave report at once
        self.existing: set[str] = set()  # running before this `up`
        self.last: dict[str, str] = {}
        self.ready: set[str] = set()
        self.subscriptions: list[str] = []  # begun by this `up`

    def __call__(self, subject: str, message: str) -> None:
        with self._guard:
            self.last[subject] = message
            if message == "ready":
                self.ready.add(subject)
            begun = re.match(r"subscription (\S+) to ", message)
            if begun:
                self.subscriptions.append(begun.group(1))
        self._progress(subject, message)

    def report(self, topo: Topology, *, topo_path: Path) -> list[str]:
        nodes = topo.node_names()
        new = [n for n in nodes if n not in self.existing]
        groups = [("ready", [n for n in new if n in self.ready]),
                  ("stopped halfway", [f"{n} ({self.last[n]})" for n in new if n not in self.ready and n in self.last]),
                  ("not started", [n for n in new if n not in self.ready and n not in self.last]),
                  ("running before this `up`", [n for n in nodes if n in self.existing])]
        lines = [f"`up` of topology '{topo.name}' stopped before it finished"]
        lines.extend(f"{what}: {', '.join(names)}" for what, names in groups if names)
        if self.subscriptions:
            lines.append(f"subscriptions begun: {', '.join(self.subscriptions)} (PostgreSQL goes on with their initial "
                         "copy; the next `up` waits for it)")
        lines.append(f"run `pgtopo up {topo_path}` again: it keeps what is ready and does the rest")
        return lines
