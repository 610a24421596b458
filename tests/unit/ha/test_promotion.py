"""Planning a live failover (a fake collector stands in for the snapshot) and promoting (a fake connection)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from pgtopo.errors import InputError, OperationFailed
from pgtopo.ha import failover, promotion
from pgtopo.model.topology import HOLD_SLOT, Topology
from pgtopo.observe import snapshot
from pgtopo.observe.snapshot import NodeSnapshot, Snapshot
from pgtopo.postgres import connect as pg_connect
from pgtopo.runtime import gateway, state
from tests.support.ha import saas_snap, sync_snap
from tests.support.snapshots import BASE, MIB, SYNCED, down, downstream, primary, replica
from tests.support.topologies import SAAS, SYNC, topology_of

# SAAS plus a cluster that has nothing to do with main: a failover of main must not look at it.
OTHER = SAAS + """
  other:
    nodes:
      pg-o1: {region: eu-west, role: primary}
      pg-o2: {region: eu-west, upstream: pg-o1}
      pg-o3: {region: ap-south, upstream: pg-o1}
"""


class FakeCollector:
    """Answers from a hand-built snapshot of every node, and counts what it was asked."""

    def __init__(self, full: Snapshot) -> None:
        self.full = full
        self.calls: list[dict[str, Any]] = []

    def __call__(self, topo: Topology, *, nodes: Iterable[str] | None = None, timeout: float | None = None,
                 light: bool = False, subscriptions_only: Collection[str] = (), rank_only: Collection[str] = (),
                 listed: Mapping[str, gateway.Listed] | None = None, held: pg_connect.Held | None = None) -> Snapshot:
        assert listed is LISTED  # every round uses the one Docker call made before the first
        asked = list(nodes) if nodes is not None else list(self.full.nodes)
        self.calls.append({"nodes": asked, "timeout": timeout, "light": light,
                           "subscriptions_only": sorted(subscriptions_only), "rank_only": sorted(rank_only)})
        # A node asked only what ranks it tells no slots (``snapshot._queries``).
        return dataclasses.replace(self.full, nodes={
            n: dataclasses.replace(self.full.nodes[n], slots=()) if n in rank_only else self.full.nodes[n]
            for n in asked})

    def slots_of(self, topo: Topology, node: str, held: pg_connect.Held | None) -> tuple[snapshot.Slot, ...]:
        """What ``promotion.read_slots`` reads of the chosen candidate."""
        self.calls.append({"slots of": node})
        return self.full.nodes[node].slots


LISTED: dict[str, gateway.Listed] = {}
CONTAINERS_ASKED: list[list[str]] = []


def _containers(topo: Topology, nodes: Iterable[str]) -> dict[str, gateway.Listed]:
    CONTAINERS_ASKED.append(list(nodes))
    return LISTED


@pytest.fixture
def topo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Topology:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(snapshot, "containers", _containers)
    CONTAINERS_ASKED.clear()
    return topology_of(tmp_path, OTHER)


def full_snapshot() -> Snapshot:
    snap = saas_snap()
    others = {"pg-o1": primary("pg-o1", "eu-west", cluster="other"),
              "pg-o2": replica("pg-o2", "eu-west", cluster="other", upstream="pg-o1"),
              "pg-o3": replica("pg-o3", "ap-south", cluster="other", upstream="pg-o1")}
    return dataclasses.replace(snap, nodes={**snap.nodes, **others})


ASKED_FIRST = {"nodes": ["pg-us", "pg-eu", "pg-us2", "pg-billing"], "timeout": promotion.SNAPSHOT_TIMEOUT_S,
               "light": True, "subscriptions_only": ["pg-billing"], "rank_only": []}


def streaming_cascade(**nodes: NodeSnapshot) -> Snapshot:
    """full_snapshot() where pg-eu is seen streaming its cascade pg-eu2."""
    eu = dataclasses.replace(full_snapshot().nodes["pg-eu"], downstream=(downstream("pg-eu2"),))
    return dataclasses.replace(full_snapshot(), nodes={**full_snapshot().nodes, "pg-eu": eu, **nodes})


def test_planning_asks_only_the_cluster_and_its_subscribers(topo: Topology) -> None:
    collect = FakeCollector(full_snapshot())
    plan = promotion.plan_live(topo, mode="failover", cluster="main", to=None, collect=collect)
    assert plan.candidate == "pg-us2"
    # The cascade pg-eu2 is left for later only if pg-eu is seen streaming it: not here, so it is
    # asked before deciding, alone.
    assert collect.calls == [ASKED_FIRST, {"nodes": ["pg-eu2"], "timeout": promotion.SNAPSHOT_TIMEOUT_S,
                                           "light": True, "subscriptions_only": [], "rank_only": []}]
    assert "pg-eu2" in [c.node for c in plan.ranking]
    # One Docker call for both rounds, for the cluster's members and its subscriber.
    assert CONTAINERS_ASKED == [["pg-us", "pg-eu", "pg-eu2", "pg-us2", "pg-billing"]]
    # The subscriber was planned for from what was asked.
    assert [(s.node, s.action) for s in plan.subscribers] == [("pg-billing", "resync")]


def test_a_cascade_its_upstream_streams_is_asked_after_the_promotion(topo: Topology) -> None:
    collect = FakeCollector(streaming_cascade())
    plan = promotion.plan_live(topo, mode="failover", cluster="main", to=None, collect=collect)
    assert collect.calls == [ASKED_FIRST]
    assert plan.candidate == "pg-us2"
    assert "pg-eu2" not in [c.node for c in plan.ranking]
    move = next(m for m in plan.replicas if m.node == "pg-eu2")
    assert (move.action, move.upstream) == ("stay", "pg-eu")
    assert "asked after the promotion: it holds no more WAL than pg-eu" in move.reason
    # The ranking table (what --dry-run prints) lists it too, below the nodes asked, with its upstream.
    assert plan.not_asked == (("pg-eu2", "eu-west", "pg-eu"),)
    rows = failover.ranking_rows(plan)
    assert [r[0] for r in rows] == [*(("-> " if c.node == "pg-us2" else "") + c.node for c in plan.ranking), "pg-eu2"]
    assert rows[-1][2] == "not asked" and rows[-1][9] == "pg-eu"
    assert rows[-1][10].startswith("ranks below pg-eu: streamed by it")
    assert len(rows[-1]) == len(failover.RANKING_COLUMNS)


def test_a_cascade_an_earlier_failover_moved_is_asked_with_the_direct_replicas(topo: Topology) -> None:
    # A failover pointed pg-eu2 at pg-us: pg-eu does not list it, so waiting for pg-eu's answer to
    # find that out would cost a second round before the promotion.
    state.update(topo.name, lambda rt: rt.model_copy(update={"moved": {"pg-eu2": "pg-us"}}))
    collect = FakeCollector(full_snapshot())
    plan = promotion.plan_live(topo, mode="failover", cluster="main", to=None, collect=collect)
    assert [c["nodes"] for c in collect.calls] == [["pg-us", "pg-eu", "pg-eu2", "pg-us2", "pg-billing"]]
    assert plan.candidate == "pg-us2" and plan.not_asked == ()


def test_a_cascade_behind_a_replica_with_more_wal_than_the_candidate_is_asked(topo: Topology, tmp_path: Path) -> None:
    # pg-eu has more WAL than pg-us2 but its failover priority is 0 (never promoted): pg-eu2 behind it
    # may hold that WAL too, so it is asked before deciding, and promoted.
    ahead = BASE + 4096
    eu = replica("pg-eu", "eu-west", at=ahead, upstream=None, downstream=(downstream("pg-eu2"),))
    collect = FakeCollector(streaming_cascade(**{"pg-eu": eu, "pg-eu2": replica("pg-eu2", "eu-west", at=ahead,
                                                                                   upstream="pg-eu")}))
    zero = topology_of(tmp_path, OTHER.replace("failover_priority: 100}\n      pg-eu2", "failover_priority: 0}\n      pg-eu2"),
                       name="zero.yaml")
    plan = promotion.plan_live(zero, mode="failover", cluster="main", to=None, collect=collect)
    assert [c["nodes"] for c in collect.calls] == [ASKED_FIRST["nodes"], ["pg-eu2"]]
    assert plan.candidate == "pg-eu2"


def test_a_forced_plan_asks_the_cascades_first(topo: Topology, tmp_path: Path) -> None:
    # pg-us2 is down and pg-eu has failover priority 0: only --force could promote pg-eu, but the
    # cascade behind it (priority 50, the same WAL) needs no force: it is asked, and chosen.
    collect = FakeCollector(streaming_cascade(**{"pg-us2": down("pg-us2", "us-east")}))
    zero = topology_of(tmp_path, OTHER.replace("failover_priority: 100}\n      pg-eu2", "failover_priority: 0}\n      pg-eu2"),
                       name="zero.yaml")
    plan = promotion.plan_live(zero, mode="failover", cluster="main", to=None, force=True, collect=collect)
    assert [c["nodes"] for c in collect.calls] == [ASKED_FIRST["nodes"], ["pg-eu2"]]
    assert plan.candidate == "pg-eu2" and not plan.forced


def test_a_refusal_names_the_cascades_too(topo: Topology) -> None:
    # Every replica lags: the refusal lists every one, the cascade pg-eu2 included.
    old = primary("pg-us", "us-east", at=BASE + 10 * MIB)
    collect = FakeCollector(streaming_cascade(**{"pg-us": old}))
    with pytest.raises(InputError) as exc:
        promotion.plan_live(topo, mode="failover", cluster="main", to=None, max_lag=0, collect=collect)
    assert [c["nodes"] for c in collect.calls] == [ASKED_FIRST["nodes"], ["pg-eu2"]]
    assert any(d.startswith("pg-eu2: unsafe: lags") for d in exc.value.details)


@pytest.mark.parametrize("how", ["to", "partition"])
def test_with_to_or_under_a_partition_every_member_is_asked_at_once(topo: Topology, how: str) -> None:
    collect = FakeCollector(streaming_cascade())
    if how == "partition":
        state.update(topo.name, lambda rt: rt.model_copy(update={"partitioned": ("ap-south",)}))
    promotion.plan_live(topo, mode="failover", cluster="main", to="pg-us2" if how == "to" else None, collect=collect)
    assert [c["nodes"] for c in collect.calls] == [["pg-us", "pg-eu", "pg-eu2", "pg-us2", "pg-billing"]]


def test_an_unattended_failover_asks_its_subscribers_after_the_first_write(topo: Topology) -> None:
    collect = FakeCollector(streaming_cascade())
    plan = promotion.plan_live(topo, mode="failover", cluster="main", to=None, collect=collect, unattended=True,
                               slots_of=collect.slots_of)
    assert [c.get("nodes") for c in collect.calls] == [["pg-us", "pg-eu", "pg-us2"], None]
    # Its containers are listed without the subscriber's (the cluster's only: a smaller Docker call).
    assert CONTAINERS_ASKED == [["pg-us", "pg-eu", "pg-eu2", "pg-us2"]]
    assert plan.candidate == "pg-us2"
    assert plan.subscribers == () and plan.subscribers_later == (("billing", "pg-billing"),)
    assert "asked after the first write" in "\n".join(plan.lines())
    # What is decided after the first write from the subscriber's snapshot is what the attended
    # plan decides before it, warnings included.
    attended = promotion.plan_live(topo, mode="failover", cluster="main", to=None,
                                   collect=FakeCollector(streaming_cascade()))
    later = failover.later_subscriber_moves(topo, plan, streaming_cascade())
    assert later == list(attended.subscribers) and [m.action for m in later] == ["resync"]
    assert failover.subscriber_warnings(later) == [w for w in attended.warnings if "subscription" in w]
    assert [w for w in plan.warnings if "subscription" in w] == []


def test_an_unattended_failover_ranks_its_replicas_then_reads_only_the_candidates_slots(topo: Topology) -> None:
    # The candidate pg-us2 keeps an idle physical slot nobody will use and the subscriber's
    # failover slot: what the plan drops and decides the subscriber's move from.
    stale = snapshot.Slot(name="pg_gone", slot_type="physical", active=False, retained_bytes=0,
                          wal_status="reserved", database=None, failover=False, synced=False)
    full = streaming_cascade()
    us2 = dataclasses.replace(full.nodes["pg-us2"], slots=(stale, SYNCED))
    full = dataclasses.replace(full, nodes={**full.nodes, "pg-us2": us2})
    collect = FakeCollector(full)
    plan = promotion.plan_live(topo, mode="failover", cluster="main", to=None, collect=collect, unattended=True,
                               slots_of=collect.slots_of)
    # The replicas are asked what ranks them; the old primary (its settings and standbys matter) as before.
    assert collect.calls[0]["rank_only"] == ["pg-eu", "pg-us2"]
    assert collect.calls[1:] == [{"slots of": "pg-us2"}]
    assert plan.candidate == "pg-us2" and plan.stale_slots == ("pg_gone",)
    assert plan.candidate_slots == (stale, SYNCED)
    # The same as a plan made on everything the replicas would tell.
    attended = promotion.plan_live(topo, mode="failover", cluster="main", to=None, collect=FakeCollector(full))
    assert attended.stale_slots == plan.stale_slots
    assert failover.later_subscriber_moves(topo, plan, full) == list(attended.subscribers)
    assert dataclasses.replace(plan, candidate_slots=(), subscribers=attended.subscribers, warnings=attended.warnings,
                               subscribers_later=()) == attended


def test_a_candidate_whose_slots_cannot_be_read_is_not_promoted_blind(topo: Topology) -> None:
    collect = FakeCollector(streaming_cascade())

    def unreadable(_topo: Topology, node: str, _held: pg_connect.Held | None) -> tuple[snapshot.Slot, ...]:
        raise OperationFailed("connection refused", node=node, step="read the candidate's slots")

    with pytest.raises(OperationFailed, match="connection refused") as err:
        promotion.plan_live(topo, mode="failover", cluster="main", to=None, collect=collect, unattended=True,
                            slots_of=unreadable)
    assert (err.value.node, err.value.step) == ("pg-us2", "read the candidate's slots")


def test_an_unattended_failover_under_a_partition_asks_its_subscribers_first(topo: Topology) -> None:
    # The plan then says which subscribers could not reach each candidate.
    collect = FakeCollector(streaming_cascade())
    state.update(topo.name, lambda rt: rt.model_copy(update={"partitioned": ("ap-south",)}))
    plan = promotion.plan_live(topo, mode="failover", cluster="main", to=None, collect=collect, unattended=True)
    assert "pg-billing" in collect.calls[0]["nodes"]
    assert plan.subscribers_later == () and [s.node for s in plan.subscribers] == ["pg-billing"]


def test_planning_a_cluster_without_subscribers_asks_its_members_only(topo: Topology) -> None:
    full = full_snapshot()
    full = dataclasses.replace(full, nodes={**full.nodes, "pg-o1": dataclasses.replace(
        full.nodes["pg-o1"], container="exited", reachable=False, in_recovery=None, error="container exited")})
    collect = FakeCollector(full)
    plan = promotion.plan_live(topo, mode="failover", cluster="other", to=None, collect=collect)
    assert [c["nodes"] for c in collect.calls] == [["pg-o1", "pg-o2", "pg-o3"]]
    assert plan.candidate == "pg-o2"


def test_a_topology_with_no_container_is_not_running(topo: Topology) -> None:
    full = full_snapshot()
    gone = {n: dataclasses.replace(s, container="missing", reachable=False) for n, s in full.nodes.items()}
    with pytest.raises(OperationFailed, match="topology 't-unit' is not running"):
        promotion.plan_live(topo, mode="failover", cluster="main", to=None,
                            collect=FakeCollector(dataclasses.replace(full, nodes=gone)))


class FakePromoting:
    """A standby's connection: pg_promote signals; pg_is_in_recovery answers from ``recovering``."""

    def __init__(self, recovering: list[bool], *, signalled: bool = True) -> None:
        self.recovering = recovering
        self.signalled = signalled
        self.asked: list[str] = []

    def __enter__(self) -> FakePromoting:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, stmt: str) -> Any:
        self.asked.append(stmt)
        if stmt.startswith("SELECT pg_promote"):
            answer = (self.signalled,)
        else:
            answer = (self.recovering.pop(0) if len(self.recovering) > 1 else self.recovering[0],)
        return type("Cursor", (), {"fetchone": lambda _self: answer})()


