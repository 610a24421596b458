"""A failover's progress in the state: what Ctrl-C (or a failure) halfway leaves said, and what a
rerun of `pgtopo failover` does with it. No Docker: the plan comes from a hand-built snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgtopo.errors import InputError, Interrupted, OperationFailed
from pgtopo.ha import failover, pending
from pgtopo.model.topology import Topology
from pgtopo.runtime import state
from tests.support.ha import saas_snap
from tests.support.topologies import SAAS, topology_of


@pytest.fixture
def topo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Topology:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    t = topology_of(tmp_path, SAAS)
    state.update(t.name, lambda rt: rt.model_copy(update={"topology_file": "/srv/saas.yaml"}))
    return t


def plan(topo: Topology) -> failover.Plan:
    return failover.plan_failover(topo, saas_snap(), cluster=None, to=None)


def test_the_plan_is_recorded_and_read_back_whole(topo: Topology) -> None:
    p = plan(topo)
    with pending.tracked(topo, p) as done:
        done("fenced")
        rec = state.load(topo.name).pending["main"]
        assert (rec.from_, rec.to, rec.done) == ("pg-us", "pg-us2", ("fenced",))
        assert pending.plan_of(rec) == p
    assert state.load(topo.name).pending == {}  # finished: nothing left


def test_ctrl_c_after_fencing_says_there_is_no_writable_primary(topo: Topology) -> None:
    with pytest.raises(Interrupted) as err, pending.tracked(topo, plan(topo)) as done:
        done("fenced")
        raise KeyboardInterrupt
    assert err.value.exit_code == 130
    assert err.value.lines() == [
        "the failover of cluster main from pg-us to pg-us2 stopped while re-pointing the replicas to pg-us2",
        "done: pg-us is fenced",
        "cluster main has NO writable primary: pg-us is fenced and pg-us2 is not promoted",
        "finish it with `pgtopo failover /srv/saas.yaml --cluster main --to pg-us2`"]
    assert state.load(topo.name).pending["main"].done == ("fenced",)  # kept for `status` and the rerun


def test_the_summary_at_every_step(topo: Topology) -> None:
    rec = state.PendingChange(mode="failover", cluster="main", from_="pg-us", to="pg-eu", at="t0")
    assert rec.summary(file="f.yaml") == [
        "the failover of cluster main from pg-us to pg-eu stopped while fencing pg-us",
        "pg-us may be stopped already and nothing is promoted: cluster main may have no writable primary",
        "finish it with `pgtopo failover f.yaml --cluster main --to pg-eu`"]
    promoting = rec.model_copy(update={"done": ("fenced", "re-pointed")})
    assert promoting.summary(file="f.yaml") == [
        "the failover of cluster main from pg-us to pg-eu stopped while promoting pg-eu",
        "done: pg-us is fenced; the replicas stream from pg-eu",
        "pg-eu may be promoted already (`pgtopo status f.yaml` shows it); if not, cluster main has NO writable primary",
        "finish it with `pgtopo failover f.yaml --cluster main --to pg-eu`"]
    promoted = rec.model_copy(update={"done": ("fenced", "re-pointed", "promoted")})
    assert promoted.summary(file="f.yaml") == [
        "the failover of cluster main did not finish: pg-eu is its primary (promoted, accepts writes)",
        "not done: moving the subscribers to pg-eu, checking that its replicas follow it, its synchronous settings",
        "finish it with `pgtopo failover f.yaml --cluster main`"]


def test_a_failure_halfway_keeps_the_record(topo: Topology) -> None:
    with pytest.raises(OperationFailed), pending.tracked(topo, plan(topo)) as done:
        done("fenced")
        done("re-pointed")
        raise OperationFailed("pg_promote did not finish within 60 s", node="pg-us2", step="pg_promote")
    assert state.load(topo.name).pending["main"].done == ("fenced", "re-pointed")


def test_a_rerun_finishes_a_promoted_failover_and_else_fails_over_to_the_same_node(
        topo: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    assert pending.unfinished(topo, cluster=None, to=None) is None
    with pytest.raises(Interrupted), pending.tracked(topo, plan(topo)) as done:
        done("fenced")
        raise KeyboardInterrupt
    writable = {"pg-us2": False}
    monkeypatch.setattr(pending, "_writable", lambda _topo, node: writable[node])
    found = pending.unfinished(topo, cluster=None, to=None)
    assert found is not None and (found[0].to, found[1]) == ("pg-us2", False)
    # Promoted after all (pg_promote went through just before Ctrl-C): the rerun finishes it, and
    # refuses to promote another node meanwhile.
    writable["pg-us2"] = True
    found = pending.unfinished(topo, cluster="main", to=None)
    assert found is not None and found[1] is True
    with pytest.raises(InputError) as err:
        pending.unfinished(topo, cluster=None, to="pg-eu")
    assert err.value.message == ("--to pg-eu: the failover of cluster main that promoted pg-us2 did not finish; "
                                 "finish it first with `pgtopo failover /srv/saas.yaml --cluster main`")
    assert pending.unfinished(topo, cluster="billing", to=None) is None


def test_finishing_goes_on_with_the_same_record_and_clears_it(topo: Topology) -> None:
    p = plan(topo)
    with pytest.raises(Interrupted), pending.tracked(topo, p) as done:
        done("fenced")
        done("re-pointed")
        done("promoted", recovery_s=1.23456)
        raise KeyboardInterrupt
    rec = state.load(topo.name).pending["main"]
    assert rec.recovery_s == 1.235
    with pending.tracked(topo, pending.plan_of(rec), resumed=rec):
        assert state.load(topo.name).pending["main"] == rec  # begun when the failover began, not now
    assert state.load(topo.name).pending == {}
