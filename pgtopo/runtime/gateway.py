"""The only module that talks to Docker.

Everything it creates carries the labels ``pgtopo.topology`` and ``pgtopo.kind`` (plus
``pgtopo.node`` / ``pgtopo.region``), and is found and removed again by label, never by name.
"""

from __future__ import annotations

import functools
import io
import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from docker.models.containers import Container
from docker.models.networks import Network

from pgtopo.errors import DockerUnavailable, OperationFailed

LABEL_TOPOLOGY = "pgtopo.topology"
LABEL_KIND = "pgtopo.kind"
LABEL_NODE = "pgtopo.node"
LABEL_REGION = "pgtopo.region"
LABEL_CLUSTER = "pgtopo.cluster"
# Where a node's named volume is mounted: exactly where the official postgres:17 image declares
# `VOLUME /var/lib/postgresql/data`. A mount at that very path replaces the image's volume, so
# Docker creates no anonymous one (which would hold PGDATA out of reach of the throw-away
# containers that read a stopped node's volume, and of `down` without --volumes).
PG_DATA_MOUNT = "/var/lib/postgresql/data"

# What the Docker SDK raises when a call fails: its own errors, and the HTTP client's underneath it
# (a daemon gone mid-command, a stream cut). The CLI catches these by class when a domain module did
# not translate them, without importing docker itself.
DOCKER_ERRORS: tuple[type[Exception], ...] = (
    docker.errors.DockerException, requests.exceptions.RequestException, urllib3.exceptions.HTTPError)


@lru_cache(maxsize=1)
def client() -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=300)  # asks the daemon its API version: no ping needed to know it answers
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise DockerUnavailable(f"cannot reach the Docker daemon ({exc.__class__.__name__}: {exc})".split("\n")[0]) from None
    return c


@contextmanager
def docker_errors(*, node: str | None = None, step: str | None = None) -> Iterator[None]:
    """Turn Docker SDK errors into OperationFailed naming the node and step."""
    try:
        yield
    except docker.errors.APIError as exc:
        raise OperationFailed(str(exc.explanation or exc), node=node, step=step) from None
    except requests.exceptions.RequestException as exc:
        raise DockerUnavailable(f"lost the Docker daemon ({exc})") from None


def labels(topology: str, kind: str, **extra: str) -> dict[str, str]:
    out = {LABEL_TOPOLOGY: topology, LABEL_KIND: kind}
    for key, value in extra.items():
        out[f"pgtopo.{key}"] = value
    return out


# Topology, node and region names are lower-case letters, digits and '-': joined by '-', topology
# 't' node 'a-b' and topology 't-a' node 'b' were both 't-a-b'. '_' is in none of them, so
# '<topology>_<name>' cannot alias across topologies. Things made before the change keep their
# old names: they are found by label, never by name.
SEPARATOR = "_"


def container_name(topology: str, name: str) -> str:
    """The Docker name of a container or network: ``<topology>_<node or region>``."""
    return f"{topology}{SEPARATOR}{name}"


def volume_name(topology: str, node: str) -> str:
    """The Docker name of a node's data volume: ``<topology>_<node>_data``."""
    return f"{topology}{SEPARATOR}{node}{SEPARATOR}data"


def data_volume(topology: str, node: str) -> str:
    """The name of a node's data volume: the one labelled for it, else the name a new one gets."""
    with docker_errors(node=node, step="find volume"):
        own = client().volumes.list(filters={"label": [f"{LABEL_TOPOLOGY}={topology}", f"{LABEL_NODE}={node}"]})
    return str(own[0].name) if own else volume_name(topology, node)


# -- images ---------------------------------------------------------------------------------------

def image_exists(tag: str) -> bool:
    try:
        client().images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def image_labels(tag: str) -> dict[str, str]:
    with docker_errors(step=f"inspect {tag}"):
        return dict((client().images.get(tag).attrs.get("Config") or {}).get("Labels") or {})


def import_image(tar_path: str, *, repository: str, tag: str, changes: Sequence[str]) -> None:
    with docker_errors(step="import image"):
        client().api.import_image(src=tar_path, repository=repository, tag=tag, changes=list(changes))


