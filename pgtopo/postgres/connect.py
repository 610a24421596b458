"""Connections from pgtopo (on the host) to the nodes, through their published ports.

pgtopo's own role ``pgtopo`` logs in with the password kept in the state directory.
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import make_conninfo

from pgtopo.errors import OperationFailed
from pgtopo.model.topology import PG_PORT
from pgtopo.runtime import gateway, state

PG_PORT_KEY = f"{PG_PORT}/tcp"


def node_port(topology: str, node: str) -> int | None:
    """The host port of a running node (None: not running), in one Docker call."""
    found = gateway.listed(topology, kind="node", node=node)
    return found[0].ports.get(PG_PORT_KEY) if found and found[0].status == "running" else None


def dsn(topology: str, node: str, *, dbname: str = "postgres", user: str = "pgtopo",
        port: int | None = None, **extra: str) -> str:
    """A libpq connection string to ``node`` from the host (with the password)."""
    port = port or node_port(topology, node)
    if port is None:
        raise OperationFailed("the node is not running", node=node, step="connect")
    pw = state.passwords(topology, create=False).get(user, "")
    # The nodes serve no TLS and no Kerberos: asking for either first would only cost each of
    # pgtopo's connections a refused request (a failover's plan opens one per replica).
    return make_conninfo(host="127.0.0.1", port=port, dbname=dbname, user=user, password=pw,
                         application_name="pgtopo", connect_timeout=3,
                         **{"sslmode": "disable", "gssencmode": "disable", **extra})


def connect(topology: str, node: str, *, dbname: str = "postgres", autocommit: bool = True,
            port: int | None = None) -> psycopg.Connection[tuple[object, ...]]:
    info = dsn(topology, node, dbname=dbname, port=port)
    try:
        return psycopg.connect(info, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise OperationFailed(str(exc).strip().splitlines()[-1], node=node, step="connect") from None
