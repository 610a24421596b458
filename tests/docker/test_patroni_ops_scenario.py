"""One scenario, in file order: pgtopo's commands on a cluster Patroni keeps alive, with real
containers (Patroni 4.0 and etcd 3.5 in pgtopo/postgres:17).

The tests share one topology (``pb-patroni-ops``, module-scoped): cluster main with ``ha: patroni``,
pg-us (leader) and pg-us2 in us-east, pg-eu in eu-west, and one etcd member in each of three regions.

1. ``status`` shows Patroni's view (leader, members streaming, DCS quorum) and ``verify`` passes.
2. ``switchover --to pg-eu`` and back to pg-us through Patroni under a writer that records every
   acknowledged commit: none is lost.
3. ``kill`` the leader (SIGKILL) and ``failover`` at once: pgtopo's ranking picks pg-us2, Patroni
   promotes it; ``rejoin`` the old leader: Patroni rewinds it and it streams again.
4. ``verify`` fails (exit 1) naming the etcd member that is stopped, then ``dcs-quorum`` once two of
   the three are stopped; the demoted leader shows in ``status`` as a disagreement between Patroni's
   view and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtopo.model.topology import Topology
from pgtopo.patroni.views import ClusterView
from pgtopo.runtime import gateway, state
from tests.support import patroni_lab
from tests.support.docker import Writer, cli, ids, up_from_text, wait_for

TOPOLOGY = """
name: pb-patroni-ops
postgres:
  version: 17
regions:
  us-east: {}
  eu-west: {}
  ap-south: {}
latency:
  - {between: [us-east, eu-west], rtt_ms: 40}
  - {between: [us-east, ap-south], rtt_ms: 60}
  - {between: [eu-west, ap-south], rtt_ms: 60}
dcs:
  regions: [us-east, eu-west, ap-south]
clusters:
  main:
    ha: patroni
    patroni: {ttl: 20, loop_wait: 2, retry_timeout: 5}
    databases:
      production:
        schema: |
          CREATE TABLE products (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, sku text NOT NULL UNIQUE,
                                 name text NOT NULL, price_cents integer NOT NULL);
    nodes:
      pg-us: {region: us-east, role: primary}
      pg-us2: {region: us-east, upstream: pg-us, failover_priority: 200}
      pg-eu: {region: eu-west, upstream: pg-us, failover_priority: 100}
