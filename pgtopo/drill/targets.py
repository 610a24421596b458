"""What a drill acts on: its cluster, database and subscribers, and every name it uses checked
against the topology (pure: the file and the model, no Docker).

Problems are ``path.to.field: message`` lines, like the topology file's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgtopo.drill.spec import ROLE_WORDS, Drill, Step, role_word
from pgtopo.errors import ValidationFailed
from pgtopo.model import render
from pgtopo.model.topology import Topology


@dataclass(frozen=True)
class Subscriber:
    """A subscription that receives the drill's tables (it carries pgtopo's own publication)."""

    subscription: str
    cluster: str
    database: str


@dataclass(frozen=True)
class Target:
    cluster: str
    database: str
    subscribers: tuple[Subscriber, ...]


def cluster_of(drill: Drill, topo: Topology) -> str:
    if drill.cluster is not None:
        return drill.cluster
    return next((c for c, cl in topo.clusters.items() if len(cl.nodes) > 1), next(iter(topo.clusters)))


def subscribers(topo: Topology, cluster: str, database: str) -> tuple[Subscriber, ...]:
    """Subscriptions fed from ``cluster``'s ``database`` that carry ``pgtopo_probe``: the drill adds
    its tables to that publication (pgtopo's own), so they reach exactly these."""
    out = []
    for cname, cl in topo.clusters.items():
        for sname, sub in cl.subscriptions.items():
            if sub.publisher != cluster:
                continue
            pub = topo.clusters[cluster].publications[sub.publication]
            if pub.database == database and render.carries_probe(topo, cluster=cname, sub_name=sname):
                out.append(Subscriber(sname, cname, sub.database or pub.database))
    return tuple(out)


def target(drill: Drill, topo: Topology) -> Target:
    """The drill's cluster, database and subscribers (after :func:`check` found no problem)."""
    cluster = cluster_of(drill, topo)
    database = drill.database or next(iter(topo.clusters[cluster].databases), "postgres")
    return Target(cluster, database, subscribers(topo, cluster, database))


def _nodes(topo: Topology) -> str:
    return ", ".join(topo.node_names())


def _role(topo: Topology, where: str, name: str) -> list[str] | None:
    """None when ``name`` is no role word; else its problems (an unknown cluster after ``@``)."""
    role = role_word(name)
    if role is None:
        return None
    if role[1] is not None and role[1] not in topo.clusters:
        return [f"{where}: unknown cluster '{role[1]}' in '{name}' (known: {', '.join(topo.clusters)})"]
    return []


def _node(topo: Topology, where: str, name: str, *, cluster: str | None = None) -> list[str]:
    role = _role(topo, where, name)
    if role is not None:
        return role
    if name not in topo.node_names():
        return [f"{where}: unknown node '{name}' (known: {_nodes(topo)}; or {', '.join(ROLE_WORDS)})"]
    if cluster is not None and topo.cluster_of(name) != cluster:
        return [f"{where}: {name} is not in cluster {cluster} (it is in cluster {topo.cluster_of(name)})"]
    return []


def _region(topo: Topology, where: str, name: str) -> list[str]:
    if name not in topo.regions:
        return [f"{where}: unknown region '{name}' (known: {', '.join(topo.regions)})"]
    return []


def _region_or_node(topo: Topology, where: str, name: str) -> list[str]:
    role = _role(topo, where, name)
    if role is not None:
        return role
    if name in topo.regions or name in topo.node_names():
        return []
    return [f"{where}: unknown region or node '{name}' (regions: {', '.join(topo.regions)}; nodes: {_nodes(topo)})"]


def _step(topo: Topology, i: int, step: Step, cluster: str) -> list[str]:
    where = f"steps.{i}.{step.action}"
    a = step.action
    if a == "unpause" and step.unpause == "all":
        return []
    if a in ("kill", "pause", "unpause"):
        return _node(topo, where, getattr(step, a))
    if a == "partition" and step.partition is not None:
        return _region_or_node(topo, where, step.partition)
    if a == "heal" and step.heal is not None and step.heal != "all":
        return _region_or_node(topo, where, step.heal)
    if a == "latency" and step.latency is not None:
        a_, b_ = step.latency.between
        out = _region(topo, f"{where}.between", a_) + _region(topo, f"{where}.between", b_)
        if a_ == b_:
            out.append(f"{where}.between: a link joins two different regions (got '{a_}' twice)")
        return out
    if a in ("failover", "switchover"):
        spec = step.failover if a == "failover" else step.switchover
        assert spec is not None
        if spec.cluster is not None and spec.cluster not in topo.clusters:
            return [f"{where}.cluster: unknown cluster '{spec.cluster}' (known: {', '.join(topo.clusters)})"]
        return _node(topo, f"{where}.to", spec.to, cluster=spec.cluster or cluster) if spec.to else []
    if a == "rejoin" and step.rejoin is not None:
        return _node(topo, f"{where}.node", step.rejoin.node)
    if a == "add-subscription" and step.add_subscription is not None:
        s = step.add_subscription
        return _node(topo, f"{where}.subscriber", s.subscriber) + (
            _node(topo, f"{where}.publisher", s.publisher) if s.publisher else [])
    if a == "wait-until" and step.wait_until is not None:
        cond, value = step.wait_until.condition()
        if cond != "subscribed":
            return _node(topo, f"steps.{i}.wait-until.{cond}", value)
    return []


def _timeline(drill: Drill) -> list[str]:
    out = []
    last_at = 0.0
    for i, step in enumerate(drill.steps):
        if step.at is None:
            continue
        if step.at < last_at:
            out.append(f"steps.{i}.at: {step.at:g}s is before an earlier step's {last_at:g}s (steps run in order)")
        if step.at > drill.duration:
            out.append(f"steps.{i}.at: {step.at:g}s is after the end of the drill (duration {drill.duration:g}s)")
        last_at = max(last_at, step.at)
    return out


def problems(drill: Drill, topo: Topology) -> list[str]:
    """Every name the drill uses that the topology does not have, and timeline mistakes."""
    out: list[str] = []
    if drill.cluster is not None and drill.cluster not in topo.clusters:
        return [f"cluster: unknown cluster '{drill.cluster}' (known: {', '.join(topo.clusters)})"]
    cluster = cluster_of(drill, topo)
    if drill.database is not None and drill.database not in topo.clusters[cluster].databases:
        known = ", ".join(topo.clusters[cluster].databases) or "none"
        out.append(f"database: cluster {cluster} has no database '{drill.database}' (known: {known})")
    w = drill.workload
    if w.ledger is not None:
        for j, r in enumerate(w.ledger.regions or ()):
            out += _region(topo, f"workload.ledger.regions.{j}", r)
            if r in (w.ledger.regions or ())[:j]:
                out.append(f"workload.ledger.regions.{j}: {r} is listed twice (one writer per region)")
    for j, rd in enumerate(w.readers):
        out += _region(topo, f"workload.readers.{j}.region", rd.region)
    if w.bank is not None and w.bank.region is not None:
        out += _region(topo, "workload.bank.region", w.bank.region)
    for i, step in enumerate(drill.steps):
        out += _step(topo, i, step, cluster)
    out += _timeline(drill)
    e = drill.expect
    if (e.write_unavailable is not None or e.error_window is not None) and w.ledger is None:
        out.append("expect: write_unavailable and error_window measure the ledger writers: workload.ledger is off")
    elif w.ledger is not None:
        regions = set(w.ledger.regions) if w.ledger.regions else None
        for key in ("write_unavailable", "error_window"):
            limits = getattr(e, key)
            if isinstance(limits, dict):
                for r in limits:
                    if r not in topo.regions or (regions is not None and r not in regions):
                        out.append(f"expect.{key}.{r}: no ledger writer in region {r}"
                                   + (f" (writers: {', '.join(sorted(regions))})" if regions else ""))
    if e.stale_reads is not None:
        used = {r.strategy for r in w.readers}
        if not used:
            out.append("expect.stale_reads: no workload.readers to read anything")
        elif isinstance(e.stale_reads, dict):
            out += [f"expect.stale_reads.{s}: no reader uses strategy {s} (used: {', '.join(sorted(used))})"
                    for s in e.stale_reads if s not in used]
    if e.bank_violations is not None and w.bank is None:
        out.append("expect.bank_violations: there is no workload.bank")
    if e.logical_complete is not None and not out:
        db = drill.database or next(iter(topo.clusters[cluster].databases), "postgres")
        if not subscribers(topo, cluster, db):
            out.append(f"expect.logical_complete: no subscription receives cluster {cluster}'s database {db}")
    return out


def check(drill: Drill, topo: Topology) -> Target:
    """The target, or ValidationFailed with every problem."""
    found = problems(drill, topo)
    if found:
        raise ValidationFailed(found)
    return target(drill, topo)
