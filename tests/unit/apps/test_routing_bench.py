"""The read-your-writes benchmark's statistics, options and report: pure, no database."""

from __future__ import annotations

import pytest

from pgtopo.apps import routing_bench
from pgtopo.errors import InputError


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert routing_bench.percentile(values, 50) == 50
    assert routing_bench.percentile(values, 99) == 99
    assert routing_bench.percentile(values, 100) == 100
    assert routing_bench.percentile([3.0, 1.0, 2.0], 50) == 2
    assert routing_bench.percentile([7.0], 99) == 7
    assert routing_bench.percentile([], 50) == 0


def test_summarize() -> None:
    ops = [routing_bench.Op(write_s=0.08, read_s=0.001, stale=False, local=True),
           routing_bench.Op(write_s=0.09, read_s=0.002, stale=True, local=True),
           routing_bench.Op(write_s=0.10, read_s=0.080, stale=False, local=False, waited_s=0.05),
           routing_bench.Op(write_s=0.11, read_s=0.090, stale=False, local=False)]
    s = routing_bench.summarize("lsn", ops)
    assert (s.reads, s.stale, s.local_share) == (4, 1, 0.5)
    assert s.read_p50_ms == pytest.approx(2.0)
    assert s.read_p99_ms == pytest.approx(90.0)
    assert s.write_p50_ms == pytest.approx(90.0)
    assert s.wait_p99_ms == pytest.approx(50.0)
    assert routing_bench.summarize("x", []).local_share == 0


def test_parse_strategies() -> None:
    assert routing_bench.parse_strategies("lsn, replica-only,lsn") == ["lsn", "replica-only"]
    with pytest.raises(InputError, match=r"^unknown strategy 'fast' \(known: lsn, time-window, primary-only, replica-only\)$"):
        routing_bench.parse_strategies("lsn,fast")
    with pytest.raises(InputError):
        routing_bench.parse_strategies(" , ")


def test_link_override_keeps_jitter_and_bandwidth() -> None:
    assert routing_bench.link_override({"rtt_ms": 80, "jitter_ms": 2, "bandwidth_kbps": 1000}, rtt_ms=100) == {
        "rtt_ms": 100, "jitter_ms": 2.0, "bandwidth_kbps": 1000}
    assert routing_bench.link_override(None, rtt_ms=5) == {"rtt_ms": 5, "jitter_ms": 0.0, "bandwidth_kbps": None}
    assert routing_bench.link_override({"rtt_ms": 80, "jitter_ms": 30}, rtt_ms=10)["jitter_ms"] == 10


def test_markdown_table() -> None:
    setup = routing_bench.Setup(topology="t", cluster="main", region="eu-west", primary="pg-us", replica="pg-eu",
                      replica_local=True, link=("us-east", "eu-west"), link_rtt_ms=100, slowed=True, sessions=2,
                      ops=3, max_wait_ms=100)
    result = routing_bench.BenchResult(setup=setup, stats=[
        routing_bench.summarize("lsn", [routing_bench.Op(0.1, 0.002, False, True)])
    ])
    lines = routing_bench.markdown(result).splitlines()
    assert lines[0].startswith("topology t, cluster main, application in eu-west: primary pg-us, replica pg-eu (local)")
    assert lines[2] == "| strategy | reads | stale | local | read p50 | read p99 | write p50 | write p99 | wait p99 |"
    assert lines[4] == "| lsn | 1 | 0 | 100% | 2.0 ms | 2.0 ms | 100.0 ms | 100.0 ms | 0.0 ms |"
