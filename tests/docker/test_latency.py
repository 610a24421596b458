"""Simulated latency and partitions on a running copy of global-saas (real Docker, PostgreSQL 17).

Every check compares a behaviour with the declared value: round trips of queries from a
client "in eu-west", the primary's ``write_lag`` of its replica, and replication stopping
under a partition and catching up after a heal with no row lost. Tolerances are the ones
``status`` uses (20 % or 10 ms, whichever is larger) and every value is a median, because
other test modules may load this 2-core machine at the same time.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from pgtopo.cli.main import app
from pgtopo.model import loader
from pgtopo.model.topology import Topology
from pgtopo.network import latency, relay_container
from pgtopo.postgres import connect
from pgtopo.runtime import gateway, state
from tests.support.docker import running, wait_for

pytestmark = pytest.mark.docker

NAME = "t-latency"
QUERIES = 10


@dataclass(frozen=True)
class Env:
    topo: Topology
    path: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with running(tmp_path_factory.mktemp("latency"), "global-saas.yaml", name=NAME) as path:
        yield Env(loader.load(path), path)


def close_to(measured: float, expected: float) -> bool:
    """The declared delay is applied, once: never much less, and not doubled. The upper side has
    more room than the lower because a loaded CI machine delays the relay's Python on top of the
    link (the fidelity itself is measured quietly by benchmarks/latency_fidelity.py)."""
    return expected - max(10.0, 0.1 * expected) <= measured <= expected + max(15.0, 0.35 * expected)


def from_region(env: Env, region: str, node: str) -> psycopg.Connection[Any]:
    """A client in ``region``: the relay's published port for (region, node), as pgtopo."""
    relay = relay_container.running_relay(env.topo)
    assert relay is not None
    port = gateway.published_port(relay, f"{env.topo.relay_port(region, node)}/tcp")
    assert port is not None
    return psycopg.connect(host="127.0.0.1", port=port, user="pgtopo", password=state.passwords(NAME)["pgtopo"],
                           dbname="postgres", autocommit=True, connect_timeout=10)


def select_1_median_ms(conn: psycopg.Connection[Any]) -> float:
    conn.execute("SELECT 1").fetchone()  # warm up: catalog caches, first packets
    samples = []
    for _ in range(QUERIES):
        t0 = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
        samples.append((time.perf_counter() - t0) * 1000)
    return float(statistics.median(samples))


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_select_1_from_eu_west_to_the_primary_pays_the_declared_rtt(env: Env) -> None:
    declared = env.topo.rtt_ms("eu-west", "us-east")
    assert declared == 80
    with connect.connect(NAME, "pg-us") as direct:
        local = select_1_median_ms(direct)
    with from_region(env, "eu-west", "pg-us") as conn:
        remote = select_1_median_ms(conn)
    print(f"SELECT 1 from eu-west to pg-us: median {remote:.1f} ms (direct {local:.1f} ms), declared {declared} ms")
    assert close_to(remote, declared), f"SELECT 1 from eu-west: median {remote:.1f} ms, declared {declared} ms"
    assert local < 10, f"the same query without the relay took {local:.1f} ms"


def test_latency_matrix_shows_declared_in_effect_and_measured(env: Env) -> None:
    data = json.loads(cli("latency", "show", str(env.path), "--json"))
    assert data["running"] is True and data["partitioned"] == []
    mech = data["mechanism"]
    assert mech["name"] == "relay" and mech["netem_available"] is not None, mech
    rows = {tuple(r["regions"]): r for r in data["links"]}
    assert set(rows) == {("us-east", "eu-west"), ("us-east", "ap-south"), ("eu-west", "ap-south")}
    for (a, b), row in rows.items():
        assert row["in_effect"] == row["declared"] and not row["overridden"]
        assert row["declared"]["rtt_ms"] == env.topo.rtt_ms(a, b)
        measured = row["measured_rtt_ms"]
        assert measured is not None and close_to(measured, env.topo.rtt_ms(a, b)), row
    text = cli("latency", "show", str(env.path))
    assert f"mechanism: relay ({mech['detail']}" in text


def test_write_lag_of_the_eu_replica_matches_the_rtt(env: Env) -> None:
    """write_lag: from the primary's flush (WAL sent at once) to the standby's reply that it
    wrote it. The WAL receiver replies as soon as its write position moves (it does not wait
    for wal_receiver_status_interval), so each sample is one trip there and one back through
    the relay: the declared round trip, plus a few ms of processing."""
    declared = env.topo.rtt_ms("us-east", "eu-west")
    stop = threading.Event()
    errors: list[BaseException] = []

    def write_load() -> None:
        try:
            with connect.connect(NAME, "pg-us") as c:
                c.execute("CREATE TABLE IF NOT EXISTS latency_write_load (id bigserial PRIMARY KEY, at timestamptz)")
                while not stop.is_set():
                    c.execute("INSERT INTO latency_write_load (at) VALUES (now())")
                    time.sleep(0.005)
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=write_load, daemon=True)
    writer.start()
    samples: list[float] = []
    try:
        with connect.connect(NAME, "pg-us") as c:
            time.sleep(1.0)  # let the lag tracker fill with samples of this load
            end = time.monotonic() + 5
            while time.monotonic() < end:
                row = c.execute("SELECT extract(epoch FROM write_lag) * 1000 FROM pg_stat_replication "
                                "WHERE application_name = 'pg-eu'").fetchone()
                if row and row[0] is not None:
                    samples.append(float(str(row[0])))
                time.sleep(0.1)
    finally:
        stop.set()
        writer.join(timeout=10)
    assert not errors, errors
    assert len(samples) >= 20, samples
    median = statistics.median(samples)
    print(f"write_lag: median {median:.1f} ms of {len(samples)} samples, declared RTT {declared} ms")
    assert close_to(median, declared), f"write_lag median {median:.1f} ms, declared RTT {declared} ms"


