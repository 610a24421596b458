"""Measured round trips between regions, timed by the relay (``relay.py probe``).

``status`` compares them with the file (and ``latency set`` overrides); ``pgtopo latency``
shows them beside the declared and in-effect values.
"""

from __future__ import annotations

import json
import statistics
from typing import TYPE_CHECKING

from pgtopo.errors import PgtopoError
from pgtopo.model.topology import Pair, Topology
from pgtopo.network.relay import RELAY_SCRIPT_PATH
from pgtopo.runtime import gateway

if TYPE_CHECKING:  # only gateway.py imports docker at run time
    from docker.models.containers import Container

PROBE_COUNT = 3  # samples per region pair; the median is shown (status, latency)

def measure_latency(topo: Topology, *, count: int = PROBE_COUNT) -> dict[Pair, float | None]:
    """Median round trip in ms for each region pair (a, b) in file order, measured by the relay.

    Inside the relay container, ``relay.py probe`` times a round trip of a fresh connection
    through the listener for (a, node in b), after its set-up — both directions pay the
    simulated delay. Every pair is probed at once by one ``relay.py probe`` run (one
    ``docker exec``, not one per pair); a pair whose node did not answer falls back to its
    other nodes, then to the opposite direction, in further runs. None when nothing answered
    or the pair is partitioned (``pgtopo partition``). A run waits at most 2 s plus twice
    the largest RTT it probes.
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

    def rtt_ms(src: str, dst: str) -> float:
        link = topo.link(src, dst)
        override = overrides.get("|".join(sorted((src, dst))))
        return override.rtt_ms if override else float(link.rtt_ms if link else 0)

    def tries(pair: Pair) -> list[tuple[str, str]]:
        a, b = pair
        out = [(a, n) for n in topo.node_names() if topo.node(n).region == b]
        out += [(b, n) for n in topo.node_names() if topo.node(n).region == a]
        return [(src, n) for src, n in out if not cut & {src, topo.node(n).region, n}]

    left = {pair: tries(pair) for pair in pairs}
    found: dict[Pair, float | None] = dict.fromkeys(pairs)
    while any(left.values()):
        batch = {pair: todo.pop(0) for pair, todo in left.items() if todo}
        ports = {pair: topo.relay_port(src, n) for pair, (src, n) in batch.items()}
        longest = max(rtt_ms(src, topo.node(n).region) for src, n in batch.values())
        medians = _probe(relay, sorted(set(ports.values())), count=count, timeout=2 + 2 * longest / 1000)
        for pair, port in ports.items():
            if medians.get(port) is not None:
                found[pair] = medians[port]
                left[pair] = []
    return found


def _probe(relay: Container, ports: list[int], *, count: int, timeout: float) -> dict[int, float]:
    """Median ms per port that answered, from one ``relay.py probe`` run."""
    cmd = ["python3", RELAY_SCRIPT_PATH, "probe", "--host", "127.0.0.1", "--count", str(count),
           "--timeout", f"{timeout:g}"]
    for port in ports:
        cmd += ["--port", str(port)]
    try:
        res = gateway.exec_in(relay, cmd, user="root")
        if res.rc != 0:
            return {}
        answered = json.loads(res.stdout)["ports"]
        return {int(port): float(statistics.median(r["samples_ms"])) for port, r in answered.items()}
    except (PgtopoError, ValueError, KeyError, TypeError):
        return {}
