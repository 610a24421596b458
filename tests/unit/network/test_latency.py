"""The pure parts of simulated latency and partitions: no Docker daemon needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgtopo.errors import InputError, OperationFailed
from pgtopo.model.topology import Topology
from pgtopo.network import latency as L
from pgtopo.network import netem, relay_container
from pgtopo.runtime import state


def single_region() -> Topology:
    return Topology.model_validate({
        "name": "solo", "regions": {"here": {}},
        "clusters": {"main": {"nodes": {"a": {"region": "here", "role": "primary"},
                                        "b": {"region": "here", "upstream": "a"}}}},
    })


# -- durations -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "ms"), [("120ms", 120.0), ("0.2s", 200.0), ("120", 120.0), (" 5 MS ", 5.0),
                                          ("0", 0.0), ("1.5s", 1500.0), ("0.25ms", 0.25)])
def test_parse_duration(text: str, ms: float) -> None:
    assert L.parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "fast", "ms", "-5ms", "nan", "inf", "12m", "1e999s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        L.parse_duration_ms(text)


# -- matrix --------------------------------------------------------------------------------------

def test_matrix_declared_in_effect_measured(topo: Topology) -> None:
    in_effect = relay_container.relay_config(topo, links={"eu-west|us-east": {"rtt_ms": 150, "jitter_ms": 0,
                                                               "bandwidth_kbps": None}})["links"]
    rows = L.matrix(topo, in_effect=in_effect, partitioned=["ap-south"],
                    measured={("us-east", "eu-west"): 151.26, ("us-east", "ap-south"): None})
    assert [(r.a, r.b) for r in rows] == [("us-east", "eu-west"), ("us-east", "ap-south"), ("eu-west", "ap-south")]
    first = rows[0]
    assert first.declared == L.LinkSetting(80, 2) and first.in_effect == L.LinkSetting(150, 0)
    assert first.overridden and first.measured_ms == 151.3 and first.cut == ()
    assert not rows[1].overridden and rows[1].measured_ms is None and rows[1].cut == ("ap-south",)
    assert rows[2].to_json() == {
        "regions": ["eu-west", "ap-south"],
        "declared": {"rtt_ms": 120.0, "jitter_ms": 0.0, "bandwidth_kbps": None},
        "in_effect": {"rtt_ms": 120.0, "jitter_ms": 0.0, "bandwidth_kbps": None},
        "overridden": False, "measured_rtt_ms": None, "partitioned": ["ap-south"]}


def test_matrix_of_a_stopped_topology_has_no_effect_column(topo: Topology) -> None:
    rows = L.matrix(topo, in_effect=None, partitioned=[], measured={})
    assert all(r.in_effect is None and not r.overridden and r.declared is not None for r in rows)


def test_single_region_has_no_pairs() -> None:
    assert L.matrix(single_region(), in_effect=None, partitioned=[], measured={}) == []
    mech = netem.mechanism(topology="solo", image="unused", multi_region=False, running=False)
    assert mech.name == "none" and "single region" in mech.describe()


# -- latency set / reset ---------------------------------------------------------------------------

def test_override_link(topo: Topology) -> None:
    before: dict[str, dict[str, Any]] = {"ap-south|us-east": {"rtt_ms": 300.0, "jitter_ms": 0.0,
                                                             "bandwidth_kbps": None}}
    out = L.override_link(topo, before, "us-east", "eu-west", rtt="120ms", jitter="5ms")
    assert out == {"ap-south|us-east": before["ap-south|us-east"],
                   "eu-west|us-east": {"rtt_ms": 120.0, "jitter_ms": 5.0, "bandwidth_kbps": None}}
    assert "eu-west|us-east" not in before  # inputs are not changed
    # The same value as the file is no override at all.
    assert L.override_link(topo, out, "eu-west", "us-east", rtt="0.08s", jitter="2") == {
        "ap-south|us-east": before["ap-south|us-east"]}
    # Without --jitter the jitter is 0, not the file's.
    assert L.override_link(topo, {}, "us-east", "eu-west", rtt="80ms", jitter=None)["eu-west|us-east"]["jitter_ms"] == 0


def test_override_keeps_the_declared_bandwidth() -> None:
    t = Topology.model_validate({
        "name": "bw", "regions": {"a": {}, "b": {}},
        "latency": [{"between": ["a", "b"], "rtt_ms": 10, "bandwidth_kbps": 5000}],
        "clusters": {"main": {"nodes": {"p": {"region": "a", "role": "primary"}}}},
    })
    assert L.override_link(t, {}, "b", "a", rtt="50ms", jitter=None) == {
        "a|b": {"rtt_ms": 50.0, "jitter_ms": 0.0, "bandwidth_kbps": 5000.0}}


@pytest.mark.parametrize(("a", "b", "rtt", "jitter", "message"), [
    ("us-east", "mars", "10ms", None, "unknown region 'mars' (known: us-east, eu-west, ap-south)"),
    ("us-east", "us-east", "10ms", None, "a link joins two different regions (got 'us-east' twice)"),
    ("us-east", "eu-west", "soon", None, "'soon' is not a duration (examples: 120ms, 0.2s)"),
    ("us-east", "eu-west", "10ms", "-1ms", "'-1ms' is not a duration >= 0 (examples: 120ms, 0.2s)"),
    ("us-east", "eu-west", "10ms", "11ms", "jitter 11 ms is larger than the round trip 10 ms"),
    ("us-east", "eu-west", "11s", None, "round trip 11000 ms is more than 10000 ms"),
])
def test_override_link_rejects(topo: Topology, a: str, b: str, rtt: str, jitter: str | None, message: str) -> None:
    with pytest.raises(InputError) as exc:
        L.override_link(topo, {}, a, b, rtt=rtt, jitter=jitter)
    assert exc.value.message == message
    assert exc.value.exit_code == 2


def test_reset_links(topo: Topology) -> None:
    current: dict[str, dict[str, Any]] = {"eu-west|us-east": {"rtt_ms": 1}, "ap-south|us-east": {"rtt_ms": 2}}
    assert L.reset_links(topo, current) == {}
    assert L.reset_links(topo, current, ("us-east", "eu-west")) == {"ap-south|us-east": {"rtt_ms": 2}}
    assert L.reset_links(topo, current, ("eu-west", "ap-south")) == current
    with pytest.raises(InputError, match="unknown region 'nowhere'"):
        L.reset_links(topo, current, ("nowhere", "eu-west"))


# -- partitions ----------------------------------------------------------------------------------

def test_partition_set_logic(topo: Topology) -> None:
    assert L.kind_of(topo, "eu-west") == "region" and L.kind_of(topo, "pg-eu") == "node"
    assert L.add_partition(topo, [], "eu-west") == ["eu-west"]
    assert L.add_partition(topo, ["eu-west"], "eu-west") == ["eu-west"]  # idempotent
    assert L.add_partition(topo, ["eu-west"], "pg-billing") == ["eu-west", "pg-billing"]
    assert L.remove_partition(topo, ["eu-west", "pg-billing"], "eu-west") == ["pg-billing"]
    assert L.remove_partition(topo, ["eu-west", "pg-billing"], None) == []
    with pytest.raises(InputError) as exc:
        L.remove_partition(topo, ["pg-billing"], "eu-west")
    assert exc.value.message == "'eu-west' is not partitioned (partitioned: pg-billing)"
    with pytest.raises(InputError) as exc:
        L.add_partition(topo, [], "pg-xx")
    assert exc.value.message == ("unknown region or node 'pg-xx' (regions: us-east, eu-west, ap-south; "
                                 "nodes: pg-us, pg-eu, pg-billing)")


def test_cut_paths(topo: Topology) -> None:
    assert L.cut_paths(topo, ["eu-west"]) == ["us-east -> pg-eu", "eu-west -> pg-us", "eu-west -> pg-billing",
                                             "ap-south -> pg-eu"]
    assert L.cut_paths(topo, ["pg-billing"]) == ["us-east -> pg-billing", "eu-west -> pg-billing",
                                                "pg-billing -> any other region"]
    assert L.cut_paths(topo, []) == []


# -- state and relay updates, with the relay replaced by a recorder --------------------------------

class FakeRelay:
    """Stands in for ``relay_container.update_relay``: records the config it would have pushed."""

    def __init__(self, fail: bool = False) -> None:
        self.pushed: list[dict[str, Any]] = []
        self.fail = fail

    def __call__(self, topo: Topology) -> None:
        if self.fail:
            raise OperationFailed("relay gone", step="update relay")
        rt = state.load(topo.name)
        self.pushed.append(relay_container.relay_config(topo, links=rt.links_json(), partitioned=rt.partitioned))


@pytest.fixture
def fake_relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRelay:

    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    fake = FakeRelay()
    monkeypatch.setattr(relay_container, "update_relay", fake)
    monkeypatch.setattr(L, "_require_relay", lambda topo: object())
    return fake


def test_partition_and_heal_update_state_and_relay(topo: Topology, fake_relay: FakeRelay) -> None:
    ch = L.partition(topo, "eu-west")
    assert ch.changed and ch.kind == "region" and ch.partitioned == ("eu-west",)
    assert fake_relay.pushed[-1]["partitioned"] == ["eu-west"]
    assert not L.partition(topo, "eu-west").changed and len(fake_relay.pushed) == 1  # no second SIGHUP
    L.partition(topo, "pg-billing")
    healed = L.heal(topo, "eu-west")
    assert healed.partitioned == ("pg-billing",)
    assert healed.paths == ("us-east -> pg-eu", "eu-west -> pg-us", "ap-south -> pg-eu")
    assert fake_relay.pushed[-1]["partitioned"] == ["pg-billing"]
    assert L.heal(topo).changed and state.load(topo.name).partitioned == ()
    assert not L.heal(topo).changed


def test_set_and_reset_update_state_and_relay(topo: Topology, fake_relay: FakeRelay) -> None:
    assert L.set_link(topo, "eu-west", "us-east", rtt="150ms", jitter="3ms") == L.LinkSetting(150, 3)
    assert state.load(topo.name).links == {"eu-west|us-east": state.LinkOverride(rtt_ms=150.0, jitter_ms=3.0)}
    assert fake_relay.pushed[-1]["links"]["eu-west|us-east"]["rtt_ms"] == 150.0
    assert L.reset(topo) == ["eu-west|us-east"]
    assert fake_relay.pushed[-1]["links"] == relay_container.relay_config(topo)["links"]


def test_a_failed_relay_update_leaves_the_state_as_it_was(topo: Topology, fake_relay: FakeRelay) -> None:
    L.partition(topo, "pg-eu")
    fake_relay.fail = True
    with pytest.raises(OperationFailed):
        L.partition(topo, "ap-south")
    with pytest.raises(OperationFailed):
        L.set_link(topo, "eu-west", "us-east", rtt="1s", jitter=None)
    rt = state.load(topo.name)
    assert rt.partitioned == ("pg-eu",) and rt.links == {}


def test_cut_paths_name_the_mesh_of_patroni_and_etcd_members() -> None:
    from pgtopo.model.loader import load
    from tests.support.topologies import TOPOLOGIES

    topo = load(TOPOLOGIES / "global-saas-patroni.yaml")
    paths = L.cut_paths(topo, ["eu-west"])
    assert "us-east -> pg-eu (mesh)" in paths and "ap-south -> pg-eu (mesh)" in paths
    assert "eu-west -> etcd-us-east (mesh)" in paths and "eu-west -> pg-us (mesh)" in paths
    assert not [p for p in paths if p.endswith("(mesh)") and "eu-west" not in p and "pg-eu" not in p
                and "etcd-eu-west" not in p]
