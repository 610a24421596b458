"""Is the running topology in a state a drill can start from? (pure: a snapshot and the state)

A drill measures what its own faults do, so it starts from a whole topology: every node up, one
writable node per cluster (the one the state names), every replica streaming, every subscription
working, no partition, no latency override, no fenced node. Anything else is listed with the
command that mends it.
"""

from __future__ import annotations

from collections.abc import Mapping

from pgtopo.drill.targets import Target
from pgtopo.model.patroni import synchronous_count
from pgtopo.model.topology import Topology
from pgtopo.observe.snapshot import Snapshot
from pgtopo.runtime.state import RuntimeState


def problems(topo: Topology, snap: Snapshot, rt: RuntimeState, t: Target,
             primaries: Mapping[str, str] | None = None) -> list[str]:
    """``primaries``: where each cluster's primary is (default: the state's; a Patroni cluster's
    is the member accepting writes, see :mod:`pgtopo.drill.primaries`)."""
    out: list[str] = []
    if primaries is None:
        primaries = rt.primaries_of(topo)
    for cluster in topo.clusters:
        writable = snap.writable(cluster)
        if writable != [primaries[cluster]]:
            out.append(f"cluster {cluster}: writable {', '.join(writable) or 'nothing'}, the state's primary is "
                       f"{primaries[cluster]}")
        lacking = _synchronous_lacking(topo, snap, cluster, primaries[cluster])
        if lacking:
            out.append(lacking)
        for n in snap.cluster_nodes(cluster):
            if not n.reachable:
                out.append(f"{n.node} is down ({n.error or n.container}): `pgtopo rejoin FILE {n.node}`")
            elif n.in_recovery and n.receiver_status != "streaming":
                out.append(f"{n.node} does not stream ({n.receiver_status or 'no WAL receiver'})")
    for s in t.subscribers:
        host = snap.nodes.get(primaries[s.cluster])
        if host is None or not host.reachable:
            continue
        sub = next((x for x in host.subscriptions if x.name == s.subscription), None)
        if sub is None or not sub.worker_running or not sub.enabled:
            out.append(f"subscription {s.subscription} on {host.node} is not working")
    if rt.partitioned:
        out.append(f"partitioned: {', '.join(rt.partitioned)}: `pgtopo heal FILE`")
    if rt.links:
        out.append(f"latency overridden on {', '.join(k.replace('|', ' <-> ') for k in rt.links)}: "
                   "`pgtopo latency reset FILE`")
    for fenced in rt.fenced:
        if not any(fenced in p for p in out):
            out.append(f"{fenced} is fenced: `pgtopo rejoin FILE {fenced}`")
    return out


def _synchronous_lacking(topo: Topology, snap: Snapshot, cluster: str, primary: str) -> str | None:
    """A Patroni cluster in synchronous mode whose leader does not yet count as many synchronous
    standbys as it could (a member rejoined moments ago; Patroni adds it on a later loop): a crash
    now would find no synchronous candidate and Patroni would promote nobody."""
    cl = topo.clusters[cluster]
    host = snap.nodes.get(primary)
    if cl.ha != "patroni" or cl.synchronous is None or host is None or not host.reachable:
        return None
    streaming = [d for d in host.downstream if d.state == "streaming" and d.application_name in cl.nodes]
    eligible = [d for d in streaming if synchronous_count(topo, d.application_name) is not None]
    counted = [d.application_name for d in streaming if d.sync_state in ("sync", "quorum")]
    wanted = min(cl.synchronous.count, len(eligible))
    if len(counted) >= wanted:
        return None
    return (f"cluster {cluster}: Patroni counts {len(counted)} synchronous standby(s) of {primary}, "
            f"{wanted} could be ({', '.join(d.application_name for d in eligible)}): it adds a rejoined member on "
            "a later loop; wait a loop (loop_wait) and run the drill again")
