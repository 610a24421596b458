"""Helpers of the end-to-end tests: copies of the shipped topologies brought up and down by label,
waiting, and a writer that never stops (the failover scenarios).

Fixtures (the Docker check, a private state directory) stay in tests/docker/conftest.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app
from pgtopo.errors import PgtopoError
from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot
from pgtopo.postgres import connect
from pgtopo.runtime import state

from .topologies import TOPOLOGIES


def copy_topology(dest: Path, source: str, *, name: str, replace: dict[str, str] | None = None) -> Path:
    """A copy of a shipped topology under another name, so test modules never collide.

    Whatever an interrupted earlier run left under that name is removed first (by label)."""
    deploy.down(name, volumes=True)
    src = TOPOLOGIES / source
    text = src.read_text()
    first = text.split("name: ", 1)[1].split("\n", 1)[0]
    text = text.replace(f"name: {first}", f"name: {name}", 1)
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / source
    out.write_text(text)
    if (TOPOLOGIES / "schemas").exists():
        (dest / "schemas").mkdir(exist_ok=True)
        for f in (TOPOLOGIES / "schemas").iterdir():
            (dest / "schemas" / f.name).write_text(f.read_text())
    return out


@contextmanager
def running(tmp: Path, source: str, *, name: str) -> Iterator[Path]:
    """A copy of a shipped topology, up for the duration, with its own state directory."""
    path = copy_topology(tmp, source, name=name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGTOPO_STATE_DIR", str(tmp / "state"))
        try:
            deploy.up(load(path), topo_path=path, progress=lambda *a: None)
            yield path
        finally:
            deploy.down(name, volumes=True)


@contextmanager
def up_from_text(directory: Path, text: str, *, file: str = "topology.yaml") -> Iterator[tuple[Topology, Path]]:
    """A topology written in a test, up for the duration (whatever an earlier run left under its
    name is removed first) and removed with its data afterwards."""
    path = directory / file
    path.write_text(text)
    topo = load(path)
    deploy.down(topo.name, volumes=True)
    try:
        deploy.up(topo, topo_path=path, progress=lambda s, m: None)
        yield topo, path
    finally:
        deploy.down(topo.name, volumes=True)


def wait_for(check: Callable[[], bool], *, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- a cluster under load, as the failover scenarios watch it ---------------------------------------

class Writer(threading.Thread):
    """Inserts rows 1, 2, 3... into ``products`` on the current primary; remembers what was acknowledged."""

    def __init__(self, topo: Topology, *, cluster: str, db: str, start_id: int) -> None:
        super().__init__(daemon=True)
        self.topo, self.cluster, self.db = topo, cluster, db
        self.next_id = start_id
        self.acked: list[int] = []
        self.unknown: list[int] = []  # the connection broke during the commit: maybe written
        self.refused = 0
        self.halt = threading.Event()
        self.first_ack_after: dict[float, float] = {}

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self.halt.is_set():
            try:
                if conn is None:
                    node = state.current_primaries(self.topo)[self.cluster]
                    conn = psycopg.connect(connect.dsn(self.topo.name, node, dbname=self.db), autocommit=True)
                i = self.next_id
                self.next_id += 1
                try:
                    conn.execute("INSERT INTO products (id, sku, name, price_cents) OVERRIDING SYSTEM VALUE "
                                 "VALUES (%s, %s, 'writer', %s)", (i, f"w-{i}", i % 1000))
                    self.acked.append(i)
                except psycopg.errors.ReadOnlySqlTransaction:
                    self.refused += 1
                    conn.close()
                    conn = None
                except psycopg.OperationalError:
                    self.unknown.append(i)
                    conn = None
                time.sleep(0.002)
            except (psycopg.Error, PgtopoError):
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


def ids(topo: Topology, node: str, db: str) -> set[int]:
    with connect.connect(topo.name, node, dbname=db) as conn:
        return {int(str(r[0])) for r in conn.execute("SELECT id FROM products WHERE name = 'writer'").fetchall()}


def cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def layout(topo: Topology) -> dict[str, tuple[str, int | None, str | None]]:
    """node -> (role, timeline, upstream) as really running."""
    snap = snapshot.collect(topo)
    return {n.node: (n.role, n.timeline, n.upstream) for n in snap.nodes.values()}


def unchanged(topo: Topology, before: dict[str, tuple[str, int | None, str | None]], primaries: dict[str, str]) -> None:
    assert state.current_primaries(topo) == primaries
    assert layout(topo) == before


def all_streaming(topo: Topology, cluster: str) -> bool:
    snap = snapshot.collect(topo)
    primary = state.current_primaries(topo)[cluster]
    return all(n.reachable and (n.node == primary or n.receiver_status == "streaming")
               for n in snap.cluster_nodes(cluster))


def wait_synced_slot(topo: Topology, node: str, slot: str, *, timeout: float = 90) -> None:
    """Until ``node`` (a standby) holds the failover slot ``slot`` synced and sync-ready (not temporary)."""
    def synced() -> bool:
        snap = snapshot.collect(topo, nodes=[node])
        return any(s.name == slot and s.synced and not s.temporary for s in snap.nodes[node].slots)

    wait_for(synced, timeout=timeout, what=f"slot {slot} synced on {node}")
