#!/usr/bin/env python3
"""Replication throughput through the latency relay at 0 ms, against a direct link, in one run.

Two topologies run side by side:

- ``bench-direct``: one region, primary and replica on the same Docker network (no relay);
- ``bench-relay``: two regions with a 0 ms link, so the replica streams through the relay.

Each round pauses the replica's WAL receiver (``primary_conninfo = ''``; its slot keeps the
WAL), writes a backlog of WAL on the primary with a bulk ``INSERT ... generate_series``,
resumes the receiver and times the catch-up by sampling ``pg_last_wal_receive_lsn()``
(what crossed the link) and ``pg_last_wal_replay_lsn()`` on the replica. Rates are taken
between 10 % and 90 % of the backlog, so the receiver's restart does not count. The relay's
CPU time (``docker stats``) before and after a catch-up gives its cost per GB forwarded.
Rounds alternate the two paths; the table shows medians.

    .venv/bin/python benchmarks/relay_throughput.py [--mb 384] [--rounds 3] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from docker.models.containers import Container

from pgtopo.lifecycle import deploy
from pgtopo.model import loader
from pgtopo.network import relay_container
from pgtopo.postgres import connect
from pgtopo.postgres.lsn import parse_lsn
from pgtopo.runtime import gateway

MB = 1024 * 1024
ROWS_PER_INSERT = 100_000
PAD = 400  # bytes of payload per row

FILES = {
    "bench-direct": """
name: bench-direct
regions: {one: {}}
clusters:
  main:
    nodes:
      bench-p: {region: one, role: primary}
      bench-r: {region: one, upstream: bench-p}
""",
    "bench-relay": """
name: bench-relay
regions: {one: {}, two: {}}
latency:
  - between: [one, two]
    rtt_ms: 0
clusters:
  main:
    nodes:
      bench-p: {region: one, role: primary}
      bench-r: {region: two, upstream: bench-p}
