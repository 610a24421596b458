"""`rules.problems`: the semantic rules of the topology file, one test per rule, exact text.

Each test starts from a valid topology (three regions; main: pg-us primary, pg-eu behind it in
another region, pg-eu2 cascaded behind pg-eu, publication inv_pub; billing: pg-ap subscribing
to inv_pub), breaks one rule and compares the whole list of problems, so that a rule reporting
too much fails as well as one reporting too little. The structural checks (pydantic) are
tested through the loader in test_topology.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgtopo.model import rules
from pgtopo.model.topology import MAX_NODES, Topology
from tests.support.topologies import lab


def problems(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    """The problems of ``data`` as a file in ``tmp_path`` (schema files are relative to it)."""
    return rules.problems(Topology.model_validate(data), tmp_path / "topo.yaml")


def main(data: dict[str, Any]) -> dict[str, Any]:
    cluster: dict[str, Any] = data["clusters"]["main"]
    return cluster


def billing(data: dict[str, Any]) -> dict[str, Any]:
    cluster: dict[str, Any] = data["clusters"]["billing"]
    return cluster


def test_the_base_topology_has_no_problem(tmp_path: Path) -> None:
    assert problems(tmp_path, lab()) == []


# -- primaries, upstreams, cycles ----------------------------------------------------------------

def test_a_cluster_needs_exactly_one_primary(tmp_path: Path) -> None:
    two = lab()
    main(two)["nodes"]["pg-eu"] = {"region": "eu", "role": "primary"}
    assert problems(tmp_path, two) == ["clusters.main.nodes: a cluster needs exactly one primary (found: pg-us, pg-eu)"]

    none = lab()
    billing(none)["nodes"]["pg-ap"] = {"region": "ap", "role": "replica", "upstream": "pg-ap2"}
    billing(none)["nodes"]["pg-ap2"] = {"region": "ap", "upstream": "pg-ap"}
    assert problems(tmp_path, none) == [
        "clusters.billing.nodes: a cluster needs exactly one primary (found: none)",
        "clusters.billing.nodes.pg-ap.upstream: replication cycle pg-ap -> pg-ap2 -> pg-ap",
        "clusters.billing.nodes.pg-ap2.upstream: replication cycle pg-ap2 -> pg-ap -> pg-ap2",
    ]


def test_a_node_name_is_used_once_across_clusters(tmp_path: Path) -> None:
    data = lab()
    billing(data)["nodes"]["pg-eu"] = {"region": "eu", "upstream": "pg-ap"}
    assert problems(tmp_path, data) == ["clusters.billing.nodes.pg-eu: node name already used in cluster 'main'"]


def test_a_node_is_in_a_declared_region(tmp_path: Path) -> None:
    data = lab()
    main(data)["nodes"]["pg-eu"]["region"] = "mars"
    assert problems(tmp_path, data) == ["clusters.main.nodes.pg-eu.region: unknown region 'mars'"]


def test_a_primary_has_no_upstream(tmp_path: Path) -> None:
    data = lab()
    main(data)["nodes"]["pg-us"]["upstream"] = "pg-ap"
    assert problems(tmp_path, data) == ["clusters.main.nodes.pg-us.upstream: a primary has no upstream"]


def test_a_replica_needs_an_upstream(tmp_path: Path) -> None:
    data = lab()
    del main(data)["nodes"]["pg-eu2"]["upstream"]
    assert problems(tmp_path, data) == ["clusters.main.nodes.pg-eu2.upstream: a replica needs an upstream"]


def test_the_upstream_is_a_node_of_the_same_cluster(tmp_path: Path) -> None:
    data = lab()
    main(data)["nodes"]["pg-eu"]["upstream"] = "pg-xx"
    # Unknown everywhere: pg-eu2 behind it and the latency check do not trip over it.
    assert problems(tmp_path, data) == ["clusters.main.nodes.pg-eu.upstream: unknown node 'pg-xx' in cluster 'main'"]

    later = lab()
    main(later)["nodes"]["pg-eu"]["upstream"] = "pg-ap"  # billing comes after main in the file
    earlier = lab()
    billing(earlier)["nodes"]["pg-ap2"] = {"region": "ap", "upstream": "pg-us"}  # main comes before billing
    assert problems(tmp_path, later) == [
        "clusters.main.nodes.pg-eu.upstream: unknown node 'pg-ap' in cluster 'main' (it is in another cluster)"]
    assert problems(tmp_path, earlier) == [
        "clusters.billing.nodes.pg-ap2.upstream: unknown node 'pg-us' in cluster 'billing' (it is in another cluster)"]


def test_no_replication_cycle(tmp_path: Path) -> None:
    data = lab()
    main(data)["nodes"].update({
        "pg-a": {"region": "us", "upstream": "pg-b"},
        "pg-b": {"region": "us", "upstream": "pg-a"},
        "pg-c": {"region": "us", "upstream": "pg-a"},  # behind the cycle, not in it: not reported
        "pg-d": {"region": "us", "upstream": "pg-d"},
    })
    assert problems(tmp_path, data) == [
        "clusters.main.nodes.pg-a.upstream: replication cycle pg-a -> pg-b -> pg-a",
        "clusters.main.nodes.pg-b.upstream: replication cycle pg-b -> pg-a -> pg-b",
        "clusters.main.nodes.pg-d.upstream: replication cycle pg-d -> pg-d",
    ]


def test_at_most_max_nodes(tmp_path: Path) -> None:
    def cluster_of(n: int) -> dict[str, Any]:
        nodes: dict[str, Any] = {"n0": {"region": "us", "role": "primary"}}
        nodes.update({f"n{i}": {"region": "us", "upstream": "n0"} for i in range(1, n)})
        return {"name": "big", "regions": {"us": {}}, "clusters": {"main": {"nodes": nodes}}}

    assert MAX_NODES == 99
    assert problems(tmp_path, cluster_of(MAX_NODES)) == []
    assert problems(tmp_path, cluster_of(MAX_NODES + 1)) == ["clusters: at most 99 nodes"]


def test_a_port_is_published_by_one_node(tmp_path: Path) -> None:
    data = lab()
    main(data)["nodes"]["pg-us"]["port"] = 15432
    main(data)["nodes"]["pg-eu2"]["port"] = 15432
    billing(data)["nodes"]["pg-ap"]["port"] = 15432
    assert problems(tmp_path, data) == [
        "clusters.main.nodes.pg-eu2.port: port 15432 already used by node 'pg-us'",
        "clusters.billing.nodes.pg-ap.port: port 15432 already used by node 'pg-us'",
    ]


# -- synchronous standbys ------------------------------------------------------------------------

def test_synchronous_standbys_are_known_nodes(tmp_path: Path) -> None:
    data = lab()
    main(data)["synchronous"] = {"standbys": ["pg-eu", "pg-zz"], "count": 1}
    assert problems(tmp_path, data) == ["clusters.main.synchronous.standbys.1: unknown node 'pg-zz'"]


def test_synchronous_standbys_stream_from_the_primary(tmp_path: Path) -> None:
    data = lab()
    main(data)["synchronous"] = {"standbys": ["pg-eu", "pg-eu2"]}
    assert problems(tmp_path, data) == [
        "clusters.main.synchronous.standbys.1: 'pg-eu2' is not a direct standby of the primary 'pg-us' "
        "(a cascaded standby never counts as synchronous)"]


def test_a_synchronous_standby_is_listed_once(tmp_path: Path) -> None:
    data = lab()
    main(data)["synchronous"] = {"standbys": ["pg-eu", "pg-eu"], "count": 2}
    assert problems(tmp_path, data) == ["clusters.main.synchronous.standbys: a standby is listed twice"]


def test_synchronous_count_is_at_most_the_standbys_listed(tmp_path: Path) -> None:
    data = lab()
    main(data)["synchronous"] = {"method": "first", "count": 2, "standbys": ["pg-eu"]}
    assert problems(tmp_path, data) == ["clusters.main.synchronous.count: 2 is more than the 1 standbys listed"]


# -- schemas and publications --------------------------------------------------------------------

def test_schema_file_is_read_next_to_the_topology_file(tmp_path: Path) -> None:
    (tmp_path / "orders.sql").write_text("CREATE TABLE orders (id int PRIMARY KEY);\n")
    data = lab()
    main(data)["databases"]["sales"] = {"schema_file": "orders.sql"}
    main(data)["publications"]["orders_pub"] = {"database": "sales", "tables": ["orders"]}
    assert problems(tmp_path, data) == []

    main(data)["publications"]["orders_pub"]["tables"] = ["products"]
    assert problems(tmp_path, data) == [
        "clusters.main.publications.orders_pub.tables.0: table 'products' is not created by the schema of 'sales'"]


def test_schema_file_must_be_readable(tmp_path: Path) -> None:
    data = lab()
    main(data)["databases"]["sales"] = {"schema_file": "nope.sql"}
    # The tables of a schema that cannot be read are not checked: the one problem is the file.
    main(data)["publications"]["orders_pub"] = {"database": "sales", "tables": ["orders"]}
    assert problems(tmp_path, data) == [
        "clusters.main.databases.sales.schema_file: cannot read 'nope.sql' (No such file or directory)"]


def test_schema_file_must_be_utf8(tmp_path: Path) -> None:
    (tmp_path / "latin1.sql").write_bytes("CREATE TABLE caf\xe9 (id int);".encode("latin-1"))
    data = lab()
    main(data)["databases"]["sales"] = {"schema_file": "latin1.sql"}
    assert problems(tmp_path, data) == [
        "clusters.main.databases.sales.schema_file: cannot read 'latin1.sql' (not a UTF-8 text file (byte 16))"]


def test_publication_database_is_in_the_cluster(tmp_path: Path) -> None:
    data = lab()
    main(data)["publications"]["other_pub"] = {"database": "nodb", "tables": ["products"]}
    assert problems(tmp_path, data) == [
        "clusters.main.publications.other_pub.database: unknown database 'nodb' in cluster 'main'"]


def test_published_tables_are_created_by_the_schema(tmp_path: Path) -> None:
    data = lab()
    main(data)["publications"]["other_pub"] = {"database": "shop", "tables": ["orders", "nope"]}
    assert problems(tmp_path, data) == [
        "clusters.main.publications.other_pub.tables.1: table 'nope' is not created by the schema of 'shop'"]

    # A database without a schema cannot be checked: its tables are whatever the user creates.
    main(data)["databases"]["scratch"] = {}
    main(data)["publications"]["other_pub"] = {"database": "scratch", "tables": ["nope"]}
    assert problems(tmp_path, data) == []


# -- subscriptions -------------------------------------------------------------------------------

def test_subscription_publisher_is_a_known_cluster(tmp_path: Path) -> None:
    data = lab()
    billing(data)["subscriptions"]["inv_sub"]["publisher"] = "ghost"
    assert problems(tmp_path, data) == ["clusters.billing.subscriptions.inv_sub.publisher: unknown cluster 'ghost'"]


def test_a_cluster_cannot_subscribe_to_itself(tmp_path: Path) -> None:
    data = lab()
    main(data)["subscriptions"] = {"self_sub": {"publisher": "main", "publication": "inv_pub"}}
    assert problems(tmp_path, data) == [
        "clusters.main.subscriptions.self_sub.publisher: a cluster cannot subscribe to itself"]


def test_subscription_publication_exists_on_the_publisher(tmp_path: Path) -> None:
    data = lab()
    billing(data)["subscriptions"]["inv_sub"]["publication"] = "nope_pub"
    assert problems(tmp_path, data) == [
        "clusters.billing.subscriptions.inv_sub.publication: cluster 'main' has no publication 'nope_pub'"]


def test_subscription_database_is_in_the_subscribing_cluster(tmp_path: Path) -> None:
    data = lab()
    billing(data)["subscriptions"]["inv_sub"]["database"] = "other"  # default: the publication's database
    assert problems(tmp_path, data) == [
        "clusters.billing.subscriptions.inv_sub.database: unknown database 'other' in cluster 'billing'"]

    billing(data)["databases"]["other"] = {"schema": "CREATE TABLE products (id int PRIMARY KEY);"}
    assert problems(tmp_path, data) == []


def test_subscriber_schema_creates_the_published_tables(tmp_path: Path) -> None:
    data = lab()
    billing(data)["databases"]["shop"]["schema"] = "CREATE TABLE x (i int);"
    assert problems(tmp_path, data) == [
        "clusters.billing.subscriptions.inv_sub: table 'products' of publication 'inv_pub' is not created by the "
        "schema of 'shop' in cluster 'billing'"]

    # FOR ALL TABLES names no table: there is nothing to compare.
    main(data)["publications"]["inv_pub"] = {"database": "shop", "all_tables": True}
    assert problems(tmp_path, data) == []


def test_failover_slots_need_postgres_17(tmp_path: Path) -> None:
    data = lab()
    billing(data)["subscriptions"]["inv_sub"]["failover"] = True
    assert problems(tmp_path, data) == []
    data["postgres"] = {"version": 16}
    assert problems(tmp_path, data) == ["clusters.billing.subscriptions.inv_sub.failover: failover slots need PostgreSQL 17"]


def test_a_subscription_name_is_used_by_one_cluster(tmp_path: Path) -> None:
    data = lab()
    data["clusters"]["audit"] = {
        "databases": {"shop": {"schema": "CREATE TABLE products (id int PRIMARY KEY);"}},
        "nodes": {"pg-au": {"region": "ap", "role": "primary"}},
        "subscriptions": {"inv_sub": {"publisher": "main", "publication": "inv_pub"}},
    }
    assert problems(tmp_path, data) == [
        "clusters.billing.subscriptions.inv_sub: subscription name used in more than one cluster",
        "clusters.audit.subscriptions.inv_sub: subscription name used in more than one cluster",
    ]


# -- regions, latency, subnets -------------------------------------------------------------------

def test_latency_joins_declared_regions(tmp_path: Path) -> None:
    data = lab()
    data["latency"].append({"between": ["mars", "us"], "rtt_ms": 5})
    assert problems(tmp_path, data) == ["latency.3.between: unknown region 'mars'"]


def test_a_link_joins_two_different_regions(tmp_path: Path) -> None:
    data = lab()
    data["latency"].append({"between": ["us", "us"], "rtt_ms": 5})
    assert problems(tmp_path, data) == ["latency.3.between: a link joins two different regions"]


def test_a_link_is_declared_once(tmp_path: Path) -> None:
    data = lab()
    data["latency"].append({"between": ["eu", "us"], "rtt_ms": 5})
    assert problems(tmp_path, data) == ["latency.3.between: eu <-> us is declared twice"]


def test_jitter_is_at_most_the_round_trip(tmp_path: Path) -> None:
    data = lab()
    data["latency"][0]["jitter_ms"] = 80
    assert problems(tmp_path, data) == []
    data["latency"][0]["jitter_ms"] = 80.5
    assert problems(tmp_path, data) == ["latency.0.jitter_ms: jitter 80.5 ms is larger than the round trip 80.0 ms"]


def test_every_region_pair_has_a_latency_naming_why_it_is_needed(tmp_path: Path) -> None:
    by_stream, by_subscription, by_nothing = lab(), lab(), lab()
    del by_stream["latency"][0]  # us <-> eu
    del by_subscription["latency"][1]  # us <-> ap
    del by_nothing["latency"][2]  # eu <-> ap
    assert problems(tmp_path, by_stream) == [
        "latency: no latency declared between 'us' and 'eu' (needed: pg-eu streams from pg-us)"]
    assert problems(tmp_path, by_subscription) == [
        "latency: no latency declared between 'us' and 'ap' (needed: subscription inv_sub)"]
    assert problems(tmp_path, by_nothing) == [
        "latency: no latency declared between 'eu' and 'ap' (needed: clients and failover can use any path)"]


def test_region_subnets_do_not_overlap(tmp_path: Path) -> None:
    data = lab()
    data["regions"].update(us={"subnet": "10.50.0.0/16"}, eu={"subnet": "10.51.0.0/24"}, ap={"subnet": "10.50.8.0/24"})
    assert problems(tmp_path, data) == ["regions.ap.subnet: 10.50.8.0/24 overlaps region 'us' (10.50.0.0/16)"]
