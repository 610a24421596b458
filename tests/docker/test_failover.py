"""Failover, switchover and rejoin with real containers and a writer that never stops.

Two topologies, each reused by the tests in file order (state carries over, which is the point:
failover -> rejoin -> switchover there and back):
- ``t-failover``: a copy of the reference topology (pg-us primary, pg-eu replica in another
  region, billing subscribing to inventory_pub with a failover slot) plus a cascaded replica
  pg-eu2 behind pg-eu;
- ``t-failsync``: one region, pg-a primary and pg-b, pg-c with ``ANY 1 (pg-b, pg-c)``.

The writer inserts rows with increasing ids through the current primary's published port and
records every acknowledged commit (and the few whose outcome is unknown: the connection broke
during the commit); it follows the primary recorded in the state after a failover.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

import pgtopo.cli.main  # noqa: F401
from pgtopo.cli.app import app
from pgtopo.errors import PgtopoError
from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot
from pgtopo.postgres import connect
from pgtopo.runtime import gateway, state

from .conftest import copy_topology, wait_for

CASCADE = """        failover_priority: 100
      pg-eu2:
        region: eu-west
        upstream: pg-eu
        failover_priority: 50
"""

SYNC_TOPOLOGY = """
name: t-failsync
postgres:
  version: 17
regions:
  dc1: {}
clusters:
  main:
    databases:
      app:
        schema: |
          CREATE TABLE products (
              id bigint PRIMARY KEY,
              sku text NOT NULL,
              name text NOT NULL,
              price_cents integer NOT NULL
          );
    synchronous:
      method: any
      count: 1
      standbys: [pg-b, pg-c]
    nodes:
      pg-a:
        region: dc1
        role: primary
      pg-b:
        region: dc1
        upstream: pg-a
      pg-c:
        region: dc1
        upstream: pg-a
