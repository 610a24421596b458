"""`up` and `down`: bring a topology to life in Docker, and remove it again.

Nodes are prepared in waves: every cluster's primary first (in parallel), then each replica
as soon as its upstream streams (siblings in parallel), then subscriptions. Nodes already
running are left alone, so ``up`` is idempotent and adds only what the file gained.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import sql

from pgtopo.errors import OperationFailed, PgtopoError
from pgtopo.model import render
from pgtopo.model.topology import PG_PORT, Topology, endpoint, slot_name
from pgtopo.network import relay_container
from pgtopo.postgres import instance
from pgtopo.postgres.streaming import wait_streaming
from pgtopo.progress import Progress
from pgtopo.runtime import gateway, image, state

if TYPE_CHECKING:  # only gateway.py imports docker at run time
    from docker.models.containers import Container
    from docker.models.networks import Network

PG_PORT_KEY = f"{PG_PORT}/tcp"
NODE_WORKERS = 6  # nodes prepared at once (initdb and pg_basebackup use the CPU)
# pg_basebackup -X stream holds two WAL senders of its upstream, which also serves its replicas and
# every subscription (with two table-sync workers each while they copy): max_wal_senders is 20.
CLONES_PER_UPSTREAM = 3
START_SCRIPT = render.TEMPLATES / "start.sh"


@dataclass
class NodeSummary:
    node: str
    cluster: str
    region: str
    role: str
    port: int | None
    created: bool


@dataclass
class UpResult:
    summaries: list[NodeSummary] = field(default_factory=list)
    created_any: bool = False
    phases: dict[str, float] = field(default_factory=dict)


def password_env(pw: dict[str, str]) -> dict[str, str]:
    return {f"PGTOPO_PASSWORD_{role.upper()}": value for role, value in pw.items()}


def up(topo: Topology, *, topo_path: Path, progress: Progress) -> UpResult:
    result = UpResult()
    t0 = time.monotonic()
    pw = state.passwords(topo.name)
    rendered = {nf.node: nf for nf in render.render_all(topo, topo_path=topo_path)}
    progress("image", f"checking {topo.image}")
    image.ensure(topo.image, version=topo.postgres.version, progress=lambda m: progress("image", m))
    if topo.uses_relay():
        image.ensure(relay_container.relay_image(topo), version=17, progress=lambda m: progress("image", m))
    result.phases["image"] = time.monotonic() - t0

    t1 = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(topo.regions)) as net_pool:
        nets = dict(zip(topo.regions, net_pool.map(
            lambda r: gateway.ensure_network(topo.name, r, subnet=topo.regions[r].subnet), topo.regions), strict=True))
    result.phases["networks"] = time.monotonic() - t1
    # Side tasks (the relay, the subscriptions) wait on the network, not on node slots.
    with ThreadPoolExecutor(max_workers=2) as side:
        return _up_nodes(topo, topo_path=topo_path, progress=progress, result=result, rendered=rendered, nets=nets,
                         pw=pw, side=side, t0=t0)


def _up_nodes(topo: Topology, *, topo_path: Path, progress: Progress, result: UpResult,
              rendered: dict[str, render.NodeFiles], nets: dict[str, Network], pw: dict[str, str],
              side: ThreadPoolExecutor, t0: float) -> UpResult:
    existing: dict[str, Container] = {}
    stopped: set[str] = set()
    for c in gateway.containers(topo.name, kind="node"):
        name = c.labels.get(gateway.LABEL_NODE, "")
        cstate = gateway.status(c)
        if cstate == "created":
            # Never started (a failed `up`): nothing can be in its volume yet.
            progress(name, "removing a container that never started (an earlier `up` failed)")
            gateway.remove_container(c, volume=True)
            continue
        if cstate != "running":
            # Stopped, crashed or fenced: its data is precious; `up` never recreates or starts it.
            progress(name, f"left alone: the container is {cstate} (a former primary comes back with "
                           f"`pgtopo rejoin`)")
            existing[name] = c
            stopped.add(name)
            continue
        if instance.is_initialised(c):
            existing[name] = c
        elif instance.was_released(c):
            # PostgreSQL stopped inside a live container (an interrupted switchover or rejoin):
            # the data directory is real, so never wipe it.
            progress(name, "left alone: it has a data directory but PostgreSQL is not started "
                           f"(`pgtopo rejoin {topo_path} {name}` brings it back)")
            existing[name] = c
            stopped.add(name)
        else:
            # Left over by a failed `up` (never initialised): start this node again from scratch.
            progress(name, "removing an incomplete container from an earlier attempt")
            gateway.remove_container(c, volume=True)

    for name, c in existing.items():
        if name not in stopped and name in rendered and _converge_config(c, rendered[name], progress=progress):
            result.created_any = True

    # The relay is needed only by clones from another region and by subscriptions: it starts
    # while the primaries are initialised (after the look at existing nodes, which may remove some).
    relay_future: Future[Container] | None = None
    if topo.uses_relay():
        relay_future = side.submit(relay_container.ensure_relay, topo, nets, progress=progress)

    t2 = time.monotonic()
    done = set(existing)
    already = set(existing)
    pending = [n for n in topo.node_names() if n not in done]
    primaries = state.current_primaries(topo)
    subs_future: Future[bool] | None = None
    subs_started = 0.0
    errors: list[PgtopoError] = []
    running: dict[Future[Container], str] = {}
    relay_ready = relay_future is None

    def await_relay() -> None:
        nonlocal relay_ready
        if relay_future is not None and not relay_ready:
            relay_future.result()
            relay_ready = True

    with ThreadPoolExecutor(max_workers=NODE_WORKERS) as pool:
        while True:
            if subs_future is None and not errors and all(p in done for p in primaries.values()):
                # Subscriptions need only the primaries (and the relay): their initial copy
                # overlaps the clones.
                await_relay()
                subs_started = time.monotonic()
                subs_future = side.submit(create_subscriptions, topo, dict(existing), primaries, progress=progress)
            # A node starts as soon as its upstream streams, not when a whole wave of nodes is done;
            # an upstream serves a few clones at a time (each holds two of its WAL senders).
            ready: list[str] = []
            cloning = Counter(_upstream(topo, n, primaries) for n in running.values())
            for n in [] if errors else pending:
                up = _upstream(topo, n, primaries)
                if up is None or (up in done and cloning[up] < CLONES_PER_UPSTREAM):
                    ready.append(n)
                    cloning[up] += 1
            if any(_upstream(topo, n, primaries) is not None for n in ready):
                await_relay()  # clones may go through it
            for n in ready:
                running[pool.submit(_create_node, topo, n, rendered[n], nets, pw, progress, primaries)] = n
                pending.remove(n)
            if not running:
                if errors:
                    raise errors[0]  # once every node already started has finished
                if pending:
                    raise OperationFailed(f"cannot place {', '.join(pending)}: their upstreams are not running",
                                          step="plan")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                n = running.pop(fut)
                try:
                    existing[n] = fut.result()
                    done.add(n)
                    result.created_any = True
                except PgtopoError as exc:
                    errors.append(exc)
        result.phases["nodes"] = time.monotonic() - t2
        await_relay()
        if topo.uses_relay():
            relay_container.update_relay(topo)
        assert subs_future is not None
        created_subs = subs_future.result()
    result.created_any = result.created_any or created_subs
    result.phases["subscriptions"] = time.monotonic() - subs_started

    topology_file = str(topo_path.resolve())
    state.update(topo.name, lambda rt: rt.model_copy(update={"primaries": primaries, "topology_file": topology_file}))

    for cname, nname, spec in topo.all_nodes():
        c = existing[nname]
        role = "primary" if primaries[cname] == nname else f"replica of {_upstream(topo, nname, primaries)}"
        if nname in stopped:
            role = "stopped"
        result.summaries.append(NodeSummary(node=nname, cluster=cname, region=spec.region, role=role,
                                            port=gateway.published_port(c, PG_PORT_KEY),
                                            created=nname not in already))
    result.phases["total"] = time.monotonic() - t0
    return result


CONVERGED_FILES = ("postgresql.conf", "pg_hba.conf")


def _converge_config(c: Container, files: render.NodeFiles, *, progress: Progress) -> bool:
    """A running node whose rendered configuration changed in the file: install it and reload."""
    node = instance.node_of(c)
    changed = [f for f in CONVERGED_FILES
               if gateway.read_file(c, f"{render.CONF_DIR}/{f}") != files.files[f]]
    if not changed:
        return False
    gateway.put_files(c, {f: (files.files[f], 0o644) for f in CONVERGED_FILES}, directory=render.CONF_DIR)
    instance.psql(c, "SELECT pg_reload_conf()", step="reload configuration")
    time.sleep(0.5)  # the postmaster applies a reload asynchronously
    pending = instance.psql(c, "SELECT string_agg(name, ', ') FROM pg_settings WHERE pending_restart",
                            step="check pending restart")
    note = f"; restart needed for {pending} (docker restart {c.name})" if pending else ""
    progress(node, f"{' and '.join(changed)} changed in the file: installed and reloaded{note}")
    return True


def _upstream(topo: Topology, node: str, primaries: dict[str, str]) -> str | None:
    """A replica's upstream; one that named the old primary follows the promoted one."""
    spec = topo.node(node)
    cluster = topo.cluster_of(node)
    file_primary = topo.clusters[cluster].primary_name
    if primaries[cluster] == node:
        return None
    if spec.upstream is None:
        # The file's primary after a failover moved the role elsewhere: never a second primary.
        return primaries[cluster]
    if spec.upstream == file_primary and primaries[cluster] != file_primary:
        return primaries[cluster]
    return spec.upstream


