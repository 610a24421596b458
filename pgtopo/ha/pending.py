"""A failover's progress kept in the run-time state, step by step, until it finishes.

Ctrl-C, or a failure halfway, then leaves a record (``RuntimeState.pending``) of what is done:
the interrupted command says what is done, what is not and the command that finishes it;
`status` says so too; and `pgtopo failover` run again finishes that failover (from the plan
recorded with it) instead of planning another one on a cluster that is half changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydantic import TypeAdapter, ValidationError

from pgtopo.errors import InputError, Interrupted, OperationFailed, PgtopoError
from pgtopo.ha.failover import Plan, choose_cluster
from pgtopo.ha.replication import now
from pgtopo.model.topology import Topology
from pgtopo.postgres.sql import query
from pgtopo.runtime import state

_PLAN = TypeAdapter(Plan)
Mark = Callable[..., None]


def file_of(topo: Topology) -> str:
    """The topology file as `up` recorded it, for the commands the messages give."""
    return state.load(topo.name).topology_file or "FILE"


def _put(topo: Topology, rec: state.PendingChange) -> None:
    state.update(topo.name, lambda rt: rt.model_copy(update={"pending": {**rt.pending, rec.cluster: rec}}))


def finished(topo: Topology, cluster: str) -> None:
    """The unfinished failover of ``cluster`` was finished another way (``failover --resume``)."""
    _clear(topo, cluster)


def _clear(topo: Topology, cluster: str) -> None:
    state.update(topo.name, lambda rt: rt.model_copy(
        update={"pending": {c: r for c, r in rt.pending.items() if c != cluster}}))


@contextmanager
def tracked(topo: Topology, plan: Plan, *, resumed: state.PendingChange | None = None) -> Iterator[Mark]:
    """Record ``plan`` as begun (or go on with the record ``resumed``); yields ``mark(step,
    recovery_s=None)`` to record each step done.

    Ctrl-C inside becomes ``Interrupted`` with the record's summary; any other error leaves the
    record for `status` and a rerun; the record goes once the block ends normally.
    """
    current = resumed or state.PendingChange(
        mode=plan.mode, cluster=plan.cluster, from_=plan.old_primary, to=plan.candidate, at=now(),
        plan=_PLAN.dump_python(plan, mode="json"))
    _put(topo, current)

    def mark(step: str, *, recovery_s: float | None = None) -> None:
        nonlocal current
        update: dict[str, object] = {"done": (*current.done, step)}
        if recovery_s is not None:
            update["recovery_s"] = round(recovery_s, 3)
        current = current.model_copy(update=update)
        _put(topo, current)

    try:
        yield mark
    except KeyboardInterrupt:
        lines = current.summary(file=file_of(topo))
        raise Interrupted(lines[0], details=lines[1:]) from None
    _clear(topo, plan.cluster)


def plan_of(rec: state.PendingChange) -> Plan:
    try:
        return _PLAN.validate_python(rec.plan)
    except ValidationError:
        raise OperationFailed(f"the plan of the unfinished failover of cluster {rec.cluster} cannot be read (written "
                              "by another pgtopo version?)", step="resume failover") from None


def _writable(topo: Topology, node: str) -> bool:
    try:
        rows = query(topo, node, "SELECT NOT pg_is_in_recovery()", step="check the candidate")
    except PgtopoError:
        return False
    return bool(rows and rows[0][0])


def unfinished(topo: Topology, *, cluster: str | None, to: str | None) -> tuple[state.PendingChange, bool] | None:
    """The unfinished failover of the cluster `pgtopo failover` acts on, and whether its candidate
    was promoted (then the rerun finishes it; else it fails over again, by default to the same node)."""
    pending = state.load(topo.name).pending
    if not pending:
        return None
    rec = pending.get(choose_cluster(topo, cluster=cluster, to=to))
    if rec is None or rec.mode != "failover":
        return None
    promoted = "promoted" in rec.done or _writable(topo, rec.to)
    if promoted and to is not None and to != rec.to:
        raise InputError(f"--to {to}: the failover of cluster {rec.cluster} that promoted {rec.to} did not finish; "
                         f"finish it first with `pgtopo failover {file_of(topo)} --cluster {rec.cluster}`")
    return rec, promoted
