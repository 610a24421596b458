"""`up` for ``ha: patroni`` clusters: etcd first, then Patroni, which runs PostgreSQL itself.

pgtopo never initdb's, clones, starts or promotes PostgreSQL on a Patroni member: it creates
the containers with the lab's patroni.yml (every address is the relay's mesh port of a member,
so latency and partitions apply to replication, REST calls and etcd's consensus), waits for
what Patroni reports (``GET /cluster``), and applies its own init.sql once the leader exists.

The order: the etcd members, until their cluster has quorum; the file's primary's Patroni,
until it is the leader and PostgreSQL accepts connections (a cluster that already has a leader
keeps it); init.sql on the leader; the replicas' Patroni (they clone themselves, cascades
through their ``replicatefrom`` tag); then every member running or streaming. A member whose
container exists is left as it is (a stopped one too: Patroni decides what it becomes), so a
second `up` changes nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

from pgtopo.errors import OperationFailed, PgtopoError
from pgtopo.lifecycle.node_setup import password_env
from pgtopo.model import patroni, render
from pgtopo.model.topology import PG_PORT, DcsMember, Topology
from pgtopo.network import relay_container
from pgtopo.patroni import api
from pgtopo.patroni.views import Member, counted_synchronous
from pgtopo.postgres import instance
from pgtopo.postgres.lsn import parse_lsn
from pgtopo.progress import Progress
from pgtopo.runtime import gateway, state
from pgtopo.runtime.waiting import poll, wait_for

if TYPE_CHECKING:  # only gateway.py imports docker at run time
    from docker.models.containers import Container
    from docker.models.networks import Network

PG_PORT_KEY = f"{PG_PORT}/tcp"
REST_PORT_KEY = f"{patroni.PATRONI_API_PORT}/tcp"
START_SCRIPT = render.TEMPLATES / "patroni-start.sh"
ETCD_CONF = f"{render.CONF_DIR}/etcd.conf.yml"
ETCD_VOLUME = "/var/lib/etcd"  # the member's labelled volume; etcd's data-dir is inside it
HA_LABEL = "ha"  # pgtopo.ha=patroni on a Patroni member's container
DCS_KIND = "dcs"
QUORUM_TIMEOUT_S = 120
LEADER_TIMEOUT_S = 180
MEMBERS_TIMEOUT_S = 300
SLOT_TIMEOUT_S = 120


def lab_address(topo: Topology) -> patroni.Address:
    """Where members reach each other in the lab: the relay's mesh port (a single region: direct)."""
    def address(member: str, port: int) -> str:
        return relay_container.mesh_address(topo, member, port)
    return address


def lab_patroni_yml(topo: Topology, node: str, *, source: str) -> str:
    return render.patroni_yml(topo, node=node, source=source, address=lab_address(topo))


def lab_etcd_yml(topo: Topology, member: DcsMember, *, source: str) -> str:
    return render.etcd_yml(topo, member=member, source=source, address=lab_address(topo))


def environment(pw: dict[str, str], secrets: dict[str, str]) -> dict[str, str]:
    """Patroni's passwords (model/patroni.py SECRET_VARIABLES) from pgtopo's secrets: the
    replication and rewind users are pgtopo's replicator and pgtopo roles, with their passwords."""
    return {
        "PATRONI_RESTAPI_PASSWORD": secrets["patroni"],
        "PATRONI_SUPERUSER_PASSWORD": secrets["postgres"],
        "PATRONI_REPLICATION_PASSWORD": pw[patroni.REPLICATION_USER],
        "PATRONI_REWIND_PASSWORD": pw[patroni.REWIND_USER],
        "PGDATA": patroni.DATA_DIR,
        "PGPASSFILE": render.PASSFILE,
    }


def is_patroni_member(c: Container) -> bool:
    return bool(c.labels.get(f"pgtopo.{HA_LABEL}") == "patroni")


# -- etcd ---------------------------------------------------------------------------------------------

