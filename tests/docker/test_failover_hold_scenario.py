"""A failover of a cluster with an asynchronous replica to re-point, run unattended, with real containers.

One region; pg-a primary, pg-b and pg-c its asynchronous replicas; cluster sub (pg-s) subscribes
to main with a failover slot. ``kill pg-a`` then ``failover --yes``:
- the replica that is not promoted is re-pointed after the first write; until then the candidate
  held its WAL with one slot (``pgtopo_failover_hold``), from which its own slot is copied, and
  that slot is gone afterwards;
- the subscriber is asked after the first write and follows the new primary;
- the plan is shown once the new primary accepts writes (nobody read it before: ``--yes``).
Then a hold slot left on a standby (a promotion that failed) goes when it is released or the
standby is re-pointed, never on a node that was promoted; and a snapshot connects straight to
each container where the host is on its network (no docker-proxy in between); last, a
re-synchronisation frees a subscription's slot a walsender still holds, and drops it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from pgtopo.ha import promotion, replication, subscribers
from pgtopo.model import render
from pgtopo.model.topology import HOLD_SLOT, Topology, slot_name
from pgtopo.observe import snapshot
from pgtopo.postgres import connect
from pgtopo.postgres.sql import query, run_all
from pgtopo.runtime import gateway, state
from tests.support.docker import Writer, all_streaming, cli, ids, up_from_text, wait_for, wait_synced_slot

TOPOLOGY = """
name: fo-hold
postgres:
  version: 17
regions:
  r1: {}
clusters:
  main:
    databases:
      app:
        schema: |
          CREATE TABLE products (id bigint PRIMARY KEY, sku text NOT NULL, name text NOT NULL,
                                 price_cents integer NOT NULL);
    publications:
      products_pub: {database: app, tables: [products]}
    nodes:
      pg-a: {region: r1, role: primary}
      pg-b: {region: r1, upstream: pg-a}
      pg-c: {region: r1, upstream: pg-a}
  sub:
    databases:
      app:
        schema: |
          CREATE TABLE products (id bigint PRIMARY KEY, sku text NOT NULL, name text NOT NULL,
                                 price_cents integer NOT NULL);
    nodes:
      pg-s: {region: r1, role: primary}
    subscriptions:
      products_sub: {publisher: main, publication: products_pub, failover: true}
