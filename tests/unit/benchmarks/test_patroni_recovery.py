"""benchmarks/patroni_recovery.py: its topologies pass validation and have the shape the tables
describe; summaries take medians of the recovered rounds; the tables give ratios to the bare
pg_promote() at the same round trip."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pgtopo.model.loader import load
from tests.support.topologies import REPO


def bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_patroni_recovery", REPO / "benchmarks" / "patroni_recovery.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


B = bench_module()


@pytest.mark.parametrize("key", [c.key for c in B.CONFIGS])
def test_every_configuration_is_a_valid_topology_of_the_shape(key: str, tmp_path: Path) -> None:
    (config,) = B.select(key)
    name = B.topology_name(config, "pd-")
    assert name.startswith("pd-") and len(name) <= 20
    topo = load(B.write_topology(config, name, tmp_path))
    main = topo.clusters["main"]
    assert {n: s.region for n, s in main.nodes.items()} == {"pg-a": "us-east", "pg-b": "eu-west", "pg-c": "ap-south"}
    assert main.primary_name == "pg-a"
    assert {topo.rtt_ms(a, b) for a in topo.regions for b in topo.regions if a != b} == {config.rtt_ms}
    if config.method == "patroni":
        assert main.ha == "patroni" and main.patroni is not None
        assert (main.patroni.ttl, main.patroni.loop_wait, main.patroni.retry_timeout) == (
            config.timing.ttl, config.timing.loop_wait, config.timing.retry_timeout)
        regions = [m.region for m in topo.dcs_members()]
        assert regions == (["us-east"] * 3 if config.local_dcs else ["us-east", "eu-west", "ap-south"])
    else:
        assert main.ha == "manual" and topo.dcs_members() == []


def test_names_are_distinct_and_the_configurations_cover_the_issue() -> None:
    names = [B.topology_name(c, "pd-") for c in B.CONFIGS]
    assert len(set(names)) == len(names)
    keys = {c.key for c in B.CONFIGS}
    for rtt in (0, 80, 200):
        assert {f"promote-{rtt}", f"patroni-tuned-{rtt}"} <= keys
    assert {"manual-0", "patroni-defaults-0", "patroni-tuned-80-local-dcs", "patroni-tuned-200-local-dcs"} <= keys
    (defaults,) = B.select("patroni-defaults-0")
    assert (defaults.timing.ttl, defaults.timing.loop_wait, defaults.timing.retry_timeout) == (30, 10, 10)


def test_select_refuses_an_unknown_key() -> None:
    with pytest.raises(SystemExit, match="unknown configuration"):
        B.select("promote-0,patroni-fast")


def test_ratio_and_median() -> None:
    assert B.ratio(3.0, 1.5) == 2.0
    assert B.ratio(None, 1.5) is None and B.ratio(3.0, None) is None and B.ratio(3.0, 0.0) is None
    assert B.median([3.0, None, 1.0, 2.0]) == 2.0 and B.median([None]) is None


def test_summaries_take_recovered_rounds_only() -> None:
    configs = B.select("promote-0,patroni-tuned-0")
    rounds = [
        B.Round("promote-0", unavailable_s=0.4, recovered=True, new_primary="pg-b", commit_ms=1.0),
        B.Round("promote-0", unavailable_s=0.6, recovered=True, new_primary="pg-b", commit_ms=3.0),
        B.Round("patroni-tuned-0", unavailable_s=22.0, recovered=True, new_primary="pg-c", etcd_put_ms=2.0),
        B.Round("patroni-tuned-0", unavailable_s=90.0, recovered=False, etcd_put_ms=4.0),
        B.Round("patroni-tuned-0", notes=["`up` exited with 1: boom"]),
    ]
    s = B.summarize(rounds, configs)
    assert (s["promote-0"].runs, s["promote-0"].unavailable_s, s["promote-0"].commit_ms) == (2, 0.5, 2.0)
    assert (s["promote-0"].low, s["promote-0"].high) == (0.4, 0.6)
    tuned = s["patroni-tuned-0"]
    assert (tuned.runs, tuned.unavailable_s, tuned.etcd_put_ms, tuned.new_primaries) == (1, 22.0, 3.0, ("pg-c",))
    assert tuned.etcd_keepalive_ms is None  # none of its rounds measured it
    assert tuned.notes == ("round 3: `up` exited with 1: boom",)


def test_report_rows_and_ratios() -> None:
    configs = B.select("promote-0,manual-0,patroni-tuned-0,promote-80,patroni-tuned-80,patroni-tuned-80-local-dcs")
    rounds = [
        B.Round("promote-0", unavailable_s=0.5, recovered=True, new_primary="pg-b"),
        B.Round("manual-0", unavailable_s=2.0, recovered=True, new_primary="pg-b"),
        B.Round("patroni-tuned-0", unavailable_s=20.0, recovered=True, new_primary="pg-c", etcd_put_ms=1.0,
                commit_ms=1.0),
        B.Round("promote-80", unavailable_s=1.0, recovered=True, new_primary="pg-b"),
        B.Round("patroni-tuned-80", unavailable_s=25.0, recovered=True, new_primary="pg-b", etcd_put_ms=90.0,
                etcd_keepalive_ms=85.0, commit_ms=1.2, etcd_leader="etcd-eu-west"),
        B.Round("patroni-tuned-80-local-dcs", unavailable_s=21.0, recovered=True, new_primary="pg-b",
                etcd_put_ms=1.5, etcd_keepalive_ms=0.5, commit_ms=1.0, etcd_leader="etcd-us-east-2"),
    ]
    text = B.report(B.summarize(rounds, configs), rounds)
    lines = text.splitlines()
    manual = next(ln for ln in lines if ln.startswith("| ha: manual"))
    assert "| 2.00 s | 4.00x | 1 | pg-b |" in manual
    tuned = next(ln for ln in lines if ln.startswith("| Patroni (ttl 20"))
    assert "| 20.00 s | 40.0x | 1 | pg-c |" in tuned
    assert "| 80 ms | 25.00 s | 25.0x | 21.00 s | 21.0x | 1.00 s |" in lines
    # The quorum's cost by where the etcd leader was, against the single-region DCS at the same round trip.
    assert "| 80 ms | 3 in us-east | us-east | 1 | 0.5 ms | 1.5 ms | 1.0 ms |" in lines
    assert "| 80 ms | us-east, eu-west, ap-south | eu-west | 1 | 85.0 ms (170.0x) | 90.0 ms (60.0x) | 1.2 ms (1.20x) |" in lines
    assert "| 0 ms | us-east, eu-west, ap-south | ? | 1 | - | 1.0 ms | 1.0 ms |" in lines  # no single-region DCS at 0 ms
    assert not any(ln.startswith("| 200 ms") for ln in lines)  # nothing measured there: no row
    assert "Patroni (ttl 30" not in text  # the defaults were not run


def test_quorum_table_groups_rounds_by_the_etcd_leader() -> None:
    rounds = [B.Round("patroni-tuned-200", etcd_put_ms=200.0, etcd_keepalive_ms=1.0, commit_ms=0.4,
                      etcd_leader="etcd-us-east"),
              B.Round("patroni-tuned-200", etcd_put_ms=400.0, etcd_keepalive_ms=200.0, commit_ms=0.4,
                      etcd_leader="etcd-ap-south"),
              B.Round("patroni-tuned-200", etcd_put_ms=210.0, etcd_keepalive_ms=3.0, commit_ms=0.6,
                      etcd_leader="etcd-us-east"),
              B.Round("patroni-tuned-200-local-dcs", etcd_put_ms=2.0, etcd_keepalive_ms=1.0, commit_ms=0.5,
                      etcd_leader="etcd-us-east-3"),
              B.Round("patroni-defaults-0", etcd_put_ms=9.0, etcd_keepalive_ms=9.0, commit_ms=9.0),  # not tuned: left out
              B.Round("promote-200", unavailable_s=1.0, recovered=True)]
    rows = [ln for ln in B.quorum_table(rounds).splitlines() if ln.startswith("| 200 ms")]
    assert rows == ["| 200 ms | 3 in us-east | us-east | 1 | 1.0 ms | 2.0 ms | 0.5 ms |",
                    "| 200 ms | us-east, eu-west, ap-south | ap-south | 1 | 200.0 ms (200.0x) | 400.0 ms (200.0x) "
                    "| 0.4 ms (0.80x) |",
                    "| 200 ms | us-east, eu-west, ap-south | us-east | 2 | 2.0 ms (2.00x) | 205.0 ms (102.5x) "
                    "| 0.5 ms (1.00x) |"]
    assert "9.0 ms" not in B.quorum_table(rounds)


def test_leader_region() -> None:
    (spread,) = B.select("patroni-tuned-80")
    (local,) = B.select("patroni-tuned-80-local-dcs")
    assert B.leader_region(spread, "etcd-ap-south") == "ap-south"
    assert B.leader_region(local, "etcd-us-east-3") == "us-east"
    assert B.leader_region(spread, None) == "?"


def test_report_says_what_was_not_measured() -> None:
    configs = B.select("promote-0,patroni-defaults-0")
    rounds = [B.Round("promote-0", unavailable_s=0.5, recovered=True),
              B.Round("patroni-defaults-0", notes=["no commit acknowledged on a new timeline within 3 x ttl + 60 s"])]
    text = B.report(B.summarize(rounds, configs), rounds)
    row = next(ln for ln in text.splitlines() if ln.startswith("| Patroni (ttl 30"))
    assert "| not measured | - | 0 |" in row
    assert "- patroni-defaults-0 round 1: no commit acknowledged" in text