def ensure_dcs(topo: Topology, nets: dict[str, Network], *, source: str, progress: Progress) -> bool:
    """Every etcd member running, and their cluster with quorum. True when something was created."""
    members = topo.dcs_members()
    if not members:
        return False
    created = False
    found = {c.labels.get(gateway.LABEL_NODE, ""): c for c in gateway.containers(topo.name, kind=DCS_KIND)}
    for m in members:
        c = found.get(m.name)
        if c is not None and gateway.status(c) == "created":
            gateway.remove_container(c, volume=False)  # never started: an earlier `up` failed there
            c = None
        if c is None:
            progress(m.name, f"etcd member in {m.region}")
            c = gateway.create(gateway.ContainerSpec(
                topology=topo.name, name=m.name, kind=DCS_KIND, image=topo.image,
                command=["etcd", "--config-file", ETCD_CONF],
                region_networks=[(nets[m.region], [m.name])], ports={},
                extra_labels={"node": m.name, "region": m.region}, environment={},
                volume=ETCD_VOLUME, stop_signal="SIGTERM"))
            gateway.put_files(c, {"etcd.conf.yml": (lab_etcd_yml(topo, m, source=source), 0o644)},
                              directory=render.CONF_DIR)
            found[m.name] = c
            created = True
        if gateway.status(c) != "running":
            gateway.start(c)
            created = True
    progress(members[0].name, f"waiting for etcd quorum ({len(members)} members)")
    for m in members:
        c = found[m.name]
        wait_for(functools.partial(_etcd_healthy, c), timeout=QUORUM_TIMEOUT_S, what="etcd to have quorum",
                 step="etcd quorum", node=m.name, container=c)
    return created


def _etcd_healthy(c: Container) -> bool:
    # endpoint health reads a key with a linearizable read: it succeeds only with quorum.
    try:
        res = gateway.exec_in(c, ["etcdctl", f"--endpoints=http://127.0.0.1:{patroni.ETCD_CLIENT_PORT}",
                                  "--command-timeout=3s", "endpoint", "health"], user="root")
    except PgtopoError:  # the member is restarting: not healthy yet, asked again
        return False
    return res.rc == 0


# -- Patroni's view -------------------------------------------------------------------------------------

def leader_of(members: list[Member]) -> str | None:
    return next((m.name for m in members if m.is_leader and m.healthy), None)


def cluster_view(containers: list[Container]) -> list[Member]:
    """What the first member that answers says of its cluster (``GET /cluster``, through the one
    REST client, pgtopo.patroni.api); none answering yet is an empty list."""
    for c in containers:
        if gateway.status(c) != "running":
            continue
        port = gateway.published_port(c, REST_PORT_KEY)
        if port is None:
            continue
        ep = api.Endpoint(node=c.labels.get(gateway.LABEL_NODE, c.name), url=f"http://127.0.0.1:{port}",
                          user=patroni.REST_API_USER, password=api.rest_password(c.labels[gateway.LABEL_TOPOLOGY]))
        try:
            return list(api.cluster(ep).members)
        except OperationFailed:  # not answering yet, or an answer of another shape: ask the next
            continue
    return []


def members_ready(topo: Topology, view: list[Member], expected: set[str]) -> bool:
    """Patroni shows a leader and every ``expected`` member running or streaming, and counts each
    of them that may be a synchronous standby as one (or enough others): until then a crash of the
    leader would leave Patroni no synchronous candidate to promote."""
    if not (expected <= {m.name for m in view if m.healthy} and leader_of(view)):
        return False
    for m in view:
        wanted = patroni.synchronous_count(topo, m.name) if m.name in expected and not m.is_leader else None
        if wanted is not None and not counted_synchronous(view, m.name, count=wanted):
            return False
    return True


def _describe(members: list[Member]) -> str:
    return ", ".join(f"{m.name} {m.role} {m.state}" for m in members) or "no member answers"


# -- the cluster ------------------------------------------------------------------------------------

@dataclass
class ClusterUp:
    leader: str
    created: list[str]
    containers: dict[str, Container]
    roles: dict[str, str]  # node -> what Patroni says it is
    stopped: list[str]  # members whose container is not running: left as they are


