"""The read-your-writes benchmark: sessions write a row, then read it back at once.

Each session is a user: an upsert of its own row to the op's sequence number through the
:class:`~pgtopo.apps.routing.Router`, then a read of that row. A read that returns an older number
(or no row) is stale. Traffic goes through the URLs `pgtopo env` gives an application in the
region, so it pays the simulated latency.

The table is pgtopo's own (``public.pgtopo_ryw_<random>`` in the ``postgres`` database, which
no topology publication covers), created on the primary and dropped afterwards.
``slow_link_ms`` raises the latency between the primary's region and the replica's region
for the run (the replication lag), through the state's link overrides, and restores them.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from psycopg import sql

from pgtopo.apps.endpoints import AppEndpoints
from pgtopo.apps.routing import STRATEGIES, Router, Strategy, default_max_wait_s
from pgtopo.errors import InputError
from pgtopo.model.topology import Topology
from pgtopo.network import relay_container
from pgtopo.network.relay import link_key
from pgtopo.progress import Progress

BENCH_DATABASE = "postgres"
BENCH_USER = "pgtopo"
MAX_RTT_MS = 10_000.0
# Lets the relay read its new config (SIGHUP is asynchronous) before the first op is timed.
RELAY_SETTLE_S = 0.5


@dataclass(frozen=True)
class Op:
    """One write-then-read of a session."""

    write_s: float
    read_s: float
    stale: bool
    local: bool  # served by the replica
    waited_s: float = 0.0


@dataclass(frozen=True)
class StrategyStats:
    strategy: str
    reads: int
    stale: int
    local_share: float
    read_p50_ms: float
    read_p99_ms: float
    write_p50_ms: float
    write_p99_ms: float
    wait_p99_ms: float

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class Setup:
    topology: str
    cluster: str
    region: str
    primary: str
    replica: str
    replica_local: bool
    link: tuple[str, str]  # primary's region, replica's region
    link_rtt_ms: float  # in effect during the run
    slowed: bool
    sessions: int
    ops: int
    max_wait_ms: float


@dataclass
class BenchResult:
    setup: Setup
    stats: list[StrategyStats] = field(default_factory=list)


# -- pure ---------------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarize(strategy: str, ops: Sequence[Op]) -> StrategyStats:
    ms = 1000.0
    return StrategyStats(
        strategy=strategy, reads=len(ops), stale=sum(o.stale for o in ops),
        local_share=(sum(o.local for o in ops) / len(ops)) if ops else 0.0,
        read_p50_ms=percentile([o.read_s for o in ops], 50) * ms,
        read_p99_ms=percentile([o.read_s for o in ops], 99) * ms,
        write_p50_ms=percentile([o.write_s for o in ops], 50) * ms,
        write_p99_ms=percentile([o.write_s for o in ops], 99) * ms,
        wait_p99_ms=percentile([o.waited_s for o in ops], 99) * ms,
    )


def parse_strategies(text: str) -> list[Strategy]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in STRATEGIES]
    if bad or not names:
        raise InputError(f"unknown strategy '{bad[0] if bad else text}' (known: {', '.join(STRATEGIES)})")
    return [cast(Strategy, s) for s in dict.fromkeys(names)]


def columns() -> list[str]:
    return ["strategy", "reads", "stale", "local", "read p50", "read p99", "write p50", "write p99", "wait p99"]


def rows(result: BenchResult) -> list[list[str]]:
    return [[s.strategy, str(s.reads), str(s.stale), f"{s.local_share:.0%}", f"{s.read_p50_ms:.1f} ms",
             f"{s.read_p99_ms:.1f} ms", f"{s.write_p50_ms:.1f} ms", f"{s.write_p99_ms:.1f} ms",
             f"{s.wait_p99_ms:.1f} ms"] for s in result.stats]


def describe(setup: Setup) -> str:
    where = "local" if setup.replica_local else "remote"
    slowed = " (raised with --slow-link)" if setup.slowed else ""
    return (f"topology {setup.topology}, cluster {setup.cluster}, application in {setup.region}: "
            f"primary {setup.primary}, replica {setup.replica} ({where}); "
            f"{setup.link[0]} <-> {setup.link[1]} RTT {setup.link_rtt_ms:g} ms{slowed}; "
            f"{setup.sessions} sessions x {setup.ops} ops; lsn max wait {setup.max_wait_ms:g} ms")


def markdown(result: BenchResult) -> str:
    head = columns()
    lines = [describe(result.setup), "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(result)]
    return "\n".join(lines)


def link_override(current: dict[str, Any] | None, *, rtt_ms: float) -> dict[str, Any]:
    """The link's setting with ``rtt_ms``; jitter and bandwidth kept (jitter at most the RTT)."""
    cur = current or {}
    return {"rtt_ms": rtt_ms, "jitter_ms": min(float(cur.get("jitter_ms") or 0.0), rtt_ms),
            "bandwidth_kbps": cur.get("bandwidth_kbps")}


# -- the run ------------------------------------------------------------------------------------

def _session_ops(router: Router, table: sql.Identifier, row_id: int, ops: int) -> list[Op]:
    upsert = sql.SQL("INSERT INTO {t} (id, seq) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq"
                     ).format(t=table)
    query = sql.SQL("SELECT seq FROM {t} WHERE id = %s").format(t=table)
    session = router.session()
    out: list[Op] = []
    # Op 0 is a warm-up: it opens this session's connections, which costs several round trips.
    for seq in range(ops + 1):
        t0 = time.perf_counter()
        session.write(upsert, (row_id, seq))
        t1 = time.perf_counter()
        got = session.read(query, (row_id,))
        t2 = time.perf_counter()
        info = session.last_read
        if seq:
            out.append(Op(write_s=t1 - t0, read_s=t2 - t1, stale=not got or got[0][0] != seq,
                          local=info is not None and info.served_by == "replica",
                          waited_s=info.waited_s if info else 0.0))
    return out


