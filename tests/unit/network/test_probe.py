"""`probe.measure_latency` with the relay replaced by a small fake: which ports are probed, fallbacks, timeouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pgtopo.network import probe
from pgtopo.network.relay import RELAY_SCRIPT_PATH
from pgtopo.runtime import gateway, state
from pgtopo.runtime.gateway import ExecResult
from tests.support.global_saas import GLOBAL


class FakeContainer:
    def __init__(self) -> None:
        self.labels: dict[str, str] = {}


def ports_of(cmd: list[str]) -> list[int]:
    return [int(cmd[i + 1]) for i, arg in enumerate(cmd) if arg == "--port"]


def test_measure_latency_falls_back_to_the_other_direction(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path))
    topo = GLOBAL
    answers = {  # port -> median; pg-eu (eu-west) is down: probes towards it fail
        topo.relay_port("us-east", "pg-eu"): None, topo.relay_port("eu-west", "pg-us"): 82.0,
        topo.relay_port("us-east", "pg-billing"): 201.0, topo.relay_port("eu-west", "pg-billing"): 121.0,
    }
    runs: list[list[int]] = []

    def exec_in(_c: object, cmd: list[str], *, user: str = "postgres",
                environment: dict[str, str] | None = None) -> ExecResult:
        assert cmd[:3] == ["python3", RELAY_SCRIPT_PATH, "probe"] and user == "root"
        assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--count") + 1] == "3"
        runs.append(ports_of(cmd))
        out: dict[str, Any] = {"ports": {}, "errors": {}}
        for port in ports_of(cmd):
            ms = answers.get(port)
            if ms is None:
                out["errors"][str(port)] = f"127.0.0.1:{port}: closed before answering"
            else:
                out["ports"][str(port)] = {"samples_ms": [ms - 1, ms, ms + 5], "median_ms": ms, "min_ms": ms - 1}
        return ExecResult(0 if out["ports"] else 1, json.dumps(out), "")

    monkeypatch.setattr(gateway, "containers", lambda _t, kind=None: [FakeContainer()] if kind == "relay" else [])
    monkeypatch.setattr(gateway, "status", lambda _c: "running")
    monkeypatch.setattr(gateway, "exec_in", exec_in)
    assert probe.measure_latency(topo) == {
        ("us-east", "eu-west"): 82.0, ("us-east", "ap-south"): 201.0, ("eu-west", "ap-south"): 121.0}
    # Every pair at once in one run; the pair that did not answer falls back in a second run.
    assert [sorted(r) for r in runs] == [
        sorted([topo.relay_port("us-east", "pg-eu"), topo.relay_port("us-east", "pg-billing"),
                topo.relay_port("eu-west", "pg-billing")]),
        [topo.relay_port("eu-west", "pg-us")]]

    # A partitioned region is not probed at all (the relay would blackhole the probe).
    state.update(topo.name, lambda rt: rt.model_copy(update={"partitioned": ("ap-south",)}))
    runs.clear()
    assert probe.measure_latency(topo) == {
        ("us-east", "eu-west"): 82.0, ("us-east", "ap-south"): None, ("eu-west", "ap-south"): None}
    assert runs == [[topo.relay_port("us-east", "pg-eu")], [topo.relay_port("eu-west", "pg-us")]]

    monkeypatch.setattr(gateway, "containers", lambda _t, kind=None: [])
    assert probe.measure_latency(topo) == dict.fromkeys(topo.region_pairs())


def test_probe_timeout_grows_with_the_round_trip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path))
    timeouts: list[str] = []

    def exec_in(_c: object, cmd: list[str], *, user: str = "postgres",
                environment: dict[str, str] | None = None) -> ExecResult:
        timeouts.append(cmd[cmd.index("--timeout") + 1])
        return ExecResult(1, json.dumps({"ports": {}, "errors": {}}), "probe: timed out")

    monkeypatch.setattr(gateway, "containers", lambda _t, kind=None: [FakeContainer()] if kind == "relay" else [])
    monkeypatch.setattr(gateway, "status", lambda _c: "running")
    monkeypatch.setattr(gateway, "exec_in", exec_in)
    probe.measure_latency(GLOBAL)
    assert timeouts[0] == "2.4"  # 2 s + twice the largest declared RTT in the run (200 ms)
    state.update(GLOBAL.name, lambda rt: rt.model_copy(
        update={"links": {"eu-west|us-east": state.LinkOverride(rtt_ms=3000, jitter_ms=0)}}))
    timeouts.clear()
    probe.measure_latency(GLOBAL)
    assert timeouts[0] == "8"  # 2 s + twice the 3 s set at run time