def build_image(dockerfile: str, *, tag: str) -> None:
    """Build ``tag`` from a Dockerfile with no context (FROM a local image: nothing is pulled)."""
    with docker_errors(step=f"build {tag}"):
        client().images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, pull=False, rm=True, forcerm=True)


def pull_image(ref: str) -> None:
    with docker_errors(step=f"pull {ref}"):
        client().images.pull(ref)


def run_oneshot(image: str, command: list[str], *, wait_timeout: float = 60, **kwargs: Any) -> tuple[int, str]:
    """Run a throw-away container and return (exit code, output)."""
    with docker_errors(step="probe container"):
        c = client().containers.run(image, command, detach=True, **kwargs)
        try:
            rc = int(c.wait(timeout=wait_timeout)["StatusCode"])
            out = c.logs().decode(errors="replace")
        finally:
            c.remove(force=True, v=True)
    return rc, out


def run_on_volume(topology: str, *, volume: str, image: str, command: list[str], node: str) -> tuple[int, str]:
    """Run a throw-away, labelled container with ``volume`` at PG_DATA_MOUNT and no network.

    Reads or fixes a node's data while its own container is stopped; returns (exit code, output).
    """
    return run_oneshot(image, command, volumes={volume: {"bind": PG_DATA_MOUNT, "mode": "rw"}}, user="root",
                       network_mode="none", labels=labels(topology, "oneshot", node=node))


# -- networks -------------------------------------------------------------------------------------

def ensure_network(topology: str, region: str, *, subnet: str | None) -> Network:
    name = container_name(topology, region)
    found = client().networks.list(filters={"label": [f"{LABEL_TOPOLOGY}={topology}", f"{LABEL_REGION}={region}"]})
    if found:
        return found[0]
    # Docker's default pools hold about 30 networks; pgtopo takes /24s from its own range,
    # skipping those in use (and trying the next on a race) so several topologies fit.
    candidates = [subnet] if subnet else [c for c in (f"10.213.{i}.0/24" for i in range(256)) if c not in used_subnets()]
    for candidate in candidates:
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=candidate)])
        try:
            return client().networks.create(
                name, driver="bridge", ipam=ipam, labels=labels(topology, "network", region=region),
                check_duplicate=True,
            )
        except docker.errors.APIError as exc:
            if subnet is None and "overlap" in str(exc.explanation or exc).lower():
                continue
            raise OperationFailed(str(exc.explanation or exc), step=f"create network for region {region}") from None
    raise OperationFailed("no free /24 left in 10.213.0.0/16", step=f"create network for region {region}")


def used_subnets() -> set[str]:
    out: set[str] = set()
    for net in client().api.networks():
        for cfg in (net.get("IPAM") or {}).get("Config") or []:
            if cfg.get("Subnet"):
                out.add(cfg["Subnet"])
    return out


def networks(topology: str) -> list[Network]:
    return list(client().networks.list(filters={"label": f"{LABEL_TOPOLOGY}={topology}"}))


def network_subnet(net: Network) -> str | None:
    net.reload()
    configs = (net.attrs.get("IPAM") or {}).get("Config") or []
    return configs[0].get("Subnet") if configs else None


# -- containers -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContainerSpec:
    """What to create; the runtime adds labels, naming and network wiring."""

    topology: str
    name: str
    kind: str
    image: str
    command: list[str]
    region_networks: list[tuple[Network, list[str]]]
    ports: dict[str, tuple[str, int | None]]
    extra_labels: dict[str, str]
    environment: dict[str, str]
    volume: str | None = None
    stop_signal: str = "SIGINT"


