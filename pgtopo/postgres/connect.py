"""Connections from pgtopo (on the host) to the nodes: through their published ports, or straight
to a container's address where the host is on its network (``reachable``).

pgtopo's own role ``pgtopo`` logs in with the password kept in the state directory.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import threading
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from pgtopo.errors import OperationFailed
from pgtopo.model.topology import PG_PORT
from pgtopo.runtime import gateway, state

PG_PORT_KEY = f"{PG_PORT}/tcp"


# (topology, node, published port) -> the container's address, as Docker listed them in this process:
# a connection to that port goes straight to the address when the host reaches it (``dsn``). Every
# lookup records the container that publishes the port now; a caller that keeps a port (a failover,
# for its candidate) looked it up moments before. A container gone since then is found unreachable
# at its address (within connect_timeout) rather than refused at once at its port.
_ADDRESSES: dict[tuple[str, str, int], str] = {}


def node_port(topology: str, node: str) -> int | None:
    """The host port of a running node (None: not running), in one Docker call."""
    found = gateway.listed(topology, kind="node", node=node)
    if not found or found[0].status != "running":
        return None
    port = found[0].ports.get(PG_PORT_KEY)
    if port is not None and found[0].address:
        _ADDRESSES[(topology, node, port)] = found[0].address
    return port


def on_link_networks(route_table: str) -> tuple[tuple[int, int], ...]:
    """The directly connected IPv4 networks, (destination, mask), of a /proc/net/route text: its
    routes with a mask and no gateway (the default route has neither)."""
    out = []
    for line in route_table.splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[7] != "00000000" and f[2] == "00000000":
            try:  # the file's words are in host (little-endian) order
                dest, mask = (int.from_bytes(bytes.fromhex(x), "little") for x in (f[1], f[7]))
            except ValueError:
                continue
            out.append((dest, mask))
    return tuple(out)


@functools.cache
def _on_link() -> tuple[tuple[int, int], ...]:
    try:
        return on_link_networks(Path("/proc/net/route").read_text())
    except OSError:  # not Linux
        return ()


def reachable(address: str | None, networks: tuple[tuple[int, int], ...] | None = None) -> bool:
    """Whether the host reaches ``address`` (a container's) on a network it is attached to
    (``networks``: the host's, read once per process): a rootful Docker on Linux, whose bridges
    are the host's interfaces. Not under Docker Desktop or rootless Docker, where only the
    published ports are."""
    if not address:
        return False
    try:
        ip = int(ipaddress.IPv4Address(address))
    except ValueError:
        return False
    return any(ip & mask == dest & mask for dest, mask in (_on_link() if networks is None else networks))


def dsn(topology: str, node: str, *, dbname: str = "postgres", user: str = "pgtopo",
        port: int | None = None, address: str | None = None, **extra: str) -> str:
    """A libpq connection string to ``node`` from the host (with the password): to ``address``
    (the container's, on its network) if given, else to its published port on 127.0.0.1, or
    straight to the container that publishes it when the host reaches its address (docker-proxy's
    copy of a connection costs about 2 ms of wall and machine time)."""
    if address is None:
        port = port or node_port(topology, node)
        if port is None:
            raise OperationFailed("the node is not running", node=node, step="connect")
        known = _ADDRESSES.get((topology, node, port))
        if reachable(known):
            address = known
    pw = state.passwords(topology, create=False).get(user, "")
    # The nodes serve no TLS and no Kerberos: asking for either first would only cost each of
    # pgtopo's connections a refused request (a failover's plan opens one per replica).
    return make_conninfo(host=address or "127.0.0.1", port=PG_PORT if address else port, dbname=dbname, user=user,
                         password=pw, application_name="pgtopo", connect_timeout=3,
                         **{"sslmode": "disable", "gssencmode": "disable", **extra})


def connect(topology: str, node: str, *, dbname: str = "postgres", autocommit: bool = True,
            port: int | None = None, address: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
    info = dsn(topology, node, dbname=dbname, port=port, address=address)
    try:
        return psycopg.connect(info, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise OperationFailed(str(exc).strip().splitlines()[-1], node=node, step="connect") from None


class Held:
    """Connections a command keeps open from one step to the next, one per node (``postgres``
    database, autocommit), closed together by ``close`` (or at the end of a ``with`` block).

    An unattended failover asks its candidates, prepares one, promotes it and writes first on
    the connections its plan opened: no new connection (backend start, authentication) for the
    chosen candidate, and no backend exit of the others' connections, before the first write.
    A connection found closed or broken is not handed out: the caller opens a new one.
    """

    def __init__(self) -> None:
        self._conns: dict[str, psycopg.Connection[Any]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def keep(self, node: str, conn: psycopg.Connection[Any]) -> bool:
        """Keep ``conn`` (an autocommit connection to ``node``'s postgres database); False when
        this holder is closed already or holds one for ``node`` (the caller closes it then)."""
        with self._lock:
            if self._closed or node in self._conns or not conn.autocommit:
                return False
            self._conns[node] = conn
            return True

    def get(self, node: str) -> psycopg.Connection[Any] | None:
        """The connection kept for ``node``, if it is still usable (it stays held)."""
        with self._lock:
            conn = self._conns.get(node)
        if conn is None or conn.closed or conn.broken:
            return None
        return conn

    def close(self) -> None:
        """Close every connection held; any kept later is refused (``keep`` returns False)."""
        with self._lock:
            self._closed = True
            conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