"""


@pytest.fixture(scope="module")
def hold(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    with up_from_text(tmp_path_factory.mktemp("fo-hold"), TOPOLOGY, file="hold.yaml") as up:
        yield up


def slots(topo: Topology, node: str) -> dict[str, bool]:
    with connect.connect(topo.name, node) as conn:
        rows = conn.execute("SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical'").fetchall()
    return {str(r[0]): bool(r[1]) for r in rows}


def test_an_unattended_failover_re_points_through_the_hold_slot_and_moves_the_subscriber(
        hold: tuple[Topology, Path]) -> None:
    topo, path = hold
    f = str(path)
    for n in ("pg-b", "pg-c"):
        wait_synced_slot(topo, n, "products_sub")
    writer = Writer(topo, cluster="main", db="app", start_id=1)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) > 300, what="the writer to get going")
        code, out = cli("kill", f, "pg-a")
        assert code == 0, out
        code, out = cli("failover", f, "--yes")
        print(out)
        assert code == 0, out
        before = len(writer.acked)
        wait_for(lambda: len(writer.acked) > before + 200, what="writes on the new primary")
    finally:
        writer.stop()
    new = state.current_primaries(topo)["main"]
    other = ({"pg-b", "pg-c"} - {new}).pop()
    lines = out.splitlines()
    accepts = next(i for i, line in enumerate(lines) if f"{new}" in line and "accepts writes" in line)
    # --yes: the plan (its ranking table, its lines) comes once the new primary accepts writes, and
    # the subscriber was asked only then.
    assert next(i for i, line in enumerate(lines) if "candidates for cluster main" in line) > accepts, out
    assert "subscribers pg-s: asked after the first write" in out, out
    asked = next(i for i, line in enumerate(lines) if "asking the subscribers pg-s" in line)
    assert asked > accepts, out
    assert f"{other}: streaming on timeline 2 from {new} (repoint" in out, out
    assert "subscription products_sub on pg-s: moved: continues from failover slot products_sub" in out, out

    # The held replica's own slot is on the new primary and in use; the hold slot is gone.
    held = slots(topo, new)
    assert held.get(slot_name(other)) is True, held
    assert HOLD_SLOT not in held, held
    snap = snapshot.collect(topo)
    assert snap.nodes[other].upstream == new and snap.nodes[other].timeline == 2
    # The subscriber has every row of the new primary (ids are its primary key: none twice).
    on_new = ids(topo, new, "app")
    assert on_new <= set(writer.acked) | set(writer.unknown), "rows nobody wrote"
    wait_for(lambda: ids(topo, "pg-s", "app") == on_new, timeout=60, what="the subscriber to catch up")

    code, out = cli("rejoin", f, "pg-a")
    assert code == 0, out
    wait_for(lambda: all_streaming(topo, "main"), what="every node of main streaming")
    assert HOLD_SLOT not in slots(topo, new)


def test_a_hold_slot_left_on_a_standby_goes_when_it_is_released_or_re_pointed(hold: tuple[Topology, Path]) -> None:
    topo, _path = hold
    primary = state.current_primaries(topo)["main"]
    standby = next(n for n in ("pg-a", "pg-b", "pg-c") if n != primary)
    create = [render.create_physical_slot(HOLD_SLOT, reserve_wal=True)]
    # A promotion that failed before it was requested: the candidate, still a standby, drops it.
    run_all(topo, standby, create, step="test: hold slot")
    assert HOLD_SLOT in slots(topo, standby)
    promotion.release_hold(topo, standby)
    assert HOLD_SLOT not in slots(topo, standby)
    # Never on a node that was promoted meanwhile: there it holds the re-pointed replicas' WAL until
    # their own slots are copied from it.
    run_all(topo, primary, create, step="test: hold slot")
    promotion.release_hold(topo, primary)
    assert HOLD_SLOT in slots(topo, primary)
    run_all(topo, primary, [render.drop_idle_slot(HOLD_SLOT)], step="test: drop hold slot")
    assert HOLD_SLOT not in slots(topo, primary)
    # One the release could not reach goes when the standby is re-pointed.
    run_all(topo, standby, create, step="test: hold slot")
    replication.repoint(topo, node=standby, upstream=primary, slot_sync=True)
    assert HOLD_SLOT not in slots(topo, standby)
    wait_for(lambda: all_streaming(topo, "main"), what="every node of main streaming")


def test_a_snapshot_connects_straight_to_each_container_where_the_host_is_on_its_network(
        hold: tuple[Topology, Path]) -> None:
    topo, _path = hold
    for listed in gateway.listed(topo.name, kind="node"):
        assert listed.address, listed
        if not connect.reachable(listed.address):
            pytest.skip(f"this host is not on {listed.node}'s network (rootless Docker?): the published ports serve")
        with connect.connect(topo.name, str(listed.node), address=listed.address) as conn:
            row = conn.execute("SELECT inet_client_port()").fetchone()
            with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
                # The server sees this process's own socket: no docker-proxy in between.
                assert row is not None and row[0] == sock.getsockname()[1]
    snap = snapshot.collect(topo)
    assert all(n.reachable for n in snap.nodes.values() if n.container == "running"), snap


def test_an_unattended_failover_goes_on_with_the_connections_its_plan_opened(
        hold: tuple[Topology, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # Before the first write: one connection per member asked (the plan's), none more to the
    # candidate for its preparation, promotion and first write, none to the subscriber; every
    # one of them closed once the new primary accepts writes.
    topo, path = hold
    old = state.current_primaries(topo)["main"]
    opened: list[str] = []
    writable: list[int] = []
    real = connect.connect

    def counted(topology: str, node: str, **kw: Any) -> Any:
        opened.append(node)
        return real(topology, node, **kw)

    code, out = cli("kill", str(path), old)  # it reads the primary's last position first
    assert code == 0, out
    monkeypatch.setattr(connect, "connect", counted)
    started = time.monotonic()
    with connect.Held() as held:
        plan = promotion.plan_live(topo, mode="failover", cluster="main", to=None, unattended=True, held=held)
        out_ = promotion.execute_failover(topo, plan, started=started, progress=lambda *_a: None, held=held,
                                          on_writable=lambda: writable.append(len(opened)))
        assert held.get(plan.candidate) is None  # closed with the others after the first write
    before = opened[:writable[0]]
    members = sorted({"pg-a", "pg-b", "pg-c"} - {old})
    assert sorted(before) == members, opened  # the old primary's container is down: not connected to
    assert out_.unfinished == [], out_.unfinished
    assert query(topo, plan.candidate, "SELECT pg_is_in_recovery()", step="test: role") == [(False,)]
    monkeypatch.undo()
    code, out = cli("rejoin", str(path), old)
    assert code == 0, out
    wait_for(lambda: all_streaming(topo, "main"), what="every node of main streaming")


def test_a_re_synchronisation_frees_and_drops_a_slot_a_walsender_still_holds(hold: tuple[Topology, Path]) -> None:
    # The subscription on pg-s is dropped first (as a re-synchronisation does); a walsender still
    # streams its slot on the publisher (pg_recvlogical stands for the apply worker whose exit has
    # not reached the publisher yet): it is ended and the slot dropped, so the subscription can be
    # created again under its name.
    topo, _path = hold
    primary = state.current_primaries(topo)["main"]
    run_all(topo, "pg-s", [sql.SQL("ALTER SUBSCRIPTION products_sub DISABLE"),
                           sql.SQL("ALTER SUBSCRIPTION products_sub SET (slot_name = NONE)"),
                           sql.SQL("DROP SUBSCRIPTION products_sub")], db="app", step="test: drop the subscription")
    c = gateway.find(topo.name, primary)
    assert c is not None
    c.exec_run(["pg_recvlogical", "-d", "app", "-S", "products_sub", "--start", "-f", "/dev/null",
                "-o", "proto_version=1", "-o", "publication_names=products_pub"], user="postgres", detach=True)

    def held() -> bool:
        rows = query(topo, primary, "SELECT active FROM pg_replication_slots WHERE slot_name = 'products_sub'",
                     step="test: slot")
        return bool(rows and rows[0][0])

    wait_for(held, timeout=30, what="pg_recvlogical to hold the slot")
    subscribers.drop_released_slot(topo, on=primary, slot="products_sub")
    assert query(topo, primary, "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'products_sub'",
                 step="test: slot") == []