def create(spec: ContainerSpec) -> Container:
    cname = container_name(spec.topology, spec.name)
    lab = labels(spec.topology, spec.kind, **spec.extra_labels)
    first_net, first_aliases = spec.region_networks[0]
    volumes = {}
    if spec.volume:
        volumes[_data_volume(spec.topology, spec.name, lab)] = {"bind": spec.volume, "mode": "rw"}
    with docker_errors(node=spec.name, step="create container"):
        endpoint = client().api.create_endpoint_config(aliases=first_aliases)
        networking = client().api.create_networking_config({first_net.name: endpoint})
        host_config = client().api.create_host_config(
            port_bindings={p: [hp] for p, hp in spec.ports.items()},
            binds=volumes,
            network_mode=first_net.name,
            init=True,
        )
        created = client().api.create_container(
            spec.image,
            command=spec.command,
            name=cname,
            hostname=spec.name,
            labels=lab,
            environment=spec.environment,
            user="root",
            stop_signal=spec.stop_signal,
            ports=[int(p.split("/")[0]) for p in spec.ports],
            host_config=host_config,
            networking_config=networking,
        )
        container = client().containers.get(created["Id"])
        for net, aliases in spec.region_networks[1:]:
            net.connect(container, aliases=aliases)
    return container


def _data_volume(topology: str, node: str, lab: dict[str, str]) -> str:
    """The node's own data volume: found by its labels, else created; never another's."""
    with docker_errors(node=node, step="create volume"):
        own = client().volumes.list(filters={"label": [f"{LABEL_TOPOLOGY}={topology}", f"{LABEL_NODE}={node}"]})
        if own:
            return str(own[0].name)  # also a volume named before the separator changed
        name = volume_name(topology, node)
        found = [v for v in client().volumes.list(filters={"name": name}) if v.name == name]
        if found:
            # The name is taken by a volume that is not this node's (its labels say so): mounting
            # it would hand this node another topology's data directory.
            refusal = volume_refusal(name, found[0].attrs.get("Labels") or {}, topology=topology, node=node)
            if refusal:
                raise OperationFailed(refusal, node=node, step="create volume",
                                      hint=f"remove it with `docker volume rm {name}` if it is not needed")
            return name
        client().volumes.create(name, labels=lab)
    return name


def volume_refusal(name: str, found: dict[str, str], *, topology: str, node: str) -> str | None:
    """Why a volume with labels ``found`` cannot be the data of ``node`` of ``topology``, or None."""
    owner_topology, owner_node = found.get(LABEL_TOPOLOGY), found.get(LABEL_NODE)
    if owner_topology == topology and owner_node == node:
        return None
    owner = (f"node '{owner_node}' of topology '{owner_topology}'" if owner_topology
             else "no pgtopo topology (it carries no pgtopo label)")
    return (f"volume {name} belongs to {owner}, not to node '{node}' of topology '{topology}': "
            "refusing to mount another's data")


def put_files(container: Container, files: dict[str, tuple[str, int]], *, directory: str) -> None:
    """Copy text files (content, mode) into ``directory`` of a created or running container."""
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dinfo = tarfile.TarInfo(directory.strip("/").split("/")[-1])
        dinfo.type = tarfile.DIRTYPE
        dinfo.mode = 0o755
        dinfo.mtime = int(now)
        tar.addfile(dinfo)
        for name, (content, mode) in sorted(files.items()):
            data = content.encode()
            info = tarfile.TarInfo(f"{dinfo.name}/{name}")
            info.size = len(data)
            info.mode = mode
            info.mtime = int(now)
            tar.addfile(info, io.BytesIO(data))
    parent = "/" + "/".join(directory.strip("/").split("/")[:-1])
    with docker_errors(node=container.labels.get(LABEL_NODE), step="copy files"):
        container.put_archive(parent, buf.getvalue())


def path_exists(container: Container, path: str) -> bool:
    """Whether a file exists in a container, created, running or stopped (volumes included).

    For small files only: the archive Docker answers with holds the whole file.
    """
    with docker_errors(node=container.labels.get(LABEL_NODE), step=f"look for {path}"):
        try:
            stream, _stat = container.get_archive(path)
        except docker.errors.NotFound:
            return False
        for _chunk in stream:  # read to the end: the connection goes back to the pool
            pass
    return True


def read_file(container: Container, path: str) -> str:
    with docker_errors(step=f"read {path}"):
        stream, _stat = container.get_archive(path)
        raw = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        member = tar.next()
        if member is None:
            return ""
        fh = tar.extractfile(member)
        return fh.read().decode() if fh else ""


