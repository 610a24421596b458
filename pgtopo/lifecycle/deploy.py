"""`up` and `down`: bring a topology to life in Docker, and remove it again.

Nodes are prepared in waves: every cluster's primary first (in parallel), then each replica
as soon as its upstream streams (siblings in parallel), then subscriptions. What `up` finds is
judged by ``inventory`` (pure): a complete running node is left as it is (its configuration
converges), an unfinished one is finished, a stopped one is left alone, and a node whose
container is gone starts again on the data its volume kept. So ``up`` is idempotent, adds only
what the file gained, repairs what an earlier run left unfinished, and resumes after `down`.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import sql

from pgtopo.errors import Interrupted, OperationFailed, PgtopoError
from pgtopo.lifecycle import inventory, node_setup, patroni_up
from pgtopo.lifecycle.inventory import Action
from pgtopo.lifecycle.node_setup import PG_PORT_KEY, upstream_of
from pgtopo.lifecycle.up_steps import UpSteps
from pgtopo.model import render
from pgtopo.model.topology import Topology
from pgtopo.network import relay_container
from pgtopo.postgres import instance, subscription_slot
from pgtopo.postgres.reload import reload
from pgtopo.progress import Progress
from pgtopo.runtime import gateway, image, interrupt, state

if TYPE_CHECKING:  # only gateway.py imports docker at run time
    from docker.models.containers import Container
    from docker.models.networks import Network

# What a node's row says in `up`'s table under "this run".
THIS_RUN = {Action.KEEP: "already running", Action.CREATE: "created", Action.RESUME: "started on its data",
            Action.FINISH: "setup finished", Action.START: "started", Action.LEAVE: "left stopped"}


@dataclass
class NodeSummary:
    node: str
    cluster: str
    region: str
    role: str
    port: int | None
    created: bool
    this_run: str = "already running"


@dataclass
class UpResult:
    summaries: list[NodeSummary] = field(default_factory=list)
    created_any: bool = False
    phases: dict[str, float] = field(default_factory=dict)


def up(topo: Topology, *, topo_path: Path, progress: Progress) -> UpResult:
    """Bring the topology up; see the module's description.

    Ctrl-C stops it at once, its waiting workers too (``interrupt.Pool``), with ``Interrupted``
    saying what is ready and what is not; run again, `up` keeps what is ready and does the rest.
    """
    steps = UpSteps(progress)
    try:
        return _up(topo, topo_path=topo_path, progress=steps)
    except KeyboardInterrupt:
        interrupt.reset()  # this `up` is over: a caller that goes on in the same process starts afresh
        lines = steps.report(topo, topo_path=topo_path)
        raise Interrupted(lines[0], details=lines[1:]) from None


def _up(topo: Topology, *, topo_path: Path, progress: UpSteps) -> UpResult:
    result = UpResult()
    t0 = time.monotonic()
    pw = state.passwords(topo.name)
    rendered = {nf.node: nf for nf in render.render_all(topo, topo_path=topo_path)}
    patroni_nodes = {n for cname in topo.patroni_clusters() for n in topo.clusters[cname].nodes}
    for n in patroni_nodes:  # the lab's variant: members reach each other through the relay's mesh
        lab = patroni_up.lab_patroni_yml(topo, n, source=topo_path.name)
        rendered[n] = render.NodeFiles(node=n, files={**rendered[n].files, "patroni.yml": lab})
    progress("image", f"checking {topo.image}")
    image.ensure(topo.image, version=topo.postgres.version, progress=lambda m: progress("image", m))
    if topo.uses_relay():
        image.ensure(relay_container.relay_image(topo), version=17, progress=lambda m: progress("image", m))
    result.phases["image"] = time.monotonic() - t0

    t1 = time.monotonic()
    nets = {r: gateway.ensure_network(topo.name, r, subnet=spec.subnet) for r, spec in topo.regions.items()}
    if topo.uses_relay():
        relay_container.ensure_relay(topo, nets, progress=progress)
    result.phases["networks"] = time.monotonic() - t1

    primaries = state.current_primaries(topo)
    nodes: dict[str, Container] = {}
    actions: dict[str, Action] = {}
    patroni_roles: dict[str, str] = {}
    if patroni_nodes:
        t_ha = time.monotonic()
        result.created_any |= patroni_up.ensure_dcs(topo, nets, source=topo_path.name, progress=progress)
        for cname in topo.patroni_clusters():
            got = patroni_up.up_cluster(topo, cname, files=rendered, nets=nets, pw=pw, progress=progress)
            primaries[cname] = got.leader
            patroni_roles.update(got.roles)
            for n, c in got.containers.items():
                nodes[n] = c
                actions[n] = Action.CREATE if n in got.created else Action.LEAVE if n in got.stopped else Action.KEEP
            result.created_any |= bool(got.created)
        result.phases["patroni"] = time.monotonic() - t_ha
    for name, c, decision in _inventory(topo, rendered, primaries, progress=progress):
        if decision.action == Action.REPLACE:
            continue  # created again below, on its volume when that served
        nodes[name] = c
        actions[name] = decision.action
        if decision.action in (Action.KEEP, Action.FINISH) and _converge_config(c, rendered[name], progress=progress):
            result.created_any = True
        if decision.action in (Action.FINISH, Action.START):
            node_setup.install_sql(c, rendered[name])
        if decision.action == Action.START:
            gateway.put_files(c, {f: (rendered[name].files[f], 0o644) for f in CONVERGED_FILES},
                              directory=render.CONF_DIR)

    # What an interrupted `up` reports as there before it (Patroni members it created are not).
    progress.existing = {n for n in nodes if actions.get(n) != Action.CREATE}
    t2 = time.monotonic()
    done = {n for n, a in actions.items() if a in (Action.KEEP, Action.LEAVE)} | patroni_nodes
    todo = [n for n in topo.node_names() if n not in done]
    subs_future: Future[bool] | None = None
    subs_started = 0.0
    errors: list[PgtopoError] = []
    running: dict[Future[tuple[Container, Action]], str] = {}
    # One worker more than NODE_WORKERS: the subscriptions' long wait must not hold a node's place.
    with interrupt.Pool(max_workers=NODE_WORKERS + 1) as pool:
        while True:
            if subs_future is None and not errors and all(p in done for p in primaries.values()):
                # Subscriptions need only the primaries: their initial copy overlaps the clones.
                subs_started = time.monotonic()
                subs_future = pool.submit(create_subscriptions, topo, dict(nodes), primaries, progress=progress)
            # A node starts as soon as its upstream is up, not when a whole wave is done.
            room = NODE_WORKERS - len(running)
            for n in [] if errors else _wave(topo, todo, done=done, primaries=primaries,
                                             busy=list(running.values()))[:room]:
                running[pool.submit(_bring_up, topo, n, nodes.get(n), actions.get(n, Action.CREATE),
                                    rendered[n], nets, pw, primaries, progress)] = n
                todo.remove(n)
            if not running:
                if errors:
                    raise errors[0]  # once every node already started has finished
                if todo:
                    raise OperationFailed(f"cannot place {', '.join(todo)}: their upstreams are not running",
                                          step="plan")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                n = running.pop(fut)
                try:
                    nodes[n], actions[n] = fut.result()
                    done.add(n)
                    result.created_any = True
                except PgtopoError as exc:
                    errors.append(exc)
        result.phases["nodes"] = time.monotonic() - t2
        if topo.uses_relay():
            relay_container.update_relay(topo)
        assert subs_future is not None
        created_subs = subs_future.result()
    for cname in topo.patroni_clusters():
        patroni_up.wait_failover_ready(topo, cname, progress=progress)
    result.created_any = result.created_any or created_subs
    result.phases["subscriptions"] = time.monotonic() - subs_started

    topology_file = str(topo_path.resolve())
    # `up` never moves a primary, so it never writes back the one it read: a failover recorded
    # meanwhile (only possible without the command lock, which the CLI takes) is kept.
    state.update(topo.name, lambda rt: rt.model_copy(update={"primaries": rt.primaries_of(topo),
                                                             "topology_file": topology_file}))

    for cname, nname, spec in topo.all_nodes():
        c = nodes[nname]
        action = actions[nname]
        role = "primary" if primaries[cname] == nname else f"replica of {upstream_of(topo, nname, primaries)}"
        if nname in patroni_nodes:
            role = f"Patroni {patroni_roles.get(nname, 'member')}"
        if action == Action.LEAVE:
            role = "stopped"
        result.summaries.append(NodeSummary(node=nname, cluster=cname, region=spec.region, role=role,
                                            port=gateway.published_port(c, PG_PORT_KEY),
                                            created=action in (Action.CREATE, Action.RESUME),
                                            this_run=THIS_RUN[action]))
    result.phases["total"] = time.monotonic() - t0
    return result


# pg_basebackup -X stream holds two WAL senders of its upstream, which also serves its replicas and
# every subscription (with two table-sync workers each while they copy): max_wal_senders is 20.
CLONES_PER_UPSTREAM = 3


NODE_WORKERS = 6  # nodes prepared at once (initdb and pg_basebackup use the CPU)


def _wave(topo: Topology, todo: list[str], *, done: set[str], primaries: dict[str, str],
          busy: list[str] | None = None) -> list[str]:
    """The nodes that can start now: their upstream is up, and it serves at most
    CLONES_PER_UPSTREAM clones at once (``busy``: the nodes being brought up already)."""
    per_upstream: dict[str | None, int] = {}
    for n in busy or []:
        up = upstream_of(topo, n, primaries)
        per_upstream[up] = per_upstream.get(up, 0) + 1
    wave = []
    for n in todo:
        up = upstream_of(topo, n, primaries)
        if up is not None and (up not in done or per_upstream.get(up, 0) >= CLONES_PER_UPSTREAM):
            continue
        per_upstream[up] = per_upstream.get(up, 0) + 1
        wave.append(n)
    return wave


def _inventory(topo: Topology, rendered: dict[str, render.NodeFiles], primaries: dict[str, str], *,
               progress: Progress) -> list[tuple[str, Container, inventory.Decision]]:
    """Every node container of the file as found, with what to do with it (REPLACE: already removed).
    Patroni's members are not here: ``patroni_up`` brings them up."""
    patroni_nodes = {n for cname in topo.patroni_clusters() for n in topo.clusters[cname].nodes}
    fenced = set(state.load(topo.name).fenced)
    out = []
    for c in gateway.containers(topo.name, kind="node"):
        name = c.labels.get(gateway.LABEL_NODE, "")
        if name not in rendered or name in patroni_nodes or patroni_up.is_patroni_member(c):
            continue  # a node the file no longer has: not `up`'s to touch; Patroni's: patroni_up's
        _check_layout(topo, c, name)
        status = gateway.status(c)
        found = inventory.Found(
            node=name, status=status, markers=instance.markers(c),
            primary=primaries[topo.cluster_of(name)] == name, fenced=name in fenced,
            config_changed=status in ("exited", "dead") and bool(_changed_files(c, rendered[name])))
        decision = inventory.existing(found)
        if decision.why:
            progress(name, decision.why)
        if decision.action == Action.REPLACE:
            gateway.remove_container(c, volume=not found.markers.released)
        out.append((name, c, decision))
    return out


