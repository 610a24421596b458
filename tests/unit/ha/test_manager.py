"""What pgtopo asks Patroni for (pure): on Patroni's /cluster views recorded from Patroni 4.0.7."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pgtopo.errors import InputError
from pgtopo.ha.manager import decide, lagging, rejoined, took_over
from pgtopo.patroni.views import ClusterView, parse_cluster

DATA = Path(__file__).parents[1] / "patroni" / "data"


def view(name: str) -> ClusterView:
    return parse_cluster(json.loads((DATA / name).read_text()))


TWO = view("cluster_two.json")  # pg1 leader running, pg2 streaming, timeline 1


def test_failover_without_to_and_without_ranking_refuses_with_pgtopo_s_reason() -> None:
    with pytest.raises(InputError) as err:
        decide(mode="failover", cluster="main", view=TWO, to=None, ranked=None, refusal="no safe candidate")
    assert err.value.message == "no candidate to ask Patroni for in cluster main: no safe candidate"
    assert err.value.details == ["--to NODE asks Patroni for that member anyway"]


def test_failover_to_a_member_even_when_pgtopo_would_not_leaves_it_to_patroni() -> None:
    plan = decide(mode="failover", cluster="main", view=TWO, to="pg2", ranked=None, refusal="pg2 lags 3 MiB")
    assert (plan.candidate, plan.leader, plan.leader_timeline) == ("pg2", "pg1", 1)
    assert plan.warnings == ("pgtopo would not promote pg2 itself (pg2 lags 3 MiB); Patroni's checks decide",
                             "pg1 is a running leader: Patroni demotes it first (for a planned change use "
                             "`pgtopo switchover`)")
    assert "  Patroni decides: POST /failover candidate=pg2; its own checks apply" in "\n".join(plan.lines())


@pytest.mark.parametrize(("mode", "to", "message"), [
    ("failover", "pg9", "--to pg9: not a member Patroni knows in cluster main (members: pg1, pg2)"),
    ("failover", "pg1", "--to pg1: it is the current leader of cluster main"),
    ("switchover", "pg1", "--to pg1: it is already the leader of cluster main"),
    ("switchover", "pg9", "--to pg9: not a member Patroni knows in cluster main (members: pg1, pg2)"),
    ("switchover", None, "switchover needs --to NODE"),
])
def test_bad_targets(mode: str, to: str | None, message: str) -> None:
    with pytest.raises(InputError) as err:
        decide(mode=mode, cluster="main", view=TWO, to=to, ranked=None, refusal=None)
    assert err.value.message == message


def test_switchover_needs_a_running_leader_and_a_streaming_target() -> None:
    with pytest.raises(InputError, match="Patroni reports no leader; use `pgtopo failover`"):
        decide(mode="switchover", cluster="main", view=view("cluster_starting.json"), to="pg1", ranked=None,
               refusal=None)
    with pytest.raises(InputError, match="--to pg2: Patroni reports it starting, not streaming"):
        decide(mode="switchover", cluster="main", view=view("cluster_two_creating.json"), to="pg2", ranked=None,
               refusal=None)
    plan = decide(mode="switchover", cluster="main", view=TWO, to="pg2", ranked=None, refusal=None)
    assert (plan.mode, plan.leader, plan.candidate, plan.warnings) == ("switchover", "pg1", "pg2", ())


def test_a_member_tagged_nofailover_is_refused() -> None:
    pg2 = TWO.members[1]
    tagged = replace(TWO, members=(TWO.members[0], replace(pg2, tags={"nofailover": True})))
    with pytest.raises(InputError, match="pg2 is tagged nofailover: Patroni never promotes it"):
        decide(mode="failover", cluster="main", view=tagged, to="pg2", ranked=None, refusal=None)


def test_several_leaders_are_refused() -> None:
    both = replace(TWO, members=(TWO.members[0], replace(TWO.members[1], name="pg3", role="leader")))
    with pytest.raises(InputError, match="Patroni lists several leaders"):
        decide(mode="failover", cluster="main", view=both, to="pg3", ranked=None, refusal=None)


def test_took_over_waits_for_the_new_timeline() -> None:
    early, later = view("cluster_after_switchover_early.json"), view("cluster_after_switchover.json")
    assert took_over(early, candidate="pg2", old_timeline=1) is None  # leader already, still on timeline 1
    m = took_over(later, candidate="pg2", old_timeline=1)
    assert m is not None and m.timeline == 2
    assert took_over(later, candidate="pg1", old_timeline=1) is None
    assert took_over(view("cluster_after_crash.json"), candidate="pg2", old_timeline=None) is not None


def test_lagging_members() -> None:
    assert [m.name for m in lagging(view("cluster_after_switchover_early.json"), timeline=2)] == ["pg1"]
    assert lagging(view("cluster_after_switchover.json"), timeline=2) == []
    assert [m.name for m in lagging(view("cluster_after_switchover.json"), timeline=3)] == ["pg1"]


def test_rejoined() -> None:
    assert rejoined(view("cluster_rejoining.json"), "pg1") is None  # stopped, no timeline yet
    m = rejoined(view("cluster_rejoined.json"), "pg1")
    assert m is not None and m.timeline == 4
    assert rejoined(view("cluster_rejoined.json"), "pg2") is None  # the leader
    assert rejoined(view("cluster_after_crash.json"), "pg1") is None  # not registered


def test_a_synchronous_candidate_has_rejoined_once_patroni_counts_it() -> None:
    mesh = view("cluster_quorum_mesh.json")  # pg-us leader, pg-us2 quorum_standby, pg-eu replica (nosync)
    m = rejoined(mesh, "pg-us2", sync_count=1)
    assert m is not None and m.role == "quorum_standby"
    # Streaming, but the leader has not added it yet: a crash now would find no candidate.
    fresh = replace(mesh, members=tuple(replace(x, role="replica") if x.name == "pg-us2" else x
                                        for x in mesh.members))
    assert rejoined(fresh, "pg-us2", sync_count=1) is None
    assert rejoined(fresh, "pg-us2") is not None  # a member that is never synchronous: streaming is enough
    # ANY 1 already met by another member: streaming is enough; ANY 2 is not met without it.
    assert rejoined(mesh, "pg-eu", sync_count=1) is not None
    assert rejoined(mesh, "pg-eu", sync_count=2) is None


def test_a_crashed_leader_still_listed_is_no_running_leader_to_demote() -> None:
    crashed = view("cluster_leader_crashed.json")  # pg1 SIGKILLed, its key not expired yet
    plan = decide(mode="failover", cluster="main", view=crashed, to="pg2", ranked=None, refusal=None,
                  leader_reachable=False)
    assert plan.warnings == ("Patroni still lists pg1 as leader but its PostgreSQL does not answer: Patroni acts "
                             "once its leader key expires (ttl)",)


def test_a_failover_patroni_already_made_is_named() -> None:
    after = view("cluster_after_crash.json")  # Patroni promoted pg2 by itself; pgtopo recorded pg1
    plan = decide(mode="failover", cluster="main", view=TWO, to="pg2", ranked=None, refusal=None, recorded="pg1")
    assert not any("already" in w for w in plan.warnings)  # pg1 still leads: nothing happened behind pgtopo
    with pytest.raises(InputError, match="--to pg2: it is the current leader"):
        decide(mode="failover", cluster="main", view=after, to="pg2", ranked=None, refusal=None, recorded="pg1")
    three = replace(after, members=(*after.members, replace(TWO.members[1], name="pg3", timeline=4)))
    plan = decide(mode="failover", cluster="main", view=three, to="pg3", ranked=None, refusal=None, recorded="pg1")
    assert plan.warnings[0] == ("Patroni already made pg2 the leader (timeline 4; pgtopo last recorded pg1): this is "
                                "one more failover")
