#!/usr/bin/env python3
"""How the cost of `up`, `status`, `verify` and `failover` grows with the topology.

Generates topologies of 3, 12 and 30 nodes (8 regions and 4 clusters at 30: a primary with 14
replicas, 7 of them cascading; three subscriber clusters, each fed by a row-filtered
publication and with 4 replicas; smaller sizes are the same design scaled down) and measures,
for each, as a user would run the commands (the ``pgtopo`` CLI in a fresh process):

- ``up``: wall time of ``pgtopo up`` from nothing (the image already built);
- ``status`` and ``verify``: wall time of the command (median of ``--repeat`` runs);
- failover recovery: from the command start to the first write accepted on the new primary,
  as ``pgtopo failover`` reports it (and records in the run-time state), after ``pgtopo kill``
  of the main cluster's primary (median of ``--repeat`` rounds of kill m-0 / failover, then rejoin
  m-0 and switch back to it: every round fails the same topology), each once the machine has
  settled (at most a quarter of the CPUs busy over 2 s and at most 5 % I/O pressure over 10 s,
  waited for at most 3 minutes: on 2 CPUs and one disk the work a 30-node `up` and `verify`
  leave behind would otherwise be measured as the failover's);
- the whole failover: wall time of ``pgtopo failover --yes`` (median of the same rounds);
- ``down --volumes``: wall time of removing the topology (containers, networks, volumes).

The table gives each figure and its ratio to the 3-node one. Sizes beyond 30 are tried only
when asked (``--sizes 3,12,30,45``): before each, the script estimates what the machine has
left (memory per node measured on the largest topology run so far, host ports, relay ports,
WAL senders on the busiest node, CPU load) and stops at the first size that would not fit or
that fails, saying which resource ran out. Beyond 30 the design grows by cascading replicas
(the main primary keeps its 7 direct replicas and its WAL senders).

    .venv/bin/python benchmarks/scale.py [--sizes 3,12,30] [--prefix bench-scale] [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgtopo.lifecycle.deploy import CLONES_PER_UPSTREAM  # noqa: E402
from pgtopo.model import loader  # noqa: E402
from pgtopo.model.topology import MAX_NODES, RELAY_PORT_SPAN  # noqa: E402
from pgtopo.runtime import state  # noqa: E402

# Eight regions, each with a position (in "hops"); the round trip grows with the distance.
REGIONS = ("us-east", "eu-west", "us-west", "eu-central", "sa-east", "me-central", "ap-south", "ap-east")
BASE_RTT_MS = 20
RTT_PER_HOP_MS = 25
MAX_WAL_SENDERS = 20  # templates/postgresql.conf.j2


@dataclass(frozen=True)
class Shape:
    """A generated topology: ``regions`` regions; the main cluster's primary with
    ``direct`` replicas plus ``cascading`` ones behind them; ``subscribers`` clusters, each a
    primary with ``subscriber_replicas`` replicas, subscribing to a row-filtered publication."""

    regions: int
    direct: int
    cascading: int
    subscribers: int
    subscriber_replicas: int
    label: str = ""  # as given to --sizes; the node count unless another shape of that size

    @property
    def key(self) -> str:
        return self.label or str(self.nodes)

    @property
    def nodes(self) -> int:
        return 1 + self.direct + self.cascading + self.subscribers * (1 + self.subscriber_replicas)

    @property
    def clusters(self) -> int:
        return 1 + self.subscribers


SHAPES: dict[str, Shape] = {
    "3": Shape(regions=3, direct=1, cascading=0, subscribers=1, subscriber_replicas=0),
    "12": Shape(regions=5, direct=3, cascading=2, subscribers=2, subscriber_replicas=2),
    "30": Shape(regions=8, direct=7, cascading=7, subscribers=3, subscriber_replicas=4),
    # 30 nodes whose failed cluster is the 3-node one's (a primary and one replica): the other 28
    # are four subscriber clusters of 7. What a failover costs with the size of the topology alone,
    # not with the number of replicas that could be promoted.
    "30x1": Shape(regions=8, direct=1, cascading=0, subscribers=4, subscriber_replicas=6, label="30x1"),
}


def shape_for(spec: str) -> Shape:
    """The named sizes, or (a number beyond 30) the 30-node design with more replicas."""
    if spec in SHAPES:
        return SHAPES[spec]
    nodes = int(spec) if spec.isdigit() else 0
    if nodes <= 30:
        raise SystemExit(f"--sizes: {spec} is not one of {', '.join(SHAPES)} (larger numbers grow the 30-node design)")
    # More cascading replicas behind main's 7 direct ones: no node serves more than a dozen
    # replicas, so what runs out first is the machine, not one node's WAL senders.
    return Shape(regions=8, direct=7, cascading=7 + nodes - 30, subscribers=3, subscriber_replicas=4)


def rtt_ms(i: int, j: int) -> int:
    return BASE_RTT_MS + RTT_PER_HOP_MS * abs(i - j)


def generate(shape: Shape, name: str) -> dict[str, Any]:
    """The topology file (as data) of ``shape``."""
    regions = REGIONS[:shape.regions]
    latency = [{"between": [a, b], "rtt_ms": rtt_ms(i, j)}
               for i, a in enumerate(regions) for j, b in enumerate(regions) if i < j]

    def region(k: int) -> str:
        return regions[k % len(regions)]

    main_nodes: dict[str, Any] = {"m-0": {"region": regions[0], "role": "primary"}}
    # Direct replicas spread over the regions (the first one beside the primary); each cascading
    # replica sits behind a direct one, in that one's region (a regional fan-out).
    direct = [f"m-{i + 1}" for i in range(shape.direct)]
    for i, node in enumerate(direct):
        main_nodes[node] = {"region": region(i), "upstream": "m-0"}
    for i in range(shape.cascading):
        up = direct[i % len(direct)]
        main_nodes[f"m-c{i + 1}"] = {"region": main_nodes[up]["region"], "upstream": up,
                                     "failover_priority": 50}
    clusters: dict[str, Any] = {"main": {
        "databases": {"shop": {"schema": (
            "CREATE TABLE orders (id bigint PRIMARY KEY, region text NOT NULL, amount_cents int NOT NULL);\n"
            "CREATE TABLE products (id bigint PRIMARY KEY, sku text NOT NULL);\n")}},
        "nodes": main_nodes,
        "publications": {},
    }}
    for k in range(shape.subscribers):
        home = region(k + 1)
        pub = f"orders_{home.replace('-', '_')}"
        clusters["main"]["publications"][pub] = {
            "database": "shop", "tables": [{"name": "orders", "where": f"region = '{home}'"}]}
        nodes: dict[str, Any] = {f"s{k + 1}-0": {"region": home, "role": "primary"}}
        for r in range(shape.subscriber_replicas):
            nodes[f"s{k + 1}-{r + 1}"] = {"region": region(k + 1 + r), "upstream": f"s{k + 1}-0"}
        clusters[f"sub{k + 1}"] = {
            "databases": {"shop": {"schema": (
                "CREATE TABLE orders (id bigint PRIMARY KEY, region text NOT NULL, amount_cents int NOT NULL);\n")}},
            "nodes": nodes,
            "subscriptions": {f"sub{k + 1}_orders": {"publisher": "main", "publication": pub}},
        }
    return {"name": name, "postgres": {"version": 17}, "regions": {r: {} for r in regions},
            "latency": latency, "clusters": clusters}


def write_topology(shape: Shape, name: str, directory: Path) -> Path:
    path = directory / f"{name}.yaml"
    with path.open("w") as fh:
        fh.write(f"# Generated by benchmarks/scale.py: {shape.nodes} nodes, {shape.regions} regions, "
                 f"{shape.clusters} clusters.\n")
        YAML().dump(generate(shape, name), fh)
    loader.load(path)  # the same validation a user's file gets
    return path


# -- measuring ------------------------------------------------------------------------------------

PGTOPO = Path(sys.executable).parent / "pgtopo"  # the CLI a user runs, in a fresh process each time


@dataclass
class Measured:
    shape: Shape
    up_s: float | None = None
    status_s: float | None = None
    verify_s: float | None = None
    checks: str = "-"
    recovery_s: float | None = None
    failover_s: float | None = None
    down_s: float | None = None  # `down --volumes`: every container, network and volume removed
    memory_mib: float | None = None  # the topology's containers after `up`
    proxies: int | None = None  # docker-proxy processes `up` added on the host (one per published port)
    proxies_mib: float | None = None  # and their resident memory
    load: float | None = None
    failover_load: float | None = None  # load average when the failover started
    settled: str = ""  # how long the failover waited for a quiet machine, and how busy it was then
    notes: list[str] = field(default_factory=list)


def pgtopo(*args: str) -> tuple[float, str, int]:
    """Wall time, output and exit code of one pgtopo command."""
    t = time.monotonic()
    res = subprocess.run([str(PGTOPO), *args], capture_output=True, text=True)
    return time.monotonic() - t, res.stdout + res.stderr, res.returncode


def timed(m: Measured, what: str, *args: str, repeat: int = 1, log: Path | None = None) -> tuple[float | None, str]:
    """Median wall time of a command that must succeed; None (and a note) when it did not. The
    output of a failed command is kept in ``log``."""
    times, out = [], ""
    for _ in range(repeat):
        took, out, rc = pgtopo(*args)
        if rc != 0:
            if log is not None:
                log.write_text(out)
            m.notes.append(f"`{what}` exited with {rc}: {error_line(out)}" + (f" (output: {log})" if log else ""))
            return None, out
        times.append(took)
    return statistics.median(times), out


def error_line(text: str) -> str:
    """The line saying what failed (pgtopo's own, before the container's log lines), else the last."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    found = next((ln for ln in lines if ln.startswith(("✗", "error", "Error"))), None)
    return found or (lines[-1] if lines else "")


