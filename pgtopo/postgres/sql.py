"""SQL on a node as pgtopo, over the node's published port, and the ONE translation of
psycopg's errors into pgtopo's (``OperationFailed`` naming the node and the step).

Modules that read errors as data (``snapshot``, the routing helper) catch ``psycopg.Error``
themselves; everything that fails an operation goes through :func:`translated`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from pgtopo.errors import OperationFailed, first_line
from pgtopo.model.topology import Topology
from pgtopo.postgres import connect

Query = LiteralString | sql.SQL | sql.Composed


def message(exc: psycopg.Error) -> str:
    """What the server said (its primary message and detail), else the client's first line."""
    diag = exc.diag
    text = diag.message_primary or first_line(exc)
    return f"{text} ({diag.message_detail})" if diag.message_detail else text


@contextmanager
def translated(*, node: str, step: str) -> Iterator[None]:
    """psycopg errors inside the block become ``OperationFailed(node=, step=)``."""
    try:
        yield
    except psycopg.Error as exc:
        raise OperationFailed(message(exc), node=node, step=step) from None


def query(topo: Topology, node: str, stmt: Query, params: Sequence[Any] | None = None, *, db: str = "postgres",
          step: str, autocommit: bool = True, port: int | None = None) -> list[tuple[Any, ...]]:
    """One statement on ``node``; its rows (none for a statement that returns none). ``port``: the
    node's host port when the caller knows it (else one Docker call finds it)."""
    with translated(node=node, step=step), \
            connect.connect(topo.name, node, dbname=db, autocommit=autocommit, port=port) as conn:
        cur = conn.execute(stmt, params)
        return list(cur.fetchall()) if cur.description else []


def run_all(topo: Topology, node: str, stmts: Sequence[Query], *, db: str = "postgres", step: str,
            port: int | None = None, conn: psycopg.Connection[Any] | None = None) -> None:
    """Several statements on one connection, in order (autocommit: ALTER SYSTEM, subscriptions):
    ``conn`` (an open autocommit connection to ``node``'s ``db``, left open) or a new one."""
    with translated(node=node, step=step), \
            contextlib.nullcontext(conn) if conn is not None else connect.connect(topo.name, node, dbname=db,
                                                                                    port=port) as c:
        for stmt in stmts:
            c.execute(stmt)