def read_directory(container_id: str, directory: str) -> dict[str, str]:
    """Every regular file directly in ``directory`` (name -> text), in one API call: fetching
    a small directory costs what fetching one of its files does."""
    with docker_errors(step=f"read {directory}"):
        stream, _stat = client().api.get_archive(container_id, directory)
        raw = b"".join(stream)
    out: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 2:  # "<directory's name>/<file>"
                fh = tar.extractfile(member)
                out[parts[1]] = fh.read().decode() if fh else ""
    return out


@dataclass(frozen=True)
class ExecResult:
    rc: int
    stdout: str
    stderr: str


def exec_in(container: Container, cmd: list[str], *, user: str = "postgres",
            environment: dict[str, str] | None = None) -> ExecResult:
    with docker_errors(node=container.labels.get(LABEL_NODE), step=" ".join(cmd[:2])):
        rc, (out, err) = container.exec_run(cmd, user=user, demux=True, environment=environment)
    return ExecResult(rc=int(rc if rc is not None else -1), stdout=(out or b"").decode(errors="replace"),
                      stderr=(err or b"").decode(errors="replace"))


def logs(container: Container, *, tail: int = 15, since: int | None = None) -> str:
    """The container's last ``tail`` log lines (written since the Unix time ``since`` when given)."""
    try:
        raw = container.logs(tail=tail, since=since) if since is not None else container.logs(tail=tail)
        return str(raw.decode(errors="replace"))
    except docker.errors.APIError:
        return ""


def logs_by_id(container_id: str, *, tail: int = 15) -> str:
    """``logs`` of a container known by its id (from ``listed``), without inspecting it."""
    try:
        return bytes(client().api.logs(container_id, tail=tail)).decode(errors="replace")
    except docker.errors.APIError:
        return ""


def containers(topology: str | None = None, *, kind: str | None = None) -> list[Container]:
    filters = [f"{LABEL_TOPOLOGY}={topology}" if topology else LABEL_TOPOLOGY]
    if kind:
        filters.append(f"{LABEL_KIND}={kind}")
    # ignore_removed: a container removed between the listing and its inspection (a one-shot container
    # finishing meanwhile) is left out instead of failing the whole listing with NotFound.
    return list(client().containers.list(all=True, filters={"label": filters}, ignore_removed=True))


def find(topology: str, name: str) -> Container | None:
    # Filtered by the daemon: the SDK inspects every container a list returns, so listing the
    # whole topology to pick one cost one inspect per container (30 at 30 nodes) on each call.
    found = client().containers.list(all=True, filters={"label": [f"{LABEL_TOPOLOGY}={topology}",
                                                                  f"{LABEL_NODE}={name}"]})
    return found[0] if found else None


@dataclass(frozen=True)
class Listed:
    """A container as one list call describes it, without inspecting it: enough to know whether
    it runs and where its ports are published (commands that look at every node at once)."""

    id: str
    labels: dict[str, str]
    status: str  # running, exited, paused, created...
    ports: dict[str, int]  # "5432/tcp" -> the host port it is published on
    address: str | None = None  # its IP address on the first of its networks (by name), if any

    @property
    def node(self) -> str | None:
        return self.labels.get(LABEL_NODE)


def listed(topology: str, *, kind: str | None = None, node: str | None = None,
           cluster: str | None = None) -> list[Listed]:
    """The topology's containers (of ``kind``, of ``cluster``, or ``node``'s) in one API call.

    Docker builds the summary of each container it lists: listing one cluster's instead of the
    whole topology's is what keeps the call from growing with the other clusters."""
    filters = [f"{LABEL_TOPOLOGY}={topology}"]
    if kind:
        filters.append(f"{LABEL_KIND}={kind}")
    if node:
        filters.append(f"{LABEL_NODE}={node}")
    if cluster:
        filters.append(f"{LABEL_CLUSTER}={cluster}")
    with docker_errors(step="list containers"):
        rows = client().api.containers(all=True, filters={"label": filters})
    out = []
    for row in rows:
        ports = {f"{p['PrivatePort']}/{p.get('Type', 'tcp')}": int(p["PublicPort"])
                 for p in row.get("Ports") or [] if p.get("PublicPort")}
        nets = (row.get("NetworkSettings") or {}).get("Networks") or {}
        addresses = [str(nets[n].get("IPAddress")) for n in sorted(nets) if (nets[n] or {}).get("IPAddress")]
        out.append(Listed(id=str(row["Id"]), labels=dict(row.get("Labels") or {}), status=str(row.get("State", "")),
                          ports=ports, address=addresses[0] if addresses else None))
    return out


