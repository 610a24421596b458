"""`candidates`: every replica judged for promotion on a frozen snapshot, ranked, and the reasons given.

The planner around it (``pgtopo.ha.failover``) is tested in test_failover.py; here each step is
tested on its own: what a node streams from, the reference position, blockers and risks,
synchronous standbys, the order of the ranking and the words that explain the choice.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pgtopo.ha import candidates as C
from pgtopo.ha.synchronous import SyncConfig
from pgtopo.model.topology import Topology
from pgtopo.observe.snapshot import Snapshot
from tests.support.ha import saas_snap, sync_snap
from tests.support.snapshots import BASE, MIB, down, downstream, primary, replica
from tests.support.topologies import SAAS, SYNC, topology_of


@pytest.fixture(scope="module")
def saas(tmp_path_factory: pytest.TempPathFactory) -> Topology:
    return topology_of(tmp_path_factory.mktemp("saas"), SAAS)


@pytest.fixture(scope="module")
def synct(tmp_path_factory: pytest.TempPathFactory) -> Topology:
    return topology_of(tmp_path_factory.mktemp("sync"), SYNC)


def judged(topo: Topology, snap: Snapshot, *, old: str, max_lag: int = MIB,
           recorded: SyncConfig | None = None) -> dict[str, C.Candidate]:
    """Every other node of ``old``'s cluster judged, synchronous risks included, by name."""
    ctx = C.context(topo, snap, topo.cluster_of(old), old, recorded)
    ref = C.reference(ctx, None)
    cands = [C.candidate(ctx, n, ref=ref, max_lag=max_lag) for n in snap.cluster_nodes(ctx.cluster) if n.node != old]
    return {c.node: c for c in C.sync_risks(ctx, cands)}


def verdicts(topo: Topology, snap: Snapshot, *, old: str, **kw: Any) -> dict[str, str]:
    return {n: c.verdict for n, c in judged(topo, snap, old=old, **kw).items()}


# -- one candidate ---------------------------------------------------------------------------------

def test_verdict_states_blockers_before_risks() -> None:
    c = C.Candidate(node="pg-eu", region="eu-west", state="replica", timeline=1, receive_lsn=BASE, replay_lsn=BASE,
                    lag_bytes=0, upstream="pg-us", cascaded=False, sync="", priority=100, rtt_ms=80.0)
    assert (c.eligible, c.verdict) == (True, "ok")
    risky = dataclasses.replace(c, risks=("lags a lot", "failover_priority 0"))
    assert (risky.eligible, risky.verdict) == (False, "unsafe: lags a lot; failover_priority 0")
    blocked = dataclasses.replace(risky, blockers=("down (container exited)", "another system"))
    assert (blocked.eligible, blocked.verdict) == (False, "no: down (container exited); another system")


def test_upstream_of_is_the_receiver_then_primary_conninfo_then_the_file(saas: Topology) -> None:
    relay_to_us = saas.relay_port("eu-west", "pg-us")

    def conninfo(text: str) -> dict[str, str]:
        return {"primary_conninfo": text}

    assert C.upstream_of(saas, replica("pg-eu2", "eu-west", upstream="pg-eu")) == "pg-eu"
    # The receiver is not connected: primary_conninfo says where it would stream from.
    assert C.upstream_of(saas, replica("pg-eu", "eu-west", upstream=None, settings=conninfo(
        f"host=pgtopo-relay port={relay_to_us} user=replicator"))) == "pg-us"
    assert C.upstream_of(saas, replica("pg-us2", "us-east", upstream=None, settings=conninfo(
        "host=pg-us port=5432 user=replicator"))) == "pg-us"
    # A port that is not a number, a relay port of nobody, nothing set: a live node has no upstream.
    for text in ("host=pg-us port=x", "host=pgtopo-relay port=10100", ""):
        assert C.upstream_of(saas, replica("pg-us2", "us-east", upstream=None, settings=conninfo(text))) is None
    # A node that cannot be asked: the file's upstream.
    assert C.upstream_of(saas, down("pg-eu2", "eu-west")) == "pg-eu"


def test_down_state() -> None:
    assert C.down_state(down("pg-eu", "eu-west", container="paused")) == "down (container paused)"
    assert C.down_state(down("pg-eu", "eu-west", container="running", error="connection refused")) == (
        "unreachable (connection refused)")
    assert C.down_state(down("pg-eu", "eu-west", container="running", error=None)) == "unreachable"


