"""Physical streaming seen from the nodes: who streams from a primary, and waiting for a
standby to stream (on a given timeline)."""

from __future__ import annotations

from pgtopo.errors import PgtopoError
from pgtopo.model.topology import Topology
from pgtopo.postgres.sql import query
from pgtopo.runtime import gateway
from pgtopo.runtime.waiting import wait_for

STREAM_TIMEOUT = 60.0


def streaming_standbys(topo: Topology, node: str) -> list[str]:
    """The nodes streaming (or catching up) from ``node`` now, in file order."""
    rows = query(topo, node, "SELECT application_name FROM pg_stat_replication WHERE state IN ('streaming', 'catchup')",
                 step="read standbys")
    names = {str(r[0]) for r in rows}
    return [n for n in topo.node_names() if n in names]


def wait_streaming(topo: Topology, node: str, *, timeline: int | None = None, timeout: float = STREAM_TIMEOUT) -> None:
    """Until ``node``'s WAL receiver streams (from timeline ``timeline`` when given).

    A node that does not answer yet (restarting) is asked again; the error at the deadline says
    what was seen last and carries the container's log lines.
    """
    last = "no WAL receiver"

    def streaming() -> bool:
        nonlocal last
        try:
            rows = query(topo, node, "SELECT status, received_tli FROM pg_stat_wal_receiver", step="wait for streaming")
        except PgtopoError as exc:
            last = exc.message
            return False
        if not rows:
            last = "no WAL receiver"
            return False
        status, tli = rows[0]
        last = f"{status} on timeline {tli}"
        return status == "streaming" and (timeline is None or tli == timeline)

    wait_for(streaming, timeout=timeout, what="the WAL receiver to stream", step="wait for streaming", node=node,
             container=gateway.find(topo.name, node), last_seen=lambda: last)