def _check_layout(topo: Topology, c: Container, node: str) -> None:
    """A container made by an earlier pgtopo mounts its volume elsewhere: never judge it by the wrong paths."""
    where = gateway.volume_mounts(c).get(gateway.data_volume(topo.name, node))
    if where not in (None, gateway.PG_DATA_MOUNT):
        raise OperationFailed(
            f"its data volume is mounted at {where}, where an earlier pgtopo put it (now {gateway.PG_DATA_MOUNT})",
            node=node, step="inspect container",
            hint="`pgtopo down FILE` (it keeps the volumes) then `pgtopo up FILE` starts the nodes again on their data")


def _bring_up(topo: Topology, node: str, c: Container | None, action: Action, files: render.NodeFiles,
              nets: dict[str, Network], pw: dict[str, str], primaries: dict[str, str],
              progress: Progress) -> tuple[Container, Action]:
    """One node of a wave: created (or started on its volume's data), started, or finished."""
    if c is None or action == Action.CREATE:
        return node_setup.bring_up(topo, node, files, nets, pw, primaries=primaries, progress=progress)
    if action == Action.START:
        gateway.start(c)
    node_setup.finish(topo, node, c, files, pw, primaries=primaries, setup=not instance.markers(c).done,
                      progress=progress)
    return c, action