def test_position_is_written_wal_on_a_primary_and_received_wal_on_a_replica() -> None:
    assert C.position(primary("pg-us", "us-east", at=BASE + 5)) == BASE + 5
    assert C.position(replica("pg-eu", "eu-west", upstream="pg-us", at=BASE + 7, replay=BASE + 3)) == BASE + 7
    assert C.position(dataclasses.replace(replica("pg-eu", "eu-west", upstream="pg-us"), receive_lsn=None)) is None


# -- the facts: context and reference --------------------------------------------------------------

def test_context_with_the_old_primary_down(saas: Topology) -> None:
    snap = saas_snap(pg_eu=replica("pg-eu", "eu-west", upstream=None, timeline=2),
                     pg_us2=replica("pg-us2", "us-east", upstream=None, system_identifier="9"))
    ctx = C.context(saas, snap, "main", "pg-us", None)
    # The system identifier most live nodes share, the highest timeline any live node is on.
    assert (ctx.old_alive, ctx.max_tl, ctx.sysid, ctx.sync, ctx.sync_states) == (False, 2, "7001", None, {})


def test_context_with_the_old_primary_alive(saas: Topology) -> None:
    snap = saas_snap(pg_us=primary("pg-us", "us-east", system_identifier="5",
                                   downstream=(downstream("pg-eu"), downstream("pg-us2", sync="potential"))))
    ctx = C.context(saas, snap, "main", "pg-us", None)
    # The live primary's identifier wins even if every replica disagrees with it.
    assert (ctx.old_alive, ctx.max_tl, ctx.sysid) == (True, 1, "5")
    assert ctx.sync_states == {"pg-eu": "async", "pg-us2": "potential"}


def test_reference_is_the_live_primary(saas: Topology) -> None:
    ctx = C.context(saas, saas_snap(pg_us=primary("pg-us", "us-east", at=BASE + 4096)), "main", "pg-us", None)
    # Even a last known position further ahead does not count while the primary answers.
    assert C.reference(ctx, (BASE + 8192, 1)) == C.Reference(BASE + 4096, "pg-us", "pg-us's current position 0/3001000")


def test_reference_with_the_primary_down_is_the_most_advanced_replica_on_the_last_timeline(saas: Topology) -> None:
    ctx = C.context(saas, saas_snap(pg_eu2=replica("pg-eu2", "eu-west", upstream="pg-eu", at=BASE + 8)),
                    "main", "pg-us", None)
    assert C.reference(ctx, None) == C.Reference(
        BASE + 8, "the most advanced replica pg-eu2",
        "the most advanced replica, pg-eu2 at 0/3000008 (pg-us is down: WAL it wrote but never sent is not counted)")
    # A replica further ahead on an older timeline is not the reference.
    ctx = C.context(saas, saas_snap(pg_eu=replica("pg-eu", "eu-west", upstream=None, timeline=2),
                                    pg_us2=replica("pg-us2", "us-east", upstream=None, at=BASE + 100)),
                    "main", "pg-us", None)
    assert C.reference(ctx, None).who == "the most advanced replica pg-eu"
    assert C.reference(ctx, None).lsn == BASE


def test_reference_is_the_last_known_position_when_it_is_ahead_on_the_same_timeline(saas: Topology) -> None:
    ctx = C.context(saas, saas_snap(), "main", "pg-us", None)
    last = C.Reference(BASE + 10, "pg-us's last known position", "the last known position of pg-us, 0/300000A (pg-us is down)")
    assert C.reference(ctx, (BASE + 10, 1)) == last
    assert C.reference(ctx, (BASE + 10, None)) == last  # timeline not recorded: trusted
    assert C.reference(ctx, (BASE + 10, 2)).who == "the most advanced replica pg-eu"  # another timeline
    assert C.reference(ctx, (BASE, 1)).who == "the most advanced replica pg-eu"  # not ahead


def test_reference_with_nothing_reachable(saas: Topology) -> None:
    snap = saas_snap(pg_eu=down("pg-eu", "eu-west"), pg_eu2=down("pg-eu2", "eu-west"), pg_us2=down("pg-us2", "us-east"))
    ctx = C.context(saas, snap, "main", "pg-us", None)
    assert C.reference(ctx, None) == C.Reference(None, "nothing", "nothing: pg-us is down and no replica is reachable")
    assert C.reference(ctx, (BASE, None)).description == "the last known position of pg-us, 0/3000000 (pg-us is down)"


