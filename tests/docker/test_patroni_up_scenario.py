"""One scenario, in file order: `up` of the global-saas-patroni design kept alive by Patroni and etcd.

The tests share one topology (``pa-gsp``, module-scoped): topologies/global-saas-patroni.yaml
under another name. Cluster main (ha: patroni) has pg-us (the file's primary) and pg-us2 in
us-east, pg-eu in eu-west (80 ms away); billing's pg-billing in ap-south subscribes to main.

1. etcd has quorum with its three members; Patroni reports pg-us leading, pg-us2 and pg-eu
   streaming; pg-eu's WAL crosses the relay's mesh and pays the declared round trip.
2. A row written on the leader reaches pg-eu and, through the subscription, pg-billing.
3. `latency set` and `partition`/`heal` reach the mesh: pg-eu's WAL pays the new round trip;
   a partitioned eu-west loses its WAL stream and its etcd member, and nothing fails over.
4. A second `up` creates nothing.
5. The leader is SIGKILLed: Patroni promotes another member with nobody typing, and the
   subscription on pg-billing receives a row written on the new leader.
6. A third `up` leaves the crashed member stopped; started again, Patroni rejoins it as a replica.
7. `down` (volumes kept) then `up`: every member starts on its data, Patroni elects the leader,
   and the subscription still receives.
8. `down --volumes` leaves nothing labelled.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from pgtopo.lifecycle import deploy, patroni_up
from pgtopo.model.topology import Topology
from pgtopo.patroni.views import Member
from pgtopo.postgres import connect
from pgtopo.runtime import gateway
from tests.support.docker import cli, up_from_text, wait_for
from tests.support.topologies import TOPOLOGIES

if TYPE_CHECKING:
    from docker.models.containers import Container

SHIPPED = (TOPOLOGIES / "global-saas-patroni.yaml").read_text()
TOPOLOGY = SHIPPED.replace("name: global-saas-patroni\n", "name: pa-gsp\n")
assert TOPOLOGY != SHIPPED
DB = "production"
MEMBERS = ("pg-us", "pg-us2", "pg-eu")
ROWS = itertools.count()  # unique skus for the rows the lag measurements write


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    with up_from_text(tmp_path_factory.mktemp("pa-gsp"), TOPOLOGY, file="gsp.yaml") as up:
        yield up


def members(topo: Topology) -> list[Member]:
    return patroni_up.cluster_view([c for c in gateway.containers(topo.name, kind="node")
                                    if c.labels.get(gateway.LABEL_CLUSTER) == "main"])


def container(topo: Topology, name: str) -> Container:
    c = gateway.find(topo.name, name)
    assert c is not None, name
    return c


def skus(topo: Topology, node: str) -> set[str]:
    try:
        with connect.connect(topo.name, node, dbname=DB) as conn:
            return {str(r[0]) for r in conn.execute("SELECT sku FROM products").fetchall()}
    except psycopg.Error:
        return set()


def insert(topo: Topology, node: str, sku: str) -> None:
    with connect.connect(topo.name, node, dbname=DB) as conn:
        conn.execute("INSERT INTO products (sku, name, price_cents) VALUES (%s, 'pa', 1)", (sku,))


def eu_write_lags(topo: Topology, *, count: int) -> list[float]:
    """pg-eu's write_lag after each of a few writes on the leader (NULL while idle: skipped)."""
    lags: list[float] = []

    def seen() -> bool:
        insert(topo, "pg-us", f"lag-{next(ROWS)}")
        with connect.connect(topo.name, "pg-us") as conn:
            row = conn.execute("SELECT extract(epoch FROM write_lag)::float8 FROM pg_stat_replication "
                               "WHERE application_name = 'pg-eu'").fetchone()
        if row is not None and row[0] is not None:
            lags.append(float(str(row[0])))
        return len(lags) >= count

    wait_for(seen, timeout=90, what="pg-eu's write_lag")
    return lags


