"""`up` brings nodes up in waves: a node once its upstream is up, a few clones per upstream at a time."""

from __future__ import annotations

from pgtopo.lifecycle import deploy
from pgtopo.model.topology import Topology

FAN = """
name: fan
regions: {dc1: {}}
clusters:
  main:
    nodes:
      p: {region: dc1, role: primary}
      r1: {region: dc1, upstream: p}
      r2: {region: dc1, upstream: p}
      r3: {region: dc1, upstream: p}
      r4: {region: dc1, upstream: p}
      c1: {region: dc1, upstream: r1}
"""


def topo() -> Topology:
    from ruamel.yaml import YAML

    return Topology.model_validate(YAML(typ="safe").load(FAN))


def test_a_wave_holds_nodes_whose_upstream_is_up_and_at_most_three_clones_per_upstream() -> None:
    t = topo()
    primaries = {"main": "p"}
    todo = ["p", "r1", "r2", "r3", "r4", "c1"]
    assert deploy._wave(t, todo, done=set(), primaries=primaries) == ["p"]
    assert deploy._wave(t, todo[1:], done={"p"}, primaries=primaries) == ["r1", "r2", "r3"]
    assert deploy._wave(t, ["r4", "c1"], done={"p", "r1", "r2", "r3"}, primaries=primaries) == ["r4", "c1"]
    assert deploy._wave(t, ["c1"], done={"p"}, primaries=primaries) == []  # its upstream is not up


def test_clones_already_running_count_against_their_upstream() -> None:
    t = topo()
    primaries = {"main": "p"}
    assert deploy._wave(t, ["r3", "r4"], done={"p"}, primaries=primaries, busy=["r1", "r2"]) == ["r3"]
    assert deploy._wave(t, ["r4", "c1"], done={"p", "r1"}, primaries=primaries, busy=["r2", "r3"]) == ["r4", "c1"]
