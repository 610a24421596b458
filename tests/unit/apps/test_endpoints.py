"""What `pgtopo env` computes: pure, from a topology, the current primaries and a port map."""

from __future__ import annotations

import json
import shlex

import pytest
from psycopg.conninfo import conninfo_to_dict

from pgtopo.apps import endpoints
from pgtopo.errors import InputError, PgtopoError
from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from tests.support.ports import ports
from tests.support.topologies import FOUR_REGIONS, GLOBAL_SAAS


@pytest.fixture(scope="module")
def saas() -> Topology:
    return load(GLOBAL_SAAS)


def host_ports(url: str) -> list[int]:
    return [int(p) for p in str(conninfo_to_dict(url)["port"]).split(",")]


def compute(topo: Topology, region: str, *, cluster: str = "main", primaries: dict[str, str] | None = None,
            running: list[str] | None = None) -> endpoints.AppEndpoints:
    return endpoints.compute(topo, region=region, cluster=cluster, primaries=primaries or {}, ports=ports(
        topo, running=running), password="s3cret")


def test_from_the_replicas_region_writes_cross_the_relay_and_reads_stay_local(saas: Topology) -> None:
    ep = compute(saas, "eu-west")
    relay_to_us = 20000 + saas.relay_port("eu-west", "pg-us") - 10000
    assert (ep.primary.node, ep.primary.port, ep.primary.rtt_ms, ep.primary.via_relay) == ("pg-us", relay_to_us, 80, True)
    assert (ep.replica.node, ep.replica.port, ep.replica.via_relay) == ("pg-eu", 5001, False)
    assert ep.primary_url == f"postgresql://app:s3cret@127.0.0.1:{relay_to_us}/production"
    assert ep.replica_url == "postgresql://app:s3cret@127.0.0.1:5001/production"
    info = conninfo_to_dict(ep.multihost_url)
    assert info["host"] == "127.0.0.1,127.0.0.1"
    assert host_ports(ep.multihost_url) == [relay_to_us, 5001]  # the primary first
    assert info["target_session_attrs"] == "read-write"
    assert (info["user"], info["password"], info["dbname"]) == ("app", "s3cret", "production")


def test_from_the_primarys_region_the_replica_is_remote(saas: Topology) -> None:
    ep = compute(saas, "us-east")
    assert (ep.primary.port, ep.primary.via_relay) == (5000, False)
    assert ep.replica.node == "pg-eu"
    assert ep.replica.port == 20000 + saas.relay_port("us-east", "pg-eu") - 10000
    assert ep.replica.rtt_ms == 80


def test_a_region_without_nodes_uses_the_relay_for_both(saas: Topology) -> None:
    ep = compute(saas, "ap-south")
    assert (ep.primary.node, ep.primary.rtt_ms) == ("pg-us", 200)
    assert (ep.replica.node, ep.replica.rtt_ms) == ("pg-eu", 120)


def test_the_current_primary_wins_over_the_file(saas: Topology) -> None:
    # After a failover to pg-eu, with the old primary stopped.
    ep = compute(saas, "eu-west", primaries={"main": "pg-eu"}, running=["pg-eu", "pg-billing"])
    assert (ep.primary.node, ep.primary.port) == ("pg-eu", 5001)
    assert ep.replica == ep.primary  # no running replica left: reads go to the primary
    # The stopped node keeps its (stable) relay port in the multi-host list.
    assert host_ports(ep.multihost_url) == [5001, 20000 + saas.relay_port("eu-west", "pg-us") - 10000]


def test_a_cluster_without_replicas_reads_from_its_primary(saas: Topology) -> None:
    ep = compute(saas, "eu-west", cluster="billing")
    assert ep.replica_url == ep.primary_url
    assert ep.database == "production"