def container_memory_mib(name: str) -> float | None:
    res = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"],
                         capture_output=True, text=True)
    total = 0.0
    units = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}
    for line in res.stdout.splitlines():
        cname, _, usage = line.partition(" ")
        if not cname.startswith(f"{name}_"):  # containers are <topology>_<node>
            continue
        found = re.match(r"([0-9.]+)\s*([KMG]?i?B)", usage)
        if found:
            total += float(found.group(1)) * units.get(found.group(2), 1.0)
    return total or None


def docker_proxies() -> tuple[int, float]:
    """docker-proxy processes on the host (one per published port) and their resident MiB."""
    res = subprocess.run(["ps", "-C", "docker-proxy", "-o", "rss="], capture_output=True, text=True)
    sizes = [int(x) for x in res.stdout.split() if x.isdigit()]
    return len(sizes), sum(sizes) / 1024


def measure(shape: Shape, *, prefix: str, directory: Path, repeat: int, keep: bool) -> Measured:
    name = f"{prefix}{shape.key}"
    path = write_topology(shape, name, directory)
    m = Measured(shape)
    pgtopo("down", str(path), "--volumes")
    print(f"{name}: up ({shape.nodes} nodes) ...", file=sys.stderr)
    proxies, proxies_mib = docker_proxies()
    try:
        m.up_s, _ = timed(m, "up", "up", str(path), log=directory / f"{name}-up.log")
        if m.up_s is None:
            return m
        after, after_mib = docker_proxies()
        m.proxies, m.proxies_mib = after - proxies, after_mib - proxies_mib
        m.memory_mib, m.load = container_memory_mib(name), os.getloadavg()[0]
        print(f"{name}: status, verify ...", file=sys.stderr)
        m.status_s, _ = timed(m, "status", "status", str(path), repeat=repeat, log=directory / f"{name}-status.log")
        m.verify_s, out = timed(m, "verify", "verify", str(path), repeat=repeat, log=directory / f"{name}-verify.log")
        found = re.search(r"all (\d+) checks passed", out)
        m.checks = found.group(1) if found else "-"
        failovers(m, name, path, directory=directory, rounds=repeat)
    finally:
        if not keep:
            m.down_s, _ = timed(m, "down", "down", str(path), "--volumes", log=directory / f"{name}-down.log")
    return m


