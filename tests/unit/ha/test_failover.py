"""The failover planner on hand-built snapshots: ranking, refusals (exact messages), --force, --to."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pgtopo.errors import InputError
from pgtopo.ha import failover as F
from pgtopo.ha.synchronous import SyncConfig, intended_sync
from pgtopo.model.topology import Topology
from pgtopo.observe.snapshot import Slot, Snapshot
from tests.support.ha import saas_snap, sync_snap
from tests.support.snapshots import BASE, MIB, SYNCED, down, downstream, primary, replica, snapshot
from tests.support.topologies import SAAS, SYNC, topology_of


@pytest.fixture
def saas(tmp_path: Path) -> Topology:
    return topology_of(tmp_path, SAAS)


@pytest.fixture
def synct(tmp_path: Path) -> Topology:
    return topology_of(tmp_path, SYNC)


def plan(topo: Topology, snap: Snapshot, **kw: Any) -> F.Plan:
    args: dict[str, Any] = {"cluster": None, "to": None}
    args.update(kw)
    return F.plan_failover(topo, snap, **args)


def refusal(topo: Topology, snap: Snapshot, **kw: Any) -> list[str]:
    with pytest.raises(InputError) as exc:
        plan(topo, snap, **kw)
    assert exc.value.exit_code == 2
    return exc.value.lines()


# -- ranking ---------------------------------------------------------------------------------------

def test_most_wal_wins_then_priority_then_direct_then_region(saas: Topology) -> None:
    # pg-eu, pg-us2 and pg-eu2 all equal: priority 100 beats 50 (pg-eu2); between pg-eu and pg-us2
    # (both 100, both direct) the region nearest the old primary wins: pg-us2 (us-east).
    p = plan(saas, saas_snap())
    assert [c.node for c in p.ranking] == ["pg-us2", "pg-eu", "pg-eu2"]
    assert p.candidate == "pg-us2"
    assert p.why[1] == ("tie on WAL with pg-eu, pg-eu2: nearer pg-us's region (us-east, 0 ms round trip; eu-west, "
                        "80 ms)")

    # More received WAL beats everything else, even a cascade with a lower priority.
    p = plan(saas, saas_snap(pg_eu=replica("pg-eu", "eu-west", at=BASE + 100, upstream=None, slots=(SYNCED,)),
                             pg_eu2=replica("pg-eu2", "eu-west", at=BASE + 100, upstream="pg-eu")))
    assert [c.node for c in p.ranking] == ["pg-eu", "pg-eu2", "pg-us2"]
    assert p.why == ("pg-eu has the most WAL: received 0/3000064, replayed 0/3000064, lag 0 B",
                     "tie on WAL with pg-eu2: higher failover_priority (100 > pg-eu2's 50)")
    assert p.ranking[2].lag_bytes == 100

    # Replayed WAL breaks a tie on received WAL.
    p = plan(saas, saas_snap(pg_us2=replica("pg-us2", "us-east", upstream=None, replay=BASE - 10)))
    assert p.candidate == "pg-eu"


def test_a_direct_standby_beats_a_cascade_of_equal_priority(tmp_path: Path) -> None:
    topo = topology_of(tmp_path, SAAS.replace("upstream: pg-eu, failover_priority: 50", "upstream: pg-eu"))
    p = plan(topo, saas_snap(pg_us2=down("pg-us2", "us-east")))
    assert p.candidate == "pg-eu"
    assert p.why[1] == "tie on WAL with pg-eu2: a direct standby (pg-eu2 is cascaded behind pg-eu)"


def test_ranking_puts_blocked_and_unsafe_last(saas: Topology) -> None:
    snap = saas_snap(pg_us2=down("pg-us2", "us-east", container="paused"),
                     pg_eu2=replica("pg-eu2", "eu-west", at=BASE - 2 * MIB, upstream="pg-eu"))
    p = plan(saas, snap)
    assert [(c.node, c.verdict) for c in p.ranking] == [
        ("pg-eu", "ok"),
        ("pg-eu2", "unsafe: lags 2.0 MiB behind the most advanced replica pg-eu (cascaded behind pg-eu), "
                   "more than --max-lag 1.0 MiB"),
        ("pg-us2", "no: down (container paused)"),
    ]
    rows = F.ranking_rows(p)
    assert rows[0][0] == "-> pg-eu" and rows[2][2] == "down (container paused)"


def test_reference_is_the_live_primary_when_reachable(saas: Topology) -> None:
    snap = saas_snap(pg_us=primary("pg-us", "us-east", at=BASE + 4096))
    p = plan(saas, snap)
    assert p.reference == "pg-us's current position 0/3001000"
    assert p.ranking[0].lag_bytes == 4096
    assert p.fence == "stop"
    assert p.warnings[0].startswith("pg-us is alive and writable: it is stopped first")


def test_reference_when_the_primary_is_down(saas: Topology) -> None:
    p = plan(saas, saas_snap(pg_eu=replica("pg-eu", "eu-west", at=BASE + 8, upstream=None)))
    assert p.reference == ("the most advanced replica, pg-eu at 0/3000008 (pg-us is down: WAL it wrote but never "
                           "sent is not counted)")
    assert p.fence == "none" and p.old_state == "down (container exited)"
    # A last known position ahead of every replica (recorded by `pgtopo kill`) is the reference.
    p = plan(saas, saas_snap(), old_primary_last_lsn=(BASE + 10, 1))
    assert p.reference == "the last known position of pg-us, 0/300000A (pg-us is down)"
    assert p.ranking[0].lag_bytes == 10
    # ... unless it is from another timeline.
    p = plan(saas, saas_snap(), old_primary_last_lsn=(BASE + 10, 7))
    assert p.reference.startswith("the most advanced replica")


def test_paused_primary_is_fenced_by_network(saas: Topology) -> None:
    p = plan(saas, saas_snap(pg_us=down("pg-us", "us-east", container="paused")))
    assert p.fence == "disconnect"
    assert "disconnect pg-us from every network (it cannot be stopped: paused)" in "\n".join(p.lines())


# -- refusals --------------------------------------------------------------------------------------

def test_refuses_when_every_candidate_lags(saas: Topology) -> None:
    snap = saas_snap(pg_us=primary("pg-us", "us-east", at=BASE + 3 * MIB))
    assert refusal(saas, snap) == [
        "no safe candidate in cluster main",
        "pg-us2: unsafe: lags 3.0 MiB behind pg-us, more than --max-lag 1.0 MiB",
        "pg-eu: unsafe: lags 3.0 MiB behind pg-us, more than --max-lag 1.0 MiB",
        "pg-eu2: unsafe: lags 3.0 MiB behind pg-us (cascaded behind pg-eu), more than --max-lag 1.0 MiB",
        "--force promotes the best of them anyway (data at risk)",
    ]
    # --max-lag 0 refuses a single byte.
    snap = saas_snap(pg_us=primary("pg-us", "us-east", at=BASE + 1))
    assert refusal(saas, snap, max_lag=0)[1] == "pg-us2: unsafe: lags 1 B behind pg-us, more than --max-lag 0 B"
    assert refusal(saas, snap, max_lag=-1) == ["--max-lag -1: must be 0 or more bytes"]


def test_force_promotes_the_best_unsafe_candidate_and_states_the_risk(saas: Topology) -> None:
    snap = saas_snap(pg_us=primary("pg-us", "us-east", at=BASE + 3 * MIB),
                     pg_us2=replica("pg-us2", "us-east", at=BASE + MIB, upstream="pg-us"))
    p = plan(saas, snap, force=True)
    assert p.candidate == "pg-us2" and p.forced
    assert p.at_risk_bytes == 2 * MIB
    assert p.warnings[0] == ("--force: promoting pg-us2 although lags 2.0 MiB behind pg-us, more than --max-lag "
                             "1.0 MiB; data at risk: 2.0 MiB (2097152 bytes) of WAL behind pg-us")


def test_timeline_and_system_identifier_block(saas: Topology) -> None:
    snap = saas_snap(pg_eu=replica("pg-eu", "eu-west", timeline=2, upstream=None),
                     pg_us2=replica("pg-us2", "us-east", upstream=None, system_identifier="7"))
    p = plan(saas, snap)
    verdicts = {c.node: c.verdict for c in p.ranking}
    assert verdicts["pg-eu2"] == "no: on timeline 1, behind timeline 2"
    assert verdicts["pg-us2"].startswith("no: ")
    assert p.candidate == "pg-eu"
    # With every replica down there is nothing to promote, even with --force.
    snap = saas_snap(pg_eu=down("pg-eu", "eu-west"), pg_eu2=down("pg-eu2", "eu-west"),
                     pg_us2=down("pg-us2", "us-east", container="missing"))
    assert refusal(saas, snap, force=True) == [
        "no candidate can be promoted in cluster main",
        "pg-us2: no: down (container missing)",
        "pg-eu: no: down (container exited)",
        "pg-eu2: no: down (container exited)",
    ]


def test_refuses_a_second_writable_node(saas: Topology) -> None:
    snap = saas_snap(pg_eu=primary("pg-eu", "eu-west"))
    assert refusal(saas, snap) == [
        "cluster main already has a writable node other than pg-us: pg-eu; resolve that first (`pgtopo rejoin` the "
        "one to keep as a replica)"]


def test_to_refusals(saas: Topology) -> None:
    snap = saas_snap(pg_us=primary("pg-us", "us-east", at=BASE + 2 * MIB),
                     pg_us2=down("pg-us2", "us-east"),
                     pg_eu=replica("pg-eu", "eu-west", at=BASE + 2 * MIB, upstream="pg-us"))
    assert refusal(saas, snap, to="nope") == ["--to nope: unknown node (known: pg-us, pg-eu, pg-eu2, pg-us2, "
                                              "pg-billing)"]
    assert refusal(saas, snap, to="pg-us") == ["--to pg-us: it is the current primary of cluster main"]
    assert refusal(saas, snap, to="pg-billing", cluster="main") == [
        "--to pg-billing: not in cluster main (it is in cluster billing)"]
    assert refusal(saas, snap, to="pg-us2") == ["--to pg-us2: cannot be promoted: down (container exited)"]
    assert refusal(saas, snap, to="pg-eu2") == [
        "--to pg-eu2: not safe to promote: lags 2.0 MiB behind pg-us (cascaded behind pg-eu), more than --max-lag "
        "1.0 MiB", "--force promotes it anyway"]
    assert refusal(saas, snap, cluster="nope") == ["--cluster nope: unknown cluster (known: main, billing)"]
    assert refusal(saas, snap, cluster="billing") == ["cluster billing has no replica to promote"]


def test_to_chooses_and_force_overrides(saas: Topology) -> None:
    snap = saas_snap(pg_eu=replica("pg-eu", "eu-west", at=BASE + 64, upstream=None))
    p = plan(saas, snap, to="pg-us2")
    assert p.candidate == "pg-us2" and p.why == ("chosen with --to pg-us2",)
    assert "pg-eu has 64 B more WAL than pg-us2: that WAL is lost and pg-eu needs `pgtopo rejoin`" in p.warnings
    moves = {m.node: (m.action, m.upstream) for m in p.replicas}
    assert moves == {"pg-eu": ("rejoin", None), "pg-eu2": ("repoint", "pg-us2")}
    p = plan(saas, saas_snap(pg_eu2=replica("pg-eu2", "eu-west", at=BASE - 2 * MIB, upstream="pg-eu")),
             to="pg-eu2", force=True)
    assert p.candidate == "pg-eu2" and p.at_risk_bytes == 2 * MIB


def test_priority_zero_is_never_chosen_unless_forced(tmp_path: Path) -> None:
    topo = topology_of(tmp_path, SAAS.replace("pg-us2: {region: us-east, upstream: pg-us, failover_priority: 100}",
                                          "pg-us2: {region: us-east, upstream: pg-us, failover_priority: 0}"))
    p = plan(topo, saas_snap())
    assert p.candidate == "pg-eu"
    assert refusal(topo, saas_snap(), to="pg-us2")[0] == (
        "--to pg-us2: not safe to promote: failover_priority 0: never promoted unless forced")
    assert plan(topo, saas_snap(), to="pg-us2", force=True).candidate == "pg-us2"


def test_choose_cluster(saas: Topology, tmp_path: Path) -> None:
    assert F.choose_cluster(saas, cluster=None, to=None) == "main"
    two = SAAS.replace("      pg-billing: {region: ap-south, role: primary}",
                       "      pg-billing: {region: ap-south, role: primary}\n"
                       "      pg-billing2: {region: ap-south, upstream: pg-billing}")
    (tmp_path / "two").mkdir()
    topo = topology_of(tmp_path / "two", two)
    with pytest.raises(InputError) as exc:
        F.choose_cluster(topo, cluster=None, to=None)
    assert exc.value.message == "several clusters have replicas (main, billing): choose one with --cluster"
    assert F.choose_cluster(topo, cluster=None, to="pg-billing2") == "billing"


# -- synchronous clusters --------------------------------------------------------------------------

def test_sync_only_a_synchronous_standby_with_every_acknowledged_commit(synct: Topology) -> None:
    # pg-d (async) has the most WAL but is not synchronous; pg-c is ahead of pg-b.
    p = F.plan_failover(synct, sync_snap(pg_c=replica("pg-c", "dc1", at=BASE + 20, upstream=None)),
                        cluster=None, to=None)
    assert p.candidate == "pg-c"
    assert [(c.node, c.sync, c.verdict) for c in p.ranking] == [
        ("pg-c", "listed", "ok"),
        ("pg-b", "listed", "unsafe: behind another synchronous standby by 20 B: acknowledged commits may be missing"),
        ("pg-d", "async", 'unsafe: not a synchronous standby (ANY 1 ("pg-b", "pg-c"))'),
    ]
    assert p.why[0] == 'pg-c is a synchronous standby (ANY 1 ("pg-b", "pg-c"))'
    # The new primary waits for the other synchronous standby and the file's primary when it is back.
    assert p.sync_after == SyncConfig("any", 1, ("pg-b",), "file")
    assert intended_sync(synct, "main", primary="pg-c", available=None) == SyncConfig(
        "any", 1, ("pg-b", "pg-a"), "file")


def test_sync_refuses_when_a_synchronous_standby_is_missing(synct: Topology) -> None:
    snap = sync_snap(pg_c=down("pg-c", "dc1"))
    assert refusal(synct, snap) == [
        "no safe candidate in cluster main",
        'pg-b: unsafe: pg-c (synchronous) unavailable: acknowledged commits may exist only there (ANY 1 ("pg-b", '
        '"pg-c") needs 2 of 2 seen)',
        'pg-d: unsafe: not a synchronous standby (ANY 1 ("pg-b", "pg-c"))',
        "pg-c: no: down (container exited)",
        "--force promotes the best of them anyway (data at risk)",
    ]
    assert refusal(synct, snap, to="pg-d")[0] == (
        '--to pg-d: not safe to promote: not a synchronous standby (ANY 1 ("pg-b", "pg-c"))')
    p = F.plan_failover(synct, snap, cluster=None, to=None, force=True)
    assert p.candidate == "pg-b" and p.forced
    # No synchronous standby at all.
    snap = sync_snap(pg_b=down("pg-b", "dc1"), pg_c=down("pg-c", "dc1"))
    lines = refusal(synct, snap)
    assert lines[0] == "no safe candidate in cluster main"
    assert 'pg-d: unsafe: not a synchronous standby (ANY 1 ("pg-b", "pg-c"))' in lines


def test_sync_with_the_primary_alive_uses_its_live_setting(synct: Topology) -> None:
    live = primary("pg-a", "dc1", at=BASE + 20,
                   settings={"synchronous_standby_names": 'FIRST 1 ("pg-c")'},
                   downstream=(downstream("pg-c", sync="sync", prio=1),))
    p = F.plan_failover(synct, sync_snap(pg_a=live, pg_b=down("pg-b", "dc1")), cluster=None, to=None)
    assert p.candidate == "pg-c" and p.ranking[0].sync == "sync"
    assert p.sync_before == SyncConfig("first", 1, ("pg-c",), "live setting on pg-a")
    # The primary is gone: the setting last applied (recorded in the state) counts, not the file's.
    recorded = SyncConfig("any", 1, ("pg-b",), "state")
    p = F.plan_failover(synct, sync_snap(pg_c=down("pg-c", "dc1")), cluster=None, to=None, recorded_sync=recorded)
    assert p.candidate == "pg-b" and p.sync_before == recorded


# -- what else moves ---------------------------------------------------------------------------------

def test_replica_moves(saas: Topology) -> None:
    # pg-us2 streamed from the dead primary: re-pointed. pg-eu2 behind pg-eu: stays when pg-eu is
    # promoted, and is re-pointed when its upstream is down.
    p = plan(saas, saas_snap(pg_us2=replica("pg-us2", "us-east", upstream=None, replay=BASE - 1,
                                            settings={"primary_conninfo": "host=pg-us port=5432"})))
    assert p.candidate == "pg-eu"
    assert {m.node: (m.action, m.upstream, m.reason) for m in p.replicas} == {
        "pg-eu2": ("stay", "pg-eu", "already streams from pg-eu"),
        "pg-us2": ("repoint", "pg-eu", "streamed from pg-us"),
    }
    assert p.direct_standbys() == ["pg-eu2", "pg-us2"]
    assert p.synchronized_standby_slots == ("pg_eu2", "pg_us2")

    snap = saas_snap(pg_eu=down("pg-eu", "eu-west"), pg_eu2=replica("pg-eu2", "eu-west", upstream=None, replay=BASE - 1,
                                                                    settings={"primary_conninfo": "host=pg-eu port=5432"}))
    p = plan(saas, snap)
    assert p.candidate == "pg-us2"
    assert {m.node: m.action for m in p.replicas} == {"pg-eu": "down", "pg-eu2": "repoint"}
    assert p.replicas[1].reason == "streamed from pg-eu" or p.replicas[0].reason.startswith("down (container exited)")

    # A cascade behind a live replica that is not promoted stays behind it.
    p = plan(saas, saas_snap(pg_eu=replica("pg-eu", "eu-west", upstream=None, replay=BASE - 1)))
    assert p.candidate == "pg-us2"
    assert {m.node: (m.action, m.upstream) for m in p.replicas} == {"pg-eu": ("repoint", "pg-us2"),
                                                                    "pg-eu2": ("stay", "pg-eu")}


def test_stale_slots_on_the_new_primary(saas: Topology) -> None:
    old_slot = Slot(name="pg_us", slot_type="physical", active=False, retained_bytes=0, wal_status="reserved",
                    database=None, failover=False, synced=False)
    cascade = Slot(name="pg_eu2", slot_type="physical", active=True, retained_bytes=0, wal_status="reserved",
                   database=None, failover=False, synced=False)
    snap = saas_snap(pg_eu=replica("pg-eu", "eu-west", at=BASE + 1, upstream=None, slots=(SYNCED, old_slot, cascade)))
    p = plan(saas, snap)
    assert p.stale_slots == ("pg_us",)


def test_subscriber_moves(saas: Topology) -> None:
    p = plan(saas, saas_snap(pg_eu=replica("pg-eu", "eu-west", at=BASE + 1, upstream=None, slots=(SYNCED,))))
    assert [(s.subscription, s.node, s.action, s.reason) for s in p.subscribers] == [
        ("inventory_sub", "pg-billing", "move", "failover slot inventory_sub is synced on pg-eu: continues with no gap")]
    # No synced slot on the candidate: a loud re-synchronisation.
    p = plan(saas, saas_snap(pg_us2=replica("pg-us2", "us-east", at=BASE + 1, upstream=None)))
    assert p.candidate == "pg-us2"
    assert p.subscribers[0].action == "resync"
    assert p.subscribers[0].reason == "no slot inventory_sub on pg-us2"
    assert ("subscription inventory_sub on pg-billing will be RE-SYNCHRONISED: no slot inventory_sub on pg-us2; its "
            "tables are truncated and copied again") in p.warnings
    assert any("RE-SYNCHRONISE (truncate + full copy)" in line for line in p.lines())
    # A synced slot still temporary (not sync-ready) vanishes on promotion: a failover re-synchronises,
    # a switchover waits for it.
    temporary = Slot(**{**SYNCED.__dict__, "temporary": True})
    p = plan(saas, saas_snap(pg_eu=replica("pg-eu", "eu-west", at=BASE + 1, upstream=None, slots=(temporary,))))
    assert (p.subscribers[0].action, p.subscribers[0].reason) == (
        "resync", "slot inventory_sub on pg-eu is not sync-ready yet (temporary: promotion drops it)")
    live = saas_snap(pg_us=primary("pg-us", "us-east"),
                     pg_eu=replica("pg-eu", "eu-west", upstream="pg-us", slots=(temporary,)))
    s = F.plan_switchover(saas, live, cluster=None, to="pg-eu").subscribers[0]
    assert (s.action, s.ready) == ("move", False)
    # The subscriber is down.
    p = plan(saas, saas_snap(pg_billing=down("pg-billing", "ap-south", cluster="billing")))
    assert p.subscribers[0].action == "unreachable"


# -- switchover ------------------------------------------------------------------------------------

def test_switchover(saas: Topology) -> None:
    snap = saas_snap(pg_us=primary("pg-us", "us-east", at=BASE + 10),
                     pg_eu=replica("pg-eu", "eu-west", upstream="pg-us", slots=(SYNCED,)),
                     pg_us2=replica("pg-us2", "us-east", upstream="pg-us"))
    p = F.plan_switchover(saas, snap, cluster=None, to="pg-eu")
    assert p.mode == "switchover" and p.candidate == "pg-eu"
    assert {m.node: (m.action, m.upstream) for m in p.replicas} == {
        "pg-us": ("demote", "pg-eu"), "pg-eu2": ("stay", "pg-eu"), "pg-us2": ("repoint", "pg-eu")}
    assert p.synchronized_standby_slots == ("pg_us", "pg_eu2", "pg_us2")

    # Back: pg-eu2 stays behind pg-eu (the file's cascade), pg-us2 follows the primary.
    primaries = {"main": "pg-eu", "billing": "pg-billing"}
    back = saas_snap(pg_eu=primary("pg-eu", "eu-west", at=BASE + 10, timeline=2),
                     pg_us=replica("pg-us", "us-east", upstream="pg-eu", timeline=2, slots=(SYNCED,)),
                     pg_eu2=replica("pg-eu2", "eu-west", upstream="pg-eu", timeline=2),
                     pg_us2=replica("pg-us2", "us-east", upstream="pg-eu", timeline=2))
    p = F.plan_switchover(saas, back, cluster=None, to="pg-us", primaries=primaries)
    assert {m.node: (m.action, m.upstream) for m in p.replicas} == {
        "pg-eu": ("demote", "pg-us"), "pg-eu2": ("stay", "pg-eu"), "pg-us2": ("repoint", "pg-us")}


def test_switchover_refusals(saas: Topology) -> None:
    with pytest.raises(InputError) as exc:
        F.plan_switchover(saas, saas_snap(), cluster=None, to="pg-eu")
    assert exc.value.message == "switchover needs a running primary: pg-us is down (container exited); use " \
                                "`pgtopo failover`"
    live = saas_snap(pg_us=primary("pg-us", "us-east"))
    with pytest.raises(InputError) as exc:
        F.plan_switchover(saas, live, cluster=None, to="pg-us")
    assert exc.value.message == "--to pg-us: it is already the primary of cluster main"
    with pytest.raises(InputError) as exc:
        F.plan_switchover(saas, live, cluster=None, to="pg-eu")  # pg-eu has no upstream: not streaming
    assert exc.value.message == ("--to pg-eu: not streaming (waiting); a switchover waits for it to receive the last "
                                 "WAL")


# -- partitions ------------------------------------------------------------------------------------

def cut(snap: Snapshot, *names: str) -> Snapshot:
    return dataclasses.replace(snap, partitioned=frozenset(names))


def test_old_primary_alive_behind_a_partition(saas: Topology) -> None:
    """us-east is cut off with pg-us still writable there: pg-us2, beside it, is no candidate; pg-us is
    killed (a clean shutdown would wait for standbys it cannot reach) and pg-us2, which still streams
    from it, must be rejoined once the partition heals."""
    relay = f"host=pgtopo-relay port={saas.relay_port('eu-west', 'pg-us')}"
    snap = cut(saas_snap(pg_us=primary("pg-us", "us-east"), pg_us2=replica("pg-us2", "us-east", upstream="pg-us"),
                         pg_eu=replica("pg-eu", "eu-west", upstream=None, slots=(SYNCED,),
                                       settings={"primary_conninfo": relay})), "us-east")
    p = plan(saas, snap)
    assert [(c.node, c.eligible) for c in p.ranking] == [("pg-eu", True), ("pg-eu2", True), ("pg-us2", False)]
    assert p.candidate == "pg-eu"
    assert p.why[-1] == ("not pg-us2: cut off from the other regions by the partition of region us-east, a last resort "
                         "(`--to pg-us2 --force`)")
    assert p.fence == "kill"
    assert ("  fence: kill pg-us: pg-eu is cut off from it, so a clean shutdown would only wait for standbys it cannot "
            "reach") in p.lines()
    moves = {m.node: m for m in p.replicas}
    assert (moves["pg-us2"].action, moves["pg-us2"].cut_by) == ("rejoin", ("us-east",))
    assert moves["pg-us2"].reason.startswith("streams from pg-us, kept from pg-eu by the partition of region us-east: "
                                             "it may hold WAL pg-eu never got")
    assert (moves["pg-eu2"].action, moves["pg-eu2"].waits) == ("stay", "")
    assert p.direct_standbys() == ["pg-eu2"]
    assert [(s.action, s.waits) for s in p.subscribers] == [("move", "")]
    # Without the partition: pg-us2, nearest, is promoted and pg-us stopped cleanly.
    p = plan(saas, dataclasses.replace(snap, partitioned=frozenset()))
    assert (p.candidate, p.fence) == ("pg-us2", "stop")
    # Forced onto pg-us2 under the partition, pg-us is on its side: a clean stop again.
    p = plan(saas, snap, to="pg-us2", force=True)
    assert (p.candidate, p.fence, p.forced) == ("pg-us2", "stop", True)
    assert p.warnings[0].startswith("--force: promoting pg-us2 although cut off from the other regions")


def test_replicas_behind_a_partition_are_repointed_but_waited_for_by_nothing(saas: Topology) -> None:
    # pg-us is dead and eu-west cut off: pg-us2 is promoted; pg-eu is re-pointed to it all the same (it
    # follows once the partition heals) and pg-eu2, behind pg-eu in eu-west, follows through it.
    p = plan(saas, cut(saas_snap(pg_us2=replica("pg-us2", "us-east", upstream=None, slots=(SYNCED,))), "eu-west"))
    assert p.candidate == "pg-us2"
    assert {m.node: (m.action, m.upstream, m.waits, m.cut_by) for m in p.replicas} == {
        "pg-eu": ("repoint", "pg-us2", "cut off from pg-us2 by the partition of region eu-west: streams from it once "
                  "that heals", ("eu-west",)),
        "pg-eu2": ("stay", "pg-eu", "its upstream pg-eu cannot reach pg-us2, nor can it (the partition of region "
                   "eu-west): follows once that heals", ("eu-west",)),
    }
    assert p.direct_standbys() == []
    assert p.synchronized_standby_slots == ()
    assert ("  pg-eu: repoint -> pg-us2 (its upstream is unknown); pending: cut off from pg-us2 by the partition of "
            "region eu-west: streams from it once that heals") in p.lines()
    assert "pg-eu: cut off from pg-us2 by the partition of region eu-west: streams from it once that heals" in p.warnings
    # Cut off by node: a cascade in the same region goes to the new primary instead of waiting.
    p = plan(saas, cut(saas_snap(pg_us2=replica("pg-us2", "us-east", upstream=None, slots=(SYNCED,))), "pg-eu"))
    moves = {m.node: m for m in p.replicas}
    assert (moves["pg-eu"].action, moves["pg-eu"].cut_by) == ("repoint", ("pg-eu",))
    assert (moves["pg-eu2"].action, moves["pg-eu2"].upstream, moves["pg-eu2"].reason, moves["pg-eu2"].waits) == (
        "repoint", "pg-us2", "its upstream pg-eu cannot reach pg-us2", "")
    assert p.direct_standbys() == ["pg-eu2"]


def test_a_subscriber_behind_a_partition_is_moved_but_not_waited_for(saas: Topology) -> None:
    p = plan(saas, cut(saas_snap(pg_eu=replica("pg-eu", "eu-west", at=BASE + 1, upstream=None, slots=(SYNCED,))),
                       "ap-south"))
    assert p.candidate == "pg-eu"
    s = p.subscribers[0]
    assert (s.action, s.waits, s.cut_by) == (
        "move", "pg-billing is cut off from pg-eu by the partition of region ap-south: the subscription connects once "
        "that heals", ("ap-south",))
    assert ("subscription inventory_sub: pg-billing is cut off from pg-eu by the partition of region ap-south: the "
            "subscription connects once that heals") in p.warnings


TWO_REGION_SYNC = """
name: t-unit-sync2
regions: {r1: {}, r2: {}}
latency: [{between: [r1, r2], rtt_ms: 20}]
clusters:
  main:
    synchronous: {method: any, count: 1, standbys: [pg-b, pg-c]}
    nodes:
      pg-a: {region: r1, role: primary}
      pg-b: {region: r1, upstream: pg-a, failover_priority: 100}
      pg-c: {region: r2, upstream: pg-a}