def test_latency_set_changes_the_link_and_reset_restores_it(env: Env) -> None:
    path = str(env.path)
    with from_region(env, "eu-west", "pg-us") as conn:
        try:
            out = cli("latency", "set", path, "us-east", "eu-west", "200ms")
            assert "round trip 200 ms in effect" in out
            assert state.load(NAME).links == {"eu-west|us-east": state.LinkOverride(rtt_ms=200.0, jitter_ms=0.0)}
            # The open connection pays the new delay too: a WAN whose latency changed.
            slow = select_1_median_ms(conn)
            print(f"SELECT 1 after `latency set us-east eu-west 200ms`: median {slow:.1f} ms")
            assert close_to(slow, 200), f"SELECT 1 after `latency set 200ms`: median {slow:.1f} ms"
            rep = latency.report(env.topo, measure_links=False)
            row = next(r for r in rep.rows if (r.a, r.b) == ("us-east", "eu-west"))
            assert row.overridden and row.in_effect == latency.LinkSetting(200.0, 0.0)
        finally:
            cli("latency", "reset", path)
        assert state.load(NAME).links == {}
        back = select_1_median_ms(conn)
        print(f"SELECT 1 after reset: median {back:.1f} ms")
        assert close_to(back, 80), f"SELECT 1 after reset: median {back:.1f} ms"


def _receiver_status() -> str | None:
    with connect.connect(NAME, "pg-eu") as eu:
        row = eu.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
    return None if row is None else str(row[0])


def _sender_state(node: str) -> str | None:
    with connect.connect(NAME, "pg-us") as us:
        row = us.execute("SELECT state FROM pg_stat_replication WHERE application_name = %s", (node,)).fetchone()
    return None if row is None else str(row[0])


def _streaming() -> bool:
    return _receiver_status() == "streaming" and _sender_state("pg-eu") == "streaming"


@pytest.mark.parametrize("cut", ["eu-west", "pg-eu"])
def test_partition_stops_replication_and_heal_catches_up_with_no_row_lost(env: Env, cut: str) -> None:
    path = str(env.path)
    wait_for(_streaming, timeout=30, what="pg-eu streaming before the partition")
    table = f"latency_partition_{cut.replace('-', '_')}"
    with connect.connect(NAME, "pg-us") as us:
        us.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, at timestamptz DEFAULT now())")
        us.execute(f"INSERT INTO {table} (id) VALUES (0)")
    wait_for(lambda: _replayed_count(table) == 1, timeout=30, what="the first row on pg-eu")

    written = 1
    try:
        t0 = time.monotonic()
        assert "is partitioned" in cli("partition", path, cut)
        assert state.load(NAME).partitioned == (cut,)

        def gone() -> bool:
            nonlocal written
            with connect.connect(NAME, "pg-us") as us:  # rows keep arriving on the primary meanwhile
                us.execute(f"INSERT INTO {table} (id) VALUES (%s)", (written,))
            written += 1
            return _receiver_status() != "streaming" and _sender_state("pg-eu") is None

        wait_for(gone, timeout=15, what=f"replication to pg-eu to stop after partitioning {cut}")
        print(f"partition of {cut}: replication to pg-eu stopped after {time.monotonic() - t0:.1f} s")
        if cut == "eu-west":
            rep = latency.report(env.topo)
            cut_rows = [r for r in rep.rows if "eu-west" in (r.a, r.b)]
            assert rep.partitioned == ("eu-west",)
            assert all(r.cut == ("eu-west",) and r.measured_ms is None for r in cut_rows)
            other = next(r for r in rep.rows if (r.a, r.b) == ("us-east", "ap-south"))
            assert other.measured_ms is not None and close_to(other.measured_ms, 200)
        with connect.connect(NAME, "pg-us") as us:
            for i in range(written, written + 50):
                us.execute(f"INSERT INTO {table} (id) VALUES (%s)", (i,))
            written += 50
        assert _replayed_count(table) < written  # nothing crossed the partition
    finally:
        cli("heal", path)
    assert state.load(NAME).partitioned == ()
    t1 = time.monotonic()
    wait_for(_streaming, timeout=30, what="pg-eu streaming again after the heal")
    print(f"heal of {cut}: streaming again after {time.monotonic() - t1:.1f} s")
    with connect.connect(NAME, "pg-us") as us:
        ids = _ids(us, table)
    assert ids == list(range(written))
    wait_for(lambda: _replayed_count(table) == written, timeout=30, what="every row on pg-eu")
    with connect.connect(NAME, "pg-eu") as eu:
        assert _ids(eu, table) == ids


def _replayed_count(table: str) -> int:
    """Rows of ``table`` on pg-eu; -1 while its creation has not been replayed there."""
    with connect.connect(NAME, "pg-eu") as eu:
        try:
            row = eu.execute(f"SELECT count(*) FROM {table}").fetchone()
        except psycopg.errors.UndefinedTable:
            return -1
    assert row is not None
    return int(str(row[0]))


def _ids(conn: psycopg.Connection[Any], table: str) -> list[int]:
    return sorted(int(str(r[0])) for r in conn.execute(f"SELECT id FROM {table}").fetchall())
