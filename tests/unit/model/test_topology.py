"""The validation corpus: one bad file per rule, with the exact message asserted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgtopo.errors import InputError, ValidationFailed
from pgtopo.model.loader import load
from pgtopo.model.schema_file import schema_tables
from pgtopo.model.topology import endpoint, slot_name
from tests.support.topologies import EXAMPLES, LAB, SAAS, lab
from tests.support.topologies import write_yaml as write


def problems(tmp_path: Path, mutate: Any) -> list[str]:
    data = lab()
    mutate(data)
    with pytest.raises(ValidationFailed) as exc:
        load(write(tmp_path, data))
    return exc.value.problems


def test_base_is_valid(tmp_path: Path) -> None:
    topo = load(write(tmp_path, LAB))
    assert topo.node_names() == ["pg-us", "pg-eu", "pg-eu2", "pg-ap"]
    assert topo.clusters["main"].primary_name == "pg-us"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_shipped_examples_are_valid(path: Path) -> None:
    load(path)


CASES: list[tuple[str, Any, list[str]]] = [
    ("unknown key", lambda d: d["clusters"]["main"].update(colour="red"), ["clusters.main.colour: unknown field"]),
    ("unknown node key", lambda d: d["clusters"]["main"]["nodes"]["pg-eu"].update(sync=True),
     ["clusters.main.nodes.pg-eu.sync: unknown field"]),
    ("missing name", lambda d: d.pop("name"), ["name: required field is missing"]),
    ("bad node name", lambda d: d["clusters"]["billing"]["nodes"].update({"PG_X": {"region": "ap"}}),
     ["clusters.billing.nodes.PG_X: 'PG_X' is not a valid name (lower-case letters, digits and '-', 1 to 40 characters)"]),
    ("bad table name", lambda d: d["clusters"]["main"]["publications"]["inv_pub"].update(tables=["Bad-Table"]),
     ["clusters.main.publications.inv_pub.tables.0.name: 'Bad-Table' is not a plain PostgreSQL identifier "
      "(lower-case letters, digits, _ and $, not starting with a digit)"]),
    ("long publication name",
     lambda d: d["clusters"]["main"]["publications"].update({"p" * 64: {"database": "shop", "all_tables": True}}),
     [f"clusters.main.publications.{'p' * 64}: '{'p' * 64}' is longer than 63 bytes"]),
    ("two primaries", lambda d: d["clusters"]["main"]["nodes"]["pg-eu"].update(role="primary", upstream=None),
     ["clusters.main.nodes: a cluster needs exactly one primary (found: pg-us, pg-eu)"]),
    ("no primary", lambda d: d["clusters"]["billing"]["nodes"]["pg-ap"].update(role="replica", upstream="pg-ap"),
     ["clusters.billing.nodes: a cluster needs exactly one primary (found: none)",
      "clusters.billing.nodes.pg-ap.upstream: replication cycle pg-ap -> pg-ap"]),
    ("unknown upstream", lambda d: d["clusters"]["main"]["nodes"]["pg-eu"].update(upstream="pg-xx"),
     ["clusters.main.nodes.pg-eu.upstream: unknown node 'pg-xx' in cluster 'main'"]),
    ("upstream in other cluster", lambda d: d["clusters"]["main"]["nodes"]["pg-eu"].update(upstream="pg-ap"),
     ["clusters.main.nodes.pg-eu.upstream: unknown node 'pg-ap' in cluster 'main' (it is in another cluster)"]),
    ("replica without upstream", lambda d: d["clusters"]["main"]["nodes"]["pg-eu2"].pop("upstream"),
     ["clusters.main.nodes.pg-eu2.upstream: a replica needs an upstream"]),
    ("cycle", lambda d: d["clusters"]["main"]["nodes"].update({
        "pg-a": {"region": "us", "upstream": "pg-b"}, "pg-b": {"region": "us", "upstream": "pg-a"}}),
     ["clusters.main.nodes.pg-a.upstream: replication cycle pg-a -> pg-b -> pg-a",
      "clusters.main.nodes.pg-b.upstream: replication cycle pg-b -> pg-a -> pg-b"]),
    ("unknown region", lambda d: d["clusters"]["main"]["nodes"]["pg-eu"].update(region="mars"),
     ["clusters.main.nodes.pg-eu.region: unknown region 'mars'"]),
    ("missing latency", lambda d: d["latency"].pop(0),
     ["latency: no latency declared between 'us' and 'eu' (needed: pg-eu streams from pg-us)"]),
    ("latency unknown region", lambda d: d["latency"].append({"between": ["us", "mars"], "rtt_ms": 5}),
     ["latency.3.between: unknown region 'mars'"]),
    ("latency twice", lambda d: d["latency"].append({"between": ["eu", "us"], "rtt_ms": 5}),
     ["latency.3.between: eu <-> us is declared twice"]),
    ("negative rtt", lambda d: d["latency"][0].update(rtt_ms=-1),
     ["latency.0.rtt_ms: Input should be greater than or equal to 0"]),
    ("jitter above rtt", lambda d: d["latency"][0].update(jitter_ms=90),
     ["latency.0.jitter_ms: jitter 90.0 ms is larger than the round trip 80.0 ms"]),
    ("sync standby not direct", lambda d: d["clusters"]["main"].update(synchronous={"standbys": ["pg-eu2"]}),
     ["clusters.main.synchronous.standbys.0: 'pg-eu2' is not a direct standby of the primary 'pg-us' "
      "(a cascaded standby never counts as synchronous)"]),
    ("sync unknown standby", lambda d: d["clusters"]["main"].update(synchronous={"standbys": ["pg-zz"]}),
     ["clusters.main.synchronous.standbys.0: unknown node 'pg-zz'"]),
    ("sync count too high", lambda d: d["clusters"]["main"].update(synchronous={"count": 2, "standbys": ["pg-eu"]}),
     ["clusters.main.synchronous.count: 2 is more than the 1 standbys listed"]),
    ("publication of unknown table", lambda d: d["clusters"]["main"]["publications"]["inv_pub"].update(tables=["nope"]),
     ["clusters.main.publications.inv_pub.tables.0: table 'nope' is not created by the schema of 'shop'",
      "clusters.billing.subscriptions.inv_sub: table 'nope' of publication 'inv_pub' is not created by the schema "
      "of 'shop' in cluster 'billing'"]),
    ("publication unknown database", lambda d: d["clusters"]["main"]["publications"]["inv_pub"].update(database="nodb"),
     ["clusters.main.publications.inv_pub.database: unknown database 'nodb' in cluster 'main'",
      "clusters.billing.subscriptions.inv_sub.database: unknown database 'nodb' in cluster 'billing'"]),
    ("publication without tables", lambda d: d["clusters"]["main"]["publications"]["inv_pub"].pop("tables"),
     ["clusters.main.publications.inv_pub: list tables, or set all_tables: true"]),
    ("subscription to own cluster", lambda d: d["clusters"]["main"].update(
        subscriptions={"self_sub": {"publisher": "main", "publication": "inv_pub"}}),
     ["clusters.main.subscriptions.self_sub.publisher: a cluster cannot subscribe to itself"]),
    ("subscription unknown publication", lambda d: d["clusters"]["billing"]["subscriptions"]["inv_sub"].update(
        publication="nope_pub"),
     ["clusters.billing.subscriptions.inv_sub.publication: cluster 'main' has no publication 'nope_pub'"]),
    ("subscription unknown cluster", lambda d: d["clusters"]["billing"]["subscriptions"]["inv_sub"].update(
        publisher="ghost"),
     ["clusters.billing.subscriptions.inv_sub.publisher: unknown cluster 'ghost'"]),
    ("subscriber lacks table", lambda d: d["clusters"]["billing"]["databases"]["shop"].update(schema="CREATE TABLE x (i int);"),
     ["clusters.billing.subscriptions.inv_sub: table 'products' of publication 'inv_pub' is not created by the "
      "schema of 'shop' in cluster 'billing'"]),
    ("failover slots on 16", lambda d: (d.update(postgres={"version": 16}),
                                        d["clusters"]["billing"]["subscriptions"]["inv_sub"].update(failover=True)),
     ["clusters.billing.subscriptions.inv_sub.failover: failover slots need PostgreSQL 17"]),
    ("unsupported version", lambda d: d.update(postgres={"version": 14}),
     ["postgres.version: Input should be 15, 16 or 17"]),
    ("duplicate node name", lambda d: d["clusters"]["billing"]["nodes"].update({"pg-eu": {"region": "eu", "upstream": "pg-ap"}}),
     ["clusters.billing.nodes.pg-eu: node name already used in cluster 'main'"]),
    ("port collision", lambda d: (d["clusters"]["main"]["nodes"]["pg-us"].update(port=15432),
                                  d["clusters"]["billing"]["nodes"]["pg-ap"].update(port=15432)),
     ["clusters.billing.nodes.pg-ap.port: port 15432 already used by node 'pg-us'"]),
    ("subnet overlap", lambda d: d["regions"].update(us={"subnet": "10.50.0.0/16"}, eu={"subnet": "10.50.1.0/24"}),
     ["regions.eu.subnet: 10.50.1.0/24 overlaps region 'us' (10.50.0.0/16)"]),
    ("bad subnet", lambda d: d["regions"].update(us={"subnet": "10.50.0.1/16"}),
     ["regions.us.subnet: '10.50.0.1/16' is not a network address in CIDR form (10.50.0.1/16 has host bits set)"]),
    ("reserved setting", lambda d: d["clusters"]["main"]["nodes"]["pg-eu"].update(settings={"port": 5}),
     ["clusters.main.nodes.pg-eu.settings: 'port' is set by pgtopo and cannot be overridden"]),
    ("schema file missing", lambda d: d["clusters"]["main"]["databases"].update(other={"schema_file": "nope.sql"}),
     ["clusters.main.databases.other.schema_file: cannot read 'nope.sql' (No such file or directory)"]),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_file(tmp_path: Path, case: str, mutate: Any, expected: list[str]) -> None:
    assert problems(tmp_path, mutate) == expected


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["clusters"]["main"]["nodes"]["pg-eu"]["region"] = "mars"
        d["clusters"]["main"]["nodes"]["pg-eu2"]["upstream"] = "pg-zz"
        d["clusters"]["billing"]["subscriptions"]["inv_sub"]["publication"] = "nope_pub"

    assert problems(tmp_path, mutate) == [
        "clusters.main.nodes.pg-eu.region: unknown region 'mars'",
        "clusters.main.nodes.pg-eu2.upstream: unknown node 'pg-zz' in cluster 'main'",
        "clusters.billing.subscriptions.inv_sub.publication: cluster 'main' has no publication 'nope_pub'",
    ]


def test_a_colon_in_a_flow_mapping_value_is_yaml_1_2(tmp_path: Path) -> None:
    # libyaml (YAML 1.1) refuses `{image: name:tag}`; YAML 1.2, which topology files are, allows it.
    p = tmp_path / "t.yaml"
    p.write_text(SAAS.replace("name: t-unit\n", "name: t-unit\npostgres: {version: 17, image: pgtopo-official:17}\n", 1))
    assert "image: pgtopo-official:17}" in p.read_text()
    assert load(p).image == "pgtopo-official:17"


@pytest.mark.parametrize(("text", "message"), [
    ("", "the file is empty"),
    ("- a\n- b\n", "the top level must be a mapping, not list"),
    ("name: [unclosed\n", "YAML syntax error at line 2, column 1: expected ',' or ']', but got '<stream end>'"),
])
def test_unreadable_files(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(text)
    with pytest.raises(InputError) as exc:
        load(p)
    assert exc.value.message == f"{p}: {message}"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        load(tmp_path / "nope.yaml")
    assert exc.value.message == f"{tmp_path / 'nope.yaml'}: no such file"


def test_schema_tables() -> None:
    text = 'CREATE TABLE a (i int); create unlogged table if not exists public.B (i int); CREATE TABLE "Mixed" ();'
    assert schema_tables(text) == {"a", "b", "Mixed"}


def test_endpoint_and_slots(tmp_path: Path) -> None:
    topo = load(write(tmp_path, LAB))
    assert endpoint(topo, from_region="eu", node="pg-eu").host == "pg-eu"
    far = endpoint(topo, from_region="eu", node="pg-us")
    assert (far.host, far.port) == ("pgtopo-relay", topo.relay_port("eu", "pg-us"))
    assert slot_name("pg-eu2") == "pg_eu2"
    ports = {topo.relay_port(r, n) for r in topo.regions for n in topo.node_names()}
    assert len(ports) == len(topo.regions) * len(topo.node_names())


def test_relay_ports_survive_adding_nodes_and_regions(tmp_path: Path) -> None:
    """Running replicas and subscriptions keep their relay ports when the file grows."""
    before = load(write(tmp_path, LAB))
    data = lab()
    data["regions"] = {"sa": {}, **data["regions"]}  # a new region first
    data["latency"] += [{"between": ["sa", r], "rtt_ms": 150} for r in ("us", "eu", "ap")]
    nodes = data["clusters"]["main"]["nodes"]
    data["clusters"]["main"]["nodes"] = {"pg-aa": {"region": "sa", "upstream": "pg-us"}, **nodes}  # a node first
    after = load(write(tmp_path, data))
    for region in before.regions:
        for node in before.node_names():
            assert after.relay_port(region, node) == before.relay_port(region, node), (region, node)
