"""Carry out a switchover: a planned change of primary with zero loss.

The old primary stops cleanly (its last WAL goes to the standbys), the candidate is promoted once
it replayed the shutdown checkpoint, and the old primary restarts as a replica of the new one.
The candidate's preparation, the promotion and what follows it are the failover's
(``pgtopo.ha.promotion``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import psycopg

from pgtopo.errors import InputError, OperationFailed, PgtopoError
from pgtopo.ha import promotion
from pgtopo.ha.dataloss import Loss
from pgtopo.ha.failover import Plan
from pgtopo.ha.fencing import leave_stopped, unfence
from pgtopo.ha.rejoin import rejoin
from pgtopo.ha.replication import container, create_slot
from pgtopo.ha.standby import controldata, start_as_standby, stop_postgres
from pgtopo.model.topology import Topology, slot_name
from pgtopo.postgres import connect, instance
from pgtopo.postgres.lsn import format_lsn, parse_lsn
from pgtopo.postgres.sql import query
from pgtopo.postgres.streaming import wait_streaming
from pgtopo.progress import Progress
from pgtopo.runtime.waiting import poll, wait_for

if TYPE_CHECKING:  # the Docker SDK itself is only imported by pgtopo.runtime
    from docker.models.containers import Container

SWITCHOVER_STOP_TIMEOUT = 60


def execute_switchover(topo: Topology, plan: Plan, *, started: float, progress: Progress) -> promotion.Outcome:
    """Stop the old primary cleanly, promote once the candidate replayed its last record, demote."""
    out = promotion.Outcome(plan=plan, warnings=list(plan.warnings))
    old, cand = plan.old_primary, plan.candidate
    for m in plan.subscribers:
        if m.action == "move" and not m.ready:
            progress(cand, f"waiting for failover slot {m.slot} to be sync-ready")
            _wait_sync_ready(topo, cand, m.slot)
    c_old = container(topo, old)
    progress(old, "stopping writes: clean shutdown (its last WAL goes to the standbys)")
    stop_postgres(topo, c_old, timeout=SWITCHOVER_STOP_TIMEOUT)
    ctl = controldata(c_old)
    final = parse_lsn(ctl.get("Latest checkpoint location"))
    if ctl.get("Database cluster state") != "shut down" or final is None:
        _restart(c_old)
        raise OperationFailed(f"did not shut down cleanly ({ctl.get('Database cluster state')}); restarted as primary, "
                              "nothing else changed", node=old, step="stop writes")
    out.steps.append(("old primary stopped", time.monotonic() - started))
    progress(cand, f"waiting to replay {old}'s shutdown checkpoint at {format_lsn(final)}")
    try:
        _wait_replayed(topo, cand, past=final)
        out.steps.append(("candidate caught up", time.monotonic() - started))
        port = connect.node_port(topo.name, cand)  # once, for the connections to come
        failed = promotion.prepare_candidate(topo, plan, out, progress, port=port)
        promotion.promote_and_write(topo, plan, out, started=started, progress=progress, port=port)
    except BaseException:
        # Failed or interrupted (Ctrl-C) before the switch completed: the old primary comes back
        # only if the candidate is certainly still a standby; otherwise it stays stopped (never
        # two writable nodes) and `pgtopo status` / `rejoin` take it from there.
        if _still_standby(topo, cand):
            _restart(c_old)
        raise
    out.loss = Loss(bytes=0, commits=0, fork_lsn=final, old_end_lsn=final, exact=True,
                    source=f"{cand} replayed {old}'s shutdown checkpoint {format_lsn(final)} before promotion")
    progress(old, f"restarting as a replica of {cand}")
    try:
        create_slot(topo, on=cand, slot=slot_name(old))
        behind = [slot_name(m.node) for m in plan.replicas if m.action == "stay" and m.upstream == old]
        start_as_standby(topo, c_old, node=old, upstream=cand, primary=cand, keep_slots=behind)
    except PgtopoError:
        leave_stopped(topo, c_old, node=old, why=f"switchover: {cand} is primary, demoting {old} failed")
        raise
    unfence(topo, old)
    promotion.after_promotion(topo, plan, out, started=started, progress=progress, failed=failed)
    try:
        wait_streaming(topo, old, timeline=out.timeline)
        out.replicas.insert(0, f"{old}: streaming on timeline {out.timeline} from {cand} (demoted, no rewind needed)")
    except PgtopoError:
        progress(old, "not streaming: rewinding it")
        res = rejoin(topo, old, reclone=False, progress=progress)
        out.replicas.insert(0, f"{old}: {res.method}, streaming from {cand}")
    promotion.finish(topo, plan, out)
    return out


def _still_standby(topo: Topology, node: str) -> bool:
    try:
        rows = query(topo, node, "SELECT pg_is_in_recovery()", step="check the candidate")
    except (PgtopoError, psycopg.Error):
        return False
    return bool(rows and rows[0][0])


def _wait_sync_ready(topo: Topology, node: str, slot: str, timeout: float = 60) -> None:
    """Before anything changes: a synced slot that is still temporary would vanish on promotion."""
    def sync_ready() -> bool:
        rows = query(topo, node, "SELECT synced AND NOT temporary FROM pg_replication_slots WHERE slot_name = %s",
                     (slot,), step="wait for the failover slot")
        return bool(rows and rows[0][0])

    if poll(sync_ready, timeout=timeout, interval=0.5):
        return
    raise InputError(f"failover slot {slot} on {node} is not sync-ready after {timeout:.0f} s: nothing changed "
                     "(see its log for slot sync messages)")


def _restart(c: Container) -> None:
    instance.release(c)
    instance.wait_accepting(c)


def _wait_replayed(topo: Topology, node: str, *, past: int, timeout: float = 60) -> None:
    replayed = None

    def replayed_past() -> bool:
        nonlocal replayed
        rows = query(topo, node, "SELECT pg_last_wal_replay_lsn()::text", step="wait for the last WAL")
        replayed = parse_lsn(str(rows[0][0])) if rows and rows[0][0] else None
        return replayed is not None and replayed > past

    wait_for(replayed_past, timeout=timeout, what=f"WAL to be replayed past {format_lsn(past)}",
             step="wait for the last WAL", node=node, interval=0.05,
             last_seen=lambda: f"replayed up to {format_lsn(replayed)}; the old primary was restarted")
