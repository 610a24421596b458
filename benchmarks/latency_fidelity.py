#!/usr/bin/env python3
"""How faithfully the relay's simulated WAN delays a real client: pgbench against the round trips.

On a copy of the reference topology (``topologies/global-saas.yaml``: the primary pg-us in
us-east, 80 ms from eu-west), one pgbench client in eu-west connects through
``PRIMARY_DATABASE_URL`` as ``pgtopo env --region eu-west`` prints it (the host port of the
relay's listener for eu-west -> pg-us). pgbench runs in a throw-away container on the host's
network (the image has it), like an application on the host.

- Steady state: one client, one connection, the built-in TPC-B script for ``--seconds``: seven
  statements per transaction (BEGIN, three UPDATEs, a SELECT, an INSERT, END), each one round
  trip in the simple query protocol: expected 7 x RTT per transaction.
- Connection set-up: ``pgbench -C`` (a new connection per transaction) with the built-in
  select-only script; pgbench reports the average connection time. Over a WAN a new libpq
  connection costs the TCP handshake, the SSLRequest (``sslmode=prefer``, refused) and three
  SCRAM exchanges: expected 5 x RTT. The same is measured to the primary's own port (no relay)
  for what the machine itself adds.

    .venv/bin/python benchmarks/latency_fidelity.py [--seconds 30] [--name bench-fidelity] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgtopo.apps.endpoints import app_endpoints  # noqa: E402
from pgtopo.lifecycle import deploy  # noqa: E402
from pgtopo.model import loader  # noqa: E402
from pgtopo.model.topology import Topology  # noqa: E402
from pgtopo.runtime import gateway  # noqa: E402

TPCB_ROUND_TRIPS = 7
# TCP handshake, SSLRequest (answered 'N'), startup -> SASL, SASL initial -> continue, SASL final -> ready.
CONNECT_ROUND_TRIPS = 5
CLIENT_REGION = "eu-west"


@dataclass(frozen=True)
class Run:
    latency_ms: float | None
    connect_ms: float | None
    transactions: int | None
    output: str


def pgbench(topo: Topology, args: list[str], *, timeout_s: float) -> Run:
    """pgbench in a throw-away container on the host's network, labelled with the topology."""
    rc, out = gateway.run_oneshot(topo.image, ["pgbench", *args], network_mode="host",
                                  labels=gateway.labels(topo.name, "oneshot"), wait_timeout=timeout_s)
    if rc != 0:
        raise SystemExit(f"pgbench {' '.join(a for a in args if not a.startswith('postgresql://'))} failed "
                         f"(exit {rc}):\n{out}")

    def number(pattern: str) -> float | None:
        found = re.search(pattern, out)
        return float(found.group(1)) if found else None

    tx = number(r"number of transactions actually processed: (\d+)")
    return Run(latency_ms=number(r"latency average = ([0-9.]+) ms"),
               connect_ms=number(r"average connection time = ([0-9.]+) ms"),
               transactions=None if tx is None else int(tx), output=out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=30, help="duration of each pgbench run")
    ap.add_argument("--name", default="bench-fidelity", help="topology name of the copy brought up")
    ap.add_argument("--keep", action="store_true", help="leave the topology up")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pgtopo-bench-fidelity-"))
    os.environ.setdefault("PGTOPO_STATE_DIR", str(work / "state"))
    path = work / f"{args.name}.yaml"
    path.write_text(re.sub(r"^name: .*$", f"name: {args.name}", (ROOT / "topologies" / "global-saas.yaml").read_text(),
                           count=1, flags=re.MULTILINE))
    topo = loader.load(path)
    try:
        print(f"bringing up {topo.name} ...", file=sys.stderr)
        deploy.up(topo, topo_path=path, progress=lambda _s, _m: None)
        far = app_endpoints(topo, region=CLIENT_REGION, cluster="main")
        near = app_endpoints(topo, region=far.primary.region, cluster="main")
        rtt = far.primary.rtt_ms
        timeout = args.seconds + 60
        print("pgbench -i (through the primary's own port) ...", file=sys.stderr)
        pgbench(topo, ["-i", "-q", "-s", "1", near.primary_url], timeout_s=timeout)
        print(f"TPC-B from {CLIENT_REGION}, {args.seconds} s ...", file=sys.stderr)
        steady = pgbench(topo, ["-n", "-c", "1", "-j", "1", "-T", str(args.seconds), far.primary_url],
                         timeout_s=timeout)
        print(f"pgbench -C from {CLIENT_REGION}, then locally, {args.seconds} s each ...", file=sys.stderr)
        setup = pgbench(topo, ["-n", "-C", "-b", "select-only", "-c", "1", "-j", "1", "-T", str(args.seconds),
                               far.primary_url], timeout_s=timeout)
        local = pgbench(topo, ["-n", "-C", "-b", "select-only", "-c", "1", "-j", "1", "-T", str(args.seconds),
                               near.primary_url], timeout_s=timeout)
    finally:
        if not args.keep:
            deploy.down(topo.name, volumes=True)

    def pct(measured: float | None, expected: float) -> str:
        return "-" if measured is None else f"{(measured - expected) / expected * 100:+.1f} %"

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    tpcb = TPCB_ROUND_TRIPS * rtt
    conn = CONNECT_ROUND_TRIPS * rtt
    local_conn = local.connect_ms or 0.0
    print(f"One pgbench client in {CLIENT_REGION}, primary {far.primary.node} in {far.primary.region}, declared RTT "
          f"{rtt:g} ms, through PRIMARY_DATABASE_URL (the relay).\n")
    print("| measurement | expected | measured | difference | in round trips |")
    print("|---|---:|---:|---:|---:|")
    print(f"| TPC-B transaction, steady state ({steady.transactions} transactions) | {TPCB_ROUND_TRIPS} x RTT = "
          f"{tpcb:.0f} ms | {ms(steady.latency_ms)} | {pct(steady.latency_ms, tpcb)} | "
          f"{(steady.latency_ms or 0) / rtt:.2f} |")
    print(f"| connection set-up, `pgbench -C` ({setup.transactions} connections) | {CONNECT_ROUND_TRIPS} x RTT = "
          f"{conn:.0f} ms | {ms(setup.connect_ms)} | {pct(setup.connect_ms, conn)} | "
          f"{(setup.connect_ms or 0) / rtt:.2f} |")
    print(f"| connection set-up less the local one ({ms(local.connect_ms)}: fork, SCRAM, no relay) | "
          f"{conn:.0f} ms | {ms(None if setup.connect_ms is None else setup.connect_ms - local_conn)} | "
          f"{pct(None if setup.connect_ms is None else setup.connect_ms - local_conn, conn)} | "
          f"{((setup.connect_ms or 0) - local_conn) / rtt:.2f} |")
    print(f"\nExpected connection round trips: TCP handshake, SSLRequest (sslmode=prefer, refused), and the three "
          f"SCRAM exchanges. {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
