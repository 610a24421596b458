"""One scenario, in file order: `pgtopo env`, the router and the read-your-writes bench on real containers.

The tests share one topology (``t-routing``, a copy of global-saas; module-scoped: bringing it up
is expensive). Each test but the last leaves it as it found it (its tables dropped, the link's
latency restored); the last, ``test_router_follows_a_manual_promotion``, stops pg-us and promotes
pg-eu by hand, which is not undone: it must stay last.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from pgtopo.apps import endpoints, routing_bench
from pgtopo.apps.routing import CommitUnknown, Router, Session
from pgtopo.cli.main import app
from pgtopo.model.loader import load
from pgtopo.model.topology import Topology
from pgtopo.postgres import connect
from pgtopo.runtime import gateway, state
from tests.support.docker import running

pytestmark = pytest.mark.docker

NAME = "t-routing"
DECLARED_RTT_MS = 80.0  # us-east <-> eu-west in global-saas.yaml


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Topology, Path]]:
    with running(tmp_path_factory.mktemp("routing"), "global-saas.yaml", name=NAME) as path:
        yield load(path), path


def median_ms(conn: psycopg.Connection[tuple[object, ...]], query: str = "SELECT 1", n: int = 9) -> float:
    """The query alone (the connection is open): the median of ``n`` round trips."""
    conn.execute(query)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.execute(query).fetchall()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def served(s: Session) -> str:
    assert s.last_read is not None
    return s.last_read.served_by


def near_declared(measured: float, declared: float) -> bool:
    return abs(measured - declared) <= max(0.2 * declared, 10.0)


def test_env_urls_pay_the_declared_latency(topo: tuple[Topology, Path]) -> None:
    t, path = topo
    ep = endpoints.app_endpoints(t, region="eu-west")
    res = CliRunner().invoke(app, ["env", str(path), "--region", "eu-west", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == ep.as_env()

    with psycopg.connect(ep.primary_url, autocommit=True) as conn:
        primary_ms = median_ms(conn)
        row = conn.execute("SELECT current_user, current_database(), pg_is_in_recovery()").fetchone()
        assert row == ("app", "production", False)
    assert primary_ms >= 0.8 * DECLARED_RTT_MS, primary_ms
    assert near_declared(primary_ms, DECLARED_RTT_MS), primary_ms

    with psycopg.connect(ep.replica_url, autocommit=True) as conn:
        assert median_ms(conn) < 20
        assert conn.execute("SELECT pg_is_in_recovery(), current_setting('cluster_name')").fetchone() == (True, "pg-eu")

    with psycopg.connect(ep.multihost_url, autocommit=True) as conn:
        assert conn.execute("SELECT current_setting('cluster_name')").fetchone() == ("pg-us",)

    # From ap-south, the nearest replica (pg-eu, 120 ms) is remote too.
    far = endpoints.app_endpoints(t, region="ap-south")
    with psycopg.connect(far.replica_url, autocommit=True) as conn:
        assert near_declared(median_ms(conn), 120.0)


def test_lsn_waits_for_replay_then_falls_back_to_the_primary(topo: tuple[Topology, Path]) -> None:
    t, _ = topo
    with Router.from_topology(t, region="eu-west") as router, \
            connect.connect(NAME, "pg-eu") as replica_admin:
        assert router.max_wait_s == pytest.approx(0.08)  # twice the 40 ms one-way lag
        s = router.session()
        s.write("CREATE TABLE routing_wait (id int PRIMARY KEY, v int NOT NULL)")
        s.write("INSERT INTO routing_wait VALUES (1, 0)")
        assert s.read("SELECT v FROM routing_wait WHERE id = 1") == [(0,)]
        assert served(s) == "replica"

        # Replay paused: the replica cannot catch up, so the token's read waits its budget,
        # then the primary serves it, fresh.
        replica_admin.execute("SELECT pg_wal_replay_pause()")
        try:
            s.write("UPDATE routing_wait SET v = 1 WHERE id = 1")
            assert s.read("SELECT v FROM routing_wait WHERE id = 1") == [(1,)]
            assert served(s) == "primary"
            assert s.last_read is not None and s.last_read.waited_s >= router.max_wait_s
            # replica-only, same moment, same token: stale.
            with Router.from_topology(t, region="eu-west", strategy="replica-only") as blind:
                assert blind.session(s.token).read("SELECT v FROM routing_wait WHERE id = 1") == [(0,)]
            # A garbage token is treated as a fresh write of unknown position: primary.
            g = router.session("not-a-token")
            assert g.read("SELECT v FROM routing_wait WHERE id = 1") == [(1,)]
            assert served(g) == "primary"
        finally:
            replica_admin.execute("SELECT pg_wal_replay_resume()")
        assert s.read("SELECT v FROM routing_wait WHERE id = 1") == [(1,)]
        assert served(s) == "replica"
        s.write("DROP TABLE routing_wait")


def test_write_retries_only_when_nothing_can_have_committed(topo: tuple[Topology, Path]) -> None:
    t, _ = topo
    with Router.from_topology(t, region="eu-west") as router:
        s = router.session()
        s.write("CREATE TABLE routing_retry (id int PRIMARY KEY)")
        calls: list[int] = []

        def insert(conn: psycopg.Connection[tuple[object, ...]]) -> int:
            calls.append(1)
            conn.execute("INSERT INTO routing_retry VALUES (1)")
            if len(calls) == 1:  # the connection dies before COMMIT is sent
                conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            return len(calls)

        assert s.write_tx(insert) == 2
        assert router.failovers == 1  # re-resolved through the multi-host URL
        token = s.token
        assert token is not None and not token.startswith("*")
        assert s.read("SELECT count(*) FROM routing_retry") == [(1,)]  # once: attempt one rolled back

        # Here the COMMIT travelled with the statement: whether it committed is unknown.
        with pytest.raises(CommitUnknown):
            s.write("SELECT pg_terminate_backend(pg_backend_pid())")
        assert s.token == token  # no position learnt
        s.write("DROP TABLE routing_retry")


def test_bench_replica_only_is_stale_lsn_never(topo: tuple[Topology, Path]) -> None:
    t, path = topo
    result = routing_bench.run(t, region="eu-west", strategies=["replica-only", "lsn", "time-window"], sessions=3, ops=30,
                     slow_link_ms=100)
    stats = {s.strategy: s for s in result.stats}
    assert result.setup.link == ("us-east", "eu-west")
    assert result.setup.link_rtt_ms == 100
    assert stats["replica-only"].stale > 0, stats
    assert stats["replica-only"].local_share == 1.0
    assert stats["lsn"].stale == 0, stats
    assert stats["time-window"].stale == 0, stats
    assert stats["lsn"].local_share > stats["time-window"].local_share, stats
    # Writes crossed the slowed link (a round trip of about 100 ms, not the declared 80).
    assert stats["lsn"].write_p50_ms >= 90, stats

    # The link is back to the file's latency, and the bench table is gone.
    assert state.load(NAME).links == {}
    ep = endpoints.app_endpoints(t, region="eu-west")
    with psycopg.connect(ep.primary_url, autocommit=True) as conn:
        assert near_declared(median_ms(conn), DECLARED_RTT_MS)
    with connect.connect(NAME, "pg-us") as conn:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'pgtopo_ryw%'").fetchone() == (0,)

    # The command prints the same table.
    res = CliRunner().invoke(app, ["bench", "ryw", str(path), "-r", "eu-west", "--strategies", "lsn,primary-only",
                                   "--sessions", "1", "--ops", "3", "--json"])
    assert res.exit_code == 0, res.output
    printed = json.loads(res.output[res.output.index("{"):])
    assert [s["strategy"] for s in printed["strategies"]] == ["lsn", "primary-only"]
    res = CliRunner().invoke(app, ["bench", "ryw", str(path), "-r", "eu-west", "--strategies", "fastest"])
    assert res.exit_code == 2
    assert "unknown strategy 'fastest'" in res.output


def test_router_follows_a_manual_promotion(topo: tuple[Topology, Path]) -> None:
    """Last: it stops the primary. The router's next write finds pg-eu via the multi-host URL."""
    t, _ = topo
    with Router.from_topology(t, region="eu-west") as router:
        s = router.session()
        s.write("CREATE TABLE routing_failover (id int PRIMARY KEY)")
        s.write("INSERT INTO routing_failover VALUES (1)")
        assert s.read("SELECT count(*) FROM routing_failover") == [(1,)]

        old = gateway.find(NAME, "pg-us")
        assert old is not None
        gateway.stop(old)
        with connect.connect(NAME, "pg-eu") as conn:
            assert conn.execute("SELECT pg_promote()").fetchone() == (True,)

        rows = s.write("INSERT INTO routing_failover VALUES (2) RETURNING current_setting('cluster_name')")
        assert rows == [("pg-eu",)]
        assert router.failovers == 1
        # The token came from the new primary; reads see both rows.
        assert s.read("SELECT count(*) FROM routing_failover") == [(2,)]
        s.write("INSERT INTO routing_failover VALUES (3)")
        assert router.failovers == 1  # found once, kept
    with connect.connect(NAME, "pg-eu", dbname="production") as conn:
        assert conn.execute("SELECT array_agg(id ORDER BY id) FROM routing_failover").fetchone() == ([1, 2, 3],)
