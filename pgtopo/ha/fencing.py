"""Fencing: make sure a node accepts connections from nowhere, and remember it until it rejoins.

A fenced node is recorded in the runtime state (``fenced``), and so is a node left stopped by a
step that failed halfway; ``unfence`` forgets it once it streams again. ``kill_node`` crashes a
node for drills, noting its last position first.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgtopo.errors import InputError, OperationFailed, PgtopoError
from pgtopo.ha.replication import now
from pgtopo.model.topology import Topology
from pgtopo.postgres import instance
from pgtopo.postgres.sql import query
from pgtopo.progress import Progress
from pgtopo.runtime import gateway, state
from pgtopo.runtime.waiting import poll

if TYPE_CHECKING:  # the Docker SDK itself is only imported by pgtopo.runtime
    from docker.models.containers import Container

DOWN = ("exited", "dead", "created")  # container states in which PostgreSQL cannot run
FENCE_STOP_TIMEOUT = 5  # a fast shutdown of a healthy primary takes well under a second


@dataclass(frozen=True)
class Fence:
    node: str
    method: str  # stopped, killed, disconnected, already down
    detail: str


def fence(topo: Topology, node: str, *, timeout: int, progress: Progress, kill: bool = False) -> Fence:
    """Make sure ``node`` accepts connections from nowhere: stopped, else cut off every network.

    The ready marker goes first, so a container restarted by anyone keeps PostgreSQL down.
    ``kill``: SIGKILL at once instead of a fast shutdown (nobody it could send its last WAL to
    can receive it).
    """
    # One list call tells a container that is down (the usual case after a crash) from one that
    # runs: four Docker calls less before the promotion than finding and inspecting it.
    listed = gateway.listed(topo.name, kind="node", node=node)
    if not listed:
        return _record_fence(topo, Fence(node, "already down", "no container"))
    if listed[0].status in DOWN:
        return _record_fence(topo, Fence(node, "already down", f"container {listed[0].status}"))
    c = gateway.find(topo.name, node)
    if c is None:
        return _record_fence(topo, Fence(node, "already down", "no container"))
    st = gateway.status(c)
    result: Fence | None = None
    if st in DOWN:
        result = Fence(node, "already down", f"container {st}")
    elif st == "running":
        progress(node, "fencing: docker kill" if kill else "fencing: docker stop (fast shutdown)")
        try:
            gateway.exec_in(c, ["rm", "-f", instance.READY_MARKER], user="root")
            if kill:
                gateway.kill(c)
                poll(lambda: gateway.status(c) not in ("running", "restarting"), timeout=timeout, interval=0.05)
            else:
                gateway.stop(c, timeout=timeout)
        except PgtopoError:
            with contextlib.suppress(PgtopoError):
                gateway.kill(c)
        st = gateway.status(c)
        if st not in ("running", "paused", "restarting"):
            result = Fence(node, "killed" if kill else "stopped", f"container {st}")
    if result is None:
        progress(node, f"fencing: disconnecting from every network (container {st}, cannot be stopped)")
        nets = gateway.disconnect_all(c)
        result = Fence(node, "disconnected", f"container {st}, removed from {', '.join(nets) or 'no network'}")
    st = gateway.status(c)
    left = gateway.network_names(c) if st in ("running", "paused", "restarting") else []
    if left:
        raise OperationFailed(f"still {st} and attached to {', '.join(left)}: not fenced", node=node, step="fence")
    return _record_fence(topo, result)


def _record_fence(topo: Topology, f: Fence) -> Fence:
    rec = state.FenceRecord(method=f.method, detail=f.detail, at=now())
    state.update(topo.name, lambda rt: rt.model_copy(update={"fenced": {**rt.fenced, f.node: rec}}))
    return f


def unfence(topo: Topology, node: str) -> None:
    state.update(topo.name, lambda rt: rt.model_copy(
        update={"fenced": {n: f for n, f in rt.fenced.items() if n != node}}))  # unchanged when not fenced: no write


def leave_stopped(topo: Topology, c: Container, *, node: str, why: str) -> None:
    """After a failure halfway: stopped, fenced, never wiped by `up` nor started as it was."""
    with contextlib.suppress(PgtopoError):
        gateway.exec_in(c, ["rm", "-f", instance.READY_MARKER], user="root")
        gateway.stop(c, timeout=30)
    _record_fence(topo, Fence(node, "stopped", f"{why}; `pgtopo rejoin` retries"))


def kill_node(topo: Topology, node: str) -> str:
    """SIGKILL a node's container (a crash, for drills). Returns its last known position if primary."""
    topo.node(node)
    c = gateway.find(topo.name, node)
    st = "missing" if c is None else gateway.status(c)
    if c is None or st != "running":
        raise InputError(f"{node} is not running (container {st})")
    last = ""
    try:
        rows = query(topo, node, "SELECT pg_current_wal_lsn()::text, substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
                     " WHERE NOT pg_is_in_recovery()", step="read position")
        if rows:
            last = str(rows[0][0])
            rec = state.LastKnown(lsn=last, timeline=int(str(rows[0][1]), 16), at=now())
            state.update(topo.name, lambda rt: rt.model_copy(update={"last_known": {**rt.last_known, node: rec}}))
    except PgtopoError:
        pass
    gateway.kill(c)
    return last