"""


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    with up_from_text(tmp_path_factory.mktemp("pb-patroni-ops"), TOPOLOGY, file="patroni.yaml") as t:
        yield t


def patroni_view(topo: Topology) -> ClusterView:
    return patroni_lab.patroni_view(topo, "main")


def settled(topo: Topology, leader: str) -> bool:
    """Patroni shows ``leader`` running and every other member streaming on its timeline."""
    v = patroni_view(topo)
    lead = v.leader
    return (lead is not None and lead.name == leader and lead.state == "running" and len(v.members) == 3
            and all(m.state == "streaming" and m.timeline == lead.timeline for m in v.members if m is not lead))


def test_status_shows_patroni_s_view_and_verify_passes(up: tuple[Topology, Path]) -> None:
    _topo, path = up
    rc, out = cli("status", str(path), "--json")
    assert rc == 0, out
    report = json.loads(out)
    assert report["primaries"] == {"main": "pg-us"}
    (main,) = report["patroni"]["clusters"]
    assert main["leader"] == "pg-us"
    assert {m["member"]: (m["role"], m["state"], m["postgres"], m["agrees"]) for m in main["members"]} == {
        "pg-us": ("leader", "running", "primary", True), "pg-us2": ("replica", "streaming", "replica", True),
        "pg-eu": ("replica", "streaming", "replica", True)}
    dcs = report["patroni"]["dcs"]
    assert dcs["quorum"] is True and [m["healthy"] for m in dcs["members"]] == [True, True, True]
    rc, out = cli("status", str(path))
    assert rc == 0 and "Patroni: cluster main, leader pg-us" in out and "3/3 etcd members healthy" in out, out
    rc, out = cli("verify", str(path), "--json")
    assert rc == 0, out
    checks = {(c["check"], c["subject"]): c["passed"] for c in json.loads(out)["checks"]}
    assert checks[("dcs-quorum", "dcs")] and checks[("patroni-leader", "main")] and checks[("patroni-members", "main")]
    assert all(checks[("patroni-member", n)] for n in ("pg-us", "pg-us2", "pg-eu"))


def test_switchover_to_eu_and_back_loses_no_row(up: tuple[Topology, Path]) -> None:
    topo, path = up
    writer = Writer(topo, cluster="main", db="production", start_id=1_000_000)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) > 50, what="the writer's first commits")
        rc, out = cli("switchover", str(path), "--to", "pg-eu", "--yes")
        assert rc == 0, out
        assert "Patroni decides: POST /switchover leader=pg-us candidate=pg-eu" in out
        assert "pg-eu is the leader of cluster main (timeline 2), by Patroni" in out
        assert state.current_primaries(topo)["main"] == "pg-eu"
        after_first = len(writer.acked)
        wait_for(lambda: len(writer.acked) > after_first + 50, what="commits on pg-eu")
        wait_for(lambda: settled(topo, "pg-eu"), what="pg-us and pg-us2 streaming from pg-eu")
        rc, out = cli("switchover", str(path), "--to", "pg-us", "--yes")
        assert rc == 0, out
        assert "pg-us is the leader of cluster main (timeline 3), by Patroni" in out
        after_second = len(writer.acked)
        wait_for(lambda: len(writer.acked) > after_second + 50, what="commits on pg-us again")
    finally:
        writer.stop()
    wait_for(lambda: settled(topo, "pg-us"), what="every member streaming from pg-us")
    acked = set(writer.acked)
    assert acked, "the writer committed nothing"
    assert acked - ids(topo, "pg-us", "production") == set()
    wait_for(lambda: acked <= ids(topo, "pg-eu", "production"), what="pg-eu to replay every commit")


def test_failover_after_the_leader_crashed_then_patroni_rejoins_it(up: tuple[Topology, Path]) -> None:
    topo, path = up
    rc, out = cli("kill", str(path), "pg-us")
    assert rc == 0, out
    rc, out = cli("failover", str(path), "--dry-run")
    assert rc == 0, out
    assert "-> pg-us2" in out and "Patroni decides: POST /failover candidate=pg-us2" in out
    assert "Patroni still lists pg-us as leader but its PostgreSQL does not answer" in out
    assert "dry run: nothing changed" in out
    rc, out = cli("failover", str(path), "--yes")
    assert rc == 0, out
    assert "pg-us2 is the leader of cluster main (timeline 4), by Patroni" in out
    assert "pg-us: not registered in Patroni" in out or "pg-us: replica" in out, out
    view = patroni_view(topo)
    assert view.leader is not None and (view.leader.name, view.leader.timeline) == ("pg-us2", 4)
    rc, out = cli("rejoin", str(path), "pg-us")
    assert rc == 0, out
    assert "pg-us streams from pg-us2 on timeline 4 (rejoined by Patroni)" in out and "container was started" in out
    # rejoin waits for pg-us only: pg-eu may still be catching up on the new timeline.
    wait_for(lambda: settled(topo, "pg-us2"), what="every member streaming from pg-us2")
    rc, out = cli("status", str(path))
    assert rc == 0, out


def _stop_etcd(topo: Topology, member: str) -> None:
    (c,) = [c for c in gateway.containers(topo.name, kind="dcs") if c.labels.get(gateway.LABEL_NODE) == member]
    gateway.stop(c)


def test_verify_fails_naming_a_stopped_etcd_member_then_the_lost_quorum(up: tuple[Topology, Path]) -> None:
    topo, path = up
    _stop_etcd(topo, "etcd-ap-south")
    rc, out = cli("verify", str(path))
    assert rc == 1, out
    assert "error: verify: 1 check(s) failed: dcs-member etcd-ap-south" in out
    _stop_etcd(topo, "etcd-eu-west")
    rc, out = cli("verify", str(path), "--json")
    assert rc == 1, out
    report, _end = json.JSONDecoder().raw_decode(out)  # the error line follows the JSON document
    failed = {(c["check"], c["subject"]) for c in report["checks"] if not c["passed"]}
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("error: verify: ") and "dcs-quorum dcs" in last, last
    assert {("dcs-quorum", "dcs"), ("dcs-member", "etcd-ap-south"), ("dcs-member", "etcd-eu-west")} <= failed
    rc, out = cli("status", str(path))
    assert rc == 1 and "etcd has NO QUORUM" in out, out
    # Without the DCS the leader cannot renew its lock: Patroni demotes its PostgreSQL, while every
    # member's /cluster still answers the last view it read, naming pg-us2 the leader.
    seen: list[str] = []

    def disagreement_shown() -> bool:
        seen[:] = [cli("status", str(path))[1]]
        return "Patroni says pg-us2 leads, but PostgreSQL on pg-us2 is in recovery" in seen[0]

    wait_for(disagreement_shown, timeout=90, what="status to show Patroni and PostgreSQL disagreeing")
    assert "│ ! │ pg-us2" in seen[0], seen[0]
