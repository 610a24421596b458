"""``ha: patroni``: the knobs and the etcd members refused as Patroni and etcd would fail them,
and the patroni.yml / etcd.conf.yml rendered from the same model as today's files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from pgtopo.errors import InputError, ValidationFailed
from pgtopo.model import patroni, render
from pgtopo.model.loader import load
from tests.support.topologies import GLOBAL_SAAS, TOPOLOGIES
from tests.support.topologies import write_yaml as write

PATRONI_SAAS = TOPOLOGIES / "global-saas-patroni.yaml"

BASE: dict[str, Any] = {
    "name": "lab",
    "regions": {"us": {}, "eu": {}, "ap": {}},
    "latency": [
        {"between": ["us", "eu"], "rtt_ms": 80},
        {"between": ["us", "ap"], "rtt_ms": 200, "jitter_ms": 5},
        {"between": ["eu", "ap"], "rtt_ms": 120},
    ],
    "clusters": {
        "main": {
            "ha": "patroni",
            "databases": {"shop": {"schema": "CREATE TABLE products (id int PRIMARY KEY);"}},
            "nodes": {
                "pg-us": {"region": "us", "role": "primary"},
                "pg-us2": {"region": "us", "upstream": "pg-us", "failover_priority": 0},
                "pg-eu": {"region": "eu", "upstream": "pg-us", "settings": {"work_mem": "16MB"}},
                "pg-eu2": {"region": "eu", "upstream": "pg-eu"},
            },
            "synchronous": {"method": "first", "count": 1, "standbys": ["pg-eu"]},
            "publications": {"inv_pub": {"database": "shop", "tables": ["products"]}},
        },
        "billing": {
            "databases": {"shop": {"schema": "CREATE TABLE products (id int PRIMARY KEY);"}},
            "nodes": {"pg-ap": {"region": "ap", "role": "primary"}},
            "subscriptions": {"inv_sub": {"publisher": "main", "publication": "inv_pub"}},
        },
    },
}


def problems(tmp_path: Path, change: Any) -> list[str]:
    data = copy.deepcopy(BASE)
    change(data)
    with pytest.raises(ValidationFailed) as exc:
        load(write(tmp_path, data))
    return exc.value.problems


def main(data: dict[str, Any]) -> dict[str, Any]:
    cluster: dict[str, Any] = data["clusters"]["main"]
    return cluster


def files(tmp_path: Path, data: dict[str, Any] | None = None) -> dict[str, str]:
    path = write(tmp_path, BASE if data is None else data)
    topo = load(path)
    return {f"{nf.node}/{name}": text for nf in render.render_all(topo, topo_path=path) for name, text in nf.files.items()}


def keys(value: Any) -> list[str]:
    """Every mapping key at any depth."""
    if isinstance(value, dict):
        return [*value, *(k for v in value.values() for k in keys(v))]
    if isinstance(value, list):
        return [k for v in value for k in keys(v)]
    return []


def parsed(text: str) -> Any:
    return YAML(typ="safe").load(text)


# -- validation --------------------------------------------------------------------------------------------------------

def test_base_is_valid_with_patroni_defaults(tmp_path: Path) -> None:
    topo = load(write(tmp_path, BASE))
    spec = topo.clusters["main"].patroni_spec
    assert (spec.ttl, spec.loop_wait, spec.retry_timeout, spec.maximum_lag_on_failover) == (30, 10, 10, 1048576)
    assert topo.clusters["billing"].ha == "manual"
    assert [(m.name, m.region) for m in topo.dcs_members()] == [("etcd-us", "us"), ("etcd-eu", "eu"), ("etcd-ap", "ap")]


def test_default_members_go_round_fewer_regions(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["regions"] = {"us": {}, "eu": {}}
    data["latency"] = [{"between": ["us", "eu"], "rtt_ms": 80}]
    for node in [*main(data)["nodes"].values(), data["clusters"]["billing"]["nodes"]["pg-ap"]]:
        node["region"] = "eu" if node["region"] == "ap" else node["region"]
    topo = load(write(tmp_path, data))
    assert [(m.name, m.region) for m in topo.dcs_members()] == [("etcd-us", "us"), ("etcd-eu", "eu"),
                                                                 ("etcd-us-2", "us")]


def test_no_patroni_no_etcd() -> None:
    assert load(GLOBAL_SAAS).dcs_members() == []


def test_ttl_below_patronis_minimum(tmp_path: Path) -> None:
    assert problems(tmp_path, lambda d: main(d).update(patroni={"ttl": 10, "loop_wait": 2, "retry_timeout": 3})) == [
        "clusters.main.patroni.ttl: 10 is below Patroni's minimum of 20 s (Patroni would silently use 20)",
    ]


def test_retry_timeout_and_loop_wait_minimums(tmp_path: Path) -> None:
    assert problems(tmp_path, lambda d: main(d).update(patroni={"loop_wait": 0, "retry_timeout": 2})) == [
        "clusters.main.patroni.loop_wait: 0 is below Patroni's minimum of 1 s (Patroni would silently use 1)",
        "clusters.main.patroni.retry_timeout: 2 is below Patroni's minimum of 3 s (Patroni would silently use 3)",
    ]


def test_unsafe_timing_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, lambda d: main(d).update(patroni={"ttl": 20, "loop_wait": 5, "retry_timeout": 10})) == [
        "clusters.main.patroni: loop_wait + 2 * retry_timeout = 5 + 2 * 10 = 25 s is more than ttl = 20 s, which "
        "Patroni documents as unsafe: a leader retrying etcd that long keeps running after its lock expired, while "
        "another node may be promoted",
    ]


def test_lab_tuned_timing_accepted(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    main(data)["patroni"] = {"ttl": 20, "loop_wait": 2, "retry_timeout": 9, "maximum_lag_on_failover": 0}
    assert load(write(tmp_path, data)).clusters["main"].patroni_spec.loop_wait == 2


def test_patroni_knobs_need_ha_patroni(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["clusters"]["billing"]["patroni"] = {"ttl": 30}
    assert problems(tmp_path, change) == [
        "clusters.billing.patroni: Patroni settings apply only with ha: patroni (this cluster is ha: manual)",
    ]


def test_unknown_ha_manager(tmp_path: Path) -> None:
    assert problems(tmp_path, lambda d: main(d).update(ha="stolon")) == [
        "clusters.main.ha: Input should be 'manual' or 'patroni'",
    ]


def test_even_member_count_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, lambda d: d.update(dcs={"regions": ["us", "eu", "ap", "us"]})) == [
        "dcs.regions: 4 etcd members survive no more losses than 3 (a majority is 3 of 4), and a partition into two "
        "halves leaves neither with a majority; declare an odd number",
    ]


@pytest.mark.parametrize(("regions", "line"), [
    (["us"], "dcs.regions: 1 etcd member cannot lose one: etcd needs a majority (1 of 1) to keep a leader lock, so "
             "one lost member stops every automatic failover; declare 3 (or 5)"),
    (["us", "eu"], "dcs.regions: 2 etcd members cannot lose one: etcd needs a majority (2 of 2) to keep a leader "
                   "lock, so one lost member stops every automatic failover; declare 3 (or 5)"),
])
def test_fewer_than_three_members_refused(tmp_path: Path, regions: list[str], line: str) -> None:
    assert problems(tmp_path, lambda d: d.update(dcs={"regions": regions})) == [line]


def test_dcs_unknown_region_and_without_patroni(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["dcs"] = {"regions": ["us", "eu", "mars"]}
        main(d)["ha"] = "manual"
    assert problems(tmp_path, change) == [
        "dcs: no cluster has ha: patroni; the etcd members would serve nothing",
        "dcs.regions.2: unknown region 'mars'",
    ]


def test_member_name_taken_by_a_node(tmp_path: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["clusters"]["billing"]["nodes"] = {"etcd-ap": {"region": "ap", "role": "primary"}}
    assert problems(tmp_path, change) == [
        "dcs: the etcd member 'etcd-ap' takes the name of a node; rename the node",
    ]


def test_cluster_wide_setting_on_one_node(tmp_path: Path) -> None:
    assert problems(tmp_path, lambda d: main(d)["nodes"]["pg-eu"]["settings"].update(max_connections=200)) == [
        "clusters.main.nodes.pg-eu.settings.max_connections: Patroni sets max_connections for the whole cluster (its "
        "dynamic configuration): give every node of 'main' the same value",
    ]


def test_image_without_patroni(tmp_path: Path) -> None:
    assert problems(tmp_path, lambda d: d.update(postgres={"image": "postgres:17"})) == [
        "postgres.image: 'postgres:17' has no Patroni or etcd; ha: patroni (cluster 'main') runs on pgtopo's own "
        "image: remove postgres.image",
    ]


# -- rendering ---------------------------------------------------------------------------------------------------------

def test_patroni_yml_of_each_node(tmp_path: Path) -> None:
    out = files(tmp_path)
    assert sorted(k for k in out if k.endswith("patroni.yml")) == [
        "pg-eu/patroni.yml", "pg-eu2/patroni.yml", "pg-us/patroni.yml", "pg-us2/patroni.yml"]
    assert "pg-ap/patroni.yml" not in out  # billing is ha: manual
    us, us2, eu, eu2 = (parsed(out[f"{n}/patroni.yml"]) for n in ("pg-us", "pg-us2", "pg-eu", "pg-eu2"))
    assert (us2["scope"], us2["name"], us2["namespace"]) == ("main", "pg-us2", "/pgtopo/lab/")
    assert us2["etcd3"] == {"hosts": ["etcd-us:2379", "etcd-eu:2379", "etcd-ap:2379"]}
    assert us2["tags"] == {"failover_priority": 0, "nofailover": True, "nosync": True}
    assert eu["tags"] == {"failover_priority": 100, "nofailover": False, "nosync": False}
    # The file's primary is not a listed standby, yet stays eligible: after a failover it is the
    # replica that can be synchronous for the new leader.
    assert us["tags"]["nosync"] is False
    assert eu2["tags"]["replicatefrom"] == "pg-eu"  # a cascade keeps its upstream
    dcs = us2["bootstrap"]["dcs"]
    assert (dcs["synchronous_mode"], dcs["synchronous_node_count"]) == (True, 1)  # FIRST 1: synchronous mode
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["slots"] == {
        "pg_us": {"type": "physical"}, "pg_us2": {"type": "physical"}, "pg_eu": {"type": "physical"},
        "pg_eu2": {"type": "physical"},
        "inv_sub": {"type": "logical", "database": "shop", "plugin": "pgoutput"},
    }
    # The initial copy's per-table slots on the publisher are Patroni's to leave alone.
    assert dcs["ignore_slots"] == [{"type": "logical", "database": "shop", "plugin": "pgoutput"}]
    # Shared parameters go to Patroni's dynamic configuration, one node's own stay local.
    assert dcs["postgresql"]["parameters"]["wal_level"] == "logical"
    assert dcs["postgresql"]["parameters"]["hot_standby"] == "on"
    assert eu["postgresql"]["parameters"] == {"work_mem": "16MB"}
    assert us2["postgresql"]["parameters"] == {}
    for owned in patroni.PATRONI_OWNED:
        assert owned not in dcs["postgresql"]["parameters"]
    assert eu["postgresql"]["pg_hba"][2] == "host replication replicator samenet scram-sha-256"
    assert eu["postgresql"]["authentication"] == {
        "superuser": {"username": "postgres"}, "replication": {"username": "replicator"},
        "rewind": {"username": "pgtopo"}}
    assert not any(key == "password" for key in keys(eu))  # passwords come from Patroni's environment


def test_ignored_slots_one_per_published_database_with_a_subscriber(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    main(data)["databases"]["stock"] = {"schema": "CREATE TABLE items (id int PRIMARY KEY);"}
    main(data)["publications"]["items_pub"] = {"database": "stock", "tables": ["items"]}
    main(data)["publications"]["unread_pub"] = {"database": "stock", "tables": ["items"]}
    billing = data["clusters"]["billing"]
    billing["databases"]["stock"] = {"schema": "CREATE TABLE items (id int PRIMARY KEY);"}
    billing["subscriptions"]["items_sub"] = {"publisher": "main", "publication": "items_pub", "database": "stock"}
    billing["subscriptions"]["items_sub2"] = {"publisher": "main", "publication": "unread_pub", "database": "stock"}
    topo = load(write(tmp_path, data))
    assert patroni.ignored_slots(topo, "main") == [
        {"type": "logical", "database": "shop", "plugin": "pgoutput"},
        {"type": "logical", "database": "stock", "plugin": "pgoutput"}]
    assert patroni.ignored_slots(topo, "billing") == []  # publishes nothing: no slot to spare


def test_no_subscriber_no_ignored_slots(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    del data["clusters"]["billing"]["subscriptions"]
    dcs = parsed(files(tmp_path, data)["pg-us/patroni.yml"])["bootstrap"]["dcs"]
    assert "ignore_slots" not in dcs  # Patroni drops every slot it does not know, as by default


def test_any_is_quorum_commit(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    main(data)["synchronous"] = {"method": "any", "count": 1, "standbys": ["pg-eu", "pg-us2"]}
    dcs = parsed(files(tmp_path, data)["pg-us/patroni.yml"])["bootstrap"]["dcs"]
    assert (dcs["synchronous_mode"], dcs["synchronous_node_count"]) == ("quorum", 1)


def test_no_synchronous_no_sync_mode(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    del main(data)["synchronous"]
    config = parsed(files(tmp_path, data)["pg-us/patroni.yml"])
    assert "synchronous_mode" not in config["bootstrap"]["dcs"]
    assert "nosync" not in config["tags"]


def test_etcd_members_tuned_to_the_round_trip(tmp_path: Path) -> None:
    out = files(tmp_path)
    conf = parsed(out["etcd-eu/etcd.conf.yml"])
    assert conf["name"] == "etcd-eu"
    assert conf["initial-cluster"] == ("etcd-us=http://etcd-us:2380,etcd-eu=http://etcd-eu:2380,"
                                       "etcd-ap=http://etcd-ap:2380")
    assert conf["advertise-client-urls"] == "http://etcd-eu:2379"
    # The largest round trip between members: us <-> ap, 200 ms with 5 ms of jitter each way.
    assert (conf["heartbeat-interval"], conf["election-timeout"]) == (210, 2100)


def test_etcd_defaults_in_one_region(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["dcs"] = {"regions": ["us", "us", "us"]}
    conf = parsed(files(tmp_path, data)["etcd-us-3/etcd.conf.yml"])
    assert (conf["heartbeat-interval"], conf["election-timeout"]) == (100, 1000)


def test_subscriber_of_a_patroni_cluster_follows_the_leader(tmp_path: Path) -> None:
    sub = files(tmp_path)["pg-ap/subscriptions.sql"]
    # Every node of main, each through the relay from ap, the writable one chosen at connection.
    assert "CONNECTION 'host=pgtopo-relay,pgtopo-relay,pgtopo-relay,pgtopo-relay port=" in sub
    assert "target_session_attrs=read-write'" in sub


def test_yaml_writer_quotes_what_yaml_1_1_would_misread() -> None:
    text = patroni.to_yaml({"a": "on", "b": "128MB", "c": "0.0.0.0:8008", "d": "warning", "e": 5, "f": True,
                            "g": [], "h": {}, "i": ["x", {"k": "no", "l": "%m [%p] "}], "j": "a: b", "k": "08:00"})
    assert text.splitlines()[:4] == ['a: "on"', 'b: "128MB"', 'c: "0.0.0.0:8008"', "d: warning"]
    assert '"08:00"' in text and '"a: b"' in text
    assert parsed(text) == {"a": "on", "b": "128MB", "c": "0.0.0.0:8008", "d": "warning", "e": 5, "f": True,
                            "g": [], "h": {}, "i": ["x", {"k": "no", "l": "%m [%p] "}], "j": "a: b", "k": "08:00"}


def test_conf_parameters_read_back_quoted_values() -> None:
    conf = "a = 'it''s'\nb = on  # comment\n# c = 1\nd = 'x\\\\y'\n"
    assert patroni.conf_parameters(conf) == {"a": "it's", "b": "on", "d": "x\\y"}


def test_shipped_patroni_topology(tmp_path: Path) -> None:
    topo = load(PATRONI_SAAS)
    assert topo.patroni_clusters() == ["main"]
    assert [m.name for m in topo.dcs_members()] == ["etcd-us-east", "etcd-eu-west", "etcd-ap-south"]


def test_refuse_around_names_only_patroni_clusters() -> None:
    topo = load(PATRONI_SAAS)
    patroni.refuse_around(topo, ["billing"], "failover")  # ha: manual: nothing refused
    patroni.refuse_around(topo, [], "rejoin")
    with pytest.raises(InputError) as exc:
        patroni.refuse_around(topo, ["billing", "main"], "rejoin")
    assert str(exc.value).startswith("clusters.main.ha: patroni: `pgtopo rejoin` on cluster main goes through Patroni")


def test_lab_addresses_change_only_the_addresses() -> None:
    topo = load(PATRONI_SAAS)
    lab = patroni.patroni_config(topo, node="pg-us", conf="", hba="", cluster_confs={"pg-us": ""},
                                 address=lambda m, p: f"lab-{m}:{p + 1}")
    prod = patroni.patroni_config(topo, node="pg-us", conf="", hba="", cluster_confs={"pg-us": ""})
    assert lab["restapi"] == {**prod["restapi"], "connect_address": "lab-pg-us:8009"}  # type: ignore[dict-item]
    assert lab["etcd3"] == {"hosts": ["lab-etcd-us-east:2380", "lab-etcd-eu-west:2380", "lab-etcd-ap-south:2380"]}
    assert {k: v for k, v in lab.items() if k not in ("restapi", "etcd3", "postgresql")} == \
        {k: v for k, v in prod.items() if k not in ("restapi", "etcd3", "postgresql")}


def test_subscription_slot_change_follows_the_edited_file(tmp_path: Path) -> None:
    logical = {"type": "logical", "database": "shop", "plugin": "pgoutput"}
    with_sub = load(write(tmp_path, BASE))
    assert patroni.subscription_slot_change(with_sub, "main", "inv_sub") == {
        "slots": {"inv_sub": logical}, "ignore_slots": [logical]}
    # The file after remove-subscription: the slot goes, and with the last subscription to that
    # database, ignore_slots too.
    data = copy.deepcopy(BASE)
    del data["clusters"]["billing"]["subscriptions"]
    without = load(write(tmp_path, data))
    assert patroni.subscription_slot_change(without, "main", "inv_sub") == {"slots": {"inv_sub": None},
                                                                            "ignore_slots": None}
    physical = next(name for name, slot in patroni.permanent_slots(with_sub, "main").items() if slot["type"] == "physical")
    with pytest.raises(ValueError, match="physical slot"):
        patroni.subscription_slot_change(with_sub, "main", physical)
