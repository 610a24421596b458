"""Where each cluster's primary is, as a drill sees it.

A cluster pgtopo fails over (``ha: manual``) has the primary pgtopo's state names. A cluster
Patroni keeps alive (``ha: patroni``) moves its leader without pgtopo knowing: its primary is
the one member accepting writes (asked live), and the state's when none or several do.
"""

from __future__ import annotations

from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot
from pgtopo.runtime import state

SNAPSHOT_TIMEOUT_S = 5.0


def managed(topo: Topology, cluster: str) -> bool:
    """Whether a manager (Patroni) fails the cluster over, not pgtopo."""
    return topo.clusters[cluster].ha == "patroni"


def current(topo: Topology) -> dict[str, str]:
    out = dict(state.current_primaries(topo))
    patroni = [c for c in topo.clusters if managed(topo, c)]
    if patroni:
        snap = snapshot.collect(topo, nodes=[n for c in patroni for n in topo.clusters[c].nodes],
                                timeout=SNAPSHOT_TIMEOUT_S, light=True)
        for c in patroni:
            writable = snap.writable(c)
            if len(writable) == 1:
                out[c] = writable[0]
    return out
