"""The topology's derived views are computed once per instance and answer what the old
per-call scans answered (reference versions below, as the model had them)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from pgtopo.errors import InputError
from pgtopo.model.loader import load
from pgtopo.model.topology import RELAY_PORT_BASE, RELAY_PORT_SPAN, Link, Topology
from tests.support.topologies import EXAMPLES, GLOBAL_SAAS


def reference_relay_ports(topo: Topology) -> dict[tuple[str, str], int]:
    names = [n for cl in topo.clusters.values() for n in cl.nodes]
    out: dict[tuple[str, str], int] = {}
    used: set[int] = set()
    for key in sorted((r, n) for r in topo.regions for n in names):
        digest = hashlib.sha256(f"{key[0]}|{key[1]}".encode()).digest()
        port = RELAY_PORT_BASE + int.from_bytes(digest[:4], "big") % RELAY_PORT_SPAN
        while port in used:
            port = RELAY_PORT_BASE + (port - RELAY_PORT_BASE + 1) % RELAY_PORT_SPAN
        used.add(port)
        out[key] = port
    return out


def reference_link(topo: Topology, a: str, b: str) -> Link | None:
    if a == b:
        return None
    return next((link for link in topo.latency if set(link.between) == {a, b}), None)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_views_answer_what_the_scans_answered(path: Path) -> None:
    topo = load(path)
    flat = [(c, n, node) for c, cl in topo.clusters.items() for n, node in cl.nodes.items()]
    assert topo.all_nodes() == flat
    assert topo.node_names() == [n for _c, n, _node in flat]
    for c, n, node in flat:
        assert topo.node(n) is node
        assert topo.cluster_of(n) == c
    regions = list(topo.regions)
    assert topo.region_pairs() == [(a, b) for i, a in enumerate(regions) for b in regions[i + 1:]]
    for a in regions:
        for b in regions:
            assert topo.link(a, b) is reference_link(topo, a, b)
            link = reference_link(topo, a, b)
            assert topo.rtt_ms(a, b) == (link.rtt_ms if link else 0.0)
    ports = reference_relay_ports(topo)
    for (region, target), port in ports.items():
        assert topo.relay_port(region, target) == port
        assert topo.relay_key(port) == (region, target)
    assert topo.relay_key(RELAY_PORT_BASE - 1) is None


def test_unknown_names_are_refused_as_before() -> None:
    topo = load(GLOBAL_SAAS)
    with pytest.raises(InputError, match="unknown node 'pg-xx' \\(known: pg-us, pg-eu, pg-billing\\)"):
        topo.node("pg-xx")
    with pytest.raises(InputError, match="unknown node 'pg-xx'"):
        topo.cluster_of("pg-xx")
    with pytest.raises(KeyError):
        topo.relay_port("us-east", "pg-xx")


def test_computed_once_per_instance() -> None:
    topo = load(GLOBAL_SAAS)
    assert topo._relay_ports is topo._relay_ports
    assert topo._node_index is topo._node_index
    assert topo.clusters["main"].primary_name == "pg-us"
    # Lists handed out are copies: a caller changing one does not change the view.
    topo.node_names().clear()
    topo.all_nodes().clear()
    topo.region_pairs().clear()
    assert topo.node_names() == ["pg-us", "pg-eu", "pg-billing"]
    assert len(topo.all_nodes()) == 3
    assert len(topo.region_pairs()) == 3


def test_caching_leaves_the_model_alone() -> None:
    fresh, used = load(GLOBAL_SAAS), load(GLOBAL_SAAS)
    before = (used.model_dump(), used.model_dump_json())
    used.relay_port("eu-west", "pg-us")
    used.node("pg-eu")
    used.region_pairs()
    used.link("us-east", "eu-west")
    assert used.clusters["main"].primary_name == "pg-us"
    assert (used.model_dump(), used.model_dump_json()) == before
    assert used == fresh
    assert "_relay_ports" not in Topology.model_json_schema()["properties"]
    with pytest.raises(ValidationError):
        used.name = "other"  # type: ignore[misc]


def test_model_copy_recomputes_the_views() -> None:
    topo = load(GLOBAL_SAAS)
    assert topo.link("us-east", "eu-west") is not None
    assert topo.node_names() == ["pg-us", "pg-eu", "pg-billing"]
    main = topo.clusters["main"]
    assert main.primary_name == "pg-us"
    copied = topo.model_copy(update={"latency": [], "clusters": {"main": main}})
    assert copied.link("us-east", "eu-west") is None
    assert copied.node_names() == ["pg-us", "pg-eu"]
    promoted = main.model_copy(update={"nodes": {"pg-eu": main.nodes["pg-eu"].model_copy(
        update={"role": "primary", "upstream": None})}})
    assert promoted.primary_name == "pg-eu"
    # The original keeps its own views.
    assert topo.link("us-east", "eu-west") is not None
    assert main.primary_name == "pg-us"