def create_member(topo: Topology, node: str, files: render.NodeFiles, nets: dict[str, Network], *,
                  env: dict[str, str], pw: dict[str, str]) -> Container:
    """A Patroni member's container with its files (lab patroni.yml), on its named volume; not started."""
    spec = topo.node(node)
    c = gateway.create(gateway.ContainerSpec(
        topology=topo.name, name=node, kind="node", image=topo.image,
        command=["/bin/sh", f"{render.CONF_DIR}/patroni-start.sh"],
        region_networks=[(nets[spec.region], [node])],
        ports={PG_PORT_KEY: ("127.0.0.1", spec.port), REST_PORT_KEY: ("127.0.0.1", None)},
        extra_labels={"node": node, "cluster": topo.cluster_of(node), "region": spec.region, HA_LABEL: "patroni"},
        environment=env, volume=gateway.PG_DATA_MOUNT, stop_signal="SIGTERM"))
    payload = {name: (text, 0o644) for name, text in files.files.items()}
    payload["patroni-start.sh"] = (START_SCRIPT.read_text(), 0o755)
    payload["pgpass"] = (state.pgpass(pw), 0o600)
    gateway.put_files(c, payload, directory=render.CONF_DIR)
    return c


def up_cluster(topo: Topology, cluster: str, *, files: dict[str, render.NodeFiles], nets: dict[str, Network],
               pw: dict[str, str], progress: Progress) -> ClusterUp:
    """One ``ha: patroni`` cluster brought up as the module says; returns what Patroni reports."""
    cl = topo.clusters[cluster]
    env = environment(pw, state.patroni_passwords(topo.name))
    found: dict[str, Container] = {}
    for c in gateway.containers(topo.name, kind="node"):
        name = c.labels.get(gateway.LABEL_NODE, "")
        if name in cl.nodes:
            if gateway.status(c) == "created":
                gateway.remove_container(c, volume=False)  # never started: created again below
                continue
            found[name] = c
    created: list[str] = []

    def ensure(node: str) -> Container:
        if node not in found:
            progress(node, "creating container (Patroni)")
            found[node] = create_member(topo, node, files[node], nets, env=env, pw=pw)
            gateway.start(found[node])
            created.append(node)
        return found[node]

    members = cluster_view(list(found.values()))
    leader = leader_of(members)
    if leader is None and bootstrapped(topo, cluster):
        # Patroni ran this cluster before (`down` kept the volumes, or every member stopped):
        # every member starts at once and Patroni elects the most advanced one, as after a
        # full outage in production; the file's primary first could lose what another had.
        for node in cl.nodes:
            ensure(node)
        waiting = [c for c in found.values() if gateway.status(c) == "running"]
        progress(cl.primary_name, f"waiting for Patroni to elect a leader among {len(waiting)} member(s)")
        leader = wait_for(lambda: leader_of(cluster_view(waiting)), timeout=LEADER_TIMEOUT_S,
                          what="Patroni to elect a leader", step="Patroni leader", node=cl.primary_name,
                          last_seen=lambda: _describe(cluster_view(waiting)))
    elif leader is None:
        first = ensure(cl.primary_name) if cl.primary_name not in found else found[cl.primary_name]
        if first not in [found[n] for n in created] and gateway.status(first) != "running":
            raise OperationFailed("the cluster has no leader and the file's primary is stopped",
                                  node=cl.primary_name, step="Patroni leader",
                                  hint=f"start it (docker start {first.name}) or remove it with `pgtopo down`")
        progress(cl.primary_name, "waiting for Patroni to make it the leader")
        leader = wait_for(lambda: leader_of(cluster_view([first])), timeout=LEADER_TIMEOUT_S,
                          what="Patroni to elect a leader", step="Patroni leader", node=cl.primary_name,
                          container=first, last_seen=lambda: _describe(cluster_view([first])))
    if leader not in found:
        raise OperationFailed(f"Patroni's leader of cluster {cluster} is {leader}, which is not a node of the "
                              "file (renamed or removed while etcd kept the cluster)", node=leader, step="Patroni leader",
                              hint="put the node back in the file, or remove the topology with `pgtopo down --volumes`")
    lc = found[leader]
    instance.wait_accepting(lc, timeout=LEADER_TIMEOUT_S)
    if not instance.markers(lc).done:
        progress(leader, "roles, databases, schema, publications")
        gateway.put_files(lc, {"init.sql": (files[cl.primary_name].files["init.sql"], 0o644)},
                          directory=render.CONF_DIR)
        instance.psql_file(lc, f"{render.CONF_DIR}/init.sql", step="init.sql", environment=password_env(pw))
        instance.mark_done(lc)
    for node in cl.nodes:
        ensure(node)
    # A stopped member (crashed, or stopped on purpose) is left as it is, as `up` leaves a manual
    # node: started again (`docker start`), Patroni brings it back as a replica by itself.
    stopped = [n for n, c in found.items() if gateway.status(c) != "running"]
    for node in stopped:
        progress(node, f"left alone: the container is {gateway.status(found[node])} (docker start {found[node].name} "
                       "and Patroni brings it back)")
    everyone = [c for n, c in found.items() if n not in stopped]
    expected = set(cl.nodes) - set(stopped)

    def all_healthy() -> list[Member] | None:
        for n in expected:
            if gateway.status(found[n]) != "running":  # Patroni exited: its own words say why
                raise OperationFailed(f"the container stopped while waiting for {n} to run or stream", node=n,
                                      step="Patroni members", logs=gateway.logs(found[n], tail=25))
        view = cluster_view(everyone)
        return view if members_ready(topo, view, expected) else None

    what = "running or streaming" + (", its synchronous standbys counted" if cl.synchronous else "")
    progress(leader, f"waiting for Patroni: every member of {cluster} {what}")
    try:
        view = wait_for(all_healthy, timeout=MEMBERS_TIMEOUT_S,
                        what=f"every member of {cluster} {what}", step="Patroni members", node=leader,
                        last_seen=lambda: _describe(cluster_view(everyone)))
    except OperationFailed as exc:
        if exc.logs is not None:
            raise
        # Timed out: the member that is not there yet, with its own last log lines.
        view = cluster_view(everyone)
        late = sorted(expected - {m.name for m in view if m.healthy}) or [leader]
        raise OperationFailed(f"timed out after {MEMBERS_TIMEOUT_S} s waiting for every member of {cluster} {what} "
                              f"({_describe(view)})", node=late[0], step="Patroni members",
                              logs=gateway.logs(found[late[0]], tail=25)) from None
    for node in expected:
        if not instance.markers(found[node]).done:
            instance.mark_done(found[node])
        if node in created:
            progress(node, "ready")
    leader = leader_of(view) or leader
    return ClusterUp(leader=leader, created=created, containers=found, roles={m.name: m.role for m in view},
                     stopped=stopped)