def status(container: Container) -> str:
    """running, exited, paused, created... or missing when it was removed meanwhile."""
    try:
        container.reload()
    except docker.errors.NotFound:
        return "missing"
    except docker.errors.APIError as exc:
        raise OperationFailed(str(exc.explanation or exc), node=container.labels.get(LABEL_NODE),
                              step="inspect container") from None
    return str(container.status)


def published_port(container: Container, port: str) -> int | None:
    container.reload()
    bindings = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    entries = bindings.get(port) or []
    return int(entries[0]["HostPort"]) if entries else None


def published_ports(container: Container) -> dict[str, int]:
    container.reload()
    bindings = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return {p: int(e[0]["HostPort"]) for p, e in bindings.items() if e}


def ip_addresses(container: Container) -> dict[str, str]:
    """Network name -> the container's IPv4 address on it."""
    container.reload()
    nets = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    return {name: info.get("IPAddress", "") for name, info in nets.items() if info.get("IPAddress")}


def start(container: Container) -> None:
    with docker_errors(node=container.labels.get(LABEL_NODE), step="start"):
        container.start()


def stop(container: Container, *, timeout: int = 10) -> None:
    with docker_errors(node=container.labels.get(LABEL_NODE), step="stop"):
        container.stop(timeout=timeout)


def kill(container: Container, *, signal: str = "SIGKILL") -> None:
    with docker_errors(node=container.labels.get(LABEL_NODE), step="kill"):
        container.kill(signal=signal)


def connect_network(container: Container, network: Network, *, aliases: list[str]) -> bool:
    """Attach a container to one more network unless it is already on it; True if attached."""
    container.reload()
    if network.name in ((container.attrs.get("NetworkSettings") or {}).get("Networks") or {}):
        return False
    with docker_errors(node=container.labels.get(LABEL_NODE), step=f"connect {network.name}"):
        network.connect(container, aliases=aliases)
    return True


