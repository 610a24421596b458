"""Synchronous replication: ``synchronous_standby_names`` parsed, and what a primary should wait for (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgtopo.model.topology import Topology
from pgtopo.observe.snapshot import Snapshot


@dataclass(frozen=True)
class SyncConfig:
    """A parsed ``synchronous_standby_names``: ``ANY n (...)`` or ``FIRST n (...)``."""

    method: str
    count: int
    standbys: tuple[str, ...]
    source: str = "file"

    def text(self) -> str:
        if not self.standbys:
            return ""
        names = ", ".join(f'"{n}"' for n in self.standbys)
        return f"{self.method.upper()} {self.count} ({names})"

    def needed_for_safety(self) -> int:
        """How many listed standbys must be seen to be sure one holds every acknowledged commit.

        An acknowledged commit is on ``count`` of the ``n`` listed standbys (which ones is not
        known once the primary is gone), so any ``n - count + 1`` of them include one of those.
        """
        return len(self.standbys) - self.count + 1


_SSN_RE = re.compile(r"^\s*(?:(ANY|FIRST)\s+)?(?:(\d+)\s*\()?(.*?)\)?\s*$", re.IGNORECASE | re.DOTALL)


def parse_sync(value: str | None, *, source: str) -> SyncConfig | None:
    """``synchronous_standby_names`` as PostgreSQL reads it (None when empty)."""
    if not value or not value.strip():
        return None
    m = _SSN_RE.match(value)
    if m is None:
        return None
    method = (m.group(1) or "first").lower()
    count = int(m.group(2)) if m.group(2) else 1
    names = tuple(n.strip().strip('"') for n in m.group(3).split(",") if n.strip())
    if not names:
        return None
    return SyncConfig(method=method, count=count, standbys=names, source=source)


def intended_sync(topo: Topology, cluster: str, *, primary: str, available: set[str] | None) -> SyncConfig | None:
    """The file's synchronous standbys as they apply to ``primary``.

    When another node than the file's primary leads, that node leaves the list and the file's
    primary joins at its end (it is a standby now). ``available`` keeps only standbys that can
    acknowledge (streaming from ``primary``): a primary never waits for a standby that is gone.
    The count shrinks to the standbys left; with none left the cluster runs asynchronously.
    """
    sync = topo.clusters[cluster].synchronous
    if sync is None:
        return None
    file_primary = topo.clusters[cluster].primary_name
    names = [n for n in sync.standbys if n != primary]
    if primary != file_primary and file_primary not in names:
        names.append(file_primary)
    if available is not None:
        names = [n for n in names if n in available]
    if not names:
        return None
    return SyncConfig(method=sync.method, count=min(sync.count, len(names)), standbys=tuple(names), source="file")


def effective_sync(topo: Topology, snap: Snapshot, cluster: str, *, primary: str,
                   recorded: SyncConfig | None) -> SyncConfig | None:
    """What the old primary was really waiting for: its live setting, else the state, else the file."""
    if topo.clusters[cluster].synchronous is None:
        return None
    old = snap.nodes.get(primary)
    if old is not None and old.reachable and old.in_recovery is False:
        return parse_sync(old.settings.get("synchronous_standby_names"), source=f"live setting on {primary}")
    if recorded is not None:
        return recorded
    return intended_sync(topo, cluster, primary=primary, available=None)
