"""One node brought up by `up`: its container, a fresh data directory (initdb or a clone) or the
one its volume kept, and the rest of its setup (init.sql, streaming, slots), which can run again.

A node's setup is *done* (``instance.DONE_MARKER``) only once all of it succeeded; until then
every `up` runs the unfinished part again, so a rerun repairs a failed or interrupted one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgtopo.errors import OperationFailed
from pgtopo.lifecycle import inventory
from pgtopo.lifecycle.inventory import Action
from pgtopo.model import render
from pgtopo.model.topology import PG_PORT, Topology, endpoint, slot_name
from pgtopo.postgres import instance
from pgtopo.postgres.streaming import wait_streaming
from pgtopo.progress import Progress
from pgtopo.runtime import gateway, state

if TYPE_CHECKING:  # only gateway.py imports docker at run time
    from docker.models.containers import Container
    from docker.models.networks import Network

PG_PORT_KEY = f"{PG_PORT}/tcp"
START_SCRIPT = render.TEMPLATES / "start.sh"
# Files `up` installs again into a node whose setup it finishes (the SQL may have been fixed).
SQL_FILES = ("init.sql", "slots.sql", "subscriptions.sql")


def password_env(pw: dict[str, str]) -> dict[str, str]:
    """What init.sql reads with \\getenv: the generated passwords, and (these being random) the
    few SCRAM iterations its pgtopo role's verifier may be made with (see render.init_sql)."""
    return {**{f"PGTOPO_PASSWORD_{role.upper()}": value for role, value in pw.items()},
            "PGTOPO_SCRAM_ITERATIONS": str(render.PGTOPO_SCRAM_ITERATIONS)}


def upstream_of(topo: Topology, node: str, primaries: dict[str, str]) -> str | None:
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


def install_sql(c: Container, files: render.NodeFiles) -> None:
    payload = {name: (text, 0o644) for name, text in files.files.items() if name in SQL_FILES}
    if payload:
        gateway.put_files(c, payload, directory=render.CONF_DIR)


def create_container(topo: Topology, node: str, files: render.NodeFiles, nets: dict[str, Network],
                     pw: dict[str, str]) -> Container:
    """The node's container with its files, on its named volume (kept from before if any); not started."""
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
    return container


def bring_up(topo: Topology, node: str, files: render.NodeFiles, nets: dict[str, Network], pw: dict[str, str],
             *, primaries: dict[str, str], progress: Progress) -> tuple[Container, Action]:
    """A node with no container: create one; start it on the data its volume kept, or initialise it.

    Returns the container and what was done (CREATE, RESUME or LEAVE).
    """
    progress(node, "creating container")
    c = create_container(topo, node, files, nets, pw)
    primary = primaries[topo.cluster_of(node)] == node
    found = inventory.Found(node=node, status="created", markers=instance.markers(c), primary=primary)
    decision = inventory.on_volume(found)
    if decision.why:
        progress(node, decision.why)
    if decision.action == Action.FAIL:
        raise OperationFailed(decision.why, node=node, step="start on its data")
    if decision.action == Action.LEAVE:
        if found.markers.ready:
            # The start signal goes first, so the container runs without PostgreSQL until a rejoin.
            gateway.run_on_volume(topo.name, volume=_volume_of(c, node), image=topo.image,
                                  command=["rm", "-f", instance.READY_MARKER], node=node)
        gateway.start(c)
        return c, Action.LEAVE
    gateway.start(c)
    instance.prepare(c)
    if decision.action == Action.RESUME:
        finish(topo, node, c, files, pw, primaries=primaries, setup=not found.markers.done, progress=progress)
        return c, Action.RESUME
    if found.markers.data or found.markers.released:
        instance.wipe(c)
    _initialise(topo, node, c, primaries=primaries, progress=progress)
    finish(topo, node, c, files, pw, primaries=primaries, setup=True, progress=progress)
    return c, Action.CREATE


def _volume_of(c: Container, node: str) -> str:
    vols = gateway.volume_names(c)
    if not vols:
        raise OperationFailed("no data volume", node=node, step="inspect container")
    return vols[0]


def _initialise(topo: Topology, node: str, c: Container, *, primaries: dict[str, str], progress: Progress) -> None:
    """initdb (a primary) or pg_basebackup from its upstream (a replica), then the start signal."""
    spec = topo.node(node)
    upstream = upstream_of(topo, node, primaries)
    if upstream is None:
        progress(node, "initdb")
        instance.initdb(c)
        instance.release(c)
        return
    up_container = gateway.find(topo.name, upstream)
    if up_container is None:
        raise OperationFailed(f"upstream {upstream} has no container", node=node, step="pg_basebackup")
    # The slot on the upstream first, so no WAL the clone needs can be recycled.
    instance.psql(up_container, render.q(render.create_physical_slot(slot_name(node))), step=f"create slot for {node}")
    ep = endpoint(topo, from_region=spec.region, node=upstream)
    info = render.conninfo(host=ep.host, port=ep.port, user="replicator", application_name=node, dbname="postgres")
    progress(node, f"pg_basebackup from {upstream}" + (" through the relay" if ep.port != PG_PORT else ""))
    instance.clone(c, conninfo=info, slot=slot_name(node))
    if upstream != spec.upstream:
        # A failover moved this replica's upstream: point it at the current primary.
        instance.run(c, "repoint", ["sh", "-c", f"printf \"%s\\n\" \"primary_conninfo = '{info}'\" "
                                    f"\"primary_slot_name = '{slot_name(node)}'\" >> {instance.PGDATA}/postgresql.auto.conf"])
    instance.release(c)


def finish(topo: Topology, node: str, c: Container, files: render.NodeFiles, pw: dict[str, str], *,
           primaries: dict[str, str], setup: bool, progress: Progress) -> None:
    """PostgreSQL started on its data: the rest of the node's setup (again, if an earlier run failed).

    ``setup``: run init.sql on a primary and mark the node done; a replica is always waited for
    until it streams, and the slots for its own replicas are always made sure of.
    """
    spec = topo.node(node)
    upstream = upstream_of(topo, node, primaries)
    instance.wait_accepting(c)
    if upstream is None:
        if setup:
            progress(node, "roles, databases, schema, publications")
            instance.psql_file(c, f"{render.CONF_DIR}/init.sql", step="init.sql", environment=password_env(pw))
    else:
        progress(node, "waiting for streaming")
        wait_streaming(topo, node, timeout=120)
    if "slots.sql" in files.files and upstream == spec.upstream:
        instance.psql_file(c, f"{render.CONF_DIR}/slots.sql", step="slots.sql")
    if setup:
        instance.mark_done(c)
    progress(node, "ready")
