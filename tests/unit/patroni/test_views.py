"""Patroni's /cluster and /patroni answers (recorded from Patroni 4.0.7) parsed into views."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgtopo.patroni.views import Malformed, parse_cluster, parse_member_status

DATA = Path(__file__).parent / "data"


def recorded(name: str) -> object:
    return json.loads((DATA / name).read_text())


def test_two_members_streaming() -> None:
    view = parse_cluster(recorded("cluster_two.json"))
    assert view.scope == "main"
    assert view.names() == ["pg1", "pg2"]
    leader = view.leader
    assert leader is not None and leader.name == "pg1" and leader.healthy
    assert leader.lag is None and leader.timeline == 1
    replica = view.member("pg2")
    assert replica is not None
    assert (replica.role, replica.state, replica.lag, replica.port, replica.healthy) == ("replica", "streaming", 0,
                                                                                        5432, True)
    assert replica.tags == {"failover_priority": 1, "nofailover": False}
    assert replica.tags_text() == "failover_priority=1, nofailover=false"
    assert view.scheduled_switchover is None


def test_a_starting_replica_has_unknown_lag_and_no_timeline() -> None:
    replica = parse_cluster(recorded("cluster_two_creating.json")).member("pg2")
    assert replica is not None
    assert (replica.state, replica.lag, replica.timeline, replica.healthy) == ("starting", None, None, False)


def test_a_lone_starting_member_is_no_leader() -> None:
    view = parse_cluster(recorded("cluster_starting.json"))
    assert view.leader is None and view.leaders == []


def test_pending_restart_and_its_reason() -> None:
    view = parse_cluster(recorded("cluster_pending_restart.json"))
    assert all(m.pending_restart for m in view.members)
    assert view.members[0].pending_restart_reason == ("max_connections",)
    assert not any(m.pending_restart for m in parse_cluster(recorded("cluster_two.json")).members)


def test_scheduled_switchover() -> None:
    s = parse_cluster(recorded("cluster_scheduled.json")).scheduled_switchover
    assert s is not None and (s.at, s.from_member, s.to_member) == ("2027-01-01T00:00:00+00:00", "pg1", "pg2")


def test_just_after_a_switchover_the_new_leader_is_still_on_the_old_timeline() -> None:
    early = parse_cluster(recorded("cluster_after_switchover_early.json"))
    later = parse_cluster(recorded("cluster_after_switchover.json"))
    assert early.leader is not None and later.leader is not None
    assert (early.leader.name, early.leader.timeline) == ("pg2", 1)
    assert (later.leader.name, later.leader.timeline) == ("pg2", 2)
    old = early.member("pg1")
    assert old is not None and (old.role, old.state, old.healthy) == ("replica", "stopped", False)


def test_a_crashed_leader_stays_listed_until_its_key_expires() -> None:
    crashed = parse_cluster(recorded("cluster_leader_crashed.json"))
    assert crashed.leader is not None and crashed.leader.name == "pg1"
    after = parse_cluster(recorded("cluster_after_crash.json"))
    assert after.names() == ["pg2"] and after.leader is not None and after.leader.timeline == 4


def test_member_status_of_a_leader_and_a_replica() -> None:
    leader = parse_member_status(recorded("patroni_two_leader.json"))
    assert (leader.name, leader.role, leader.state, leader.timeline) == ("pg1", "primary", "running", 1)
    assert leader.wal_position == 50331744 and leader.replication_state is None and leader.version == "4.0.7"
    assert leader.postmaster_start_time == "2026-12-01 02:42:19.009304+00:00"
    replica = parse_member_status(recorded("patroni_two_replica.json"))
    assert (replica.role, replica.replication_state, replica.wal_position) == ("replica", "streaming", 50331744)


def test_a_leader_without_dcs_demotes_itself_while_cluster_still_shows_it_leading() -> None:
    view = parse_cluster(recorded("cluster_no_quorum_later.json"))
    me = parse_member_status(recorded("patroni_no_quorum_later.json"))
    assert view.leader is not None and view.leader.name == "pg2"
    assert me.name == "pg2" and me.role == "replica"


def test_a_starting_member_status() -> None:
    s = parse_member_status(recorded("patroni_starting.json"))
    assert (s.state, s.cluster_unlocked, s.timeline, s.wal_position) == ("starting", True, None, None)
    assert s.postmaster_start_time is None


@pytest.mark.parametrize(("data", "message"), [
    ([], "cluster: expected an object, got list"),
    ({"scope": "main"}, "cluster.members: expected a list, got nothing"),
    ({"members": [{"role": "leader", "state": "running"}]}, "cluster.members[0].name: expected a string"),
    ({"members": [{"name": "a", "state": "running"}]}, "members[a].role: expected a string, got nothing"),
    ({"members": [{"name": "a", "role": "replica", "state": "streaming", "lag": "12"}]},
     "members[a].lag: expected bytes or 'unknown'"),
    ({"members": [{"name": "a", "role": "leader", "state": "running", "port": "5432"}]},
     "members[a].port: expected an integer"),
    ({"members": [{"name": "a", "role": "leader", "state": "running", "timeline": True}]},
     "members[a].timeline: expected an integer, got bool"),
    ({"members": [{"name": "a", "role": "leader", "state": "running", "tags": []}]},
     "members[a].tags: expected an object"),
    ({"members": [{"name": "a", "role": "leader", "state": "running"}] * 2}, "a listed twice"),
    ({"members": [], "scheduled_switchover": "soon"}, "cluster.scheduled_switchover: expected an object"),
])
def test_malformed_cluster(data: object, message: str) -> None:
    with pytest.raises(Malformed, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_cluster(data)


def test_malformed_member_status() -> None:
    with pytest.raises(Malformed, match="patroni: expected an object"):
        parse_member_status("503 Service Unavailable")
    with pytest.raises(Malformed, match=r"patroni\.state: expected a string"):
        parse_member_status({"role": "primary"})
    with pytest.raises(Malformed, match=r"patroni\.xlog\.location: expected an integer"):
        parse_member_status({"state": "running", "role": "primary", "xlog": {"location": "0/3000000"}})


def test_quorum_commit_roles_and_mesh_addresses() -> None:
    # global-saas-patroni.yaml as `up` runs it: ANY 1 (pg-us2), every member reached through the relay.
    v = parse_cluster(recorded("cluster_quorum_mesh.json"))
    roles = {m.name: (m.role, m.healthy, m.host) for m in v.members}
    assert roles == {"pg-us": ("leader", True, "pgtopo-relay"), "pg-us2": ("quorum_standby", True, "pgtopo-relay"),
                     "pg-eu": ("replica", True, "pgtopo-relay")}
    eu = v.member("pg-eu")
    assert eu is not None and eu.tags["nosync"] is True
    standby = parse_member_status(recorded("patroni_quorum_standby.json"))
    assert (standby.name, standby.role, standby.replication_state) == ("pg-us2", "replica", "streaming")
