"""Simulated WAN latency and partitions: the relay's configuration, the latency matrix, and
the run-time changes ``pgtopo latency set/reset``, ``partition`` and ``heal`` make.

This kernel (like many CI hosts) has no netem, so cross-region traffic goes through a
userspace relay container attached to every region network (``pgtopo/relay.py``). Each
(source region, target node) pair in different regions has a listener; the relay delays each
direction by half the round trip in effect, preserving order without capping throughput.
A partition blackholes every listener touching a region or node: sockets stay open and
nothing is forwarded, which PostgreSQL notices through its timeouts, as on a real WAN.

Run-time changes live in the state (``links``: overrides keyed by :func:`link_key`;
``partitioned``: region and node names) and reach the relay through ``deploy.update_relay``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgtopo.errors import InputError, OperationFailed, PgtopoError
from pgtopo.model.topology import Link, Pair, Topology
from pgtopo.network import netem, relay, relay_container
from pgtopo.network.probe import measure_latency
from pgtopo.network.relay import link_key
from pgtopo.runtime import gateway, state

if TYPE_CHECKING:
    from docker.models.containers import Container

MAX_RTT_MS = 10_000.0

def parse_duration_ms(text: str) -> float:
    """'120ms', '0.2s', '120' -> milliseconds (finite, not negative)."""
    t = text.strip().lower()
    try:
        if t.endswith("ms"):
            value = float(t[:-2])
        elif t.endswith("s"):
            value = float(t[:-1]) * 1000
        else:
            value = float(t)
    except ValueError:
        raise ValueError(f"'{text}' is not a duration (examples: 120ms, 0.2s)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"'{text}' is not a duration >= 0 (examples: 120ms, 0.2s)")
    return value


# -- pure decisions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class LinkSetting:
    rtt_ms: float
    jitter_ms: float = 0.0
    bandwidth_kbps: float | None = None

    @classmethod
    def of(cls, raw: dict[str, Any] | relay.LinkShape | Link | state.LinkOverride | None) -> LinkSetting | None:
        if raw is None:
            return None
        if isinstance(raw, dict):
            bw = raw.get("bandwidth_kbps")
            return cls(float(raw["rtt_ms"]), float(raw.get("jitter_ms") or 0), None if bw is None else float(bw))
        bw = raw.bandwidth_kbps
        return cls(float(raw.rtt_ms), float(raw.jitter_ms), None if bw is None else float(bw))

    def to_json(self) -> dict[str, Any]:
        return {"rtt_ms": self.rtt_ms, "jitter_ms": self.jitter_ms, "bandwidth_kbps": self.bandwidth_kbps}


@dataclass(frozen=True)
class PairRow:
    """One region pair of the matrix: declared in the file, in effect in the relay, measured."""

    a: str
    b: str
    declared: LinkSetting | None
    in_effect: LinkSetting | None  # None when the topology is not running
    measured_ms: float | None
    cut: tuple[str, ...]  # partitioned regions among a and b

    @property
    def overridden(self) -> bool:
        return self.in_effect is not None and self.in_effect != self.declared

    def to_json(self) -> dict[str, Any]:
        return {"regions": [self.a, self.b],
                "declared": self.declared.to_json() if self.declared else None,
                "in_effect": self.in_effect.to_json() if self.in_effect else None,
                "overridden": self.overridden, "measured_rtt_ms": self.measured_ms,
                "partitioned": list(self.cut)}


def matrix(topo: Topology, *, in_effect: dict[str, dict[str, Any]] | None, partitioned: Iterable[str],
           measured: dict[Pair, float | None]) -> list[PairRow]:
    """The rows of ``pgtopo latency``; ``in_effect`` is the relay's ``links`` (None: not running)."""
    cut = set(partitioned)
    rows = []
    for a, b in topo.region_pairs():
        effect = None if in_effect is None else LinkSetting.of(in_effect.get(link_key(a, b)))
        rows.append(PairRow(a=a, b=b, declared=LinkSetting.of(topo.link(a, b)), in_effect=effect,
                            measured_ms=_round(measured.get((a, b))), cut=tuple(r for r in (a, b) if r in cut)))
    return rows


def _round(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 1)


def _check_region(topo: Topology, name: str) -> None:
    if name not in topo.regions:
        raise InputError(f"unknown region '{name}' (known: {', '.join(topo.regions)})")


