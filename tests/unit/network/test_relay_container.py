"""The relay's configuration as pgtopo writes it, read back by the relay itself."""

from __future__ import annotations

from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from pgtopo.network import relay as R
from pgtopo.network import relay_container


def test_relay_config_is_valid_for_the_relay(topo: Topology) -> None:
    conf = relay_container.relay_config(topo)
    parsed = R.RelayConfig.from_json(conf)
    # 3 regions, one node each: every region reaches the 2 nodes of the other regions.
    assert len(parsed.listeners) == 6
    assert {(x.src, x.target_node) for x in parsed.listeners} == {
        (r, n) for r in topo.regions for n in topo.node_names() if topo.node(n).region != r}
    assert all(x.port == topo.relay_port(x.src, x.target_node) and x.target_port == 5432 for x in parsed.listeners)
    assert parsed.link("eu-west", "us-east") == R.LinkShape(80.0, 2.0, None)
    assert parsed.partitioned == frozenset()
    assert R.link_key("us-east", "eu-west") == "eu-west|us-east"


def test_relay_config_overrides_and_partitions(topo: Topology) -> None:
    override = {"eu-west|us-east": {"rtt_ms": 200.0, "jitter_ms": 0.0, "bandwidth_kbps": None}}
    conf = relay_container.relay_config(topo, links=override, partitioned=["eu-west", "eu-west"],
                          peers={"172.30.0.5": "pg-eu"})
    parsed = R.RelayConfig.from_json(conf)
    assert parsed.link("us-east", "eu-west") == R.LinkShape(200.0, 0.0, None)
    assert parsed.link("us-east", "ap-south") == R.LinkShape(200.0, 5.0, None)  # untouched
    assert conf["partitioned"] == ["eu-west"]
    cut = {(x.src, x.target_node) for x in parsed.listeners if parsed.is_cut(x)}
    assert cut == {("eu-west", "pg-us"), ("eu-west", "pg-billing"), ("us-east", "pg-eu"), ("ap-south", "pg-eu")}
    # The billing subscription (ap-south -> pg-us) does not cross eu-west: it keeps flowing.
    assert not parsed.is_cut(next(x for x in parsed.listeners if (x.src, x.target_node) == ("ap-south", "pg-us")))


def test_node_partition_cuts_its_listeners_and_its_own_connections(topo: Topology) -> None:
    parsed = R.RelayConfig.from_json(relay_container.relay_config(topo, partitioned=["pg-eu"], peers={"172.30.0.5": "pg-eu"}))
    to_us = next(x for x in parsed.listeners if (x.src, x.target_node) == ("eu-west", "pg-us"))
    assert parsed.is_cut(to_us, "172.30.0.5")  # pg-eu's own WAL receiver
    assert not parsed.is_cut(to_us, "172.30.0.9")  # another client in eu-west
    assert parsed.is_cut(next(x for x in parsed.listeners if (x.src, x.target_node) == ("us-east", "pg-eu")))


def test_mesh_listeners_for_patroni_and_etcd_members() -> None:
    from pgtopo.model.topology import MESH_PORT_BASE, MESH_PORT_SPAN, RELAY_PORT_BASE
    from tests.support.topologies import TOPOLOGIES

    topo = load(TOPOLOGIES / "global-saas-patroni.yaml")
    nets = {"10.213.1.0/24": "us-east", "10.213.2.0/24": "eu-west", "10.213.3.0/24": "ap-south"}
    assert not [x for x in relay_container.relay_config(topo)["listeners"] if x["src"] == "*"]  # no subnets yet
    parsed = R.RelayConfig.from_json(relay_container.relay_config(topo, networks=nets))
    mesh = {(x.target_node, x.target_port): x for x in parsed.listeners if x.src == "*"}
    # pg-billing is ha: manual: not on the mesh; every Patroni node twice, every etcd member twice.
    assert set(mesh) == {(n, s) for n in ("pg-us", "pg-us2", "pg-eu") for s in (5432, 8008)} | {
        (m, s) for m in ("etcd-us-east", "etcd-eu-west", "etcd-ap-south") for s in (2379, 2380)}
    assert mesh[("pg-eu", 8008)].dst == "eu-west" and mesh[("etcd-ap-south", 2380)].dst == "ap-south"
    ports = [x.port for x in mesh.values()]
    plain = [x.port for x in parsed.listeners if x.src != "*"]
    assert len(set(ports)) == len(ports) and not set(ports) & set(plain)
    assert all(MESH_PORT_BASE <= p < MESH_PORT_BASE + MESH_PORT_SPAN <= RELAY_PORT_BASE for p in ports)
    assert parsed.networks == nets
    # Deterministic: the same names give the same ports, whatever else the file holds.
    again = load(TOPOLOGIES / "global-saas-patroni.yaml")
    assert again.mesh_port("pg-us", 5432) == topo.mesh_port("pg-us", 5432)
    assert relay_container.mesh_address(topo, "pg-us", 8008) == f"pgtopo-relay:{topo.mesh_port('pg-us', 8008)}"


def test_a_manual_topology_has_no_mesh(topo: Topology) -> None:
    conf = relay_container.relay_config(topo, networks={"10.213.1.0/24": "us-east"})
    assert all(x["src"] != "*" for x in conf["listeners"])
    assert topo.mesh_members() == []
