#!/usr/bin/env python3
"""Read-your-writes under simulated WAN latency, for every routing strategy, as Markdown.

    python benchmarks/routing_bench.py [FILE] [--region R] [--sessions N] [--ops N] [--slow-link MS ...] [--keep]

Runs against the topology if it is up; otherwise brings it up and, unless --keep, removes it
afterwards. One table at the file's latency, then one per --slow-link value (the RTT between
the primary's and the replica's regions during that run; restored afterwards).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from pgtopo.apps import routing_bench
from pgtopo.apps.routing import STRATEGIES
from pgtopo.errors import PgtopoError
from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", type=Path, default=REPO / "topologies" / "global-saas.yaml")
    parser.add_argument("--region", default="eu-west")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--ops", type=int, default=50)
    parser.add_argument("--slow-link", type=float, action="append", default=None, metavar="MS",
                        help="also run with this RTT on the replication link (repeatable; default 200)")
    parser.add_argument("--keep", action="store_true", help="leave a topology this script started running")
    args = parser.parse_args(argv)

    def progress(subject: str, message: str) -> None:
        print(f"  {subject}: {message}", file=sys.stderr)

    try:
        topo = load(args.file)
        started = False
        if not deploy.running().get(topo.name, {}).get("nodes"):  # absent, or only its volumes left
            print(f"bringing up {topo.name}", file=sys.stderr)
            deploy.up(topo, topo_path=args.file, progress=progress)
            started = True
        try:
            print(f"# Read-your-writes benchmark ({time.strftime('%Y-%m-%d')}, {platform.system()}, "
                  f"Python {platform.python_version()})\n")
            for slow in [None, *(args.slow_link or [200.0])]:
                result = routing_bench.run(topo, region=args.region, strategies=list(STRATEGIES), sessions=args.sessions,
                                 ops=args.ops, slow_link_ms=slow, progress=progress)
                print(routing_bench.markdown(result) + "\n", flush=True)
        finally:
            if started and not args.keep:
                deploy.down(topo.name, volumes=True)
    except PgtopoError as exc:
        print("error: " + "\n".join(exc.lines()), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