def override_link(topo: Topology, overrides: dict[str, dict[str, Any]], a: str, b: str, *,
                  rtt: str, jitter: str | None) -> dict[str, dict[str, Any]]:
    """New overrides with the link a<->b set; one equal to the file's value is dropped."""
    for r in (a, b):
        _check_region(topo, r)
    if a == b:
        raise InputError(f"a link joins two different regions (got '{a}' twice)")
    try:
        rtt_ms = parse_duration_ms(rtt)
        jitter_ms = parse_duration_ms(jitter) if jitter is not None else 0.0
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if rtt_ms > MAX_RTT_MS:
        raise InputError(f"round trip {rtt_ms:g} ms is more than {MAX_RTT_MS:g} ms")
    if jitter_ms > rtt_ms:
        raise InputError(f"jitter {jitter_ms:g} ms is larger than the round trip {rtt_ms:g} ms")
    declared = LinkSetting.of(topo.link(a, b))
    new = LinkSetting(rtt_ms, jitter_ms, declared.bandwidth_kbps if declared else None)
    out = {k: v for k, v in overrides.items() if k != link_key(a, b)}
    if new != declared:
        out[link_key(a, b)] = new.to_json()
    return dict(sorted(out.items()))


def reset_links(topo: Topology, overrides: dict[str, dict[str, Any]],
                pair: Pair | None = None) -> dict[str, dict[str, Any]]:
    """Overrides without the one for ``pair`` (every one when None)."""
    if pair is None:
        return {}
    for r in pair:
        _check_region(topo, r)
    return {k: v for k, v in overrides.items() if k != link_key(*pair)}


def kind_of(topo: Topology, name: str) -> str:
    """'region' or 'node'; InputError for anything else."""
    if name in topo.regions:
        return "region"
    if name in topo.node_names():
        return "node"
    raise InputError(f"unknown region or node '{name}' (regions: {', '.join(topo.regions)}; "
                     f"nodes: {', '.join(topo.node_names())})")


def add_partition(topo: Topology, partitioned: Iterable[str], name: str) -> list[str]:
    kind_of(topo, name)
    return sorted({*partitioned, name})


def remove_partition(topo: Topology, partitioned: Iterable[str], name: str | None) -> list[str]:
    """Without ``name`` (everything when None); a name that is not cut is bad input."""
    current = sorted(set(partitioned))
    if name is None:
        return []
    kind_of(topo, name)
    if name not in current:
        raise InputError(f"'{name}' is not partitioned (partitioned: {', '.join(current) or 'nothing'})")
    return [n for n in current if n != name]


def cut_paths(topo: Topology, partitioned: Iterable[str]) -> list[str]:
    """What a set of partitions blackholes, as 'src-region -> node' relay paths."""
    cut = set(partitioned)
    out = []
    for lst in relay_container.relay_config(topo)["listeners"]:
        if cut & {lst["src"], lst["dst"], lst["target_node"]}:
            out.append(f"{lst['src']} -> {lst['target_node']}")
    for member, region, _services in topo.mesh_members():  # Patroni and etcd members: one listener each
        out += [f"{src} -> {member} (mesh)" for src in topo.regions
                if src != region and cut & {src, region, member}]
    nodes = sorted(n for n in cut if n in topo.node_names())
    out += [f"{n} -> any other region" for n in nodes]
    return out


# -- the running topology -------------------------------------------------------------------------

def _require_relay(topo: Topology) -> Container:
    if not topo.uses_relay():
        raise InputError(f"topology '{topo.name}' has a single region: there is no cross-region link to change")
    c = relay_container.running_relay(topo)
    if c is None:
        raise OperationFailed(f"topology '{topo.name}' is not running (no relay container)",
                              hint="start it with `pgtopo up FILE`")
    return c


@dataclass(frozen=True)
class LatencyReport:
    topology: str
    running: bool
    mechanism: netem.Mechanism
    partitioned: tuple[str, ...]
    rows: tuple[PairRow, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"topology": self.topology, "running": self.running, "mechanism": self.mechanism.to_json(),
                "partitioned": list(self.partitioned), "links": [r.to_json() for r in self.rows],
                "notes": list(self.notes)}


def _live_links(container: Container) -> dict[str, dict[str, Any]] | None:
    """The links of the config file the relay serves (what a SIGHUP last made it read)."""
    try:
        raw = json.loads(gateway.read_file(container, relay_container.RELAY_CONF))
        return dict(relay.RelayConfig.from_json(raw).to_json()["links"])
    except (PgtopoError, ValueError):
        return None


def report(topo: Topology, *, measure_links: bool = True) -> LatencyReport:
    """``pgtopo latency show FILE``: declared, in effect and measured round trips per region pair."""
    container = relay_container.running_relay(topo) if topo.uses_relay() else None
    running = container is not None or (not topo.uses_relay() and any(
        gateway.status(c) == "running" for c in gateway.containers(topo.name, kind="node")))
    rt = state.load(topo.name) if running else state.RuntimeState()
    partitioned = tuple(sorted(rt.partitioned))
    notes = []
    in_effect = None
    if container is not None:
        in_effect = _live_links(container)
        expected = relay_container.relay_config(topo, links=rt.links_json())["links"]
        if in_effect is None:
            notes.append("could not read the relay's config; showing the state's overrides")
            in_effect = expected
        elif in_effect != expected:
            notes.append("the relay's config differs from the state: `pgtopo latency reset FILE` rewrites it")
    measured = measure_latency(topo) if running and measure_links else {}
    mech = netem.mechanism(topology=topo.name, image=relay_container.relay_image(topo), multi_region=topo.uses_relay(),
                           running=running)
    if not running and topo.uses_relay():
        notes.append(f"topology '{topo.name}' is not running: only the declared values are known")
    rows = matrix(topo, in_effect=in_effect, partitioned=partitioned, measured=measured)
    return LatencyReport(topology=topo.name, running=running, mechanism=mech, partitioned=partitioned,
                  rows=tuple(rows), notes=tuple(notes))


