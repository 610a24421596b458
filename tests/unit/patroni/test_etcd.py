"""etcdctl's answers (recorded from etcd 3.5.16) and the quorum decision."""

from __future__ import annotations

from pathlib import Path

from pgtopo.patroni.etcd import DcsMemberHealth, DcsView, member_health, parse_health, parse_status

DATA = Path(__file__).parent / "data"


def text(name: str) -> str:
    return (DATA / name).read_text()


def test_status_of_a_healthy_member() -> None:
    s = parse_status(text("etcd_one_down_status_2379.json"))
    assert s is not None
    assert (s.member_id, s.leader_id, s.raft_term, s.version, s.errors) == (
        11280903056114506248, 11280903056114506248, 2, "3.5.16", ())
    assert s.is_leader


def test_status_of_a_follower() -> None:
    s = parse_status(text("etcd_status_healthy.json"))  # the first entry: e3, following e1
    assert s is not None and s.leader_id == 11280903056114506248 and not s.is_leader


def test_status_without_quorum_knows_no_leader() -> None:
    s = parse_status(text("etcd_no_quorum_status_2379.json"))
    assert s is not None and s.leader_id is None and s.errors == ("etcdserver: no leader",) and not s.is_leader


def test_status_of_a_member_that_did_not_answer() -> None:
    assert parse_status(text("etcd_one_down_status_2399.json")) is None
    assert parse_status("") is None
    assert parse_status("not json") is None
    assert parse_status('[{"Endpoint": "x", "Status": {"header": {}}}]') is None
    assert parse_status('{"Status": 1}') is None


def test_health() -> None:
    assert parse_health(text("etcd_one_down_health_2379.json")) == (True, "")
    assert parse_health(text("etcd_one_down_health_2399.json")) == (False, "context deadline exceeded")
    assert parse_health(text("etcd_no_quorum_health_2379.json")) == (False, "context deadline exceeded")
    assert parse_health("") == (False, "no answer")
    assert parse_health('[{"endpoint": "x"}]') == (False, "unhealthy")


def _member(name: str, status: str | None, health: str | None, container: str = "running") -> DcsMemberHealth:
    return member_health(name=name, region="r", container=container,
                         status_out=text(status) if status else None, health_out=text(health) if health else None)


def test_one_of_three_down_keeps_quorum() -> None:
    view = DcsView(members=(
        _member("e1", "etcd_one_down_status_2379.json", "etcd_one_down_health_2379.json"),
        _member("e2", "etcd_one_down_status_2379.json", "etcd_one_down_health_2379.json"),
        _member("e3", "etcd_one_down_status_2399.json", "etcd_one_down_health_2399.json"),
    ))
    assert view.has_quorum and view.majority == 2 and [m.name for m in view.healthy] == ["e1", "e2"]
    assert view.summary() == "2/3 etcd members healthy (majority 2): quorum"
    assert view.members[2].error == "context deadline exceeded"


def test_two_of_three_down_loses_quorum() -> None:
    view = DcsView(members=(
        _member("e1", "etcd_no_quorum_status_2379.json", "etcd_no_quorum_health_2379.json"),
        _member("e2", None, None, container="exited"),
        _member("e3", None, None, container="missing"),
    ))
    assert not view.has_quorum and view.leader is None
    assert view.summary() == "0/3 etcd members healthy (majority 2): NO QUORUM"
    assert [m.error for m in view.members] == ["etcdserver: no leader", "container exited", "container missing"]


def test_no_members_is_no_quorum() -> None:
    assert not DcsView(members=()).has_quorum
