"""Which container addresses the host reaches directly (a /proc/net/route text), and connecting straight to them."""

from __future__ import annotations

import ipaddress

import pytest
from psycopg.conninfo import conninfo_to_dict

from pgtopo.postgres import connect
from pgtopo.postgres.connect import on_link_networks, reachable
from pgtopo.runtime import gateway, state

# This machine's table with one topology up: the default route, docker0, a topology's bridge
# (10.213.0.0/24) and the host's own network.
ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
br-5f1c2a\t0000D50A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def net(cidr: str) -> tuple[int, int]:
    n = ipaddress.IPv4Network(cidr)
    return int(n.network_address), int(n.netmask)


def test_the_directly_connected_networks_are_read_in_host_order_without_the_default_route() -> None:
    assert on_link_networks(ROUTES) == (net("172.17.0.0/16"), net("10.213.0.0/24"), net("192.0.2.0/24"))


def test_a_container_on_a_bridge_of_the_host_is_reachable_and_nothing_else() -> None:
    networks = on_link_networks(ROUTES)
    assert reachable("10.213.0.4", networks)
    assert not reachable("10.213.1.3", networks)  # another topology's bridge, not on this host
    assert not reachable("8.8.8.8", networks)  # only through the default route's gateway
    assert not reachable(None, networks) and not reachable("", networks)
    assert not reachable("fd00::3", networks) and not reachable("not-an-address", networks)
    # No route table (not Linux, or rootless Docker's bridges in another namespace): never.
    assert not reachable("10.213.0.4", ())


def test_a_published_port_docker_listed_is_reached_straight_at_its_container(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = gateway.Listed(id="c1", labels={gateway.LABEL_NODE: "pg-us"}, status="running",
                            ports={connect.PG_PORT_KEY: 33806}, address="10.213.0.4")
    monkeypatch.setattr(gateway, "listed", lambda topology, **kw: [listed])
    monkeypatch.setattr(connect, "_on_link", lambda: on_link_networks(ROUTES))
    monkeypatch.setattr(state, "passwords", lambda topology, create=False: {"pgtopo": "secret"})
    monkeypatch.setattr(connect, "_ADDRESSES", {})
    found = conninfo_to_dict(connect.dsn("lab", "pg-us"))  # the port looked up: Docker gave the address too
    assert (found["host"], found["port"]) == ("10.213.0.4", "5432")
    again = conninfo_to_dict(connect.dsn("lab", "pg-us", port=33806))  # the same container, no Docker call
    assert (again["host"], again["port"]) == ("10.213.0.4", "5432")
    # Another port is another container (started again since): its own published port.
    other = conninfo_to_dict(connect.dsn("lab", "pg-us", port=40001))
    assert (other["host"], other["port"]) == ("127.0.0.1", "40001")
    # A host that does not reach the bridge (Docker Desktop, rootless): the published port.
    monkeypatch.setattr(connect, "_on_link", lambda: ())
    assert conninfo_to_dict(connect.dsn("lab", "pg-us", port=33806))["host"] == "127.0.0.1"