# -- blockers and risks ----------------------------------------------------------------------------

def test_a_healthy_replica_is_judged_in_full(saas: Topology) -> None:
    found = judged(saas, saas_snap(pg_us=primary("pg-us", "us-east", at=BASE + 2 * MIB)), old="pg-us")
    assert found["pg-eu2"] == C.Candidate(
        node="pg-eu2", region="eu-west", state="replica", timeline=1, receive_lsn=BASE, replay_lsn=BASE,
        lag_bytes=2 * MIB, upstream="pg-eu", cascaded=True, sync="", priority=50, rtt_ms=80.0,
        risks=("lags 2.0 MiB behind pg-us (cascaded behind pg-eu), more than --max-lag 1.0 MiB",))
    # pg-us2 is configured to stream from the old primary itself: not a cascade, in its region.
    us2 = found["pg-us2"]
    assert (us2.upstream, us2.cascaded, us2.rtt_ms, us2.priority) == ("pg-us", False, 0.0, 100)
    assert us2.risks == ("lags 2.0 MiB behind pg-us, more than --max-lag 1.0 MiB",)


def test_lag_up_to_max_lag_is_safe(saas: Topology) -> None:
    snap = saas_snap(pg_us=primary("pg-us", "us-east", at=BASE + 2 * MIB))
    assert set(verdicts(saas, snap, old="pg-us", max_lag=2 * MIB).values()) == {"ok"}
    assert verdicts(saas, snap, old="pg-us", max_lag=2 * MIB - 1)["pg-eu"] == (
        "unsafe: lags 2.0 MiB behind pg-us, more than --max-lag 2.0 MiB")


def test_blockers_are_all_named(saas: Topology) -> None:
    odd = dataclasses.replace(replica("pg-us2", "us-east", upstream=None, system_identifier="9"), receive_lsn=None)
    snap = saas_snap(pg_eu=replica("pg-eu", "eu-west", upstream=None, timeline=2), pg_us2=odd)
    assert verdicts(saas, snap, old="pg-us") == {
        "pg-eu": "ok",
        "pg-eu2": "no: on timeline 1, behind timeline 2",
        "pg-us2": "no: on timeline 1, behind timeline 2; a different database system (system identifier 9); "
                  "has received no WAL",
    }


def test_a_down_or_writable_node_is_never_a_candidate(saas: Topology) -> None:
    snap = saas_snap(pg_eu=primary("pg-eu", "eu-west"), pg_us2=down("pg-us2", "us-east", container="missing"))
    found = judged(saas, snap, old="pg-us")
    assert (found["pg-eu"].state, found["pg-eu"].verdict) == ("writable", "no: writable: not a replica")
    us2 = found["pg-us2"]
    assert (us2.state, us2.verdict) == ("down (container missing)", "no: down (container missing)")
    # Nothing is known of a node that is down, but where it streamed from in the file.
    assert (us2.timeline, us2.receive_lsn, us2.replay_lsn, us2.lag_bytes, us2.upstream) == (None, None, None, None, "pg-us")


def test_priority_zero_is_a_risk_not_a_blocker(tmp_path: Path) -> None:
    topo = topology_of(tmp_path, SAAS.replace("pg-us2: {region: us-east, upstream: pg-us, failover_priority: 100}",
                                              "pg-us2: {region: us-east, upstream: pg-us, failover_priority: 0}"))
    assert topo.node("pg-us2").failover_priority == 0
    lagging = saas_snap(pg_us=primary("pg-us", "us-east", at=BASE + 2 * MIB))
    assert verdicts(topo, lagging, old="pg-us")["pg-us2"] == (
        "unsafe: lags 2.0 MiB behind pg-us, more than --max-lag 1.0 MiB; failover_priority 0: never promoted unless "
        "forced")
    # A blocked node gets no risks on top.
    assert verdicts(topo, saas_snap(pg_us2=down("pg-us2", "us-east")), old="pg-us")["pg-us2"] == (
        "no: down (container exited)")


# -- synchronous clusters --------------------------------------------------------------------------

