"""Docker names cannot alias across topologies, and a volume is never another node's (pure)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pgtopo.errors import OperationFailed
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


class FakeVolume:
    def __init__(self, name: str, labels: dict[str, str]) -> None:
        self.name = name
        self.attrs = {"Labels": labels}


class FakeVolumes:
    """The Docker volume API as _data_volume uses it: list by label or name, create."""

    def __init__(self, volumes: list[FakeVolume]) -> None:
        self.volumes = volumes
        self.created: list[str] = []

    def list(self, filters: dict[str, Any]) -> list[FakeVolume]:
        if "label" in filters:
            wanted = dict(f.split("=", 1) for f in filters["label"])
            return [v for v in self.volumes if all(v.attrs["Labels"].get(k) == x for k, x in wanted.items())]
        return [v for v in self.volumes if filters["name"] in v.name]  # Docker matches name substrings

    def create(self, name: str, labels: dict[str, str]) -> FakeVolume:
        self.created.append(name)
        vol = FakeVolume(name, labels)
        self.volumes.append(vol)
        return vol


@pytest.fixture
def volumes(monkeypatch: pytest.MonkeyPatch) -> FakeVolumes:
    fake = FakeVolumes([])
    monkeypatch.setattr(gateway, "client", lambda: SimpleNamespace(volumes=fake))
    return fake


def lab(topology: str, node: str) -> dict[str, str]:
    return gateway.labels(topology, "node", node=node, cluster="main", region="eu")


def test_a_new_volume_is_created_with_its_labels(volumes: FakeVolumes) -> None:
    assert gateway._data_volume("t", "a-b", lab("t", "a-b")) == "t_a-b_data"
    assert volumes.created == ["t_a-b_data"]


def test_the_nodes_own_volume_is_found_by_label_even_under_an_old_name(volumes: FakeVolumes) -> None:
    volumes.volumes.append(FakeVolume("t-a-b-data", lab("t", "a-b")))  # named before the separator changed
    assert gateway._data_volume("t", "a-b", lab("t", "a-b")) == "t-a-b-data"
    assert volumes.created == []


def test_a_volume_named_for_this_node_but_labelled_for_another_is_refused(volumes: FakeVolumes) -> None:
    volumes.volumes.append(FakeVolume("t_a-b_data", lab("t-a", "b")))
    with pytest.raises(OperationFailed) as exc:
        gateway._data_volume("t", "a-b", lab("t", "a-b"))
    assert exc.value.message == (
        "node a-b step 'create volume': volume t_a-b_data belongs to node 'b' of topology 't-a', not to node 'a-b' "
        "of topology 't': refusing to mount another's data")
    assert volumes.created == []