def _node_container(topo: Topology, node: str, files: render.NodeFiles, nets: dict[str, Network],
                    pw: dict[str, str]) -> Container:
    spec = topo.node(node)
    cluster = topo.cluster_of(node)
    container = gateway.create(gateway.ContainerSpec(
        topology=topo.name, name=node, kind="node", image=topo.image,
        command=["/bin/sh", "/etc/pgtopo/start.sh"],
        region_networks=[(nets[spec.region], [node])],
        ports={PG_PORT_KEY: ("127.0.0.1", spec.port)},
        extra_labels={"node": node, "cluster": cluster, "region": spec.region},
        environment={"PGDATA": instance.PGDATA, "PGPASSFILE": render.PASSFILE},
        volume=gateway.PG_DATA_MOUNT,
    ))
    payload = {name: (text, 0o644) for name, text in files.files.items()}
    payload["start.sh"] = (START_SCRIPT.read_text(), 0o755)
    payload["pgpass"] = (state.pgpass(pw), 0o600)
    gateway.put_files(container, payload, directory=render.CONF_DIR)
    gateway.start(container)
    instance.prepare(container)
    return container


def _create_node(topo: Topology, node: str, files: render.NodeFiles, nets: dict[str, Network],
                 pw: dict[str, str], progress: Progress, primaries: dict[str, str]) -> Container:
    spec = topo.node(node)
    progress(node, "creating container")
    container = _node_container(topo, node, files, nets, pw)
    upstream = _upstream(topo, node, primaries)
    if upstream is None:
        progress(node, "initdb")
        instance.initdb(container)
        instance.release(container)
        instance.wait_accepting(container)
        progress(node, "roles, databases, schema, publications")
        instance.psql_file(container, f"{render.CONF_DIR}/init.sql", step="init.sql", environment=password_env(pw))
    else:
        up_container = gateway.find(topo.name, upstream)
        if up_container is None:
            raise OperationFailed(f"upstream {upstream} has no container", node=node, step="pg_basebackup")
        # The slot on the upstream first, so no WAL the clone needs can be recycled.
        instance.psql(up_container, render.q(render.create_physical_slot(slot_name(node))), step=f"create slot for {node}")
        ep = endpoint(topo, from_region=spec.region, node=upstream)
        info = render.conninfo(host=ep.host, port=ep.port, user="replicator", application_name=node,
                               dbname="postgres")
        progress(node, f"pg_basebackup from {upstream}" + (" through the relay" if ep.port != PG_PORT else ""))
        instance.clone(container, conninfo=info, slot=slot_name(node))
        if upstream != spec.upstream:
            # A failover moved this replica's upstream: point it at the current primary.
            instance.run(container, "repoint", ["sh", "-c", f"printf \"%s\\n\" \"primary_conninfo = '{info}'\" "
                                                f"\"primary_slot_name = '{slot_name(node)}'\" >> "
                                                f"{instance.PGDATA}/postgresql.auto.conf"])
        instance.release(container)
        instance.wait_accepting(container)
        progress(node, "waiting for streaming")
        wait_streaming(topo, node, timeout=120)
    if "slots.sql" in files.files and upstream == spec.upstream:
        instance.psql_file(container, f"{render.CONF_DIR}/slots.sql", step="slots.sql")
    progress(node, "ready")
    return container


