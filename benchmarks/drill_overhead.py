#!/usr/bin/env python3
"""What watching costs: the drill's ledger writer with and without the samplers and checkers.

    .venv/bin/python benchmarks/drill_overhead.py [--seconds 15] [--rounds 3] [--wall] [--keep]

On a copy of topologies/global-saas.yaml (``dr-bench``, brought up for the run and removed
afterwards unless --keep): one ledger writer in us-east commits as fast as it can (no rate limit)
on the primary, alone, then with every node sampled every 250 ms (writable, positions, the
replication edges, the bank's balances on every node: what a drill runs). Rounds alternate the
two so that other work on the machine weighs on both alike; the table gives the medians and
the cost of sampling (the issue's budget: 10 %).

``--wall`` also runs a 60-second drill with no fault (the same workload as the shipped drills)
and reports its wall time, setup, verdict and report included (the issue's budget: 75 s).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from pgtopo.drill import runner, samplers, spec, tables, targets, workloads
from pgtopo.drill.deadline import Deadlines
from pgtopo.drill.events import DrillLog, Recorder
from pgtopo.errors import PgtopoError
from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.model.topology import Topology

REPO = Path(__file__).resolve().parents[1]
NAME = "dr-bench"
WALL_DRILL = """\
drill: wall-time
topology: {topology}
duration: 60s
workload:
  ledger: {{regions: [us-east, eu-west], rate: 50}}
  bank: {{region: us-east, rate: 20}}
  readers:
    - {{region: eu-west, strategy: lsn, sessions: 2, rate: 5}}
expect:
  acked_lost: 0
  split_brain: false
  bank_violations: 0
  logical_complete: true
"""


def quiet(_subject: str, _message: str) -> None:
    pass


def one_round(topo: Topology, t: targets.Target, *, name: str, seconds: float, sampled: bool) -> tuple[float, int]:
    """(commits per second, ticks sampled) of one writer in us-east for ``seconds``; ``name`` is new each
    round (its rows are ``(name, 1)``, ``(name, 2)``...)."""
    rec = Recorder(DrillLog(drill="bench", topology=topo.name, cluster=t.cluster, started_at="", duration=seconds,
                            sample_every=0.25))
    deadlines = Deadlines()
    halt_w, halt_s = threading.Event(), threading.Event()
    source = workloads.EndpointCache(topo, region="us-east", cluster=t.cluster, database=t.database)
    writer = workloads.LedgerWriter(name, source=source, rec=rec, deadlines=deadlines, rate=0, timeout=2.0,
                                    halt=halt_w)
    dbs = {t.cluster: t.database, **{s.cluster: s.database for s in t.subscribers}}
    watchers = [samplers.NodeSampler(topo, node=n, cluster=c, database=dbs.get(c, "postgres"), bank=c in dbs, rec=rec,
                                     deadlines=deadlines, every=0.25, halt=halt_s)
                for c, n, _ in topo.all_nodes()] if sampled else []
    for th in watchers:
        th.start()
    time.sleep(1.0)  # samplers connected before the writer is timed
    writer.start()
    time.sleep(seconds)
    halt_w.set()
    writer.join()
    halt_s.set()
    for th in watchers:
        th.join()
    deadlines.close()
    ok = [a for a in rec.log.attempts if a.outcome == "ok"]
    span = (max(a.end for a in ok) - min(a.start for a in ok)) if len(ok) > 1 else seconds
    return len(ok) / span, len({s.tick for s in rec.log.samples})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wall", action="store_true", help="also time a 60-second drill end to end")
    parser.add_argument("--keep", action="store_true", help="leave dr-bench running")
    args = parser.parse_args(argv)
    logging.getLogger("psycopg").addHandler(logging.NullHandler())  # as `pgtopo drill run` does
    tmp = Path(tempfile.mkdtemp(prefix="drill-bench-"))
    os.environ.setdefault("PGTOPO_STATE_DIR", str(tmp / "state"))
    src = (REPO / "topologies" / "global-saas.yaml").read_text().replace("name: global-saas", f"name: {NAME}", 1)
    path = tmp / "global-saas.yaml"
    path.write_text(src)
    topo = load(path)
    d = spec.parse({"drill": "bench", "topology": str(path), "duration": args.seconds,
                    "workload": {"bank": {}}, "expect": {"split_brain": False}})
    t = targets.check(d, topo)
    try:
        deploy.down(NAME, volumes=True)
        print(f"bringing up {NAME}", file=sys.stderr)
        deploy.up(topo, topo_path=path, progress=quiet)
        tables.prepare(topo, t, accounts=10, balance=1000, progress=quiet)
        alone: list[float] = []
        watched: list[float] = []
        for i in range(args.rounds):
            for sampled in ((False, True) if i % 2 == 0 else (True, False)):
                rate, ticks = one_round(topo, t, name=f"round{i}-{'sampled' if sampled else 'alone'}@us-east",
                                        seconds=args.seconds, sampled=sampled)
                (watched if sampled else alone).append(rate)
                print(f"  round {i + 1}: {'sampled' if sampled else 'alone':7} {rate:7.0f} commits/s"
                      + (f" ({ticks} ticks)" if sampled else ""), file=sys.stderr)
        tables.remove(topo, t, progress=quiet, note=lambda m: print(m, file=sys.stderr))
        a, w = statistics.median(alone), statistics.median(watched)
        load1, _, _ = os.getloadavg()
        print(f"# Drill overhead ({time.strftime('%Y-%m-%d')}; {args.rounds} rounds of {args.seconds:g} s; "
              f"load average {load1:.1f} at the end)\n")
        print("| ledger writer (us-east, unlimited) | commits/s (median) | rounds |")
        print("|---|---:|---|")
        print(f"| alone | {a:.0f} | {', '.join(f'{x:.0f}' for x in alone)} |")
        print(f"| with samplers and checkers (every node, 250 ms) | {w:.0f} | {', '.join(f'{x:.0f}' for x in watched)} |")
        print(f"\nsampling costs {100 * (a - w) / a:.1f} % of the writer's rate (budget: 10 %)")
        if args.wall:
            drill = tmp / "wall.yaml"
            drill.write_text(WALL_DRILL.format(topology=path))
            result = runner.run(drill, report_dir=tmp / "wall-report", progress=quiet)
            print(f"\n60-second drill: wall time {result.wall_s:.1f} s (budget 75 s), workload {result.log.ended:.1f} s, "
                  f"verdict {'PASS' if result.verdict.passed else 'FAIL'}")
    except PgtopoError as exc:
        print("error: " + "\n".join(exc.lines()), file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            deploy.down(NAME, volumes=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
