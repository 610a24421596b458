"""Wall time of `pgtopo up` against a plain sequential script of docker commands.

The baseline creates the same networks, relay and containers, runs the same initdb,
pg_basebackup and SQL (the files pgtopo renders), one `docker` CLI step after the other.
Both run in the same process, alternately, with the image already built.

    python benchmarks/up.py [--runs 2] [--only reference] [--prefix bench-up]

Topologies are brought up under ``PREFIX-ref`` / ``PREFIX-six`` (and ``...-base`` for the
script), so that the benchmark never touches a topology of the same file already running.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pgtopo.lifecycle import deploy
from pgtopo.model import render
from pgtopo.model.loader import load
from pgtopo.model.topology import RELAY_ALIAS, Topology, endpoint, slot_name
from pgtopo.network import relay_container
from pgtopo.postgres import instance
from pgtopo.runtime import gateway, state

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CASES = {"reference": ("reference (3 nodes)", REPO / "topologies" / "global-saas.yaml", "ref"),
         "six": ("six nodes", HERE / "topologies" / "six-nodes.yaml", "six")}


def sh(*args: str, check: bool = True) -> str:
    res = subprocess.run(list(args), capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}...: {res.stderr.strip()}")
    return res.stdout.strip()


def dexec(container: str, *cmd: str, user: str = "postgres", env: dict[str, str] | None = None) -> str:
    flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
    return sh("docker", "exec", "-u", user, *flags, container, *cmd)


def poll(check: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise RuntimeError("timed out")


def baseline(topo: Topology, path: Path, workdir: Path) -> dict[str, float]:
    """The same work as `up`, as a plain script would do it: one docker command at a time."""
    name = f"{topo.name}-base"
    pw = state.passwords(topo.name)
    phases: dict[str, float] = {}
    t0 = time.monotonic()
    label = f"pgtopo.topology={name}"
    for region in topo.regions:
        sh("docker", "network", "create", "--label", label, f"{name}-{region}")
    relay = f"{name}-relay"
    first, *rest = list(topo.regions)
    conf = relay_container.relay_config(topo)
    sh("docker", "create", "--name", relay, "--label", label, "--network", f"{name}-{first}",
       "--network-alias", RELAY_ALIAS, topo.image, "python3", "/etc/pgtopo/relay.py", "serve",
       relay_container.RELAY_CONF)
    for region in rest:
        sh("docker", "network", "connect", "--alias", RELAY_ALIAS, f"{name}-{region}", relay)
    rd = workdir / "relay"
    rd.mkdir()
    (rd / "relay.json").write_text(json.dumps(conf))
    (rd / "relay.py").write_text(relay_container.RELAY_SOURCE.read_text())
    sh("docker", "cp", f"{rd}/.", f"{relay}:/etc/pgtopo")
    sh("docker", "start", relay)
    phases["networks"] = time.monotonic() - t0
    t1 = time.monotonic()
    files = {nf.node: nf for nf in render.render_all(topo, topo_path=path)}
    pending = topo.node_names()
    done: list[str] = []
    while pending:
        node = next(n for n in pending if topo.node(n).upstream is None or topo.node(n).upstream in done)
        spec = topo.node(node)
        c = f"{name}-{node}"
        nd = workdir / node
        nd.mkdir()
        for fname, text in files[node].files.items():
            (nd / fname).write_text(text)
        (nd / "start.sh").write_text((REPO / "templates" / "start.sh").read_text())
        (nd / "pgpass").write_text(state.pgpass(pw))
        sh("docker", "create", "--name", c, "--label", label, "--hostname", node, "--network", f"{name}-{spec.region}",
           "--network-alias", node, "--init", "-u", "root", "--stop-signal", "SIGINT",
           "-v", f"{c}-data:{gateway.PG_DATA_MOUNT}", "-e", f"PGDATA={instance.PGDATA}",
           "-p", "127.0.0.1::5432", topo.image, "/bin/sh", "/etc/pgtopo/start.sh")
        sh("docker", "cp", f"{nd}/.", f"{c}:/etc/pgtopo")
        sh("docker", "start", c)
        dexec(c, "sh", "-c", f"mkdir -p /var/run/postgresql && chown postgres:postgres {instance.VOLUME_DIR} "
              "/var/run/postgresql && chown -R postgres:postgres /etc/pgtopo && chmod 600 /etc/pgtopo/pgpass", user="root")
        local = {"PGOPTIONS": "-c synchronous_commit=local"}
        if spec.upstream is None:
            dexec(c, "initdb", "-D", instance.PGDATA, "-U", "postgres", "--locale=C.UTF-8",
                  "--data-checksums", "--auth-local=peer", "--auth-host=scram-sha-256")
            dexec(c, "touch", instance.READY_MARKER)
            poll(lambda c=c: subprocess.run(["docker", "exec", "-u", "postgres", c, "pg_isready", "-q", "-h",
                                             "/var/run/postgresql"]).returncode == 0)
            env = {**local, **{f"PGTOPO_PASSWORD_{r.upper()}": v for r, v in pw.items()}}
            dexec(c, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "/var/run/postgresql", "-d", "postgres",
                  "-f", "/etc/pgtopo/init.sql", env=env)
        else:
            up = f"{name}-{spec.upstream}"
            dexec(up, "psql", "-X", "-q", "-h", "/var/run/postgresql", "-d", "postgres", "-c",
                  f"SELECT pg_create_physical_replication_slot('{slot_name(node)}')", env=local)
            ep = endpoint(topo, from_region=spec.region, node=spec.upstream)
            info = render.conninfo(host=ep.host, port=ep.port, user="replicator", application_name=node,
                                   dbname="postgres")
            dexec(c, "pg_basebackup", "-d", info, "-D", instance.PGDATA, "-S", slot_name(node),
                  "-X", "stream", "-c", "fast")
            dexec(c, "sh", "-c", f"chmod 700 {instance.PGDATA} && touch {instance.PGDATA}/standby.signal "
                  f"&& touch {instance.READY_MARKER}")
            poll(lambda c=c: sh("docker", "exec", "-u", "postgres", c, "psql", "-X", "-A", "-t", "-h",
                                "/var/run/postgresql", "-d", "postgres", "-c",
                                "SELECT status FROM pg_stat_wal_receiver", check=False) == "streaming")
        pending.remove(node)
        done.append(node)
    phases["nodes"] = time.monotonic() - t1
    t2 = time.monotonic()
    for cname, cluster in topo.clusters.items():
        for sname, sub in cluster.subscriptions.items():
            c = f"{name}-{cluster.primary_name}"
            db = sub.database or topo.clusters[sub.publisher].publications[sub.publication].database
            stmt = render.subscription_statement(topo, cluster=cname, sub_name=sname,
                                                 publisher_node=topo.clusters[sub.publisher].primary_name)
            dexec(c, "psql", "-X", "-q", "-h", "/var/run/postgresql", "-d", db, "-c", stmt)
            poll(lambda c=c, db=db: sh("docker", "exec", "-u", "postgres", c, "psql", "-X", "-A", "-t", "-h",
                                       "/var/run/postgresql", "-d", db, "-c",
                                       "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'") == "0")
    phases["subscriptions"] = time.monotonic() - t2
    phases["total"] = time.monotonic() - t0
    return phases


def remove(name: str) -> None:
    ids = sh("docker", "ps", "-aq", "--filter", f"label=pgtopo.topology={name}").split()
    if ids:
        sh("docker", "rm", "-f", *ids)
    for net in sh("docker", "network", "ls", "-q", "--filter", f"label=pgtopo.topology={name}").split():
        sh("docker", "network", "rm", net)
    vols = [v for v in sh("docker", "volume", "ls", "-q").split() if v.startswith(f"{name}-")]
    if vols:
        sh("docker", "volume", "rm", "-f", *vols)


def renamed(path: Path, name: str, directory: Path) -> Path:
    """A copy of the topology file under another topology name."""
    out = directory / f"{name}.yaml"
    text = path.read_text()
    out.write_text(re.sub(r"^name: .*$", f"name: {name}", text, count=1, flags=re.MULTILINE))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--only", choices=sorted(CASES), action="append", help="run only this case (repeatable)")
    ap.add_argument("--prefix", default="bench-up", help="topology names start with this")
    args = ap.parse_args()
    os.environ.setdefault("PGTOPO_STATE_DIR", tempfile.mkdtemp(prefix="pgtopo-bench-"))
    files = Path(tempfile.mkdtemp(prefix="pgtopo-bench-files-"))
    rows = []
    for key in args.only or list(CASES):
        label, source, suffix = CASES[key]
        path = renamed(source, f"{args.prefix}-{suffix}", files)
        topo = load(path)
        ours: list[dict[str, float]] = []
        base: list[dict[str, float]] = []
        for _ in range(args.runs):
            deploy.down(topo.name, volumes=True)
            res = deploy.up(topo, topo_path=path, progress=lambda *a: None)
            ours.append(res.phases)
            deploy.down(topo.name, volumes=True)
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    base.append(baseline(topo, path, Path(tmp)))
                finally:
                    remove(f"{topo.name}-base")
        for phase in ("nodes", "subscriptions", "total"):
            o = statistics.median(r[phase] for r in ours)
            b = statistics.median(r[phase] for r in base)
            rows.append((label, phase, o, b))
    print("| topology | phase | pgtopo up (s) | sequential docker script (s) | ratio (pgtopo / script) |")
    print("|---|---|---:|---:|---:|")
    for label, phase, o, b in rows:
        print(f"| {label} | {phase} | {o:.1f} | {b:.1f} | {o / b:.2f} |")
    print(f"\nmedian of {args.runs} runs each, alternating, image already built; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