def test_etcd_has_quorum_with_three_members(lab: tuple[Topology, Path]) -> None:
    topo, _ = lab
    etcd = gateway.containers(topo.name, kind="dcs")
    assert sorted(c.labels[gateway.LABEL_NODE] for c in etcd) == ["etcd-ap-south", "etcd-eu-west", "etcd-us-east"]
    res = gateway.exec_in(etcd[0], ["etcdctl", "--endpoints=http://127.0.0.1:2379", "member", "list", "-w", "json"],
                          user="root")
    listed = json.loads(res.stdout)["members"]
    assert sorted(m["name"] for m in listed) == ["etcd-ap-south", "etcd-eu-west", "etcd-us-east"]
    # Every member advertises the relay's mesh: consensus traffic pays the latency between regions.
    assert all(url.startswith("http://pgtopo-relay:") for m in listed for url in m["peerURLs"])
    health = gateway.exec_in(etcd[0], ["etcdctl", "--endpoints=http://127.0.0.1:2379", "endpoint", "health",
                                       "--cluster", "-w", "json"], user="root")
    assert health.rc == 0, health.stderr
    assert [h["health"] for h in json.loads(health.stdout)] == [True, True, True]


def test_patroni_reports_the_leader_and_streaming_replicas(lab: tuple[Topology, Path]) -> None:
    topo, _ = lab
    view = {m.name: m for m in members(topo)}
    assert set(view) == set(MEMBERS)
    assert (view["pg-us"].role, view["pg-us"].state) == ("leader", "running")
    assert view["pg-us2"].state == view["pg-eu"].state == "streaming"
    # Quorum commit (synchronous: ANY 1 (pg-us2)): pg-us2 is the quorum standby, pg-eu is not.
    assert view["pg-us2"].role == "quorum_standby" and view["pg-eu"].role == "replica"
    for name in MEMBERS:
        c = container(topo, name)
        assert c.labels.get("pgtopo.ha") == "patroni" and c.labels.get(gateway.LABEL_KIND) == "node"
        assert "INFO: " in gateway.logs(c, tail=50)  # Patroni's own log lines, in `docker logs`


def test_pg_eu_wal_crosses_the_mesh_with_the_declared_latency(lab: tuple[Topology, Path]) -> None:
    topo, _ = lab
    with connect.connect(topo.name, "pg-us") as conn:
        row = conn.execute("SELECT client_addr::text FROM pg_stat_replication WHERE application_name = 'pg-eu'").fetchone()
    assert row is not None
    assert str(row[0]).split("/")[0] in gateway.ip_addresses(container(topo, "relay")).values()  # through the relay
    # Jitter is 2 ms each way: a WAL write acknowledged from eu-west takes at least rtt - 4 ms.
    rtt = topo.rtt_ms("us-east", "eu-west") / 1000
    lags = eu_write_lags(topo, count=3)
    assert max(lags) >= rtt - 0.005, lags


def test_a_row_reaches_pg_eu_and_the_subscriber(lab: tuple[Topology, Path]) -> None:
    topo, _ = lab
    insert(topo, "pg-us", "pa-row-1")
    wait_for(lambda: "pa-row-1" in skus(topo, "pg-eu"), timeout=60, what="the row on pg-eu")
    wait_for(lambda: "pa-row-1" in skus(topo, "pg-billing"), timeout=90, what="the row on pg-billing")


def test_latency_set_reaches_the_mesh(lab: tuple[Topology, Path]) -> None:
    topo, path = lab
    code, out = cli("latency", "set", str(path), "us-east", "eu-west", "400ms")
    assert code == 0, out
    try:
        assert max(eu_write_lags(topo, count=3)) >= 0.39
    finally:
        code, out = cli("latency", "reset", str(path))
        assert code == 0, out


def test_a_partition_cuts_the_mesh_and_heal_restores_it(lab: tuple[Topology, Path]) -> None:
    topo, path = lab
    etcd_us = container(topo, "etcd-us-east")

    def etcd_healthy() -> int:
        """etcd members that commit a proposal, asked from us-east."""
        res = gateway.exec_in(etcd_us, ["etcdctl", "--endpoints=http://127.0.0.1:2379", "--command-timeout=3s",
                                        "endpoint", "health", "--cluster", "-w", "json"], user="root")
        try:
            return sum(1 for h in json.loads(res.stdout) if h.get("health") is True)
        except (ValueError, AttributeError, TypeError):
            return -1

    def eu_streams() -> bool:
        with connect.connect(topo.name, "pg-us") as conn:
            return conn.execute("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pg-eu' "
                                "AND state = 'streaming'").fetchone() == (1,)

    code, out = cli("partition", str(path), "eu-west")
    assert code == 0, out
    try:
        wait_for(lambda: not eu_streams(), timeout=60, what="pg-eu's WAL to stop crossing the partition")
        wait_for(lambda: etcd_healthy() == 2, timeout=60, what="etcd-eu-west cut off")
        # The leader and the etcd majority are on the other side: nothing fails over.
        view = {m.name: m for m in members(topo)}
        assert (view["pg-us"].role, view["pg-us"].state) == ("leader", "running")
    finally:
        code, out = cli("heal", str(path))
        assert code == 0, out
    wait_for(eu_streams, timeout=90, what="pg-eu streaming again after the heal")
    wait_for(lambda: etcd_healthy() == 3, timeout=90, what="every etcd member healthy again")