"""


def test_a_synchronous_standby_behind_a_partition_is_not_waited_for(tmp_path: Path) -> None:
    topo = topology_of(tmp_path, TWO_REGION_SYNC)
    snap = snapshot({"pg-a": down("pg-a", "r1"), "pg-b": replica("pg-b", "r1", upstream=None),
                     "pg-c": replica("pg-c", "r2", upstream=None)}, topology="t-unit-sync2")
    p = plan(topo, snap)
    assert (p.candidate, p.sync_after) == ("pg-b", SyncConfig(method="any", count=1, standbys=("pg-c",)))
    # r2 cut off: a first commit on pg-b must not wait for pg-c.
    p = plan(topo, cut(snap, "r2"))
    assert (p.candidate, p.sync_after) == ("pg-b", None)
    assert "no synchronous standby left for pg-b: cluster main runs asynchronously until a standby rejoins" in p.warnings


def test_scope_is_the_cluster_and_its_subscribers(saas: Topology) -> None:
    primaries = {"main": "pg-us", "billing": "pg-billing"}
    assert F.scope(saas, "main", primaries) == ["pg-us", "pg-eu", "pg-eu2", "pg-us2", "pg-billing"]
    assert F.scope(saas, "billing", primaries) == ["pg-billing"]
    assert F.subscriber_nodes(saas, "main", {"billing": "pg-billing"}) == ("pg-billing",)


def test_last_line_names_what_is_not_done_and_the_command(saas: Topology) -> None:
    todo = [F.Unfinished("pg-eu cut off", F.resume_command("main"), F.heal_text(("eu-west",))),
            F.Unfinished("subscription s on pg-billing (timed out)", F.resume_command("main")),
            F.Unfinished("pg-us2 cannot follow pg-eu's timeline", "pgtopo rejoin {file} pg-us2")]
    assert F.last_line(todo, file="t.yaml") == (
        "not done: pg-eu cut off; subscription s on pg-billing (timed out); pg-us2 cannot follow pg-eu's timeline; "
        "once eu-west is healed (`pgtopo heal t.yaml eu-west`), finish with: pgtopo failover t.yaml --resume "
        "--cluster main && pgtopo rejoin t.yaml pg-us2")


def test_a_cascade_a_failover_moved_is_no_longer_left_for_after_the_promotion(saas: Topology) -> None:
    assert F.deferrable(saas, "main", "pg-us") == {"pg-eu2": "pg-eu"}
    assert F.deferrable(saas, "main", "pg-us", moved={"pg-eu2"}) == {}


def test_moved_records_a_cascade_away_from_its_file_upstream_and_forgets_it_back_there(saas: Topology) -> None:
    # pg-eu2 is behind pg-eu in the file; pg-eu and pg-us2 are direct replicas of pg-us.
    moved = F.moved_after(saas, {}, pointed={"pg-eu2": "pg-us2", "pg-eu": "pg-us2"})
    assert moved == {"pg-eu2": "pg-us2"}  # a direct replica is never "moved": it follows the primary
    assert F.moved_after(saas, moved, pointed={"pg-eu2": "pg-us"}) == {"pg-eu2": "pg-us"}
    assert F.moved_after(saas, moved, pointed={"pg-eu2": "pg-eu"}) == {}  # back behind pg-eu (a rejoin)
    assert F.moved_after(saas, moved, pointed={"pg-us2": "pg-eu"}) == moved