def initialize_key(topo: Topology, cluster: str) -> str:
    """The etcd key Patroni writes once it bootstrapped ``cluster`` (its namespace, its scope)."""
    return f"{patroni.NAMESPACE}{topo.name}/{cluster}/initialize"


def bootstrapped(topo: Topology, cluster: str) -> bool:
    """Whether Patroni already bootstrapped ``cluster`` (etcd holds its initialize key)."""
    for c in gateway.containers(topo.name, kind=DCS_KIND):
        if gateway.status(c) != "running":
            continue
        res = gateway.exec_in(c, ["etcdctl", f"--endpoints=http://127.0.0.1:{patroni.ETCD_CLIENT_PORT}",
                                  "--command-timeout=5s", "get", "--print-value-only", initialize_key(topo, cluster)],
                              user="root")
        if res.rc == 0:
            return bool(res.stdout.strip())
    return False


def wait_permanent_slot(c: Container, slot: str, *, timeout: float = SLOT_TIMEOUT_S) -> None:
    """Patroni creates a permanent logical slot on the leader once its database exists: a
    subscription then uses it (create_slot = false) instead of racing Patroni for the name."""
    query = render.q(sql.SQL("SELECT count(*) FROM pg_replication_slots WHERE slot_name = {}").format(
        sql.Literal(slot)))
    wait_for(lambda: instance.psql(c, query, step=f"slot {slot}") == "1", timeout=timeout,
             what=f"Patroni to create the permanent slot {slot}", step=f"create subscription {slot}",
             node=instance.node_of(c), container=c, interval=1.0)