""",
}
PATHS = {"bench-direct": "direct (same network)", "bench-relay": "relay (two regions, rtt 0)"}


@dataclass
class Round:
    backlog: int  # bytes of WAL
    receive_mb_s: float
    replay_mb_s: float
    relay_cpu_s: float | None


def value(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def lsn(conn: psycopg.Connection[Any], query: str) -> int:
    got = parse_lsn(str(value(conn, query)))
    assert got is not None
    return got


def wait(what: str, check: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def one_round(name: str, mb: int, relay: Container | None) -> Round:
    with connect.connect(name, "bench-p") as p, connect.connect(name, "bench-r") as r:
        p.execute("CREATE TABLE IF NOT EXISTS bench (id bigint, pad text)")
        p.execute("TRUNCATE bench")
        p.execute("CHECKPOINT")
        wait("the replica to catch up before the round",
             lambda: lsn(r, "SELECT pg_last_wal_replay_lsn()") >= lsn(p, "SELECT pg_current_wal_lsn()"))
        # Pause streaming: with an empty primary_conninfo the startup process runs no receiver.
        r.execute("ALTER SYSTEM SET primary_conninfo = ''")
        r.execute("SELECT pg_reload_conf()")
        wait("the WAL receiver to stop", lambda: value(r, "SELECT count(*) FROM pg_stat_wal_receiver") == 0)
        start = lsn(p, "SELECT pg_current_wal_lsn()")
        while lsn(p, "SELECT pg_current_wal_lsn()") - start < mb * MB:
            p.execute(f"INSERT INTO bench SELECT g, repeat('x', {PAD}) FROM generate_series(1, {ROWS_PER_INSERT}) g")
        target = lsn(p, "SELECT pg_current_wal_lsn()")
        backlog = target - lsn(r, "SELECT pg_last_wal_replay_lsn()")
        cpu0 = gateway.stats_cpu_seconds(relay) if relay is not None else None

        r.execute("ALTER SYSTEM RESET primary_conninfo")
        r.execute("SELECT pg_reload_conf()")
        base = lsn(r, "SELECT pg_last_wal_replay_lsn()")
        samples: list[tuple[float, int, int]] = []
        while True:
            row = r.execute("SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text").fetchone()
            assert row is not None
            recv, replay = parse_lsn(str(row[0])) or 0, parse_lsn(str(row[1])) or 0
            samples.append((time.monotonic(), recv, replay))
            if replay >= target:
                break
            time.sleep(0.02)
        cpu1 = gateway.stats_cpu_seconds(relay) if relay is not None else None
        p.execute("TRUNCATE bench")
    return Round(backlog=backlog, receive_mb_s=_rate(samples, 1, base, target),
                 replay_mb_s=_rate(samples, 2, base, target),
                 relay_cpu_s=None if cpu0 is None or cpu1 is None else cpu1 - cpu0)


def _rate(samples: list[tuple[float, int, int]], col: int, base: int, target: int) -> float:
    """MB/s between the first samples at or beyond 10 % and 90 % of the backlog."""
    lo, hi = base + (target - base) // 10, base + (target - base) * 9 // 10
    t_lo = next(s for s in samples if s[col] >= lo)
    t_hi = next(s for s in samples if s[col] >= hi)
    if t_hi[0] <= t_lo[0]:
        return float("inf")
    return (t_hi[col] - t_lo[col]) / MB / (t_hi[0] - t_lo[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--mb", type=int, default=384, help="WAL backlog per round, in MiB")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the topologies running")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pgtopo-relay-throughput-"))
    os.environ.setdefault("PGTOPO_STATE_DIR", str(workdir / "state"))
    topos = {}
    for name, text in FILES.items():
        (workdir / f"{name}.yaml").write_text(text)
        topos[name] = loader.load(workdir / f"{name}.yaml")
    results: dict[str, list[Round]] = {name: [] for name in FILES}
    load_before = os.getloadavg()[0]
    try:
        for name, topo in topos.items():
            print(f"starting {name} ...", file=sys.stderr)
            deploy.up(topo, topo_path=workdir / f"{name}.yaml", progress=lambda _s, _m: None)
        for i in range(args.rounds):
            order = list(FILES) if i % 2 == 0 else list(reversed(FILES))
            for name in order:
                rnd = one_round(name, args.mb, relay_container.running_relay(topos[name]))
                results[name].append(rnd)
                cpu = f", relay CPU {rnd.relay_cpu_s:.2f} s" if rnd.relay_cpu_s is not None else ""
                print(f"round {i + 1} {name}: {rnd.backlog / MB:.0f} MiB, receive {rnd.receive_mb_s:.0f} MiB/s, "
                      f"replay {rnd.replay_mb_s:.0f} MiB/s{cpu}", file=sys.stderr)
    finally:
        if not args.keep:
            for name in FILES:
                deploy.down(name, volumes=True)
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(results))
    print(f"\nHost: {os.cpu_count()} CPUs, load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end "
          "(other work on the machine shows up as spread between rounds).")
    return 0


def table(results: dict[str, list[Round]]) -> str:
    med = {n: (statistics.median(r.receive_mb_s for r in rs), statistics.median(r.replay_mb_s for r in rs))
           for n, rs in results.items()}
    relay_rounds = results["bench-relay"]
    cpu_per_gb = statistics.median(r.relay_cpu_s / (r.backlog / 1e9) for r in relay_rounds if r.relay_cpu_s is not None)
    backlog = statistics.median(r.backlog for rs in results.values() for r in rs) / MB
    lines = [
        f"WAL backlog per round: {backlog:.0f} MiB; {len(relay_rounds)} rounds per path; medians.",
        "",
        "| path | receive (MiB/s) | replay (MiB/s) | relay CPU (s per GB forwarded) |",
        "|---|---:|---:|---:|",
    ]
    for name, (rx, rp) in med.items():
        cpu = f"{cpu_per_gb:.2f}" if name == "bench-relay" else "-"
        lines.append(f"| {PATHS[name]} | {rx:.0f} | {rp:.0f} | {cpu} |")
    rx_ratio = med["bench-relay"][0] / med["bench-direct"][0]
    rp_ratio = med["bench-relay"][1] / med["bench-direct"][1]
    lines.append(f"| **ratio relay / direct** | **{rx_ratio:.2f}** | **{rp_ratio:.2f}** | |")
    # Each round runs both paths back to back: the ratio within a round cancels slow drifts in
    # the machine's load better than the ratio of medians does.
    paired = [r.replay_mb_s / d.replay_mb_s for r, d in zip(results["bench-relay"], results["bench-direct"], strict=True)]
    lines.append(f"| ratio relay / direct, median of per-round ratios | | {statistics.median(paired):.2f} | |")
    spread = {n: (min(r.receive_mb_s for r in rs), max(r.receive_mb_s for r in rs)) for n, rs in results.items()}
    lines.append("")
    lines.append("Receive range per path: " + "; ".join(f"{PATHS[n]} {lo:.0f}-{hi:.0f} MiB/s"
                                                      for n, (lo, hi) in spread.items()) + ".")
    lines.append(f"Target: relay/direct >= 0.8 on replay: {'met' if rp_ratio >= 0.8 else 'NOT met'}.")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