def test_sync_labels(saas: Topology, synct: Topology) -> None:
    assert {c.sync for c in judged(saas, saas_snap(), old="pg-us").values()} == {""}  # an asynchronous cluster
    # The old primary is gone: the file's standbys are listed.
    assert {n: c.sync for n, c in judged(synct, sync_snap(), old="pg-a").items()} == {
        "pg-b": "listed", "pg-c": "listed", "pg-d": "async"}
    # It is alive: its setting and pg_stat_replication say who is what.
    live = primary("pg-a", "dc1", settings={"synchronous_standby_names": 'ANY 1 ("pg-b", "pg-c")'},
                   downstream=(downstream("pg-c", sync="quorum"), downstream("pg-d")))
    assert {n: c.sync for n, c in judged(synct, sync_snap(pg_a=live), old="pg-a").items()} == {
        "pg-b": "listed", "pg-c": "quorum", "pg-d": "async"}


def test_only_the_most_advanced_synchronous_standby_is_safe(synct: Topology) -> None:
    snap = sync_snap(pg_c=replica("pg-c", "dc1", upstream=None, at=BASE + 20))
    assert verdicts(synct, snap, old="pg-a") == {
        "pg-b": "unsafe: behind another synchronous standby by 20 B: acknowledged commits may be missing",
        "pg-c": "ok",
        "pg-d": 'unsafe: not a synchronous standby (ANY 1 ("pg-b", "pg-c"))',
    }


def test_a_missing_synchronous_standby_makes_the_others_unsafe(synct: Topology) -> None:
    snap = sync_snap(pg_c=down("pg-c", "dc1"))
    assert verdicts(synct, snap, old="pg-a") == {
        "pg-b": 'unsafe: pg-c (synchronous) unavailable: acknowledged commits may exist only there (ANY 1 ("pg-b", '
                '"pg-c") needs 2 of 2 seen)',
        "pg-c": "no: down (container exited)",
        "pg-d": 'unsafe: not a synchronous standby (ANY 1 ("pg-b", "pg-c"))',
    }


def test_a_recorded_setting_counts_and_enough_standbys_seen_are_safe(synct: Topology) -> None:
    # FIRST 2 of three: a commit is on two of them, so any two seen include one that has it.
    recorded = SyncConfig("first", 2, ("pg-b", "pg-c", "pg-d"), "state")
    snap = sync_snap(pg_d=down("pg-d", "dc1"))
    assert verdicts(synct, snap, old="pg-a", recorded=recorded) == {
        "pg-b": "ok", "pg-c": "ok", "pg-d": "no: down (container exited)"}


def test_with_the_primary_alive_no_acknowledged_commit_can_be_missing(synct: Topology) -> None:
    live = primary("pg-a", "dc1", at=BASE + 100, settings={"synchronous_standby_names": 'ANY 1 ("pg-b", "pg-c")'})
    snap = sync_snap(pg_a=live, pg_c=replica("pg-c", "dc1", upstream="pg-a", at=BASE + 20))
    assert verdicts(synct, snap, old="pg-a") == {
        "pg-b": "ok", "pg-c": "ok", "pg-d": 'unsafe: not a synchronous standby (ANY 1 ("pg-b", "pg-c"))'}
    # It ran without synchronous standbys: there is nothing more to protect.
    idle = primary("pg-a", "dc1", settings={"synchronous_standby_names": ""})
    found = judged(synct, sync_snap(pg_a=idle), old="pg-a")
    assert {n: (c.sync, c.verdict) for n, c in found.items()} == {
        "pg-b": ("async", "ok"), "pg-c": ("async", "ok"), "pg-d": ("async", "ok")}


# -- the ranking and its reasons -------------------------------------------------------------------

CRITERIA = ("blockers", "risks", "cut_off", "sync", "timeline", "receive_lsn", "replay_lsn", "priority", "cascaded",
            "rtt_ms", "node")
GOOD: dict[str, Any] = dict(blockers=(), risks=(), cut_off=(), sync="listed", timeline=2, receive_lsn=200,
                            replay_lsn=200, priority=100, cascaded=False, rtt_ms=0.0, node="pg-a")
BAD: dict[str, Any] = dict(blockers=("down",), risks=("lags",), cut_off=("r",), sync="async", timeline=1,
                           receive_lsn=100, replay_lsn=100, priority=50, cascaded=True, rtt_ms=80.0, node="pg-b")


def ranked_candidate(**fields: Any) -> C.Candidate:
    return C.Candidate(region="r", state="replica", lag_bytes=0, upstream="pg-x", **fields)


@pytest.mark.parametrize("level", range(len(CRITERIA)), ids=CRITERIA)
def test_each_criterion_outranks_every_later_one(level: int) -> None:
    # The winner is better on this criterion and worse on every later one; equal on the earlier ones.
    def pick(win: bool) -> C.Candidate:
        return ranked_candidate(**{k: GOOD[k] if i < level or (i == level) == win else BAD[k]
                                   for i, k in enumerate(CRITERIA)})

    winner, loser = pick(True), pick(False)
    assert sorted([loser, winner], key=C.rank_key) == [winner, loser]


