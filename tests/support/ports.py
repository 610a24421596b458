"""A made-up port map of a running topology, as ``pgtopo.apps.endpoints.live_ports`` would read it."""

from __future__ import annotations

from pgtopo.apps.endpoints import PortMap
from pgtopo.model.topology import Topology


def ports(topo: Topology, *, running: list[str] | None = None) -> PortMap:
    """Node n publishes 5000 + its index; relay listener L publishes 20000 + (L - 10000)."""
    names = topo.node_names()
    up = names if running is None else running
    relay = {topo.relay_port(r, n): 20000 + topo.relay_port(r, n) - 10000
             for r in topo.regions for n in names if topo.node(n).region != r}
    return PortMap(nodes={n: 5000 + names.index(n) for n in up}, relay=relay)