def create_subscriptions(topo: Topology, nodes: dict[str, Container], primaries: dict[str, str], *,
                         progress: Progress) -> bool:
    """Every subscription of the file that its subscriber lacks, all at once; returns when every
    table of each is ready. Each one's work is round trips to its publisher (its initial copy
    takes some 35 of them), so they overlap rather than queue."""
    wanted = [(cname, sname) for cname, cluster in topo.clusters.items() for sname in cluster.subscriptions]
    if not wanted:
        return False
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        created = list(pool.map(lambda cs: _create_subscription(topo, nodes, primaries, cluster=cs[0], name=cs[1],
                                                                progress=progress), wanted))
    return any(created)


def _create_subscription(topo: Topology, nodes: dict[str, Container], primaries: dict[str, str], *,
                         cluster: str, name: str, progress: Progress) -> bool:
    sub = topo.clusters[cluster].subscriptions[name]
    subscriber = primaries[cluster]
    c = nodes[subscriber]
    pub = topo.clusters[sub.publisher].publications[sub.publication]
    db = sub.database or pub.database
    exists = instance.psql(c, render.q(sql.SQL("SELECT count(*) FROM pg_subscription WHERE subname = {}").format(
        sql.Literal(name))), db=db)
    if exists != "0":
        return False
    progress(subscriber, f"subscription {name} to {sub.publication} on {primaries[sub.publisher]}")
    stmt = render.subscription_statement(topo, cluster=cluster, sub_name=name, publisher_node=primaries[sub.publisher])
    instance.psql(c, stmt, db=db, step=f"create subscription {name}")
    progress(subscriber, f"initial copy of {name}")
    instance.wait_subscription_ready(c, name, db=db)
    return True


# -- down and ls ------------------------------------------------------------------------------------

def down(name: str, *, volumes: bool) -> dict[str, int]:
    removed = gateway.remove_topology(name, volumes=volumes)
    state.forget(name)
    return removed


def running() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, cs in sorted(gateway.topologies().items()):
        nodes = [c for c in cs if c.labels.get(gateway.LABEL_KIND) == "node"]
        out[name] = {
            "nodes": len(nodes),
            "running": sum(1 for c in nodes if c.status == "running"),
            "file": state.load(name).topology_file,
        }
    return out
