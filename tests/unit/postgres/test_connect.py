"""Which container addresses the host reaches directly (pure: a /proc/net/route text)."""

from __future__ import annotations

import ipaddress

from pgtopo.postgres.connect import on_link_networks, reachable

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
