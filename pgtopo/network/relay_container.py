"""The relay container: the one process that carries traffic between regions.

``relay.py`` (stdlib only) runs inside it and re-reads its JSON config on SIGHUP; this module
builds that config from the topology and the run-time overrides (pure), creates the container
and pushes changes to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgtopo.model.topology import PG_PORT, RELAY_ALIAS, RELAY_NODE, Link, Topology
from pgtopo.network import relay
from pgtopo.network.relay import link_key
from pgtopo.progress import Progress
from pgtopo.runtime import gateway, image, state

if TYPE_CHECKING:  # only gateway.py imports docker at run time
    from docker.models.containers import Container
    from docker.models.networks import Network

RELAY_NAME = RELAY_NODE
RELAY_CONF = "/etc/pgtopo/relay.json"
RELAY_SOURCE = Path(relay.__file__)


def relay_image(topo: Topology) -> str:
    return topo.image if image.is_local_build(topo.image) else "pgtopo/postgres:17"


def relay_config(topo: Topology, *, links: dict[str, dict[str, Any]] | None = None,
                 peers: dict[str, str] | None = None, partitioned: Iterable[str] | None = None,
                 networks: dict[str, str] | None = None) -> dict[str, Any]:
    """The relay's JSON config. ``links`` overrides the file's latencies (``latency set``);
    ``networks`` maps each region network's subnet to its region (the mesh listeners' sources).
    Without it, the mesh listeners are left out (the relay could not tell where they come from)."""
    listeners = []
    for region in topo.regions:
        for _c, node, spec in topo.all_nodes():
            if spec.region == region:
                continue
            listeners.append({
                "port": topo.relay_port(region, node), "src": region, "dst": spec.region,
                "target_node": node, "target_host": node, "target_port": PG_PORT,
            })
    if networks:
        listeners += mesh_listeners(topo)
    declared = {link_key(*lk.between): _link_json(lk) for lk in topo.latency}
    declared.update(links or {})
    return {
        "listeners": listeners,
        "links": dict(sorted(declared.items())),
        "peers": dict(sorted((peers or {}).items())),
        "partitioned": sorted(set(partitioned or [])),
        "networks": dict(sorted((networks or {}).items())),
    }


def mesh_listeners(topo: Topology) -> list[dict[str, Any]]:
    """One listener per (Patroni or etcd member, service), from any region: the one address
    the member publishes, delayed and cut by where each connection comes from."""
    return [{"port": topo.mesh_port(member, service), "src": relay.ANY_REGION, "dst": region,
             "target_node": member, "target_host": member, "target_port": service}
            for member, region, services in topo.mesh_members() for service in services]


def mesh_address(topo: Topology, member: str, service: int) -> str:
    """Where every process in the lab reaches ``member``'s ``service``: the relay's mesh port,
    or the member itself when there is no relay (a single region)."""
    if not topo.uses_relay():
        return f"{member}:{service}"
    return f"{RELAY_ALIAS}:{topo.mesh_port(member, service)}"


def _link_json(link: Link) -> dict[str, Any]:
    return {"rtt_ms": link.rtt_ms, "jitter_ms": link.jitter_ms, "bandwidth_kbps": link.bandwidth_kbps}


# -- the relay ------------------------------------------------------------------------------------

def ensure_relay(topo: Topology, nets: dict[str, Network], *, progress: Progress) -> Container:
    found = gateway.containers(topo.name, kind="relay")
    conf = live_relay_config(topo)  # with run-time link overrides and partitions
    # Mesh listeners are for the containers only: nothing on the host needs them published.
    published = [lst for lst in conf["listeners"] if lst["src"] != relay.ANY_REGION]
    wanted = {f"{lst['port']}/tcp" for lst in published}
    if found and gateway.status(found[0]) == "running":
        if wanted <= set(gateway.published_ports(found[0])):
            # Its published ports suffice, but mesh listeners (never published) may be new: a
            # member added to the file, a cluster turned `ha: patroni`. A reload adds them.
            # A start interrupted before it joined every region's network joins them now.
            for r in topo.regions:
                gateway.connect_network(found[0], nets[r], aliases=[RELAY_ALIAS])
            update_relay(topo)
            return found[0]
        # Regions or nodes were added: Docker cannot publish ports on a running container, so
        # the relay is re-created; WAL receivers and subscriptions reconnect within seconds.
        progress("relay", "re-creating the relay for the new regions and nodes")
    for c in found:
        gateway.remove_container(c, volume=False)
    progress("relay", "starting the latency relay")
    ports: dict[str, tuple[str, int | None]] = {f"{lst['port']}/tcp": ("127.0.0.1", None) for lst in published}
    # Started on one region's network, then joined to the others: Docker publishes the ports on
    # every network a container starts on (at 8 regions and 210 ports, 42 s of `docker start`
    # against about 3 s this way); the host reaches them through that one, which is all it needs.
    # It is the network whose name sorts first: Docker routes a container through that one (its
    # gateway endpoint) and moves the published ports to it when it joins later (13 s each time).
    first, *others = sorted(topo.regions, key=lambda r: nets[r].name)
    container = gateway.create(gateway.ContainerSpec(
        topology=topo.name, name=RELAY_NAME, kind="relay", image=relay_image(topo),
        command=["python3", "/etc/pgtopo/relay.py", "serve", RELAY_CONF],
        region_networks=[(nets[first], [RELAY_ALIAS])],
        ports=ports, extra_labels={"node": RELAY_NAME}, environment={}, stop_signal="SIGTERM",
    ))
    gateway.put_files(container, {"relay.py": (RELAY_SOURCE.read_text(), 0o644),
                                  "relay.json": (json.dumps(conf, indent=2), 0o644)}, directory="/etc/pgtopo")
    gateway.start(container)
    for r in others:
        gateway.connect_network(container, nets[r], aliases=[RELAY_ALIAS])
    return container


def running_relay(topo: Topology) -> Container | None:
    found = [c for c in gateway.containers(topo.name, kind="relay") if gateway.status(c) == "running"]
    return found[0] if found else None


def live_relay_config(topo: Topology) -> dict[str, Any]:
    """The relay's config with run-time facts: node and etcd member addresses, region subnets,
    link overrides, partitions."""
    rt = state.load(topo.name)
    peers: dict[str, str] = {}
    for kind in ("node", "dcs"):
        for c in gateway.containers(topo.name, kind=kind):
            for ip in gateway.ip_addresses(c).values():
                peers[ip] = c.labels.get(gateway.LABEL_NODE, "")
    networks: dict[str, str] = {}
    for net in gateway.networks(topo.name):
        subnet, region = gateway.network_subnet(net), net.attrs.get("Labels", {}).get(gateway.LABEL_REGION)
        if subnet and region in topo.regions:
            networks[subnet] = region
    return relay_config(topo, links=rt.links_json(), peers=peers, partitioned=rt.partitioned, networks=networks)


def update_relay(topo: Topology) -> None:
    found = gateway.containers(topo.name, kind="relay")
    if not found:
        return
    conf = live_relay_config(topo)
    gateway.put_files(found[0], {"relay.json": (json.dumps(conf, indent=2), 0o644),
                                 "relay.py": (RELAY_SOURCE.read_text(), 0o644)}, directory="/etc/pgtopo")
    gateway.kill(found[0], signal="SIGHUP")


