#!/usr/bin/env python3
"""Automatic recovery with Patroni and etcd, next to pgtopo's manual failover and a bare pg_promote().

Every configuration runs the same shape (generated here, one topology per configuration): three
regions (us-east, eu-west, ap-south) with the same round trip between every pair; the primary
pg-a in us-east, one replica in each other region (pg-b in eu-west, pg-c in ap-south); for a
Patroni cluster, one etcd member in each region (or, for the "etcd in one region" rows, all
three in us-east). Each round brings the topology up from nothing (`pgtopo up`), then:

- measures what the etcd quorum costs (Patroni configurations), from inside the us-east etcd
  member's container through etcd's HTTP gateway as Patroni's etcd3 client calls it: the lease
  keep-alive that renews a Patroni leader's lock, and a put (a quorum write), ``--probes`` of
  each; and the commit latency of a one-row INSERT on the leader from its region (``--probes``
  sequential autocommit transactions). The quorum table groups rounds by where the etcd
  leader was (a keep-alive crosses regions only when the etcd leader is elsewhere);
- runs a continuous writer in us-east, the drill's ledger writer (pgtopo/drill/workloads.py)
  through the multi-host primary URL of us-east (`pgtopo env`: target_session_attrs=read-write),
  and SIGKILLs the primary with `pgtopo kill` (docker kill);
- recovers it by the configuration's method: Patroni on its own (nobody types anything);
  `pgtopo failover --yes` started at once after the kill (ha: manual; what a person typing at
  once gets, Python's start included); or ``SELECT pg_promote()`` on pg-b over a connection
  opened before the kill (the floor any orchestration adds to);
- measures the writer's write unavailability exactly as a drill does (pgtopo/drill/verdict.py):
  from the last commit acknowledged on the old timeline to the first one acknowledged on the new;
- takes the topology down with its volumes.

Rounds go round the configurations (round 1 of each, then round 2 ...), so a machine that gets
busier affects every configuration alike; the table gives medians over the rounds. Ratios are
to the bare pg_promote() measured in the same run at the same round trip.

    flock /work/tools/bench.lock .venv/bin/python benchmarks/patroni_recovery.py [--rounds 3]
        [--only KEY,KEY] [--prefix pd-] [--probes 200] [--rate 50] [--json FILE] [--from-json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgtopo.model import loader  # noqa: E402

REGIONS = ("us-east", "eu-west", "ap-south")
WRITER_REGION = REGIONS[0]
PRIMARY, PROMOTED = "pg-a", "pg-b"  # pg-b: the replica a bare pg_promote() promotes
NODES = {PRIMARY: REGIONS[0], PROMOTED: REGIONS[1], "pg-c": REGIONS[2]}
DATABASE = "bench"
Method = Literal["patroni", "manual", "promote"]


@dataclass(frozen=True)
class Timing:
    ttl: int
    loop_wait: int
    retry_timeout: int

    def describe(self) -> str:
        return f"ttl {self.ttl}, loop_wait {self.loop_wait}, retry_timeout {self.retry_timeout}"


DEFAULTS = Timing(ttl=30, loop_wait=10, retry_timeout=10)  # Patroni's own
# Lab-tuned: the shortest ttl Patroni accepts (20 s: below it Patroni silently uses 20, and pgtopo
# refuses the file; the "ttl: 10" cannot run), a 2 s loop and a 4 s retry (2 + 2 x 4 <= 20).
TUNED = Timing(ttl=20, loop_wait=2, retry_timeout=4)


@dataclass(frozen=True)
class Config:
    """One configuration: how the cluster recovers, the round trip between regions, and (Patroni)
    its timing and whether the etcd members are spread over the regions or all in the primary's."""

    key: str
    method: Method
    rtt_ms: int
    timing: Timing | None = None
    local_dcs: bool = False

    def describe(self) -> str:
        if self.method == "promote":
            return "bare `pg_promote()` on a replica right after the kill"
        if self.method == "manual":
            return "ha: manual, `pgtopo failover --yes` right after the kill"
        assert self.timing is not None
        where = "3 etcd members in us-east" if self.local_dcs else "etcd members in 3 regions"
        return f"Patroni ({self.timing.describe()}), {where}"


