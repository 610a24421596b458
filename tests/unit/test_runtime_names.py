"""Docker names cannot alias across topologies, and a volume is never another node's (pure)."""

from __future__ import annotations

from pgtopo.runtime import gateway


def test_names_do_not_alias_across_topologies() -> None:
    # Joined by '-', topology 't' node 'a-b' and topology 't-a' node 'b' were both 't-a-b'.
    assert gateway.container_name("t", "a-b") == "t_a-b"
    assert gateway.container_name("t-a", "b") == "t-a_b"
    assert gateway.volume_name("t", "a-b") == "t_a-b_data"
    assert gateway.volume_name("t-a", "b") == "t-a_b_data"
    # A node called like another's volume suffix still gets its own volume.
    assert gateway.volume_name("t", "x-data") != gateway.volume_name("t", "x")


def test_a_volume_of_this_node_is_reused() -> None:
    labels = {gateway.LABEL_TOPOLOGY: "t", gateway.LABEL_NODE: "a-b", gateway.LABEL_KIND: "node"}
    assert gateway.volume_refusal("t_a-b_data", labels, topology="t", node="a-b") is None


def test_a_volume_of_another_topology_or_node_is_refused() -> None:
    other = {gateway.LABEL_TOPOLOGY: "t-a", gateway.LABEL_NODE: "b"}
    assert gateway.volume_refusal("t-a-b-data", other, topology="t", node="a-b") == (
        "volume t-a-b-data belongs to node 'b' of topology 't-a', not to node 'a-b' of topology 't': "
        "refusing to mount another's data")
    same_topology = {gateway.LABEL_TOPOLOGY: "t", gateway.LABEL_NODE: "pg-eu"}
    assert gateway.volume_refusal("v", same_topology, topology="t", node="pg-us") == (
        "volume v belongs to node 'pg-eu' of topology 't', not to node 'pg-us' of topology 't': "
        "refusing to mount another's data")
    assert gateway.volume_refusal("t_a_data", {}, topology="t", node="a") == (
        "volume t_a_data belongs to no pgtopo topology (it carries no pgtopo label), not to node 'a' of topology 't': "
        "refusing to mount another's data")