CONVERGED_FILES = ("postgresql.conf", "pg_hba.conf")


def _changed_files(c: Container, files: render.NodeFiles) -> list[str]:
    return [f for f in CONVERGED_FILES if gateway.read_file(c, f"{render.CONF_DIR}/{f}") != files.files[f]]


def _converge_config(c: Container, files: render.NodeFiles, *, progress: Progress) -> bool:
    """A running node whose rendered configuration changed in the file: install it and reload.

    A setting PostgreSQL refuses is a failure: it keeps the old value and would not start again
    with the file, so `up` stops here and says which setting and why.
    """
    node = instance.node_of(c)
    changed = _changed_files(c, files)
    if not changed:
        return False
    gateway.put_files(c, {f: (files.files[f], 0o644) for f in CONVERGED_FILES}, directory=render.CONF_DIR)
    result = reload(c)
    if result.refused:
        raise OperationFailed(
            f"PostgreSQL refused {'; '.join(r.text() for r in result.refused)}. It keeps running with the previous "
            f"value, and would not start again with this {' and '.join(changed)}", node=node,
            step="reload configuration", hint="fix the setting in the topology file and run `pgtopo up` again")
    pending = result.pending_restart
    note = f"; restart needed for {pending} (docker restart {c.name})" if pending else ""
    progress(node, f"{' and '.join(changed)} changed in the file: installed and reloaded{note}")
    return True


