"""Simulated WAN latency: the relay's configuration, derived from the topology.

This kernel (like many CI hosts) has no netem, so cross-region traffic goes through a
userspace relay container attached to every region network (``pgtopo/relay.py``). Each
(source region, target node) pair in different regions has a listener; the relay delays each
direction by half the declared round trip, preserving order without capping throughput.
"""

from __future__ import annotations

from typing import Any

from pgtopo.topology import PG_PORT, Link, Topology

RELAY_NAME = "relay"
RELAY_ALIAS = "pgtopo-relay"
RELAY_CONF = "/etc/pgtopo/relay.json"


def link_key(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


def relay_config(topo: Topology, *, links: dict[str, dict[str, Any]] | None = None,
                 peers: dict[str, str] | None = None, partitioned: list[str] | None = None) -> dict[str, Any]:
    """The relay's JSON config. ``links`` overrides the file's latencies (``latency set``)."""
    listeners = []
    for region in topo.regions:
        for _c, node, spec in topo.all_nodes():
            if spec.region == region:
                continue
            listeners.append({
                "port": topo.relay_port(region, node), "src": region, "dst": spec.region,
                "target_node": node, "target_host": node, "target_port": PG_PORT,
            })
    declared = {link_key(*lk.between): _link_json(lk) for lk in topo.latency}
    declared.update(links or {})
    return {
        "listeners": listeners,
        "links": dict(sorted(declared.items())),
        "peers": dict(sorted((peers or {}).items())),
        "partitioned": sorted(set(partitioned or [])),
    }


def _link_json(link: Link) -> dict[str, Any]:
    return {"rtt_ms": link.rtt_ms, "jitter_ms": link.jitter_ms, "bandwidth_kbps": link.bandwidth_kbps}


def parse_duration_ms(text: str) -> float:
    """'120ms', '0.2s', '120' -> milliseconds."""
    t = text.strip().lower()
    try:
        if t.endswith("ms"):
            return float(t[:-2])
        if t.endswith("s"):
            return float(t[:-1]) * 1000
        return float(t)
    except ValueError:
        raise ValueError(f"'{text}' is not a duration (examples: 120ms, 0.2s)") from None