def wait_failover_ready(topo: Topology, cluster: str, *, progress: Progress) -> None:
    """Every member that may be promoted holds the cluster's permanent logical slots, advanced
    to where the leader's were once the subscriptions were ready, and every member streams again.

    Patroni copies a logical slot to a replica by restarting it; a copy older than the replica's
    WAL cannot be advanced and is copied again (another restart). Until a replica's copy has
    been advanced, a failover to it would leave the subscriber without a usable slot.
    """
    cl = topo.clusters[cluster]
    logical = sorted(name for name, slot in patroni.permanent_slots(topo, cluster).items() if slot["type"] == "logical")
    found = {c.labels.get(gateway.LABEL_NODE, ""): c for c in gateway.containers(topo.name, kind="node")
             if c.labels.get(gateway.LABEL_CLUSTER) == cluster}
    got = leader_container(topo, cluster)
    if not logical or len(found) != len(cl.nodes) or got is None:
        return
    leader, lc = got
    positions = slot_positions(lc, logical)
    if len(positions) != len(logical):
        return  # a slot the leader lacks (its subscription is not there): nothing to copy yet
    for node, spec in cl.nodes.items():
        c = found[node]
        if node == leader or spec.failover_priority == 0 or gateway.status(c) != "running":
            continue  # never promoted (nofailover), or stopped: Patroni copies the slots when it is back

        def advanced(c: Container = c) -> bool:
            try:
                have = slot_positions(c, logical)
            except OperationFailed:
                return False  # restarting to load a copied slot
            return all(slot in have and (parse_lsn(have[slot]) or 0) >= (parse_lsn(at) or 0)
                       for slot, at in positions.items())

        progress(node, f"waiting for Patroni to copy the slot(s) {', '.join(logical)} (kept through a failover)")
        wait_for(advanced, timeout=MEMBERS_TIMEOUT_S, what=f"the permanent slot(s) {', '.join(logical)} copied and "
                 "advanced", step="permanent slots", node=node, container=c, interval=1.0)
    running = [c for c in found.values() if gateway.status(c) == "running"]
    names = {c.labels.get(gateway.LABEL_NODE, "") for c in running}

    def streaming_again() -> bool:
        return names <= {m.name for m in cluster_view(running) if m.healthy}

    wait_for(streaming_again, timeout=MEMBERS_TIMEOUT_S, what=f"every member of {cluster} running or streaming",
             step="Patroni members", node=leader, last_seen=lambda: _describe(cluster_view(running)))


def slot_positions(c: Container, slots: list[str]) -> dict[str, str]:
    """confirmed_flush_lsn of the logical ``slots`` a node holds (those with a position)."""
    query = render.q(sql.SQL("SELECT slot_name || ' ' || confirmed_flush_lsn FROM pg_replication_slots "
                             "WHERE slot_name = ANY({}) AND confirmed_flush_lsn IS NOT NULL").format(sql.Literal(slots)))
    out = instance.psql(c, query, step="permanent slots")
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def leader_container(topo: Topology, cluster: str) -> tuple[str, Container] | None:
    """The leader Patroni reports for ``cluster`` now, with its container (None when none answers)."""
    containers = [c for c in gateway.containers(topo.name, kind="node") if c.labels.get(gateway.LABEL_CLUSTER) == cluster]
    leader = leader_of(cluster_view(containers))
    if leader is None:
        return None
    c = next((c for c in containers if c.labels.get(gateway.LABEL_NODE) == leader), None)
    return (leader, c) if c is not None else None


def wait_leader(topo: Topology, cluster: str, *, timeout: float) -> str | None:
    got = poll(lambda: leader_container(topo, cluster), timeout=timeout, interval=1.0)
    return got[0] if got else None