def _run_strategy(ep: AppEndpoints, strategy: Strategy, *, table: sql.Identifier, base_id: int, sessions: int,
                  ops: int, max_wait_s: float) -> list[Op]:
    with Router.from_urls(primary_url=ep.primary_url, replica_url=ep.replica_url, multihost_url=ep.multihost_url,
                          strategy=strategy, max_wait_s=max_wait_s, pool_size=sessions) as router, \
            ThreadPoolExecutor(max_workers=sessions) as pool:
        futures = [pool.submit(_session_ops, router, table, base_id + i, ops) for i in range(sessions)]
        return [op for f in futures for op in f.result()]


def run(topo: Topology, *, region: str, strategies: Sequence[Strategy], sessions: int = 4, ops: int = 50,
        slow_link_ms: float | None = None, cluster: str | None = None, max_wait_ms: float | None = None,
        progress: Progress | None = None) -> BenchResult:
    """Run the benchmark against the running topology ``topo``; returns per-strategy statistics."""
    from pgtopo.apps import endpoints
    from pgtopo.postgres import connect
    from pgtopo.runtime import state

    say = progress or (lambda _s, _m: None)
    if sessions < 1 or ops < 1:
        raise InputError("--sessions and --ops must be at least 1")
    if slow_link_ms is not None and not 0 < slow_link_ms <= MAX_RTT_MS:
        raise InputError(f"--slow-link must be more than 0 and at most {MAX_RTT_MS:g} ms")
    ep = endpoints.app_endpoints(topo, region=region, cluster=cluster, user=BENCH_USER, database=BENCH_DATABASE)
    link = (ep.primary.region, ep.replica.region)
    if slow_link_ms is not None and link[0] == link[1]:
        raise InputError(f"--slow-link: the primary {ep.primary.node} and the replica {ep.replica.node} are both in "
                         f"{link[0]}; there is no link to slow down")
    key = link_key(*link)
    before = state.load(topo.name).links_json().get(key)  # this link's override, restored when the run ends
    declared = topo.link(*link)
    current = before or ({"rtt_ms": declared.rtt_ms, "jitter_ms": declared.jitter_ms,
                          "bandwidth_kbps": declared.bandwidth_kbps} if declared else None)
    rtt = slow_link_ms if slow_link_ms is not None else float((current or {}).get("rtt_ms") or 0.0)
    max_wait_s = max_wait_ms / 1000 if max_wait_ms is not None else default_max_wait_s(rtt)
    setup = Setup(topology=topo.name, cluster=ep.cluster, region=region, primary=ep.primary.node,
                  replica=ep.replica.node, replica_local=ep.replica.region == region, link=link, link_rtt_ms=rtt,
                  slowed=slow_link_ms is not None, sessions=sessions, ops=ops, max_wait_ms=max_wait_s * 1000)
    result = BenchResult(setup=setup)
    table = sql.Identifier("public", f"pgtopo_ryw_{secrets.token_hex(4)}")
    try:
        say("bench", f"creating {table.as_string(None)} on {ep.primary.node}")
        with connect.connect(topo.name, ep.primary.node, dbname=BENCH_DATABASE) as conn:
            conn.execute(sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, seq integer NOT NULL)").format(table))
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(
                table, sql.Literal("pgtopo bench ryw: dropped when the run ends")))
        _wait_replicated(topo, ep.replica.node, table)
        if slow_link_ms is not None:
            say("bench", f"{link[0]} <-> {link[1]}: RTT {slow_link_ms:g} ms for the run")
            slowed = state.LinkOverride.model_validate(link_override(current, rtt_ms=slow_link_ms))
            state.update(topo.name, lambda rt: rt.model_copy(update={"links": {**rt.links, key: slowed}}))
            relay_container.update_relay(topo)
            time.sleep(RELAY_SETTLE_S)
        for i, strategy in enumerate(strategies):
            say("bench", f"{strategy}: {sessions} sessions x {ops} ops")
            ops_done = _run_strategy(ep, strategy, table=table, base_id=(i + 1) * 100_000, sessions=sessions, ops=ops,
                                     max_wait_s=max_wait_s)
            result.stats.append(summarize(strategy, ops_done))
    finally:
        if slow_link_ms is not None:
            _restore_link(topo, key, before)
            relay_container.update_relay(topo)
            say("bench", f"{link[0]} <-> {link[1]}: latency restored")
        with connect.connect(topo.name, ep.primary.node, dbname=BENCH_DATABASE) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    return result


def _wait_replicated(topo: Topology, node: str, table: sql.Identifier, *, timeout_s: float = 30.0) -> None:
    """A read on the replica before its CREATE TABLE is replayed would fail, not be stale."""
    from pgtopo.postgres import connect
    from pgtopo.runtime.waiting import wait_for

    with connect.connect(topo.name, node, dbname=BENCH_DATABASE) as conn:
        def replicated() -> bool:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table.as_string(None),)).fetchone()
            return bool(row and row[0])

        wait_for(replicated, timeout=timeout_s, what="the bench table to reach the replica", step="wait for replication",
                 node=node, interval=0.05)


def _restore_link(topo: Topology, key: str, before: dict[str, Any] | None) -> None:
    """The link's override as it was before the run (none: the file's value); other links are left alone."""
    from pgtopo.runtime import state

    def restore(rt: state.RuntimeState) -> state.RuntimeState:
        links = {k: v for k, v in rt.links.items() if k != key}
        if before is not None:
            links[key] = state.LinkOverride.model_validate(before)
        return rt.model_copy(update={"links": links})

    state.update(topo.name, restore)
