#!/usr/bin/env python3
"""Recovery time of `pgtopo failover` on the reference topology, next to a bare pg_promote().

Two topologies run in the same process:

- ``bench-failover``: a copy of ``topologies/global-saas.yaml`` (pg-us primary in us-east,
  pg-eu replica in eu-west behind an 80 ms round trip, billing subscribing with a failover
  slot). Each round: a writer inserts rows through the current primary; the primary is
  killed (SIGKILL); ``failover`` runs exactly as the command does (snapshot, plan, fence,
  promote, first write, subscriber move, loss measurement). Its recovery time is from the
  command start to the first write accepted on the new primary; the writer's gap is what a
  client saw (last acknowledged commit before the kill to the first after). The old primary
  is then rejoined with pg_rewind, so the next round fails back the other way.
- ``bench-promote``: one region, a primary and a freshly cloned replica (brought up anew
  for every round). Its primary is killed and ``SELECT pg_promote(wait => true)`` plus the
  same first write are timed on the replica: the floor any orchestration adds to.

    .venv/bin/python benchmarks/failover.py [--rounds 3] [--keep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from pgtopo.model import loader
from pgtopo.runtime import state

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgtopo.ha import fencing, promotion, rejoin  # noqa: E402
from pgtopo.lifecycle import deploy  # noqa: E402
from pgtopo.model import topology  # noqa: E402
from pgtopo.postgres import connect  # noqa: E402
from pgtopo.postgres.connect import Held  # noqa: E402

BARE = """
name: bench-promote
regions: {one: {}}
clusters:
  main:
    nodes:
      bench-a: {region: one, role: primary}
      bench-b: {region: one, upstream: bench-a}
"""


def quiet(_subject: str, _message: str) -> None:
    pass


class Writer(threading.Thread):
    """Inserts rows on the current primary; keeps the time of every acknowledged commit."""

    def __init__(self, topo: topology.Topology, start_id: int) -> None:
        super().__init__(daemon=True)
        self.topo, self.next_id = topo, start_id
        self.acks: list[tuple[float, str]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        node = ""
        while not self.halt.is_set():
            try:
                if conn is None:
                    node = state.current_primaries(self.topo)["main"]
                    conn = psycopg.connect(connect.dsn(self.topo.name, node, dbname="production"), autocommit=True)
                i = self.next_id
                self.next_id += 1
                conn.execute("INSERT INTO products (id, sku, name, price_cents) OVERRIDING SYSTEM VALUE "
                             "VALUES (%s, %s, 'bench', 1)", (i, f"b-{i}"))
                self.acks.append((time.monotonic(), node))
                time.sleep(0.005)
            except Exception:  # any failure means: reconnect to the current primary
                conn = None
                time.sleep(0.02)

    def gap(self, killed_at: float, new_primary: str) -> float:
        before = max(t for t, _n in self.acks if t <= killed_at)
        after = min(t for t, n in self.acks if t > killed_at and n == new_primary)
        return after - before


def failover_round(topo: topology.Topology, start_id: int) -> dict[str, Any]:
    old = state.current_primaries(topo)["main"]
    writer = Writer(topo, start_id)
    writer.start()
    time.sleep(2)
    killed_at = time.monotonic()
    fencing.kill_node(topo, old)
    started = time.monotonic()
    with Held() as held:  # as --yes
        plan = promotion.plan_live(topo, mode="failover", cluster="main", to=None, unattended=True, held=held)
        out = promotion.execute_failover(topo, plan, started=started, progress=quiet, held=held)
    time.sleep(1)
    writer.halt.set()
    writer.join()
    steps = dict(out.steps)
    t = time.monotonic()
    rejoin.rejoin(topo, old, reclone=False, progress=quiet)
    return {
        "from": old, "to": plan.candidate, "recovery": out.recovery_s, "promote": out.promote_s,
        "planned": steps.get("planned", 0.0), "gap": writer.gap(killed_at, plan.candidate),
        "lost_bytes": out.loss.bytes if out.loss else None, "lost_commits": out.loss.commits if out.loss else None,
        "subscriber": out.subscribers[0].action if out.subscribers else "-", "rejoin": time.monotonic() - t,
    }


def bare_round(path: Path) -> float:
    topo = loader.load(path)
    deploy.down(topo.name, volumes=True)
    deploy.up(topo, topo_path=path, progress=quiet)  # bench-b is a fresh clone of bench-a
    with connect.connect(topo.name, "bench-a") as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x int)")
    fencing.kill_node(topo, "bench-a")
    conn = psycopg.connect(connect.dsn(topo.name, "bench-b"), autocommit=True)
    t = time.monotonic()
    conn.execute("SELECT pg_promote(wait => true, wait_seconds => 60)")
    with conn.transaction():
        conn.execute("SELECT pg_current_xact_id()")
    elapsed = time.monotonic() - t
    conn.close()
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the topologies up")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pgtopo-bench-failover-"))
    os.environ.setdefault("PGTOPO_STATE_DIR", str(work / "state"))
    ref = work / "global-saas.yaml"
    ref.write_text((ROOT / "topologies" / "global-saas.yaml").read_text().replace("name: global-saas",
                                                                                 "name: bench-failover", 1))
    bare = work / "bench-promote.yaml"
    bare.write_text(BARE)
    topo = loader.load(ref)
    rows: list[dict[str, Any]] = []
    try:
        print("bringing up bench-failover ...", file=sys.stderr)
        deploy.up(topo, topo_path=ref, progress=quiet)
        for i in range(args.rounds):
            print(f"round {i + 1}: failover", file=sys.stderr)
            r = failover_round(topo, start_id=1 + i * 1_000_000)
            print(f"round {i + 1}: bare pg_promote on a fresh clone", file=sys.stderr)
            r["bare"] = bare_round(bare)
            rows.append(r)
    finally:
        if not args.keep:
            deploy.down("bench-failover", volumes=True)
            deploy.down("bench-promote", volumes=True)

    print("| round | failover | recovery time (command -> first write) | of which pg_promote | writer's gap | "
          "WAL lost (commits) | subscriber | rejoin (pg_rewind) | bare pg_promote + first write |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows, 1):
        print(f"| {i} | {r['from']} -> {r['to']} | {r['recovery']:.2f} s | {r['promote']:.2f} s | {r['gap']:.2f} s | "
              f"{r['lost_bytes']} B ({r['lost_commits']}) | {r['subscriber']} | {r['rejoin']:.1f} s | "
              f"{r['bare']:.2f} s |")

    def med(key: str) -> float:
        return statistics.median(float(r[key]) for r in rows)

    print(f"| **median** | | **{med('recovery'):.2f} s** | {med('promote'):.2f} s | {med('gap'):.2f} s | | | "
          f"{med('rejoin'):.1f} s | **{med('bare'):.2f} s** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