@pytest.mark.parametrize("sync", ["", "sync", "quorum", "potential", "listed"])
def test_every_synchronous_label_ranks_before_async(sync: str) -> None:
    standby = ranked_candidate(**{**GOOD, "sync": sync, "receive_lsn": 1, "node": "pg-z"})
    other = ranked_candidate(**{**GOOD, "sync": "async"})
    assert sorted([other, standby], key=C.rank_key) == [standby, other]


def why(topo: Topology, snap: Snapshot, chosen: C.Candidate, *others: C.Candidate) -> list[str]:
    ctx = C.context(topo, snap, "main", "pg-us" if "pg-us" in snap.nodes else "pg-a", None)
    return C.why_chosen(ctx, chosen, [chosen, *others])


def test_why_names_the_wal_and_the_tie_break(saas: Topology) -> None:
    found = judged(saas, saas_snap(), old="pg-us")
    eu, eu2, us2 = found["pg-eu"], found["pg-eu2"], found["pg-us2"]
    most = "has the most WAL: received 0/3000000, replayed 0/3000000, lag 0 B"
    snap = saas_snap()
    assert why(saas, snap, us2, eu, eu2) == [
        f"pg-us2 {most}",
        "tie on WAL with pg-eu, pg-eu2: nearer pg-us's region (us-east, 0 ms round trip; eu-west, 80 ms)"]
    assert why(saas, snap, eu, eu2) == [f"pg-eu {most}", "tie on WAL with pg-eu2: higher failover_priority (100 > pg-eu2's 50)"]
    same_priority = dataclasses.replace(eu2, priority=100)
    assert why(saas, snap, eu, same_priority)[1] == "tie on WAL with pg-eu2: a direct standby (pg-eu2 is cascaded behind pg-eu)"
    twin = dataclasses.replace(eu, node="pg-eu9")
    assert why(saas, snap, eu, twin)[1] == "tie on WAL with pg-eu9: first by name"


def test_only_an_eligible_replica_with_the_same_wal_is_a_tie(saas: Topology) -> None:
    found = judged(saas, saas_snap(), old="pg-us")
    eu, eu2 = found["pg-eu"], found["pg-eu2"]
    snap = saas_snap()
    assert why(saas, snap, eu, dataclasses.replace(eu2, risks=("lags",))) == [
        "pg-eu has the most WAL: received 0/3000000, replayed 0/3000000, lag 0 B"]
    assert len(why(saas, snap, eu, dataclasses.replace(eu2, replay_lsn=BASE - 1))) == 1
    assert len(why(saas, snap, eu, dataclasses.replace(eu2, receive_lsn=BASE - 1))) == 1
    # Nothing to measure against: the lag is unknown.
    assert why(saas, snap, dataclasses.replace(eu, lag_bytes=None))[0].endswith("lag -")


def test_why_a_synchronous_standby_comes_first(synct: Topology) -> None:
    snap = sync_snap(pg_c=replica("pg-c", "dc1", upstream=None, at=BASE + 20))
    found = judged(synct, snap, old="pg-a")
    # The lag is measured against the most advanced replica, pg-d, asynchronous and 30 bytes further.
    assert why(synct, snap, found["pg-c"], found["pg-b"], found["pg-d"]) == [
        'pg-c is a synchronous standby (ANY 1 ("pg-b", "pg-c"))',
        "pg-c has the most WAL: received 0/3000014, replayed 0/3000014, lag 30 B"]


# -- partitions: who can reach whom ----------------------------------------------------------------

def cut(snap: Snapshot, *names: str) -> Snapshot:
    return dataclasses.replace(snap, partitioned=frozenset(names))