def create_subscriptions(topo: Topology, nodes: dict[str, Container], primaries: dict[str, str], *,
                         progress: Progress) -> bool:
    created = False
    for cname, cluster in topo.clusters.items():
        if not cluster.subscriptions:
            continue
        subscriber = primaries[cname]
        c = nodes[subscriber]
        for sname, sub in cluster.subscriptions.items():
            pub = topo.clusters[sub.publisher].publications[sub.publication]
            db = sub.database or pub.database
            exists = instance.psql(c, render.q(sql.SQL("SELECT count(*) FROM pg_subscription WHERE subname = {}").format(
                sql.Literal(sname))), db=db)
            if exists != "0":
                if not instance.subscription_ready(c, sname, db=db):
                    # An earlier `up` created it and was interrupted before its initial copy ended.
                    progress(subscriber, f"initial copy of {sname} (begun by an earlier `up`)")
                    instance.wait_subscription_ready(c, sname, db=db)
                    created = True
                continue
            publisher_node = primaries[sub.publisher]
            _require_publication(topo, nodes, publisher=publisher_node, publication=sub.publication,
                                 db=pub.database, subscription=sname)
            publisher = nodes.get(publisher_node) or gateway.find(topo.name, publisher_node)
            if topo.clusters[sub.publisher].ha == "patroni" and publisher is not None:
                progress(publisher_node, f"waiting for Patroni to create the permanent slot {sname}")
                patroni_up.wait_permanent_slot(publisher, sname)
            progress(subscriber, f"subscription {sname} to {sub.publication} on {publisher_node}")
            slot = _start_slot(topo, cname, sname, publisher_node=publisher_node, progress=progress)
            stmt = render.subscription_statement(topo, cluster=cname, sub_name=sname, publisher_node=publisher_node,
                                                 slot_ready=slot.kept)
            try:
                instance.psql(c, stmt, db=db, step=f"create subscription {sname}")
            except OperationFailed:
                if slot.kept:  # the subscription does not exist: its slot would only keep WAL
                    subscription_slot.drop(topo.name, publisher_node, database=pub.database, slot=sname)
                raise
            created = True
            if slot.kept:
                progress(subscriber, f"{sname}: nothing to copy (every table empty when its slot began); "
                                     "waiting for its apply worker")
            else:
                progress(subscriber, f"initial copy of {sname}")
                instance.wait_subscription_ready(c, sname, db=db)
            if publisher is not None:
                instance.wait_slot_active(publisher, sname, subscriber=c, sub=sname)
    return created