def test_promote_signals_once_and_returns_when_recovery_ends(topo: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = FakePromoting([True, True, False])
    monkeypatch.setattr(pg_connect, "connect", lambda *_a, **_k: conn)
    promotion.promote(topo, "pg-us2")
    assert conn.asked == ["SELECT pg_promote(wait => false)", *["SELECT pg_is_in_recovery()"] * 3]


def test_promote_fails_when_the_promotion_does_not_end_or_cannot_be_signalled(
        topo: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_connect, "connect", lambda *_a, **_k: FakePromoting([True]))
    with pytest.raises(OperationFailed, match="timed out after 0 s waiting for the promotion to end") as err:
        promotion.promote(topo, "pg-us2", timeout=0.05)
    assert (err.value.node, err.value.step) == ("pg-us2", "pg_promote")
    monkeypatch.setattr(pg_connect, "connect", lambda *_a, **_k: FakePromoting([True], signalled=False))
    with pytest.raises(OperationFailed, match="could not signal the promotion"):
        promotion.promote(topo, "pg-us2")


def test_first_write_tries_the_known_port_first_and_looks_it_up_again_after_a_failure(
        topo: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    ports: list[int | None] = []

    class Accepting:
        def __enter__(self) -> Accepting:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def execute(self, _stmt: str) -> None:
            return None

    def connect(_topology: str, _node: str, *, autocommit: bool = True, port: int | None = None) -> Accepting:
        ports.append(port)
        if len(ports) == 1:
            raise psycopg.OperationalError("connection refused")
        return Accepting()

    monkeypatch.setattr(pg_connect, "connect", connect)
    assert promotion.first_write(topo, "pg-us2", port=54321) is False  # no synchronous wait had to be released
    assert ports == [54321, None]


def text(stmt: Any) -> str:
    return stmt if isinstance(stmt, str) else str(stmt.as_string(None))


def test_first_write_goes_on_the_promotion_s_connection_and_falls_back_to_a_new_one(
        topo: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    class Conn:
        def __init__(self, fails: bool) -> None:
            self.fails = fails
            self.asked: list[str] = []

        def __enter__(self) -> Conn:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def execute(self, stmt: str) -> None:
            self.asked.append(stmt)
            if self.fails:
                raise psycopg.OperationalError("server closed the connection unexpectedly")

    opened: list[Conn] = []

    def connect(_topology: str, _node: str, *, autocommit: bool = True, port: int | None = None) -> Conn:
        opened.append(Conn(fails=False))
        return opened[-1]

    monkeypatch.setattr(pg_connect, "connect", connect)
    promoting = Conn(fails=False)
    assert promotion.first_write(topo, "pg-us2", port=54321, conn=promoting) is False  # type: ignore[arg-type]
    assert promoting.asked == ["SELECT pg_current_xact_id()"] and opened == []
    broken = Conn(fails=True)
    assert promotion.first_write(topo, "pg-us2", port=54321, conn=broken) is False  # type: ignore[arg-type]
    assert broken.asked == ["SELECT pg_current_xact_id()"]
    assert [c.asked for c in opened] == [["SELECT pg_current_xact_id()"]]


class Recorder:
    """Stands in for ``run_all`` and ``repoint``: records each call's node and statements, as text."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def run_all(self, _topo: Topology, node: str, stmts: Iterable[Any], **_kw: Any) -> None:
        self.calls.append((node, [text(s) for s in stmts]))

    def repoint(self, _topo: Topology, *, node: str, upstream: str, slot_sync: bool | None) -> None:
        self.calls.append((node, [f"re-point to {upstream}"]))


def creates(stmts: list[str]) -> list[str]:
    return [s.split("pg_create_physical_replication_slot(")[1].split("'")[1] for s in stmts
            if s.startswith("SELECT pg_create_physical_replication_slot(")]


def test_the_candidate_holds_the_wal_of_the_replicas_re_pointed_after_the_first_write_with_one_slot(
        topo: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = promotion.plan_live(topo, mode="failover", cluster="main", to=None, collect=FakeCollector(streaming_cascade()))
    assert plan.candidate == "pg-us2" and [(m.node, m.action) for m in plan.replicas if m.action == "repoint"] == [
        ("pg-eu", "repoint")]
    rec = Recorder()
    monkeypatch.setattr(promotion, "run_all", rec.run_all)
    out = promotion.Outcome(plan=plan)
    assert promotion.prepare_candidate(topo, plan, out, lambda *_a: None) == set()
    # No synchronous standby to re-point first: one connection creates the hold slot and sets what
    # the candidate needs as primary; pg-eu's own slot is not created before the promotion.
    [(node, stmts)] = rec.calls
    assert node == "pg-us2" and creates(stmts) == [HOLD_SLOT]
    assert any("wal_retrieve_retry_interval" in s for s in stmts) and stmts[-1] == "SELECT pg_reload_conf()"
    # After the first write pg-eu's slot is copied from it (its restart position), then it goes.
    after = [text(s) for s in promotion.slots_from_hold(plan)]
    assert len(after) == 2
    assert "pg_copy_physical_replication_slot('pgtopo_failover_hold', 'pg_eu')" in after[0]
    assert "ELSE pg_create_physical_replication_slot('pg_eu', true)" in after[0]
    assert after[1].startswith("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE "
                               "slot_name = 'pgtopo_failover_hold' AND NOT active")


def test_a_synchronous_standby_re_pointed_before_the_promotion_gets_its_own_slot_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    topo = topology_of(tmp_path, SYNC)
    snap = sync_snap(pg_d=replica("pg-d", "dc1", upstream=None))  # no further than the synchronous standbys
    plan = failover.plan_failover(topo, snap, cluster="main", to="pg-b")
    assert [(m.node, m.action) for m in plan.replicas] == [("pg-c", "repoint"), ("pg-d", "repoint")]
    rec = Recorder()
    monkeypatch.setattr(promotion, "run_all", rec.run_all)
    monkeypatch.setattr(promotion, "repoint", rec.repoint)
    promotion.prepare_candidate(topo, plan, promotion.Outcome(plan=plan), lambda *_a: None)
    assert [(n, creates(s) if i == 0 else s[:1]) for i, (n, s) in enumerate(rec.calls)][:2] == [
        ("pg-b", ["pg_c", HOLD_SLOT]), ("pg-c", ["re-point to pg-b"])]
    assert rec.calls[2][0] == "pg-b" and "ANY 1 (\"pg-c\")" in " ".join(rec.calls[2][1])
    after = [text(s) for s in promotion.slots_from_hold(plan)]
    assert "pg_copy_physical_replication_slot('pgtopo_failover_hold', 'pg_d')" in after[0] and len(after) == 2


def test_after_the_first_write_a_hold_slot_left_by_a_failed_attempt_goes_even_with_nobody_held(
        topo: Topology) -> None:
    plan = promotion.plan_live(topo, mode="failover", cluster="main", to=None, collect=FakeCollector(streaming_cascade()))
    alone = dataclasses.replace(plan, replicas=())
    assert [text(s) for s in promotion.slots_from_hold(alone)] == [
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = "
        "'pgtopo_failover_hold' AND NOT active"]