def test_nearest_replica_by_rtt_when_none_is_local() -> None:
    four = load(FOUR_REGIONS)
    everyone = four.node_names()
    ep = compute(four, "eu-central")
    assert ep.replica.node == "pg-euc"  # local
    ep = compute(four, "eu-central", running=[n for n in everyone if n != "pg-euc"])
    assert (ep.replica.node, ep.replica.rtt_ms) == ("pg-euw", 20)  # 20 ms beats 90 and 150
    ep = compute(four, "us-east")
    assert (ep.replica.node, ep.replica.rtt_ms) == ("pg-use2", 0)


def test_primary_not_running_is_an_operation_error(saas: Topology) -> None:
    with pytest.raises(PgtopoError) as exc:
        compute(saas, "eu-west", running=["pg-eu"])
    assert not isinstance(exc.value, InputError)
    assert exc.value.message == "the primary pg-us of cluster 'main' is not running"


def test_names_are_checked(saas: Topology) -> None:
    with pytest.raises(InputError, match=r"^unknown region 'mars' \(known: us-east, eu-west, ap-south\)$"):
        compute(saas, "mars")
    with pytest.raises(InputError, match=r"^unknown cluster 'nope' \(known: main, billing\)$"):
        endpoints.select_cluster(saas, "nope")
    assert endpoints.select_cluster(saas, None) == "main"
    assert endpoints.select_cluster(saas, "billing") == "billing"


def test_formats(saas: Topology) -> None:
    ep = endpoints.compute(saas, region="eu-west", cluster="main", primaries={}, ports=ports(saas),
                           password="it's/secret")
    shell = endpoints.render(ep, fmt="shell").splitlines()
    assert shell[0].startswith("# pgtopo env: cluster main, database production, application in eu-west; ")
    exports = dict(shlex.split(line)[1].split("=", 1) for line in shell[1:])
    assert exports == ep.as_env()
    assert all(line.startswith("export ") for line in shell[1:])
    assert "it%27s%2Fsecret" in ep.primary_url  # a password is percent-encoded in a URL
    assert conninfo_to_dict(ep.primary_url)["password"] == "it's/secret"
    dotenv = endpoints.render(ep, fmt="dotenv").splitlines()
    assert dotenv[1:] == [f"{k}={v}" for k, v in ep.as_env().items()]
    assert json.loads(endpoints.render(ep, fmt="json")) == ep.as_env()
    assert list(ep.as_env()) == ["PRIMARY_DATABASE_URL", "LOCAL_READ_REPLICA_URL", "DATABASE_URL_MULTIHOST"]


def test_a_patroni_cluster_gets_a_multi_host_primary_url_that_finds_the_leader() -> None:
    from tests.support.topologies import TOPOLOGIES

    topo = load(TOPOLOGIES / "global-saas-patroni.yaml")
    # pg-us (the last leader pgtopo knows) is down: Patroni promoted another member on its own.
    ep = compute(topo, "eu-west", running=["pg-us2", "pg-eu", "pg-billing"])
    info = conninfo_to_dict(ep.primary_url)
    assert info["target_session_attrs"] == "read-write"
    relay = {n: 20000 + topo.relay_port("eu-west", n) - 10000 for n in ("pg-us", "pg-us2")}
    # Every member from eu-west: pg-us first (still in the list: its relay port is kept), then
    # the nearest (pg-eu, local), then pg-us2.
    assert host_ports(ep.primary_url) == [relay["pg-us"], 5002, relay["pg-us2"]]
    assert ep.multihost_url == ep.primary_url
    assert (ep.replica.node, ep.replica.via_relay) == ("pg-eu", False)
    assert conninfo_to_dict(ep.replica_url)["target_session_attrs"] == "prefer-standby"
    assert host_ports(ep.replica_url)[0] == 5002
    # From us-east, a member of us-east that is down is left out (no relay port reaches it).
    east = compute(topo, "us-east", running=["pg-us2", "pg-eu", "pg-billing"])
    assert [r.node for r in east.nodes] == ["pg-us2", "pg-eu"]
    with pytest.raises(PgtopoError, match="no member of cluster 'main' is running"):
        compute(topo, "us-east", running=["pg-billing"])