def test_reachability_under_partitions(saas: Topology, synct: Topology) -> None:
    ra = frozenset({"us-east"})
    # Within a region nodes talk directly: a partition only cuts paths between regions.
    assert C.cut_between(saas, ra, "pg-us", "pg-us2") == ()
    assert C.cut_between(saas, ra, "pg-us2", "pg-eu") == ("us-east",)
    assert C.can_reach(saas, ra, "pg-eu", "pg-billing") and not C.can_reach(saas, ra, "pg-eu", "pg-us2")
    # A partitioned node is cut off from every other region, not from its own.
    node = frozenset({"pg-eu"})
    assert C.cut_between(saas, node, "pg-eu2", "pg-eu") == ()
    assert C.cut_between(saas, node, "pg-us", "pg-eu") == ("pg-eu",)
    assert C.cut_between(saas, frozenset({"eu-west", "pg-eu"}), "pg-us", "pg-eu") == ("eu-west", "pg-eu")
    assert C.isolating(saas, frozenset({"eu-west", "pg-eu"}), "pg-eu") == ("eu-west", "pg-eu")
    assert C.isolating(saas, ra, "pg-eu") == ()
    # One region: nothing to be cut off from.
    assert C.isolating(synct, frozenset({"dc1"}), "pg-b") == ()
    assert C.partition_text(saas, ("eu-west", "pg-eu")) == "the partition of region eu-west and node pg-eu"
    assert C.partition_text(saas, ("us-east", "eu-west")) == "the partition of regions us-east, eu-west"


def test_a_replica_cut_off_from_the_other_regions_is_unsafe_and_ranks_last(saas: Topology) -> None:
    # pg-us (us-east) is down and us-east is partitioned: pg-us2 would win on region (same WAL, same
    # priority, nearest), but nobody outside us-east could reach it.
    found = judged(saas, cut(saas_snap(), "us-east"), old="pg-us")
    us2 = found["pg-us2"]
    assert us2.cut_off == ("us-east",)
    assert us2.verdict == ("unsafe: cut off from the other regions by the partition of region us-east: pg-eu, pg-eu2 "
                           "and applications in eu-west, ap-south cannot reach it")
    assert (found["pg-eu"].verdict, found["pg-eu"].cut_off) == ("ok", ())
    assert [c.node for c in sorted(found.values(), key=C.rank_key)] == ["pg-eu", "pg-eu2", "pg-us2"]
    # Named by node, the same; its subscribers are named too.
    ctx = C.context(saas, cut(saas_snap(), "pg-us2"), "main", "pg-us", None, subscribers=("pg-billing",))
    ref = C.reference(ctx, None)
    risk = C.candidate(ctx, ctx.snap.nodes["pg-us2"], ref=ref, max_lag=MIB).risks
    assert risk == ("cut off from the other regions by the partition of node pg-us2: pg-eu, pg-eu2, pg-billing "
                    "(subscriber) and applications in eu-west, ap-south cannot reach it",)


def test_the_cut_off_risk_names_only_live_nodes(saas: Topology) -> None:
    snap = cut(saas_snap(pg_eu=down("pg-eu", "eu-west"), pg_eu2=down("pg-eu2", "eu-west")), "us-east")
    assert judged(saas, snap, old="pg-us")["pg-us2"].risks == (
        "cut off from the other regions by the partition of region us-east: applications in eu-west, ap-south "
        "cannot reach it",)
    # A blocked node gets no cut-off risk on top: it is not a candidate anyway.
    snap = cut(saas_snap(pg_us2=down("pg-us2", "us-east")), "us-east")
    us2 = judged(saas, snap, old="pg-us")["pg-us2"]
    assert (us2.verdict, us2.risks) == ("no: down (container exited)", ())


def test_why_says_a_cut_off_replica_is_the_last_resort(saas: Topology) -> None:
    # pg-us2 has more WAL than anyone, but us-east is cut off: pg-eu wins among the reachable ones.
    snap = cut(saas_snap(pg_us2=replica("pg-us2", "us-east", upstream=None, at=BASE + 100)), "us-east")
    found = judged(saas, snap, old="pg-us")
    ranked = sorted(found.values(), key=C.rank_key)
    assert [c.node for c in ranked] == ["pg-eu", "pg-eu2", "pg-us2"]
    ctx = C.context(saas, snap, "main", "pg-us", None)
    assert C.why_chosen(ctx, ranked[0], ranked) == [
        "pg-eu has the most WAL of the replicas the other regions can reach: received 0/3000000, replayed 0/3000000, "
        "lag 100 B",
        "tie on WAL with pg-eu2: higher failover_priority (100 > pg-eu2's 50)",
        "not pg-us2: cut off from the other regions by the partition of region us-east, a last resort "
        "(`--to pg-us2 --force`)"]
    # Forced onto the cut-off one, the reasons do not argue against the choice.
    assert C.why_chosen(ctx, ranked[2], ranked)[0].startswith("pg-us2 has the most WAL: received 0/3000064")
