"""One scenario, in file order: failover, rejoin and switchover on a copy of global-saas with a writer that never stops.

The tests share one topology (``t-failover``, module-scoped: bringing it up is expensive) and
each starts where the previous one left it:
1. refusals change nothing (every refusal of `failover`, then a replica down, then a lagging one);
2. ``kill pg-us`` then ``failover``: pg-eu is promoted; the loss reported covers what the writer lost;
3. ``rejoin pg-us``: it streams from pg-eu again (pg_rewind);
4. ``switchover`` to pg-us, to pg-eu and to pg-us again: back to the file's layout, no acknowledged
   row lost, billing's subscription moved each time.

The topology is the reference one (pg-us primary, pg-eu replica in another region, billing
subscribing to inventory_pub with a failover slot) plus a cascaded replica pg-eu2 behind pg-eu.
The writer inserts rows with increasing ids through the current primary's published port and
records every acknowledged commit (and the few whose outcome is unknown: the connection broke
during the commit); it follows the primary recorded in the state after a failover.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from pgtopo.observe import snapshot
from pgtopo.postgres import connect
from pgtopo.runtime import gateway, state
from tests.support.docker import (
    Writer,
    all_streaming,
    cli,
    copy_topology,
    ids,
    layout,
    unchanged,
    wait_for,
    wait_synced_slot,
)

CASCADE = """        failover_priority: 100
      pg-eu2:
        region: eu-west
        upstream: pg-eu
        failover_priority: 50
"""


def wait_more(writer: Writer, rows: int, *, what: str) -> None:
    n = len(writer.acked)
    wait_for(lambda: len(writer.acked) > n + rows, what=what)


def reported_loss(output: str) -> tuple[int, int | None]:
    m = re.search(r"data lost: (?:at least )?[\d.]+ \w+ \((\d+) bytes\) of WAL(?:, (\d+) committed)?", output)
    assert m, output
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


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
        # The cascade behind pg-eu was not asked before pg_promote (pg-eu streamed it), and follows
        # the new timeline through pg-eu all the same.
        assert "pg-eu2: stay -> pg-eu (already streams from pg-eu; asked after the promotion" in out, out
        assert "pg-eu2: streaming on timeline 2 from pg-eu" in out, out
        n_after = len(writer.acked)
        wait_for(lambda: len(writer.acked) > n_after + 300, what="writes on the new primary")
    finally:
        writer.stop()

    assert state.current_primaries(topo)["main"] == "pg-eu"
    snap = snapshot.collect(topo)
    assert snap.writable("main") == ["pg-eu"]
    assert snap.nodes["pg-us"].container == "exited"
    assert snap.nodes["pg-eu2"].upstream == "pg-eu" and snap.nodes["pg-eu2"].timeline == 2
    assert state.load(topo.name).fenced["pg-us"].method == "already down"
    # The candidate retried its gone upstream every 20 ms until promoted (a promotion request could
    # otherwise wait out a 1 s retry sleep); the new primary is back on the file's interval.
    with connect.connect(topo.name, "pg-eu") as conn:
        rows = conn.execute("SELECT setting, (SELECT count(*) FROM pg_file_settings WHERE name = "
                            "'wal_retrieve_retry_interval' AND sourcefile LIKE '%auto.conf') FROM pg_settings "
                            "WHERE name = 'wal_retrieve_retry_interval'").fetchall()
    assert rows == [("1000", 0)], rows
    c = gateway.find(topo.name, "pg-eu")
    assert c is not None
    log = gateway.logs(c, tail=2000)
    assert 'parameter "wal_retrieve_retry_interval" changed to "20ms"' in log, log[-3000:]
    assert log.index('changed to "20ms"') < log.index("received promote request")

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
    assert "pg-us" not in state.load(topo.name).fenced
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
