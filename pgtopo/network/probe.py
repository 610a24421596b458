"""Measured round trips between regions, timed by the relay (``relay.py probe``).

``status`` compares them with the file (and ``latency set`` overrides); ``pgtopo latency``
shows them beside the declared and in-effect values.
"""

from __future__ import annotations

import json
import statistics
from concurrent.futures import ThreadPoolExecutor

from pgtopo.errors import PgtopoError
from pgtopo.model.topology import Pair, Topology
from pgtopo.network.relay import RELAY_SCRIPT_PATH
from pgtopo.runtime import gateway

PROBE_COUNT = 3  # samples per region pair; the median is shown (status, latency)

def measure_latency(topo: Topology, *, count: int = PROBE_COUNT) -> dict[Pair, float | None]:
    """Median round trip in ms for each region pair (a, b) in file order, measured by the relay.

    Inside the relay container, ``relay.py probe`` times an SSLRequest through the listener
    for (a, node in b) — both directions pay the simulated delay. Pairs run in parallel; a pair
    falls back to other nodes, then to the opposite direction; None when nothing answered or the
    pair is partitioned (``pgtopo partition``). Each probe waits at most 2 s plus twice the RTT.
    """
    from pgtopo.runtime import state

    pairs = topo.region_pairs()
    relays = [c for c in gateway.containers(topo.name, kind="relay") if gateway.status(c) == "running"]
    if not pairs or not relays:
        return {p: None for p in pairs}
    relay = relays[0]
    rt = state.load(topo.name)
    # A partitioned region or node blackholes its listeners: probing it would only time out.
    cut = set(rt.partitioned)
    overrides = rt.links

    def probe(src: str, target: str) -> float | None:
        dst = topo.node(target).region
        if cut & {src, dst, target}:
            return None
        link = topo.link(src, dst)
        override = overrides.get("|".join(sorted((src, dst))))
        rtt_ms = override.rtt_ms if override else float(link.rtt_ms if link else 0)
        cmd = ["python3", RELAY_SCRIPT_PATH, "probe", "--host", "127.0.0.1", "--port",
               str(topo.relay_port(src, target)), "--count", str(count), "--timeout", f"{2 + 2 * rtt_ms / 1000:g}"]
        try:
            res = gateway.exec_in(relay, cmd, user="root")
            if res.rc != 0:
                return None
            samples = json.loads(res.stdout)["samples_ms"]
            return float(statistics.median(samples))
        except (PgtopoError, ValueError, KeyError, TypeError):
            return None

    def one(pair: Pair) -> float | None:
        a, b = pair
        tries = [(a, n) for n in topo.node_names() if topo.node(n).region == b]
        tries += [(b, n) for n in topo.node_names() if topo.node(n).region == a]
        for src, target in tries:
            ms = probe(src, target)
            if ms is not None:
                return ms
        return None

    with ThreadPoolExecutor(max_workers=min(8, len(pairs))) as pool:
        return dict(zip(pairs, pool.map(one, pairs), strict=True))
