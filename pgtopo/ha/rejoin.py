"""Bring a fenced or failed node back as a replica: pg_rewind from the current primary, or a fresh clone.

The node streams from the primary, or from the replica the file puts it behind when that one
streams; the primary's synchronous settings then include it again. A rejoin that fails halfway
leaves the node stopped and fenced, so that neither `up` nor a restart brings it back as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgtopo.errors import InputError, OperationFailed, PgtopoError
from pgtopo.ha.candidates import upstream_of
from pgtopo.ha.failover import moved_after
from pgtopo.ha.fencing import leave_stopped, unfence
from pgtopo.ha.replication import converge_primary, create_slot, drop_slot, replica_conninfo
from pgtopo.ha.standby import on_volume, start_as_standby, stop_postgres
from pgtopo.ha.synchronous import SyncConfig
from pgtopo.model import render
from pgtopo.model.topology import Topology, endpoint, slot_name
from pgtopo.network import relay_container
from pgtopo.observe import snapshot
from pgtopo.postgres import instance
from pgtopo.postgres.sql import query
from pgtopo.postgres.streaming import streaming_standbys, wait_streaming
from pgtopo.progress import Progress
from pgtopo.runtime import gateway, state
from pgtopo.runtime.waiting import poll

if TYPE_CHECKING:  # the Docker SDK itself is only imported by pgtopo.runtime
    from docker.models.containers import Container


@dataclass(frozen=True)
class RejoinResult:
    node: str
    upstream: str
    primary: str
    method: str  # pg_rewind, no rewind needed, re-cloned, already streaming
    seconds: float
    detail: str
    sync_after: SyncConfig | None = None
    warnings: tuple[str, ...] = ()


def rejoin(topo: Topology, node: str, *, reclone: bool, progress: Progress) -> RejoinResult:
    """Bring ``node`` back as a replica (pg_rewind from the current primary; a fresh clone only
    with ``reclone`` when the rewind fails). It streams from the primary, or from the replica
    the file puts it behind when that one streams."""
    t0 = time.monotonic()
    cluster = topo.cluster_of(node)
    primary = state.current_primaries(topo)[cluster]
    if node == primary:
        raise InputError(f"{node} is the current primary of cluster {cluster}: nothing to rejoin")
    c = gateway.find(topo.name, node)
    if c is None:
        raise InputError(f"{node} has no container (removed?): nothing to rejoin")
    snap = snapshot.collect(topo, nodes=topo.clusters[cluster].nodes)
    p = snap.nodes[primary]
    if not (p.reachable and p.in_recovery is False):
        raise InputError(f"the primary of cluster {cluster}, {primary}, is not running and writable "
                         f"({p.error or p.container}): rejoin needs it (`pgtopo failover` first)")
    n = snap.nodes[node]
    if n.reachable and n.in_recovery and n.receiver_status == "streaming" and n.timeline == p.timeline:
        # Back by itself (a partition healed, say): the primary's synchronous settings count it again.
        sync, _slots = converge_primary(topo, cluster, primary)
        return RejoinResult(node, n.upstream or primary, primary, "already streaming", time.monotonic() - t0,
                            f"{node} already streams from {n.upstream} on timeline {n.timeline}", sync_after=sync)
    if n.reachable and n.in_recovery is False:
        progress(node, "WARNING: it is writable; whatever it wrote after the fork is discarded by pg_rewind")
    progress(node, "stopping PostgreSQL (the container stays, without the ready marker)")
    _stop_postgres_for_rewind(topo, c, node=node)
    try:
        return _rejoin_stopped(topo, c, snap, node=node, primary=primary, reclone=reclone, t0=t0, progress=progress)
    except PgtopoError:
        leave_stopped(topo, c, node=node, why="rejoin failed")
        raise


def _rejoin_stopped(topo: Topology, c: Container, snap: snapshot.Snapshot, *, node: str, primary: str, reclone: bool,
                    t0: float, progress: Progress) -> RejoinResult:
    cluster = topo.cluster_of(node)
    p = snap.nodes[primary]
    upstream = _rejoin_upstream(topo, snap, node=node, primary=primary)
    query(topo, primary, "CHECKPOINT", step="checkpoint before pg_rewind")
    create_slot(topo, on=upstream, slot=slot_name(node))
    method, detail = _rewind(topo, c, node=node, primary=primary, progress=progress)
    if method == "failed":
        if not reclone:
            raise OperationFailed(detail, node=node, step="pg_rewind", logs=gateway.logs(c),
                                  hint=f"`pgtopo rejoin FILE {node} --reclone` copies it afresh from {primary}")
        method, detail = _reclone(topo, c, node=node, primary=primary, progress=progress, why=detail)
    progress(node, f"starting as a replica of {upstream}")
    behind = [slot_name(x.node) for x in snap.cluster_nodes(cluster)
              if x.node != node and upstream_of(topo, x) == node]
    start_as_standby(topo, c, node=node, upstream=upstream, primary=primary, keep_slots=behind)
    try:
        wait_streaming(topo, node, timeline=p.timeline)
    except PgtopoError as exc:
        if not reclone or method == "re-cloned":
            raise OperationFailed(exc.message, node=node, step="wait for streaming", logs=gateway.logs(c),
                                  hint=None if reclone else f"`pgtopo rejoin FILE {node} --reclone` copies it afresh"
                                  ) from None
        stop_postgres(topo, c, timeout=30)
        method, detail = _reclone(topo, c, node=node, primary=primary, progress=progress, why=exc.message)
        start_as_standby(topo, c, node=node, upstream=upstream, primary=primary, keep_slots=behind)
        wait_streaming(topo, node, timeline=None)
    unfence(topo, node)
    if upstream != primary:
        drop_slot(topo, on=primary, slot=slot_name(node))  # from when it streamed from the primary
    else:
        _wait_listed(topo, primary, node)
    sync, _slots = converge_primary(topo, cluster, primary)
    state.update(topo.name, lambda rt: rt.model_copy(
        update={"moved": moved_after(topo, rt.moved, pointed={node: upstream})}))
    return RejoinResult(node, upstream, primary, method, time.monotonic() - t0, detail, sync_after=sync)


def _wait_listed(topo: Topology, primary: str, node: str, timeout: float = 15) -> None:
    """Until the primary counts ``node`` among its standbys (so the synchronous settings include it)."""
    poll(lambda: node in streaming_standbys(topo, primary), timeout=timeout)


def _rejoin_upstream(topo: Topology, snap: snapshot.Snapshot, *, node: str, primary: str) -> str:
    """The file's upstream when it is another replica streaming now (a cascade), else the primary."""
    file_up = topo.node(node).upstream
    cl = topo.clusters[topo.cluster_of(node)]
    if file_up is None or file_up == cl.primary_name or file_up == primary:
        return primary
    up = snap.nodes.get(file_up)
    if up is not None and up.reachable and up.in_recovery and up.receiver_status == "streaming":
        return file_up
    return primary