def _apply(topo: Topology, change: Callable[[state.RuntimeState], dict[str, Any]]
           ) -> tuple[state.RuntimeState, state.RuntimeState]:
    """Record ``change`` (new values of some fields, from the state it is given) under the state's
    lock and push it to the relay; undo the record on failure. The state before and after (equal
    when nothing changed: then the relay is left alone)."""
    seen: list[state.RuntimeState] = []
    fields: dict[str, Any] = {}

    def record(rt: state.RuntimeState) -> state.RuntimeState:
        seen.append(rt)
        fields.update(change(rt))
        return rt.model_copy(update=fields)

    after = state.update(topo.name, record)
    before = seen[-1]
    if after == before:
        return before, after
    try:
        relay_container.update_relay(topo)
    except PgtopoError:
        # Only what still holds our value is undone: a concurrent command's later change stays.
        state.update(topo.name, lambda rt: rt.model_copy(update={
            k: getattr(before, k) for k in fields if getattr(rt, k) == getattr(after, k)}))
        raise
    return before, after


def _typed(links: dict[str, dict[str, Any]]) -> dict[str, state.LinkOverride]:
    return {k: state.LinkOverride.model_validate(v) for k, v in links.items()}


def set_link(topo: Topology, a: str, b: str, *, rtt: str, jitter: str | None = None) -> LinkSetting:
    """``pgtopo latency set FILE A B RTT``: change a link of the running topology."""
    def links(rt: state.RuntimeState) -> dict[str, dict[str, Any]]:
        return override_link(topo, rt.links_json(), a, b, rtt=rtt, jitter=jitter)

    links(state.load(topo.name))  # bad input is reported before a stopped topology
    _require_relay(topo)
    _, after = _apply(topo, lambda rt: {"links": _typed(links(rt))})
    effect = LinkSetting.of(after.links.get(link_key(a, b)) or topo.link(a, b))
    assert effect is not None
    return effect


def reset(topo: Topology, pair: Pair | None = None) -> list[str]:
    """``pgtopo latency reset FILE [A B]``: the file's values again; returns the links reset."""
    reset_links(topo, {}, pair)  # bad input is reported before a stopped topology
    _require_relay(topo)
    before, after = _apply(topo, lambda rt: {"links": _typed(reset_links(topo, rt.links_json(), pair))})
    return sorted(set(before.links) - set(after.links))


@dataclass(frozen=True)
class PartitionChange:
    name: str | None
    kind: str | None
    changed: bool
    partitioned: tuple[str, ...]
    paths: tuple[str, ...]  # relay paths blackholed (partition) or restored (heal)


def partition(topo: Topology, name: str) -> PartitionChange:
    """``pgtopo partition FILE NAME``: blackhole every cross-region path of a region or node."""
    kind = kind_of(topo, name)
    _require_relay(topo)

    def cut_off(rt: state.RuntimeState) -> dict[str, Any]:
        new = add_partition(topo, rt.partitioned, name)
        return {} if new == sorted(set(rt.partitioned)) else {"partitioned": tuple(new)}

    before, after = _apply(topo, cut_off)
    return PartitionChange(name, kind, after != before, tuple(sorted(set(after.partitioned))),
                           tuple(cut_paths(topo, [name])))


def heal(topo: Topology, name: str | None = None) -> PartitionChange:
    """``pgtopo heal FILE [NAME]``: forward again (every partition when NAME is omitted)."""
    kind = kind_of(topo, name) if name is not None else None
    remove_partition(topo, state.load(topo.name).partitioned, name)  # bad input before a stopped topology
    _require_relay(topo)

    def heal_one(rt: state.RuntimeState) -> dict[str, Any]:
        new = remove_partition(topo, rt.partitioned, name)
        return {"partitioned": tuple(new)} if new != sorted(set(rt.partitioned)) else {}

    before, after = _apply(topo, heal_one)
    current, new = sorted(set(before.partitioned)), sorted(set(after.partitioned))
    healed = [n for n in current if n not in new]
    still_cut = set(cut_paths(topo, new))
    restored = [p for p in cut_paths(topo, current) if p not in still_cut]
    return PartitionChange(name, kind, bool(healed), tuple(new), tuple(restored))