def _configs() -> tuple[Config, ...]:
    out = [Config("promote-0", "promote", 0), Config("manual-0", "manual", 0),
           Config("patroni-defaults-0", "patroni", 0, DEFAULTS), Config("patroni-tuned-0", "patroni", 0, TUNED)]
    for rtt in (80, 200):
        out += [Config(f"promote-{rtt}", "promote", rtt), Config(f"patroni-tuned-{rtt}", "patroni", rtt, TUNED),
                Config(f"patroni-tuned-{rtt}-local-dcs", "patroni", rtt, TUNED, local_dcs=True)]
    return tuple(out)


CONFIGS = _configs()
LATENCIES = (0, 80, 200)


def select(keys: str | None) -> list[Config]:
    if not keys:
        return list(CONFIGS)
    wanted = [k.strip() for k in keys.split(",") if k.strip()]
    known = {c.key: c for c in CONFIGS}
    unknown = [k for k in wanted if k not in known]
    if unknown:
        raise SystemExit(f"--only: unknown configuration(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[k] for k in wanted]


def topology_name(config: Config, prefix: str) -> str:
    """A short Docker-safe name: ``<prefix>`` + the key without its words' vowels."""
    short = (config.key.replace("patroni-", "pt").replace("defaults", "def").replace("tuned", "tun")
             .replace("promote", "pro").replace("manual", "man").replace("local-dcs", "l").replace("-", ""))
    return f"{prefix}{short}"


def generate(config: Config, name: str) -> dict[str, Any]:
    """The topology file (as data) of ``config``."""
    latency = [{"between": [a, b], "rtt_ms": config.rtt_ms} for i, a in enumerate(REGIONS) for b in REGIONS[i + 1:]]
    nodes: dict[str, Any] = {}
    for node, region in NODES.items():
        nodes[node] = {"region": region, "role": "primary"} if node == PRIMARY else {"region": region,
                                                                                       "upstream": PRIMARY}
    cluster: dict[str, Any] = {"databases": {DATABASE: {"schema": "CREATE TABLE t (x int);\n"}}, "nodes": nodes}
    data: dict[str, Any] = {"name": name, "postgres": {"version": 17}, "regions": {r: {} for r in REGIONS},
                            "latency": latency}
    if config.method == "patroni":
        assert config.timing is not None
        cluster = {"ha": "patroni", "patroni": {"ttl": config.timing.ttl, "loop_wait": config.timing.loop_wait,
                                                "retry_timeout": config.timing.retry_timeout}, **cluster}
        data["dcs"] = {"regions": [REGIONS[0]] * 3 if config.local_dcs else list(REGIONS)}
    data["clusters"] = {"main": cluster}
    return data


def write_topology(config: Config, name: str, directory: Path) -> Path:
    path = directory / f"{name}.yaml"
    with path.open("w") as fh:
        fh.write(f"# Generated by benchmarks/patroni_recovery.py: {config.describe()}, {config.rtt_ms} ms between "
                 "regions.\n")
        YAML().dump(generate(config, name), fh)
    loader.load(path)  # the same validation a user's file gets
    return path


# -- the report (pure) ------------------------------------------------------------------------------

@dataclass
class Round:
    key: str
    unavailable_s: float | None = None  # None: not measured (see notes)
    recovered: bool = False
    new_primary: str | None = None
    commits_before: int = 0
    up_s: float | None = None
    etcd_put_ms: float | None = None  # median of the probes
    etcd_keepalive_ms: float | None = None  # median of the probes
    commit_ms: float | None = None  # median of the probes
    etcd_leader: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Summary:
    config: Config
    runs: int  # rounds with a measured recovery
    unavailable_s: float | None  # median
    low: float | None
    high: float | None
    etcd_put_ms: float | None
    etcd_keepalive_ms: float | None
    commit_ms: float | None
    new_primaries: tuple[str, ...]
    etcd_leaders: tuple[str, ...]  # the etcd leader's region in each round ("?": not known)
    notes: tuple[str, ...]


def leader_region(config: Config, member: str | None) -> str:
    """The region of an etcd member (``etcd-<region>`` or ``etcd-<region>-<n>``)."""
    if member is None:
        return "?"
    if config.local_dcs:
        return REGIONS[0]
    return next((r for r in REGIONS if member == f"etcd-{r}" or member.startswith(f"etcd-{r}-")), "?")


def median(values: Sequence[float | None]) -> float | None:
    seen = [v for v in values if v is not None]
    return statistics.median(seen) if seen else None


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def summarize(rounds: Sequence[Round], configs: Sequence[Config]) -> dict[str, Summary]:
    out: dict[str, Summary] = {}
    for c in configs:
        mine = [r for r in rounds if r.key == c.key]
        done = [r.unavailable_s for r in mine if r.unavailable_s is not None and r.recovered]
        out[c.key] = Summary(
            config=c, runs=len(done), unavailable_s=median(done), low=min(done, default=None),
            high=max(done, default=None), etcd_put_ms=median([r.etcd_put_ms for r in mine]),
            etcd_keepalive_ms=median([r.etcd_keepalive_ms for r in mine]),
            commit_ms=median([r.commit_ms for r in mine]),
            new_primaries=tuple(sorted({r.new_primary for r in mine if r.new_primary})),
            etcd_leaders=tuple(leader_region(c, r.etcd_leader) for r in mine if c.method == "patroni"),
            notes=tuple(f"round {i}: {n}" for i, r in enumerate(mine, 1) for n in r.notes))
    return out


def seconds(s: Summary | None) -> str:
    if s is None or s.unavailable_s is None:
        return "not measured"
    spread = f" ({s.low:.2f}-{s.high:.2f})" if s.runs > 1 and s.low is not None and s.high is not None else ""
    return f"{s.unavailable_s:.2f} s{spread}"


def times(r: float | None) -> str:
    return "-" if r is None else f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def quorum_table(rounds: Sequence[Round]) -> str:
    """What the etcd quorum costs, by round trip, placement of the etcd members and region of the etcd
    leader (a renewal crosses regions only when the etcd leader is not in the Patroni leader's):
    medians over the rounds of each group, ratios to the single-region DCS at the same round trip."""
    by_key = {c.key: c for c in CONFIGS}
    groups: dict[tuple[int, bool, str], list[Round]] = {}
    for r in rounds:
        c = by_key.get(r.key)
        if c is None or c.method != "patroni" or c.timing != TUNED or r.etcd_put_ms is None:
            continue
        groups.setdefault((c.rtt_ms, c.local_dcs, leader_region(c, r.etcd_leader)), []).append(r)
    local: dict[int, list[Round]] = {}
    for (rtt, is_local, _leader), rs in groups.items():
        if is_local:
            local.setdefault(rtt, []).extend(rs)
    lines = ["What the etcd quorum across regions costs: round trips from us-east, where the Patroni leader runs "
             "(medians over the rounds of each round's median; ratio to all 3 etcd members in us-east at the same "
             "round trip):", "",
             "| round trip | etcd members | etcd leader in | rounds | leader-lock renewal (lease keep-alive) | "
             "etcd put (quorum write) | commit on the PostgreSQL leader |", "|---:|---|---|---:|---:|---:|---:|"]
    for (rtt, is_local, leader), rs in sorted(groups.items(), key=lambda g: (g[0][0], not g[0][1], g[0][2])):
        base = local.get(rtt, [])
        cells = []
        for attr in ("etcd_keepalive_ms", "etcd_put_ms", "commit_ms"):
            value = median([getattr(r, attr) for r in rs])
            b = median([getattr(r, attr) for r in base])
            cells.append(ms(value) + ("" if is_local or b is None else f" ({times(ratio(value, b))})"))
        lines.append(f"| {rtt} ms | {'3 in us-east' if is_local else 'us-east, eu-west, ap-south'} | {leader} | "
                     f"{len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(summaries: dict[str, Summary], rounds: Sequence[Round] = ()) -> str:
    """The three tables: recovery at 0 ms, recovery against the round trip, what the quorum costs."""
    get = summaries.get
    lines = ["Write unavailability of a writer in us-east (last commit acknowledged on the old timeline -> first "
             "on the new), the primary SIGKILLed, 0 ms between regions; median (min-max) of the rounds, ratio to "
             "the bare pg_promote():", "",
             "| recovery | write unavailability | ratio to bare pg_promote() | runs | promoted |",
             "|---|---:|---:|---:|---|"]
    base0 = get("promote-0")
    for key in ("patroni-defaults-0", "patroni-tuned-0", "manual-0", "promote-0"):
        s = get(key)
        if s is None:
            continue
        lines.append(f"| {s.config.describe()} | {seconds(s)} | "
                     f"{times(ratio(s.unavailable_s, base0.unavailable_s if base0 else None))} | {s.runs} | "
                     f"{', '.join(s.new_primaries) or '-'} |")
    lines += ["", f"The same with the lab-tuned timing ({TUNED.describe()}) against the round trip between every "
              "pair of regions:", "",
              "| round trip | Patroni, etcd in 3 regions | ratio to bare | Patroni, 3 etcd members in us-east | "
              "ratio to bare | bare pg_promote() |", "|---:|---:|---:|---:|---:|---:|"]
    for rtt in LATENCIES:
        spread, local, bare = get(f"patroni-tuned-{rtt}"), get(f"patroni-tuned-{rtt}-local-dcs"), get(f"promote-{rtt}")
        if spread is None and local is None and bare is None:
            continue
        b = bare.unavailable_s if bare else None
        lines.append(f"| {rtt} ms | {seconds(spread)} | {times(ratio(spread.unavailable_s if spread else None, b))} | "
                     f"{seconds(local) if local else '-'} | "
                     f"{times(ratio(local.unavailable_s if local else None, b))} | {seconds(bare)} |")
    lines += ["", quorum_table(rounds)] if rounds else []
    notes = [n for s in summaries.values() for n in (f"{s.config.key} {x}" for x in s.notes)]
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return "\n".join(lines)


# -- measuring --------------------------------------------------------------------------------------

PGTOPO = Path(sys.executable).parent / "pgtopo"  # the CLI a user runs, in a fresh process each time
# Inside an etcd member's container, against that member (etcd's HTTP gateway, as Patroni's etcd3
# client talks): the lease keep-alive a Patroni leader sends every loop to renew its leader lock
# (patroni/dcs/etcd3.py: _update_leader -> lease_keepalive), and a put (a quorum write: member
# keys, /status, a new leader key). Medians in ms, as JSON.
ETCD_PROBE = """
import base64, json, statistics, sys, time, urllib.request
n = int(sys.argv[1])
def call(path, body):
    req = urllib.request.Request("http://127.0.0.1:2379" + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t = time.perf_counter()
    out = urllib.request.urlopen(req, timeout=10).read()
    return time.perf_counter() - t, json.loads(out)
key = base64.b64encode(b"/pgtopo-bench/probe").decode()
puts = [call("/v3/kv/put", {"key": key, "value": base64.b64encode(str(i).encode()).decode()})[0] for i in range(n)]
_t, lease = call("/v3/lease/grant", {"TTL": 60})
renewals = []
for _ in range(n):
    took, answer = call("/v3/lease/keepalive", {"ID": lease["ID"]})
    assert int(answer["result"]["TTL"]) > 0, answer
    renewals.append(took)
print(json.dumps({"put": statistics.median(puts) * 1000, "keepalive": statistics.median(renewals) * 1000}))
"""


def pgtopo(*args: str, timeout: float = 600) -> tuple[float, str, int]:
    t = time.monotonic()
    res = subprocess.run([str(PGTOPO), *args], capture_output=True, text=True, timeout=timeout)
    return time.monotonic() - t, res.stdout + res.stderr, res.returncode


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    found = next((ln for ln in lines if ln.startswith(("✗", "error", "Error"))), None)
    return found or (lines[-1] if lines else "")


def etcd_probe(topo: Any, probes: int) -> tuple[dict[str, float], str | None]:
    """Median put and lease keep-alive round trips (ms) from the us-east member's container, and the etcd leader."""
    from pgtopo.patroni import etcd
    from pgtopo.runtime import gateway

    member = next(m.name for m in topo.dcs_members() if m.region == WRITER_REGION)
    c = gateway.find(topo.name, member)
    if c is None:
        raise RuntimeError(f"etcd member {member} has no container")
    res = gateway.exec_in(c, ["python3", "-c", ETCD_PROBE, str(probes)], user="root")
    if res.rc != 0:
        raise RuntimeError(f"etcd probe on {member}: {res.stderr.strip()[-300:]}")
    return json.loads(res.stdout), etcd.dcs_view(topo).leader


def commit_ms(topo: Any, node: str, probes: int) -> float:
    import psycopg

    from pgtopo.postgres import connect

    took = []
    with psycopg.connect(connect.dsn(topo.name, node, dbname=DATABASE), autocommit=True) as conn:
        for i in range(probes):
            t = time.perf_counter()
            conn.execute("INSERT INTO pgtopo_drill.ledger (writer, seq) VALUES ('commit-probe', %s)", (i,))
            took.append(time.perf_counter() - t)
    return statistics.median(took) * 1000


def measure(config: Config, *, prefix: str, directory: Path, probes: int, rate: float, log: Path) -> Round:
    import psycopg

    from pgtopo.drill import primaries, tables, verdict
    from pgtopo.drill.deadline import Deadlines
    from pgtopo.drill.events import DrillLog, Recorder
    from pgtopo.drill.workloads import EndpointCache, LedgerWriter
    from pgtopo.postgres import connect
    from pgtopo.postgres.sql import run_all

    name = topology_name(config, prefix)
    path = write_topology(config, name, directory)
    r = Round(config.key)
    pgtopo("down", str(path), "--volumes")
    try:
        took, out, rc = pgtopo("up", str(path))
        if rc != 0:
            (log / f"{name}-up.log").write_text(out)
            r.notes.append(f"`up` exited with {rc}: {last_line(out)}")
            return r
        r.up_s = took
        topo = loader.load(path)
        run_all(topo, PRIMARY, tables.publisher_statements(accounts=1, balance=0, publish=False), db=DATABASE,
                step="create the ledger")
        if config.method == "patroni":
            try:
                probe, r.etcd_leader = etcd_probe(topo, probes)
                r.etcd_put_ms, r.etcd_keepalive_ms = probe["put"], probe["keepalive"]
            except (RuntimeError, ValueError, KeyError) as exc:  # the recovery is still worth measuring
                r.notes.append(f"etcd probe: {exc}")
        r.commit_ms = commit_ms(topo, PRIMARY, probes)

        rec = Recorder(DrillLog(drill="bench", topology=name, cluster="main",
                                started_at=datetime.now(UTC).isoformat(), duration=0, sample_every=1))
        halt, deadlines = threading.Event(), Deadlines()
        source = EndpointCache(topo, region=WRITER_REGION, cluster="main", database=DATABASE)
        writer = LedgerWriter(WRITER_REGION, source=source, rec=rec, deadlines=deadlines, rate=rate, timeout=5.0,
                              halt=halt)
        promote_conn = (psycopg.connect(connect.dsn(topo.name, PROMOTED), autocommit=True)
                        if config.method == "promote" else None)
        writer.start()
        try:
            ready = time.monotonic() + 60
            while time.monotonic() < ready and sum(a.outcome == "ok" for a in rec.log.attempts) < 50:
                time.sleep(0.1)
            acks = [a for a in rec.log.attempts if a.outcome == "ok"]
            r.commits_before = len(acks)
            if not acks:
                r.notes.append("the writer committed nothing before the kill")
                return r
            old_timeline = max(a.timeline or 0 for a in acks)
            _t, out, rc = pgtopo("kill", str(path), PRIMARY)
            if rc != 0:
                r.notes.append(f"`kill` exited with {rc}: {last_line(out)}")
                return r
            if config.method == "manual":
                _t, out, rc = pgtopo("failover", str(path), "--cluster", "main", "--yes")
                if rc != 0:
                    (log / f"{name}-failover.log").write_text(out)
                    r.notes.append(f"`failover` exited with {rc}: {last_line(out)}")
            elif promote_conn is not None:
                promote_conn.execute("SELECT pg_promote(wait => true, wait_seconds => 60)")
            ttl = config.timing.ttl if config.timing else 0
            limit = time.monotonic() + 3 * ttl + 60
            while time.monotonic() < limit and not any(
                    a.outcome == "ok" and (a.timeline or 0) > old_timeline for a in list(rec.log.attempts)):
                time.sleep(0.1)
            time.sleep(1.0)
        finally:
            halt.set()
            writer.join(timeout=30)
            deadlines.close()
            if promote_conn is not None:
                promote_conn.close()
        end = rec.now()
        attempts = [a for a in rec.log.attempts if a.workload == WRITER_REGION]
        newest = max((a.timeline for a in attempts if a.outcome == "ok" and a.timeline is not None), default=None)
        stats = verdict.writer_stats(WRITER_REGION, attempts, newest_timeline=newest, end=end)
        if not stats.switches:
            r.notes.append("no commit acknowledged on a new timeline within 3 x ttl + 60 s")
            return r
        switch = max(stats.switches, key=lambda s: s.seconds(end))
        r.unavailable_s, r.recovered = switch.seconds(end), stats.recovered
        if config.method == "patroni":  # Patroni names its PostgreSQL after the scope: ask who accepts writes
            r.new_primary = primaries.current(topo).get("main")
        else:
            r.new_primary = next((a.node for a in sorted(attempts, key=lambda a: a.end)
                                  if a.outcome == "ok" and a.timeline == switch.new_timeline), None)
        r.notes += rec.log.notes
        return r
    finally:
        pgtopo("down", str(path), "--volumes")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", help="configurations, comma-separated (default: all): "
                                   + ", ".join(c.key for c in CONFIGS))
    ap.add_argument("--prefix", default="pd-", help="topology names start with it")
    ap.add_argument("--probes", type=int, default=200, help="etcd puts and commits timed per round")
    ap.add_argument("--rate", type=float, default=50, help="the writer's commits per second")
    ap.add_argument("--json", type=Path, help="also write every round's figures there (after each round)")
    ap.add_argument("--from-json", type=Path, help="measure nothing: print the tables of a --json file")
    args = ap.parse_args()
    configs = select(args.only)
    if args.from_json:
        kept = [Round(**x) for x in json.loads(args.from_json.read_text())]
        print(report(summarize(kept, configs), kept))
        return 0
    os.environ.setdefault("PGTOPO_STATE_DIR", tempfile.mkdtemp(prefix="pgtopo-bench-patroni-"))
    directory = Path(tempfile.mkdtemp(prefix="pgtopo-bench-patroni-files-"))
    rounds: list[Round] = []
    started = datetime.now(UTC)
    for i in range(args.rounds):
        for c in configs:
            print(f"round {i + 1}/{args.rounds}: {c.key} ...", file=sys.stderr, flush=True)
            try:
                r = measure(c, prefix=args.prefix, directory=directory, probes=args.probes, rate=args.rate,
                            log=directory)
            except Exception as exc:  # one failed round is a note in the table, not the end of the run
                r = Round(c.key, notes=[f"{exc.__class__.__name__}: {exc}"])
            rounds.append(r)
            print(f"  {json.dumps(asdict(r))}", file=sys.stderr, flush=True)
            if args.json:
                args.json.write_text(json.dumps([asdict(x) for x in rounds], indent=1))
    print(f"Measured {started:%Y-%m-%d %H:%M}-{datetime.now(UTC):%H:%M} UTC, {args.rounds} round(s) per configuration, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end.\n")
    print(report(summarize(rounds, configs), rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
