"""What an application running in a region connects to: the URLs `pgtopo env` prints.

An application "in region X" runs on the host but must pay X's latency to every other region,
so a node in another region is reached through the relay's published listener for (X, node),
and a node in X through its own published port. :func:`compute` decides from a snapshot (the
topology, the current primaries, the published ports) and is pure; :func:`live_ports` collects
the ports from Docker; :func:`app_endpoints` does both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from pgtopo.errors import InputError, PgtopoError
from pgtopo.model.topology import Topology

HOST = "127.0.0.1"
APP_USER = "app"
# A blackholed host in the multi-host list must not stall the search for the primary.
MULTIHOST_CONNECT_TIMEOUT_S = 5
ENV_NAMES = ("PRIMARY_DATABASE_URL", "LOCAL_READ_REPLICA_URL", "DATABASE_URL_MULTIHOST")
EnvFormat = Literal["shell", "json", "dotenv"]


@dataclass(frozen=True)
class PortMap:
    """Host ports: ``nodes`` of running nodes (their 5432), ``relay`` listener port -> host port."""

    nodes: Mapping[str, int]
    relay: Mapping[int, int]


@dataclass(frozen=True)
class Route:
    """How the application reaches one node from its region."""

    node: str
    region: str
    port: int
    rtt_ms: float  # the declared round trip the client pays (0 in its own region)
    via_relay: bool = False

    def describe(self) -> str:
        how = f"through the relay, {self.rtt_ms:g} ms RTT" if self.via_relay else "local"
        return f"{self.node} ({self.region}, {how})"


@dataclass(frozen=True)
class AppEndpoints:
    cluster: str
    region: str
    database: str
    primary: Route
    replica: Route  # the primary itself when the cluster has no running replica
    nodes: tuple[Route, ...]  # the multi-host list: primary first, then nearest first
    primary_url: str
    replica_url: str
    multihost_url: str

    def as_env(self) -> dict[str, str]:
        return dict(zip(ENV_NAMES, (self.primary_url, self.replica_url, self.multihost_url), strict=True))


def select_cluster(topo: Topology, cluster: str | None) -> str:
    """``cluster`` if known; by default the first cluster with replicas (else the first one)."""
    if cluster is not None:
        if cluster not in topo.clusters:
            raise InputError(f"unknown cluster '{cluster}' (known: {', '.join(topo.clusters)})")
        return cluster
    return next((c for c, cl in topo.clusters.items() if len(cl.nodes) > 1), next(iter(topo.clusters)))


def check_region(topo: Topology, region: str) -> None:
    if region not in topo.regions:
        raise InputError(f"unknown region '{region}' (known: {', '.join(topo.regions)})")


def route(topo: Topology, ports: PortMap, *, region: str, node: str) -> Route | None:
    """None when the port is unknown: a stopped node in the region, or no relay listener."""
    spec = topo.node(node)
    if spec.region == region:
        port = ports.nodes.get(node)
        return None if port is None else Route(node=node, region=spec.region, port=port, rtt_ms=0.0)
    relay_port = ports.relay.get(topo.relay_port(region, node))
    if relay_port is None:
        return None
    return Route(node=node, region=spec.region, port=relay_port, rtt_ms=topo.rtt_ms(region, spec.region),
                 via_relay=True)


def _url(routes: list[Route], *, user: str, password: str, database: str,
         params: Mapping[str, str | int] | None = None) -> str:
    hosts = ",".join(f"{HOST}:{r.port}" for r in routes)
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in (params or {}).items())
    return (f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{hosts}/{quote(database, safe='')}"
            + (f"?{query}" if query else ""))


def compute(topo: Topology, *, region: str, cluster: str, primaries: Mapping[str, str], ports: PortMap,
            password: str, user: str = APP_USER, database: str | None = None) -> AppEndpoints:
    """The endpoints of ``cluster`` for an application in ``region`` (pure: no Docker).
    ``database`` defaults to the cluster's first database."""
    check_region(topo, region)
    cl = topo.clusters[cluster]
    primary = primaries.get(cluster, cl.primary_name)
    database = database or next(iter(cl.databases), "postgres")
    names = list(cl.nodes)

    def nearness(node: str) -> tuple[bool, float, int]:
        spec = cl.nodes[node]
        return (spec.region != region, topo.rtt_ms(region, spec.region), names.index(node))

    if cl.ha == "patroni":
        return _patroni(topo, region=region, cluster=cluster, primary=primary, ports=ports, password=password,
                        user=user, database=database, nearness=nearness)
    primary_route = route(topo, ports, region=region, node=primary) if primary in ports.nodes else None
    if primary_route is None:
        raise PgtopoError(f"the primary {primary} of cluster '{cluster}' is not running",
                          details=["fail over to a replica (`pgtopo failover FILE`), or start the node again"])
    replicas = [r for n in sorted((n for n in names if n != primary and n in ports.nodes), key=nearness)
                if (r := route(topo, ports, region=region, node=n)) is not None]
    replica_route = replicas[0] if replicas else primary_route
    # Stopped nodes in other regions stay in the list: their relay port does not change, so
    # the URL keeps working when such a node comes back as the primary.
    others = [r for n in sorted((n for n in names if n != primary), key=nearness)
              if (r := route(topo, ports, region=region, node=n)) is not None]
    multi = [primary_route, *others]
    return AppEndpoints(
        cluster=cluster, region=region, database=database, primary=primary_route, replica=replica_route,
        nodes=tuple(multi),
        primary_url=_url([primary_route], user=user, password=password, database=database),
        replica_url=_url([replica_route], user=user, password=password, database=database),
        multihost_url=_url(multi, user=user, password=password, database=database,
                           params={"target_session_attrs": "read-write",
                                   "connect_timeout": MULTIHOST_CONNECT_TIMEOUT_S}),
    )