def disconnect_all(container: Container) -> list[str]:
    """Cut a container off every network; returns the network names it was on."""
    container.reload()
    names = list(((container.attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    for name in names:
        with docker_errors(node=container.labels.get(LABEL_NODE), step=f"disconnect {name}"):
            client().networks.get(name).disconnect(container, force=True)
    return names


def network_names(container: Container) -> list[str]:
    """The networks a container is attached to now."""
    container.reload()
    return list(((container.attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())


def pause(container: Container) -> None:
    with docker_errors(node=container.labels.get(LABEL_NODE), step="pause"):
        container.pause()


def unpause(container: Container) -> None:
    with docker_errors(node=container.labels.get(LABEL_NODE), step="unpause"):
        container.unpause()


def volume_mounts(container: Container) -> dict[str, str]:
    """Volume name -> where it is mounted in the container (anonymous volumes included)."""
    container.reload()
    return {m["Name"]: m["Destination"] for m in container.attrs.get("Mounts", []) if m.get("Type") == "volume"}


def volume_names(container: Container) -> list[str]:
    container.reload()
    return [m["Name"] for m in container.attrs.get("Mounts", []) if m.get("Type") == "volume"]


REMOVE_WORKERS = 6  # containers removed at once by `down` (each a SIGKILL, an unmount, a veth)


def _remove(c: Container, *, v: bool) -> None:
    """Remove a container. One with published ports that is on several networks (the relay) first
    leaves every network but the one whose name sorts first, which holds its ports (see
    ``relay_container.ensure_relay``): Docker releases the published ports once per network a
    container is on when it removes it (the 210 ports of a relay on 8 networks: 121 s, against
    12.5 s after leaving the 7 others, which takes 0.3 s)."""
    nets = sorted((c.attrs.get("NetworkSettings") or {}).get("Networks") or {})
    published = (c.attrs.get("HostConfig") or {}).get("PortBindings") or {}
    if published and len(nets) > 1:
        for name in reversed(nets[1:]):
            with suppress(docker.errors.APIError):  # removed below all the same, only more slowly
                client().networks.get(name).disconnect(c, force=True)
    with docker_errors(node=c.labels.get(LABEL_NODE), step=f"remove container {c.name}"):
        c.remove(force=True, v=v)


def remove_topology(topology: str, *, volumes: bool) -> dict[str, int]:
    """Remove everything labelled for ``topology`` (and nothing else): its containers a few at a
    time (a removal mostly waits on the daemon), then its networks and volumes, a few at a time."""

    def container(c: Container) -> None:
        # v: also the anonymous volumes an image's VOLUME line made; they carry no label to find
        # them later. They hold nothing of pgtopo's unless an earlier pgtopo mounted the node's
        # volume elsewhere (then the official image's anonymous volume holds PGDATA).
        anonymous = volumes or PG_DATA_MOUNT in volume_mounts(c).values() or c.labels.get(LABEL_KIND) != "node"
        _remove(c, v=anonymous)

    def network(net: Network) -> None:
        with docker_errors(step=f"remove network {net.name}"):
            net.remove()

    def volume(vol: Any) -> None:
        with docker_errors(step=f"remove volume {vol.name}"):
            vol.remove(force=True)

    # The relay first: its removal (its published ports released) takes longest.
    found = sorted(containers(topology), key=lambda c: c.labels.get(LABEL_KIND) != "relay")
    _at_once([functools.partial(container, c) for c in found])
    nets = networks(topology)
    vols = client().volumes.list(filters={"label": f"{LABEL_TOPOLOGY}={topology}"}) if volumes else []
    _at_once([functools.partial(network, n) for n in nets] + [functools.partial(volume, v) for v in vols])
    return {"containers": len(found), "networks": len(nets), "volumes": len(vols)}


def _at_once(jobs: Sequence[Callable[[], None]]) -> None:
    """Run ``jobs`` a few at a time; every one is tried, then the first failure is raised."""
    with ThreadPoolExecutor(max_workers=REMOVE_WORKERS) as pool:
        futures = [pool.submit(job) for job in jobs]
    for f in futures:
        f.result()


def volumes(topology: str) -> list[str]:
    return [v.name for v in client().volumes.list(filters={"label": f"{LABEL_TOPOLOGY}={topology}"})]


def volumes_by_topology() -> dict[str, list[str]]:
    """Topology name -> its labelled volumes, for every topology (those `down` kept included)."""
    out: dict[str, list[str]] = {}
    for v in client().volumes.list(filters={"label": LABEL_TOPOLOGY}):
        out.setdefault((v.attrs.get("Labels") or {})[LABEL_TOPOLOGY], []).append(v.name)
    return out


def remove_container(container: Container, *, volume: bool) -> None:
    vols = [m["Name"] for m in container.attrs.get("Mounts", []) if m.get("Type") == "volume"]
    _remove(container, v=volume)
    if volume:
        with docker_errors(step=f"remove the volumes of {container.name}"):
            for v in vols:
                client().volumes.get(v).remove(force=True)


def topologies() -> dict[str, list[Container]]:
    out: dict[str, list[Container]] = {}
    for c in containers():
        out.setdefault(c.labels[LABEL_TOPOLOGY], []).append(c)
    return out


def stats_cpu_seconds(container: Container) -> float:
    """Total CPU time the container has used, in seconds."""
    s = container.stats(stream=False)
    return float(s["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9


def require_running(topology: str) -> None:
    """Commands that act on a running topology say so plainly when it is not up."""
    if not listed(topology, kind="node"):
        raise OperationFailed(f"topology '{topology}' is not running (no containers); start it with `pgtopo up`")