def _stop_postgres_for_rewind(topo: Topology, c: Container, *, node: str) -> None:
    """PostgreSQL down, container running, attached to its region network under its name."""
    st = gateway.status(c)
    if st in ("running", "paused"):
        if st == "paused":
            gateway.unpause(c)
        instance.run(c, "remove ready marker", ["rm", "-f", instance.READY_MARKER], user="root")
        gateway.stop(c, timeout=30)
    else:
        on_volume(topo, c, ["rm", "-f", instance.READY_MARKER], step="remove ready marker")
    region = topo.node(node).region
    net = gateway.ensure_network(topo.name, region, subnet=topo.regions[region].subnet)
    reconnected = gateway.connect_network(c, net, aliases=[node])
    gateway.start(c)
    if reconnected:
        relay_container.update_relay(topo)


def _rewind(topo: Topology, c: Container, *, node: str, primary: str, progress: Progress) -> tuple[str, str]:
    ep = endpoint(topo, from_region=topo.node(node).region, node=primary)
    source = render.conninfo(host=ep.host, port=ep.port, user="pgtopo", application_name=f"pg_rewind-{node}",
                             dbname="postgres")
    # pg_rewind may first run crash recovery in single-user mode, which refuses standby.signal.
    instance.run(c, "remove standby.signal", ["rm", "-f", f"{instance.PGDATA}/standby.signal"])
    progress(node, f"pg_rewind from {primary}")
    # --config-file: the node's own settings (wal_level, slots) for that recovery, not PGDATA's defaults.
    res = gateway.exec_in(c, ["pg_rewind", "-D", instance.PGDATA, f"--config-file={render.CONF_DIR}/postgresql.conf",
                              f"--source-server={source}"])
    text = (res.stdout + res.stderr).strip()
    if res.rc != 0:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return "failed", f"pg_rewind failed: {lines[-1] if lines else f'exit code {res.rc}'}"
    if "no rewind required" in text:
        return "no rewind needed", f"pg_rewind: no rewind required; it follows {primary}'s timeline"
    return "pg_rewind", f"rewound with pg_rewind from {primary}"


def _reclone(topo: Topology, c: Container, *, node: str, primary: str, progress: Progress, why: str) -> tuple[str, str]:
    progress(node, f"re-cloning from {primary} ({why})")
    instance.run(c, "empty data directory", ["find", instance.PGDATA, "-mindepth", "1", "-delete"])
    create_slot(topo, on=primary, slot=slot_name(node))
    instance.clone(c, conninfo=replica_conninfo(topo, node=node, upstream=primary), slot=slot_name(node))
    return "re-cloned", f"fresh copy from {primary} with pg_basebackup ({why})"