def _patroni(topo: Topology, *, region: str, cluster: str, primary: str, ports: PortMap, password: str, user: str,
             database: str, nearness: Callable[[str], tuple[bool, float, int]]) -> AppEndpoints:
    """A Patroni cluster moves its leader on its own: the primary URL lists every member (the
    last leader pgtopo knows first, then the nearest) and libpq finds the writable one at each
    connection (target_session_attrs=read-write); the replica URL prefers the nearest standby."""
    names = sorted(topo.clusters[cluster].nodes, key=lambda n: (n != primary, *nearness(n)))
    routes = [r for n in names if (n in ports.nodes or topo.node(n).region != region)
              and (r := route(topo, ports, region=region, node=n)) is not None]
    if not routes or not any(n in ports.nodes for n in names):
        raise PgtopoError(f"no member of cluster '{cluster}' is running", details=["start it with `pgtopo up FILE`"])
    multi = _url(routes, user=user, password=password, database=database,
                 params={"target_session_attrs": "read-write", "connect_timeout": MULTIHOST_CONNECT_TIMEOUT_S})
    standbys = [r for r in sorted(routes[1:], key=lambda r: nearness(r.node)) if r.node in ports.nodes]
    replica = standbys[0] if standbys else routes[0]
    read = _url([replica, *[r for r in routes if r is not replica]], user=user, password=password, database=database,
                params={"target_session_attrs": "prefer-standby", "connect_timeout": MULTIHOST_CONNECT_TIMEOUT_S})
    return AppEndpoints(cluster=cluster, region=region, database=database, primary=routes[0], replica=replica,
                        nodes=tuple(routes), primary_url=multi, replica_url=read, multihost_url=multi)


def live_ports(topo: Topology) -> PortMap:
    """Published ports of the running nodes and of the relay's listeners."""
    from pgtopo.postgres import connect
    from pgtopo.runtime import gateway

    nodes = {n: p for n in topo.node_names() if (p := connect.node_port(topo.name, n)) is not None}
    relay: dict[int, int] = {}
    for c in gateway.containers(topo.name, kind="relay"):
        if gateway.status(c) != "running":
            continue
        for key, host_port in gateway.published_ports(c).items():
            port, _, proto = key.partition("/")
            if proto == "tcp":
                relay[int(port)] = host_port
    return PortMap(nodes=nodes, relay=relay)


def app_endpoints(topo: Topology, *, region: str, cluster: str | None = None, user: str = APP_USER,
                  database: str | None = None) -> AppEndpoints:
    """The live endpoints (Docker and the state directory); bad names fail before Docker is asked."""
    from pgtopo.runtime import state

    check_region(topo, region)
    cname = select_cluster(topo, cluster)
    password = state.passwords(topo.name, create=False).get(user)
    ports = live_ports(topo)
    if not ports.nodes:
        raise PgtopoError(f"topology '{topo.name}' is not running (start it with `pgtopo up FILE`)")
    if password is None:
        raise PgtopoError(f"no password for role '{user}' of topology '{topo.name}' in the state directory",
                          details=["was it started with another PGTOPO_STATE_DIR?"])
    return compute(topo, region=region, cluster=cname, primaries=state.current_primaries(topo), ports=ports,
                   password=password, user=user, database=database)


def render(ep: AppEndpoints, *, fmt: EnvFormat) -> str:
    """``shell``: ``export X='...'`` lines; ``dotenv``: ``X=...``; ``json``: one object."""
    env = ep.as_env()
    if fmt == "json":
        return json.dumps(env, indent=2)
    comment = (f"# pgtopo env: cluster {ep.cluster}, database {ep.database}, application in {ep.region}; "
               f"primary {ep.primary.describe()}, read replica {ep.replica.describe()}")
    if fmt == "shell":
        return "\n".join([comment, *(f"export {k}={_shell_quote(v)}" for k, v in env.items())])
    return "\n".join([comment, *(f"{k}={v}" for k, v in env.items())])


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"