def skip_copy_possible(topo: Topology, cluster: str, sub_name: str) -> str | None:
    """Why `up` does not try to skip a new subscription's initial copy (None: it tries; see
    ``pgtopo.postgres.subscription_slot``)."""
    sub = topo.clusters[cluster].subscriptions[sub_name]
    if not sub.copy_data:
        return "the file asks for no copy"
    if topo.clusters[sub.publisher].ha == "patroni":
        return "the slot is Patroni's"
    return None


def _start_slot(topo: Topology, cluster: str, sub_name: str, *, publisher_node: str,
                progress: Progress) -> subscription_slot.SlotStart:
    """The subscription's slot created by pgtopo when every table it would copy is empty."""
    why_not = skip_copy_possible(topo, cluster, sub_name)
    sub = topo.clusters[cluster].subscriptions[sub_name]
    pub = topo.clusters[sub.publisher].publications[sub.publication]
    if why_not is not None:
        if topo.clusters[sub.publisher].ha != "patroni" and subscription_slot.drop_leftover(
                topo.name, publisher_node, database=pub.database, slot=sub_name):
            progress(publisher_node, f"dropped slot {sub_name}, left unused by an interrupted `up`")
        return subscription_slot.SlotStart(kept=False, why=why_not)
    failover = render.subscription_failover(topo, cluster, sub_name) if topo.postgres.version >= 17 else None
    got = subscription_slot.start(topo.name, publisher_node, database=pub.database, slot=sub_name,
                                  publications=render.subscription_publications(topo, cluster=cluster,
                                                                                sub_name=sub_name),
                                  failover=failover)
    if got.leftover:
        progress(publisher_node, f"dropped slot {sub_name}, left unused by an interrupted `up`")
    if not got.kept:
        progress(publisher_node, f"slot {sub_name} not kept, the initial copy runs: {got.why}")
    return got


def _require_publication(topo: Topology, nodes: dict[str, Container], *, publisher: str, publication: str, db: str,
                         subscription: str) -> None:
    """Fail at once, not after the initial copy's timeout, when the publisher lacks the publication."""
    step = f"create subscription {subscription}"
    c = nodes.get(publisher) or gateway.find(topo.name, publisher)
    if c is None:
        raise OperationFailed(f"the publisher {publisher} has no container", node=publisher, step=step)
    query = render.q(sql.SQL("SELECT count(*) FROM pg_publication WHERE pubname = {}").format(sql.Literal(publication)))
    try:
        found = instance.psql(c, query, db=db, step=step)
    except OperationFailed as exc:
        found = exc.message
    if found != "1":
        seen = "" if found == "0" else f" ({found})"
        raise OperationFailed(
            f"publication {publication} does not exist on {publisher} in database {db}{seen}: its init.sql did not "
            f"finish", node=publisher, step=step,
            hint="run `pgtopo up FILE` again: it finishes the publisher's setup first")


# -- down and ls ------------------------------------------------------------------------------------

def down(name: str, *, volumes: bool) -> dict[str, int]:
    """Remove the topology's containers and networks (and volumes with ``volumes``).

    Without ``volumes`` the run-time facts about the data stay (``RuntimeState.after_down``): the
    next `up` starts each node again on its volume, as the role it had (after a failover too).
    """
    removed = gateway.remove_topology(name, volumes=volumes)
    if volumes:
        state.forget(name)
    elif state.exists(name):
        state.update(name, lambda rt: rt.after_down())
    return removed


def running() -> dict[str, dict[str, Any]]:
    """Every topology that has something in Docker: containers, or only the volumes `down` kept."""
    out: dict[str, dict[str, Any]] = {}
    by_containers = gateway.topologies()
    by_volumes = gateway.volumes_by_topology()
    for name in sorted(set(by_containers) | set(by_volumes)):
        nodes = [c for c in by_containers.get(name, []) if c.labels.get(gateway.LABEL_KIND) == "node"]
        out[name] = {
            "nodes": len(nodes),
            "running": sum(1 for c in nodes if c.status == "running"),
            "volumes": len(by_volumes.get(name, [])),
            "file": state.load(name).topology_file,
        }
    return out