def test_a_second_up_creates_nothing(lab: tuple[Topology, Path]) -> None:
    topo, path = lab
    before = {c.id for c in gateway.containers(topo.name)}
    result = deploy.up(topo, topo_path=path, progress=lambda s, m: None)
    assert not result.created_any
    assert {c.id for c in gateway.containers(topo.name)} == before
    assert {s.node: s.this_run for s in result.summaries} == {n: "already running" for n in topo.node_names()}


def test_patroni_fails_over_by_itself_and_the_subscription_follows(lab: tuple[Topology, Path]) -> None:
    topo, _ = lab
    gateway.kill(container(topo, "pg-us"))  # SIGKILL: a crash, nobody types anything afterwards

    def new_leader() -> bool:
        view = members(topo)
        return any(m.name != "pg-us" and m.role == "leader" and m.state == "running" for m in view)

    wait_for(new_leader, timeout=180, what="Patroni to promote another member")
    leader = next(m.name for m in members(topo) if m.role == "leader")
    assert leader in ("pg-us2", "pg-eu")

    def written() -> bool:
        try:
            insert(topo, leader, "pa-after-failover")
        except psycopg.Error:
            return False  # still read-only for a moment after the election
        return True

    wait_for(written, timeout=60, what=f"{leader} to accept writes")
    wait_for(lambda: "pa-after-failover" in skus(topo, "pg-billing"), timeout=180,
             what="the subscription to receive a row written on the new leader")
    assert "pa-row-1" in skus(topo, "pg-billing")


def test_up_after_the_failover_leaves_the_crashed_member_and_patroni_rejoins_it(lab: tuple[Topology, Path]) -> None:
    topo, path = lab
    result = deploy.up(topo, topo_path=path, progress=lambda s, m: None)
    rows = {s.node: (s.role, s.this_run) for s in result.summaries}
    assert rows["pg-us"] == ("stopped", "left stopped")
    assert not result.created_any
    gateway.start(container(topo, "pg-us"))  # nobody rewinds it: Patroni does, by itself

    def back_as_replica() -> bool:
        view = {m.name: m for m in members(topo)}
        return "pg-us" in view and view["pg-us"].role != "leader" and view["pg-us"].state == "streaming"

    wait_for(back_as_replica, timeout=240, what="Patroni to bring pg-us back as a replica")
    wait_for(lambda: "pa-after-failover" in skus(topo, "pg-us"), timeout=60, what="the new timeline's row on pg-us")


def test_down_then_up_resumes_on_the_volumes_and_patroni_elects_the_leader(lab: tuple[Topology, Path]) -> None:
    topo, path = lab
    before = {m.name: m.role for m in members(topo)}
    leader_before = next(n for n, r in before.items() if r == "leader")
    deploy.down(topo.name, volumes=False)
    assert gateway.containers(topo.name) == [] and gateway.volumes(topo.name)
    result = deploy.up(topo, topo_path=path, progress=lambda s, m: None)
    assert {s.node: s.this_run for s in result.summaries}["pg-billing"] == "started on its data"
    view = {m.name: m for m in members(topo)}
    assert all(view[n].healthy for n in MEMBERS), view
    leader = next(n for n, m in view.items() if m.role == "leader")
    # Every member started at once: Patroni chose among them (the most advanced), with no data lost.
    assert "pa-after-failover" in skus(topo, leader), (leader_before, leader)
    insert(topo, leader, "pa-after-resume")
    wait_for(lambda: "pa-after-resume" in skus(topo, "pg-billing"), timeout=180,
             what="the subscription to receive a row written after the resume")


def test_down_leaves_nothing_labelled(lab: tuple[Topology, Path]) -> None:
    topo, _ = lab
    deploy.down(topo.name, volumes=True)
    assert gateway.containers(topo.name) == []
    assert gateway.networks(topo.name) == []
    assert gateway.volumes(topo.name) == []