"""


# -- helpers ---------------------------------------------------------------------------------------

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


def wait_more(writer: Writer, rows: int, *, what: str) -> None:
    n = len(writer.acked)
    wait_for(lambda: len(writer.acked) > n + rows, what=what)


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


def reported_loss(output: str) -> tuple[int, int | None]:
    m = re.search(r"data lost: (?:at least )?[\d.]+ \w+ \((\d+) bytes\) of WAL(?:, (\d+) committed)?", output)
    assert m, output
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


@pytest.fixture(scope="module")
def state_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("failover-state")
    old = os.environ.get("PGTOPO_STATE_DIR")
    os.environ["PGTOPO_STATE_DIR"] = str(d)
    yield d
    if old is None:
        os.environ.pop("PGTOPO_STATE_DIR", None)
    else:
        os.environ["PGTOPO_STATE_DIR"] = old


@pytest.fixture(scope="module")
def saas(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    path = copy_topology(tmp_path_factory.mktemp("t-failover"), "global-saas.yaml", name="t-failover",
                         replace={"        failover_priority: 100\n": CASCADE})
    topo = load(path)
    try:
        deploy.up(topo, topo_path=path, progress=lambda s, m: None)
        yield topo, path
    finally:
        deploy.down(topo.name, volumes=True)


@pytest.fixture(scope="module")
def sync(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    path = tmp_path_factory.mktemp("t-failsync") / "failsync.yaml"
    path.write_text(SYNC_TOPOLOGY)
    topo = load(path)
    try:
        deploy.up(topo, topo_path=path, progress=lambda s, m: None)
        yield topo, path
    finally:
        deploy.down(topo.name, volumes=True)


def wait_synced_slot(topo: Topology, node: str, slot: str) -> None:
    def synced() -> bool:
        snap = snapshot.collect(topo)
        return any(s.name == slot and s.synced and not s.temporary for s in snap.nodes[node].slots)

    wait_for(synced, timeout=90, what=f"slot {slot} synced on {node}")


# -- the reference topology ------------------------------------------------------------------------

def test_refusals_change_nothing(saas: tuple[Topology, Path]) -> None:
    topo, path = saas
    f = str(path)
    wait_synced_slot(topo, "pg-eu", "inventory_sub")
    primaries = state.current_primaries(topo)
    before = layout(topo)

    for args, message in [
        (["--to", "nope"], "error: --to nope: unknown node (known: pg-us, pg-eu, pg-eu2, pg-billing)"),
        (["--to", "pg-us"], "error: --to pg-us: it is the current primary of cluster main"),
        (["--cluster", "main", "--to", "pg-billing"], "error: --to pg-billing: not in cluster main (it is in cluster "
                                                      "billing)"),
        (["--cluster", "billing"], "error: cluster billing has no replica to promote"),
    ]:
        code, out = cli("failover", f, "--yes", *args)
        assert code == 2, out
        assert message in out
    unchanged(topo, before, primaries)

    # A replica that is down.
    c = gateway.find(topo.name, "pg-eu2")
    assert c is not None
    gateway.stop(c)
    try:
        code, out = cli("failover", f, "--yes", "--to", "pg-eu2")
        assert code == 2, out
        assert "error: --to pg-eu2: cannot be promoted: down (container exited)" in out
        assert gateway.status(c) == "exited"
        assert state.current_primaries(topo) == primaries
    finally:
        gateway.start(c)
    wait_for(lambda: all_streaming(topo, "main"), what="pg-eu2 streaming again")

    # Lag above --max-lag: pg-eu stops receiving (its cascade too), the primary writes on.
    with connect.connect(topo.name, "pg-eu") as conn:
        conn.execute("ALTER SYSTEM SET primary_conninfo = ''")
        conn.execute("SELECT pg_reload_conf()")
    try:
        wait_for(lambda: not all_streaming(topo, "main"), what="pg-eu to stop streaming")
        with connect.connect(topo.name, "pg-us", dbname="production") as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS lag_probe (x int)")
            conn.execute("INSERT INTO lag_probe VALUES (1)")
        before_lag = layout(topo)
        code, out = cli("failover", f, "--yes", "--max-lag", "0")
        assert code == 2, out
        assert "error: no safe candidate in cluster main" in out
        assert re.search(r"pg-eu: unsafe: lags [\d.]+ \w+ behind pg-us, more than --max-lag 0 B", out), out
        assert re.search(r"pg-eu2: unsafe: lags [\d.]+ \w+ behind pg-us \(cascaded behind pg-eu\), more than "
                         r"--max-lag 0 B", out), out
        assert "--force promotes the best of them anyway (data at risk)" in out
        assert layout(topo) == before_lag
        assert state.current_primaries(topo) == primaries
    finally:
        with connect.connect(topo.name, "pg-eu") as conn:
            conn.execute("ALTER SYSTEM RESET primary_conninfo")
            conn.execute("SELECT pg_reload_conf()")
    wait_for(lambda: all_streaming(topo, "main"), what="pg-eu streaming again")
    unchanged(topo, before, primaries)


def test_failover_after_kill(saas: tuple[Topology, Path]) -> None:
    topo, path = saas
    writer = Writer(topo, cluster="main", db="production", start_id=1)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) > 300, what="the writer to get going")
        code, out = cli("kill", str(path), "pg-us")
        assert code == 0, out
        code, out = cli("failover", str(path), "--yes")
        print(out)
        assert code == 0, out
        assert "-> pg-eu" in out and "pg-eu is the primary of cluster main (timeline 2)" in out
        n_after = len(writer.acked)
        wait_for(lambda: len(writer.acked) > n_after + 300, what="writes on the new primary")
    finally:
        writer.stop()

    assert state.current_primaries(topo)["main"] == "pg-eu"
    snap = snapshot.collect(topo)
    assert snap.writable("main") == ["pg-eu"]
    assert snap.nodes["pg-us"].container == "exited"
    assert snap.nodes["pg-eu2"].upstream == "pg-eu" and snap.nodes["pg-eu2"].timeline == 2
    assert state.load_runtime(topo.name)["fenced"]["pg-us"]["method"] == "already down"

    # The recovery time is reported (benchmarks/failover.py measures it); tests check behaviour only.
    recovery = float(re.search(r"recovery time ([\d.]+) s", out).group(1))  # type: ignore[union-attr]

    # Asynchronous replication: what the writer lost is what the report says was lost.
    on_new = ids(topo, "pg-eu", "production")
    acked = set(writer.acked)
    missing = acked - on_new
    assert on_new <= acked | set(writer.unknown), "rows nobody wrote"
    lost_bytes, lost_commits = reported_loss(out)
    assert lost_commits is not None, "the old primary's WAL was readable: the loss is exact"
    assert len(missing) <= lost_commits
    assert (lost_bytes == 0) == (lost_commits == 0)
    if missing:
        assert lost_bytes > 0
    print(f"async failover: recovery {recovery} s; {len(missing)} acknowledged rows lost; report: {lost_bytes} bytes, "
          f"{lost_commits} commits")

    # billing continues from the failover slot: every row of pg-eu, none twice (ids are its primary key).
    wait_for(lambda: ids(topo, "pg-billing", "production") == on_new, timeout=60, what="billing to catch up")
    assert "subscription inventory_sub on pg-billing: moved" in out


def test_rejoin_after_failover(saas: tuple[Topology, Path]) -> None:
    topo, path = saas
    code, out = cli("rejoin", str(path), "pg-us")
    print(out)
    assert code == 0, out
    assert "pg-us streams from pg-eu (pg_rewind" in out
    wait_for(lambda: all_streaming(topo, "main"), what="every node streaming")
    snap = snapshot.collect(topo)
    assert snap.writable("main") == ["pg-eu"]
    assert {n: (snap.nodes[n].upstream, snap.nodes[n].timeline) for n in ("pg-us", "pg-eu2")} == {
        "pg-us": ("pg-eu", 2), "pg-eu2": ("pg-eu", 2)}
    assert "pg-us" not in state.load_runtime(topo.name).get("fenced", {})
    assert snap.nodes["pg-eu"].settings["synchronized_standby_slots"] == "pg_us, pg_eu2"
    assert snap.nodes["pg-us"].settings["sync_replication_slots"] == "on"
    # Its own logical slot is gone, so the failover slot syncs to it from the new primary.
    wait_synced_slot(topo, "pg-us", "inventory_sub")
    code, out = cli("rejoin", str(path), "pg-us")
    assert code == 0 and "nothing to do" in out, out


def test_switchover_there_and_back(saas: tuple[Topology, Path]) -> None:
    topo, path = saas
    writer = Writer(topo, cluster="main", db="production", start_id=1_000_000)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) > 200, what="the writer to get going")
        for target, replica in (("pg-us", "pg-eu"), ("pg-eu", "pg-us"), ("pg-us", "pg-eu")):
            wait_synced_slot(topo, target, "inventory_sub")
            code, out = cli("switchover", str(path), "--to", target, "--yes")
            print(out)
            assert code == 0, out
            assert f"{target} is the primary of cluster main" in out
            assert "data lost: 0 B (0 bytes)" in out
            assert f"{replica}: streaming on timeline" in out
            assert "subscription inventory_sub on pg-billing: moved" in out
            wait_more(writer, 100, what=f"writes on {target}")
    finally:
        writer.stop()
    wait_for(lambda: all_streaming(topo, "main"), what="every node streaming")
    # Back to the file's layout.
    snap = snapshot.collect(topo)
    assert snap.writable("main") == ["pg-us"]
    assert snap.nodes["pg-eu"].upstream == "pg-us" and snap.nodes["pg-eu2"].upstream == "pg-eu"
    assert state.current_primaries(topo)["main"] == "pg-us"
    # Zero loss: every acknowledged row is on the primary and, through the moved subscription, on billing.
    on_primary = ids(topo, "pg-us", "production")
    assert set(writer.acked) <= on_primary
    assert on_primary - set(range(1, 1_000_000)) <= set(writer.acked) | set(writer.unknown)
    wait_for(lambda: ids(topo, "pg-billing", "production") == on_primary, timeout=60, what="billing to catch up")


# -- a synchronous cluster -------------------------------------------------------------------------

def test_sync_refusal_when_a_sync_standby_is_missing(sync: tuple[Topology, Path]) -> None:
    """ANY 1 (pg-b, pg-c): with pg-a dead and pg-c down, pg-b may lack commits only pg-c acknowledged."""
    topo, path = sync
    primaries = state.current_primaries(topo)
    c = gateway.find(topo.name, "pg-c")
    a = gateway.find(topo.name, "pg-a")
    assert c is not None and a is not None
    gateway.stop(c)
    try:
        code, out = cli("kill", str(path), "pg-a")
        assert code == 0, out
        before = layout(topo)
        code, out = cli("failover", str(path), "--yes")
        assert code == 2, out
        assert "error: no safe candidate in cluster main" in out
        assert ('pg-b: unsafe: pg-c (synchronous) unavailable: acknowledged commits may exist only there '
                '(ANY 1 ("pg-b", "pg-c") needs 2 of 2 seen)') in out, out
        assert "pg-c: no: down (container exited)" in out
        unchanged(topo, before, primaries)
        code, out = cli("failover", str(path), "--yes", "--to", "pg-b")
        assert code == 2, out
        assert "error: --to pg-b: not safe to promote: pg-c (synchronous) unavailable" in out
        unchanged(topo, before, primaries)
    finally:
        gateway.start(a)
        gateway.start(c)
    wait_for(lambda: all_streaming(topo, "main"), timeout=60, what="pg-a back, pg-b and pg-c streaming")


def test_sync_failover_loses_nothing_and_rejoins(sync: tuple[Topology, Path]) -> None:
    topo, path = sync
    writer = Writer(topo, cluster="main", db="app", start_id=1)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) > 300, what="the writer to get going")
        code, out = cli("kill", str(path), "pg-a")
        assert code == 0, out
        code, out = cli("failover", str(path), "--yes")
        print(out)
        assert code == 0, out
        n = len(writer.acked)
        wait_for(lambda: len(writer.acked) > n + 200, what="writes on the new primary")
    finally:
        writer.stop()
    new = state.current_primaries(topo)["main"]
    other = ({"pg-b", "pg-c"} - {new}).pop()
    snap = snapshot.collect(topo)
    assert snap.writable("main") == [new]
    assert snap.nodes[other].upstream == new and snap.nodes[other].receiver_status == "streaming"
    assert snap.nodes[new].settings["synchronous_standby_names"] == f'ANY 1 ("{other}")'
    on_new = ids(topo, new, "app")
    assert set(writer.acked) <= on_new, f"acknowledged commits lost: {sorted(set(writer.acked) - on_new)[:10]}"
    assert on_new <= set(writer.acked) | set(writer.unknown)

    code, out = cli("rejoin", str(path), "pg-a")
    assert code == 0, out
    wait_for(lambda: all_streaming(topo, "main"), what="every node streaming")
    snap = snapshot.collect(topo)
    assert snap.nodes[new].settings["synchronous_standby_names"] == f'ANY 1 ("{other}", "pg-a")'


def test_paused_primary_is_fenced_off_the_network_then_rejoins(sync: tuple[Topology, Path]) -> None:
    """A frozen primary cannot be stopped cleanly: it is cut off every network, then rejoined."""
    topo, path = sync
    old = state.current_primaries(topo)["main"]
    with connect.connect(topo.name, old, dbname="app") as conn:
        conn.execute("INSERT INTO products VALUES (-1, 'before-pause', 'marker', 0)")
    wait_for(lambda: all(-1 in ids_all(topo, n) for n in ("pg-a", "pg-b", "pg-c") if n != old), what="the marker row")
    c = gateway.find(topo.name, old)
    assert c is not None
    gateway.pause(c)
    code, out = cli("failover", str(path), "--yes")
    print(out)
    assert code == 0, out
    assert f"fenced {old}: disconnected (container paused, removed from t-failsync-dc1)" in out
    assert gateway.network_names(c) == []
    new = state.current_primaries(topo)["main"]
    assert new != old
    snap = snapshot.collect(topo)
    assert snap.writable("main") == [new]
    assert state.load_runtime(topo.name)["fenced"][old]["method"] == "disconnected"

    code, out = cli("rejoin", str(path), old)
    print(out)
    assert code == 0, out
    assert gateway.network_names(c) == ["t-failsync_dc1"]
    wait_for(lambda: all_streaming(topo, "main"), what="every node streaming")
    snap = snapshot.collect(topo)
    assert snap.writable("main") == [new]
    assert snap.nodes[old].upstream == new
    assert -1 in ids_all(topo, new)


def ids_all(topo: Topology, node: str) -> set[int]:
    with connect.connect(topo.name, node, dbname="app") as conn:
        return {int(str(r[0])) for r in conn.execute("SELECT id FROM products").fetchall()}


def test_kill_failover_again_on_a_later_timeline(sync: tuple[Topology, Path]) -> None:
    """The replicas' WAL receivers stop with the primary: their timeline must still read as the live one
    (not their last restartpoint's), or every candidate would look 'behind the timeline'."""
    topo, path = sync
    old = state.current_primaries(topo)["main"]
    tl = snapshot.collect(topo).nodes[old].timeline
    assert tl is not None and tl >= 3
    code, out = cli("kill", str(path), old)
    assert code == 0, out
    code, out = cli("failover", str(path), "--yes")
    print(out)
    assert code == 0, out
    assert f"(timeline {tl + 1})" in out
    code, out = cli("rejoin", str(path), old)
    assert code == 0, out
    wait_for(lambda: all_streaming(topo, "main"), what="every node streaming")