@dataclass
class Round:
    killed: str
    recovery_s: float | None
    failover_s: float
    steps: str
    load: float


def failovers(m: Measured, name: str, path: Path, *, directory: Path, rounds: int) -> None:
    """``rounds`` failovers of the main cluster's primary, m-0, each once the machine settled: kill
    it, `failover --yes`; then (before the next round) `rejoin m-0` and `switchover --to m-0`, so
    that every round fails the same primary of the same topology (the switchover demotes the node
    the failover promoted in place: its cascade streams from it again, as the file designs). The
    recovery and the whole failover are the medians; the notes give every round and the median
    round's steps."""
    done: list[Round] = []
    killed = "m-0"
    for r in range(rounds):
        print(f"{name}: waiting for the machine to settle, kill {killed}, failover ({r + 1}/{rounds}) ...",
              file=sys.stderr)
        settled = settle()
        if r == 0:
            m.settled = settled
        _took, out, rc = pgtopo("kill", str(path), killed)
        if rc != 0:
            m.notes.append(f"`kill {killed}` exited with {rc}: {error_line(out)}")
            break
        load = os.getloadavg()[0]
        took, out = timed(m, "failover", "failover", str(path), "--cluster", "main", "--yes",
                          log=directory / f"{name}-failover-{r + 1}.log")
        if took is None:
            break
        done.append(Round(killed, recovery_seconds(name, out), took, failover_steps(out), load))
        if r + 1 < rounds:
            for cmd in (("rejoin", str(path), killed), ("switchover", str(path), "--to", killed, "--yes")):
                _took, out, rc = pgtopo(*cmd)
                if rc != 0:
                    m.notes.append(f"`{' '.join(cmd[:1] + cmd[2:])}` exited with {rc}: {error_line(out)}")
                    break
            if rc != 0:
                break
    if not done:
        return
    m.failover_load = done[0].load
    m.failover_s = statistics.median(d.failover_s for d in done)
    recoveries = [d.recovery_s for d in done if d.recovery_s is not None]
    m.recovery_s = statistics.median(recoveries) if recoveries else None
    m.notes.append("failovers (recovery / whole command, s): " + ", ".join(
        f"{d.killed} killed {d.recovery_s if d.recovery_s is not None else '-'} / {d.failover_s:.2f}" for d in done))
    middle = sorted(done, key=lambda d: d.recovery_s or 0.0)[len(done) // 2]
    if middle.steps:
        m.notes.append(f"the median failover's steps (s since the command started): {middle.steps}")


SETTLE_BUSY = 0.25  # the failover starts once the CPUs are at most this busy (over SETTLE_SAMPLE_S)
SETTLE_IO = 5.0  # and tasks waited on I/O at most this % of the last 10 s (pressure stall information)
SETTLE_SAMPLE_S = 2.0
SETTLE_MAX_S = 180.0  # or after this long


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (/proc/stat); iowait counts as idle."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def io_pressure() -> float | None:
    """``some avg10`` of /proc/pressure/io: the % of the last 10 s some task waited on I/O (None
    without PSI)."""
    try:
        first = Path("/proc/pressure/io").read_text().splitlines()[0]
    except OSError:
        return None
    found = re.search(r"avg10=([0-9.]+)", first)
    return float(found.group(1)) if found else None


def settle() -> str:
    """Wait until the machine is quiet: `up`, `status` and `verify` of 30 nodes on 2 CPUs and one
    disk leave tens of seconds of work behind (checkpoints, autovacuum, the relay: a load average
    of 11 with the CPUs nearly idle, the rest waiting on the disk), which would be measured as the
    failover's if it started at once. Returns how long it waited and how busy the machine was then."""
    started = time.monotonic()
    while True:
        b0, t0 = cpu_times()
        time.sleep(SETTLE_SAMPLE_S)
        b1, t1 = cpu_times()
        busy, io = (b1 - b0) / max(t1 - t0, 1), io_pressure()
        waited = time.monotonic() - started
        quiet = busy <= SETTLE_BUSY and (io is None or io <= SETTLE_IO)
        if quiet or waited >= SETTLE_MAX_S:
            pressure = f", I/O pressure {io:.1f} %" if io is not None else ""
            return f"{busy:.0%} of the CPUs busy{pressure} after {waited:.0f} s"


def failover_steps(output: str) -> str:
    """The timings table `pgtopo failover` prints, as one line: "planned 0.12, fenced 0.13, ..."."""
    found = re.findall(r"^[│|]\s*([a-z][a-z ]+?)\s*[│|]\s*([0-9.]+)\s*[│|]\s*$", output, flags=re.MULTILINE)
    return ", ".join(f"{step} {secs}" for step, secs in found)


def recovery_seconds(name: str, output: str) -> float | None:
    """What `pgtopo failover` recorded (command start to the first write accepted), else what it printed."""
    change = state.load(name).last_change
    if change is not None:
        return change.recovery_s
    found = re.search(r"recovery time ([0-9.]+) s", output)
    return float(found.group(1)) if found else None


# -- where the machine stops ------------------------------------------------------------------------

def mem_available_mib() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 0.0


def local_port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def limits(shape: Shape, measured: list[Measured]) -> list[tuple[str, str, bool]]:
    """(resource, what the size needs against what there is, fits) before trying ``shape``."""
    out: list[tuple[str, str, bool]] = []
    nodes = shape.nodes
    out.append(("topology model", f"{nodes} nodes, at most {MAX_NODES} per topology", nodes <= MAX_NODES))
    # The relay listens (and Docker publishes a host port, one docker-proxy each) for every
    # (region, node in another region); every node publishes PostgreSQL's port.
    data = generate(shape, "limits")
    homes = [node["region"] for cluster in data["clusters"].values() for node in cluster["nodes"].values()]
    listeners = sum(1 for region in REGIONS[:shape.regions] for home in homes if home != region)
    low, high = local_port_range()
    host_ports = listeners + nodes
    out.append(("host ports", f"{host_ports} published ports (relay {listeners} + nodes {nodes}) of "
                              f"{high - low + 1} ephemeral ports; relay ports span {RELAY_PORT_SPAN}",
                host_ports < (high - low + 1) and listeners < RELAY_PORT_SPAN))
    # Each node serves its replicas (a clone holds two WAL senders, a streaming replica one) and,
    # on a publisher, every subscription (its apply worker and, while they copy, two table-sync
    # workers): the peak over how many of its replicas already stream, on the busiest node.
    downstream: dict[str, int] = {}
    serving: dict[str, int] = {}
    for cluster in data["clusters"].values():
        for spec in cluster["nodes"].values():
            if "upstream" in spec:
                downstream[spec["upstream"]] = downstream.get(spec["upstream"], 0) + 1
        for sub in cluster.get("subscriptions", {}).values():
            primary = next(n for n, x in data["clusters"][sub["publisher"]]["nodes"].items() if "upstream" not in x)
            serving[primary] = serving.get(primary, 0) + 3

    def peak(node: str) -> int:
        d = downstream.get(node, 0)
        return max(k + 2 * min(CLONES_PER_UPSTREAM, d - k) for k in range(d + 1)) + serving.get(node, 0)

    busiest = max({*downstream, *serving}, key=peak)
    senders = peak(busiest)
    out.append(("WAL senders", f"up to {senders} on {busiest} ({downstream.get(busiest, 0)} replicas, "
                               f"{CLONES_PER_UPSTREAM} cloning at once, {serving.get(busiest, 0) // 3} subscriptions "
                               f"with their table sync) of max_wal_senders {MAX_WAL_SENDERS}",
                senders <= MAX_WAL_SENDERS))
    biggest = max((x for x in measured if x.memory_mib), key=lambda x: x.shape.nodes, default=None)
    if biggest is not None and biggest.memory_mib:
        per_node = (biggest.memory_mib + (biggest.proxies_mib or 0)) / biggest.shape.nodes
        need = per_node * nodes * 1.5  # room for the work status, verify and failover do
        have = mem_available_mib()
        out.append(("memory", f"about {need:.0f} MiB ({per_node:.0f} MiB per node with its docker-proxy "
                              f"processes, measured at {biggest.shape.nodes} nodes, x1.5) of {have:.0f} MiB "
                              "available", need < have))
    cpus = os.cpu_count() or 1
    load = os.getloadavg()[0]
    out.append(("CPU", f"{cpus} CPUs, load average {load:.1f} now; `up` grows about linearly with the nodes "
                       "(initdb and pg_basebackup are CPU-bound)", load < 4 * cpus))
    return out


# -- the report -----------------------------------------------------------------------------------

def cell(value: float | None, base: float | None) -> str:
    if value is None:
        return "-"
    ratio = f" ({value / base:.1f}x)" if base else ""
    return f"{value:.2f} s{ratio}"


def report(rows: list[Measured]) -> str:
    base = next((r for r in rows if r.shape.key == "3"), None)

    def b(attr: str) -> float | None:
        return getattr(base, attr) if base else None

    lines = ["| nodes | regions | clusters | replicas of the failed primary | `up` | `status` | `verify` (checks) | "
             "failover recovery: command to first write | whole `failover` | `down --volumes` |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.shape.nodes} | {r.shape.regions} | {r.shape.clusters} | {r.shape.direct} | "
                     f"{cell(r.up_s, b('up_s'))} | "
                     f"{cell(r.status_s, b('status_s'))} | {cell(r.verify_s, b('verify_s'))} ({r.checks}) | "
                     f"{cell(r.recovery_s, b('recovery_s'))} | {cell(r.failover_s, b('failover_s'))} | "
                     f"{cell(r.down_s, b('down_s'))} |")
    lines.append("")
    lines.append("Ratios are to the 3-node figure. Times are wall times of the `pgtopo` command in a fresh process "
                 "(Python's imports included, the package byte-compiled as pip installs it), medians where repeated.")
    for r in rows:
        seen = [f"{r.memory_mib:.0f} MiB in its containers" if r.memory_mib else None,
                f"{r.proxies} more docker-proxy processes on the host ({r.proxies_mib or 0:.0f} MiB)"
                if r.proxies is not None else None,
                f"load average {r.load:.1f}" if r.load is not None else None,
                f"{r.failover_load:.1f} when the first failover started ({r.settled})" if r.failover_load is not None
                else None]
        lines.append(f"- {r.shape.key} nodes after `up`: " + ", ".join(x for x in seen if x)
                     + "".join(f"; {n}" for n in r.notes))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="3,12,30,30x1",
                    help="node counts, comma-separated (beyond 30: tried if they fit); 30x1: 30 nodes, the failed "
                         "cluster a primary and one replica")
    ap.add_argument("--prefix", default="bench-scale", help="topology names: PREFIX<size>")
    ap.add_argument("--repeat", type=int, default=3, help="runs of status and verify per size (median)")
    ap.add_argument("--keep", action="store_true", help="leave the topologies up")
    args = ap.parse_args()
    shapes = [shape_for(x.strip()) for x in args.sizes.split(",") if x.strip()]
    os.environ.setdefault("PGTOPO_STATE_DIR", tempfile.mkdtemp(prefix="pgtopo-bench-scale-"))
    # pip byte-compiles a package it installs; an editable checkout run with PYTHONDONTWRITEBYTECODE
    # would compile every module from source at each start (about 90 ms): measure what users run.
    compileall.compile_dir(str(ROOT / "pgtopo"), quiet=1)
    directory = Path(tempfile.mkdtemp(prefix="pgtopo-bench-scale-files-"))
    rows: list[Measured] = []
    stopped: list[str] = []
    for shape in shapes:
        if shape.nodes > 30:
            checks = limits(shape, rows)
            for resource, detail, fits in checks:
                stopped.append(f"- {shape.nodes} nodes, {resource}: {detail}: {'fits' if fits else 'DOES NOT FIT'}")
            if not all(fits for _r, _d, fits in checks):
                stopped.append(f"- stopped before {shape.nodes} nodes: "
                               f"{', '.join(r for r, _d, fits in checks if not fits)}")
                break
        measured = measure(shape, prefix=args.prefix, directory=directory, repeat=args.repeat, keep=args.keep)
        rows.append(measured)
        if measured.up_s is None:
            stopped.append(f"- stopped at {shape.nodes} nodes: `up` failed ({'; '.join(measured.notes)})")
            break
    print(report(rows))
    if stopped:
        print("\nBeyond 30 nodes:\n" + "\n".join(stopped))
    print(f"\n{os.cpu_count()} CPUs, {mem_available_mib():.0f} MiB available, load average "
          f"{os.getloadavg()[0]:.1f} at the end", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
