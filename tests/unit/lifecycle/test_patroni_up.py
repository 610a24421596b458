"""`up` of ha: patroni clusters: the lab's addresses, Patroni's view of its cluster, its secrets (pure)."""

from __future__ import annotations

from pgtopo.lifecycle import patroni_up
from pgtopo.model import patroni, render
from pgtopo.model.loader import load
from pgtopo.patroni import views
from tests.support.topologies import TOPOLOGIES

PATRONI_SAAS = TOPOLOGIES / "global-saas-patroni.yaml"


def _yaml_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_lab_patroni_yml_reaches_every_member_through_the_mesh() -> None:
    topo = load(PATRONI_SAAS)
    lab = patroni_up.lab_patroni_yml(topo, "pg-eu", source="x.yaml")
    lines = _yaml_lines(lab)
    assert f"connect_address: pgtopo-relay:{topo.mesh_port('pg-eu', 5432)}" in lines
    assert f"connect_address: pgtopo-relay:{topo.mesh_port('pg-eu', 8008)}" in lines
    assert [f"- pgtopo-relay:{topo.mesh_port(m, 2379)}" for m in ("etcd-us-east", "etcd-eu-west", "etcd-ap-south")] \
        == [line for line in lines if line.startswith("- pgtopo-relay:")]
    # Everything else is the rendered file's: only the addresses differ.
    production = render.patroni_yml(topo, node="pg-eu", source="x.yaml")
    differ = [(a, b) for a, b in zip(production.splitlines(), lab.splitlines(), strict=True) if a != b]
    assert len(differ) == 5 and all("pg-eu:" in a or "etcd-" in a for a, _b in differ)


def test_lab_etcd_yml_advertises_mesh_urls() -> None:
    topo = load(PATRONI_SAAS)
    member = topo.dcs_members()[1]
    conf = patroni.etcd_config(topo, member, patroni_up.lab_address(topo))
    assert conf["advertise-client-urls"] == f"http://pgtopo-relay:{topo.mesh_port('etcd-eu-west', 2379)}"
    assert conf["initial-advertise-peer-urls"] == f"http://pgtopo-relay:{topo.mesh_port('etcd-eu-west', 2380)}"
    assert conf["listen-peer-urls"] == "http://0.0.0.0:2380"
    assert str(conf["initial-cluster"]).split(",") == [
        f"{m.name}=http://pgtopo-relay:{topo.mesh_port(m.name, 2380)}" for m in topo.dcs_members()]
    # The default is production's: what `render` writes.
    assert patroni.etcd_config(topo, member)["advertise-client-urls"] == "http://etcd-eu-west:2379"


def test_a_single_region_has_no_relay_and_members_are_reached_directly() -> None:
    topo = load(PATRONI_SAAS)
    single = topo.model_copy(update={"regions": {"us-east": topo.regions["us-east"]}, "latency": [], "dcs": None,
                                     "clusters": {"main": topo.clusters["main"].model_copy(update={
                                         "nodes": {k: v for k, v in topo.clusters["main"].nodes.items()
                                                   if v.region == "us-east"},
                                         "publications": {}}),
                                     }})
    assert patroni_up.lab_address(single)("pg-us", 5432) == "pg-us:5432"


def test_parse_cluster_and_its_leader() -> None:
    raw = {"members": [
        {"name": "pg-eu", "role": "replica", "state": "streaming", "lag": 0},
        {"name": "pg-us", "role": "leader", "state": "running", "timeline": 1},
        {"name": "pg-us2", "role": "quorum_standby", "state": "starting"},
    ], "scope": "main"}
    members = list(views.parse_cluster(raw).members)
    assert [(m.name, m.healthy) for m in members] == [("pg-eu", True), ("pg-us", True), ("pg-us2", False)]
    assert patroni_up.leader_of(members) == "pg-us"
    # A leader whose PostgreSQL is not running is not one yet.
    assert patroni_up.leader_of(list(views.parse_cluster(
        {"members": [{"name": "pg-us", "role": "leader", "state": "starting"}]}).members)) is None


def test_patroni_environment_holds_every_secret_variable() -> None:
    pw = {"pgtopo": "p1", "replicator": "r1", "app": "a1"}
    env = patroni_up.environment(pw, {"postgres": "s1", "patroni": "rest1"})
    assert set(patroni.SECRET_VARIABLES) <= set(env)
    assert env["PATRONI_REPLICATION_PASSWORD"] == "r1" and env["PATRONI_REWIND_PASSWORD"] == "p1"
    assert env["PATRONI_RESTAPI_PASSWORD"] == "rest1" and env["PATRONI_SUPERUSER_PASSWORD"] == "s1"
    assert env["PGDATA"] == patroni.DATA_DIR


def _member(name: str, role: str, state: str) -> views.Member:
    return views.Member(name=name, role=role, state=state, host="pgtopo-relay", port=1, api_url="-", timeline=1,
                        lag=0 if role != "leader" else None)


def test_up_waits_until_patroni_counts_the_synchronous_candidate() -> None:
    topo = load(PATRONI_SAAS)  # ANY 1 (pg-us2); pg-eu nosync
    every = {"pg-us", "pg-us2", "pg-eu"}
    streaming = [_member("pg-us", "leader", "running"), _member("pg-us2", "replica", "streaming"),
                 _member("pg-eu", "replica", "streaming")]
    assert not patroni_up.members_ready(topo, streaming, every)  # pg-us2 streams, not counted yet
    counted = [streaming[0], _member("pg-us2", "quorum_standby", "streaming"), streaming[2]]
    assert patroni_up.members_ready(topo, counted, every)
    # After a failover to pg-us2, the file's primary is the candidate; stopped, it is not waited for.
    moved = [_member("pg-us2", "leader", "running"), _member("pg-us", "replica", "stopped"),
             _member("pg-eu", "replica", "streaming")]
    assert patroni_up.members_ready(topo, moved, {"pg-us2", "pg-eu"})
    assert not patroni_up.members_ready(topo, moved, every)  # pg-us expected, not streaming
