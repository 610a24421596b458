#!/usr/bin/env python3
"""Userspace TCP latency relay simulating cross-region links (stdlib only).

The host kernel has no netem, so one container attached to every region network
runs this script; nodes reach other regions through its listener ports.

    relay.py serve CONFIG [--bind ADDR]   forward; SIGHUP re-reads CONFIG
    relay.py probe --host H --port P [--port P2 ...] [--count N]   JSON on stdout
    relay.py check CONFIG

Delay model (like Toxiproxy's latency toxic): each chunk is stamped when read and
released at max(previous release, stamp + one-way delay), so delays never add up
across queued chunks and order is kept. One-way delay = rtt_ms/2 plus a uniform
offset in [-jitter_ms, +jitter_ms], clamped at 0.

A listener whose source is ``"*"`` (a *mesh* listener: Patroni and etcd members publish one
address each, the same from every region) takes its source region from the address the
connection arrived on: the relay is attached to every region network, and ``networks`` maps
each network's subnet to its region. Its connections are then delayed and cut like any other
listener's; one that stays inside a region is neither delayed nor cut (as if it went direct).

A target that refuses connections or is gone from the network (a stopped or killed
container) closes its listener until the target accepts again: later clients see their
connection refused, as from a host that is down, and a client with several hosts (libpq's
multi-host URLs) moves on to the next one instead of failing on a connection that opened
and closed at once.

The relay accepts a connection at once, but over a real WAN the TCP handshake costs a
round trip before the client can send anything: a new connection's chunks from the
client are stamped no earlier than one (sampled) round trip after the accept, and the
server's no earlier than one way after it (when its SYN would have arrived). The first
request of a new connection therefore pays two round trips, as it would over the WAN.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import ipaddress
import itertools
import json
import math
import random
import signal
import socket
import statistics
import struct
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
else:
    class _Asyncio(ModuleType):
        """asyncio, imported at its first use: `relay.py probe` (a `docker exec` at every `pgtopo
        status`) never needs it, and importing it took 30 to 90 ms of the probe's start."""

        def __getattr__(self, name: str) -> Any:
            import asyncio as module

            globals()["asyncio"] = module
            return getattr(module, name)

    asyncio = _Asyncio("asyncio")

RELAY_SCRIPT_PATH = "/etc/pgtopo/relay.py"
RELAY_CONFIG_PATH = "/etc/pgtopo/relay.json"
CHUNK_SIZE = 256 * 1024
# Larger stream buffers mean fewer, bigger reads: less Python work per byte forwarded.
STREAM_LIMIT = 1024 * 1024
MAX_QUEUED_BYTES = 4 * 1024 * 1024
CONNECT_TIMEOUT_S = 5.0
TARGET_RETRY_S = 0.5  # how often a listener closed for a down target tries it again
PROBE_TIMEOUT_S = 10.0
SSL_REQUEST = struct.pack("!ii", 8, 80877103)

_LISTENER_FIELDS: dict[str, type] = {
    "port": int, "src": str, "dst": str,
    "target_node": str, "target_host": str, "target_port": int,
}
_LINK_FIELDS = ("rtt_ms", "jitter_ms", "bandwidth_kbps")
_TOP_FIELDS = ("listeners", "links", "peers", "partitioned", "networks")
ANY_REGION = "*"  # a mesh listener's source: resolved per connection from the arrival address


class ConfigError(ValueError):
    """Invalid relay config; ``problems`` holds one message per bad field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def link_key(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


@dataclasses.dataclass(frozen=True)
class Listener:
    port: int
    src: str
    dst: str
    target_node: str
    target_host: str
    target_port: int

    def to_json(self) -> dict[str, Any]:
        return dict(sorted(dataclasses.asdict(self).items()))


@dataclasses.dataclass(frozen=True)
class LinkShape:
    """rtt_ms is split evenly between directions; jitter_ms is the +/- range of each one-way delay."""

    rtt_ms: float
    jitter_ms: float = 0.0
    bandwidth_kbps: float | None = None

    def one_way_s(self, rng: random.Random) -> float:
        ms = self.rtt_ms / 2
        if self.jitter_ms:
            ms += rng.uniform(-self.jitter_ms, self.jitter_ms)
        return max(0.0, ms) / 1000.0

    def to_json(self) -> dict[str, Any]:
        return dict(sorted(dataclasses.asdict(self).items()))


@dataclasses.dataclass(frozen=True)
class RelayConfig:
    listeners: tuple[Listener, ...] = ()
    # Mappings are excluded from the hash (dicts are unhashable); eq still compares them.
    links: Mapping[str, LinkShape] = dataclasses.field(default_factory=dict, hash=False)
    peers: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    partitioned: frozenset[str] = frozenset()
    networks: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)  # subnet -> region

    @classmethod
    def from_json(cls, raw: object) -> RelayConfig:
        config, problems = _parse(raw)
        if config is None or problems:
            raise ConfigError(problems)
        return config

    def to_json(self) -> dict[str, Any]:
        return {
            "links": {k: self.links[k].to_json() for k in sorted(self.links)},
            "listeners": [x.to_json() for x in sorted(self.listeners, key=lambda x: x.port)],
            "networks": dict(sorted(self.networks.items())),
            "partitioned": sorted(self.partitioned),
            "peers": dict(sorted(self.peers.items())),
        }

    def link(self, a: str, b: str) -> LinkShape | None:
        return self.links.get(link_key(a, b))

    def listener(self, port: int) -> Listener | None:
        return next((x for x in self.listeners if x.port == port), None)

    def region_of(self, local_ip: str) -> str | None:
        """The region whose network holds ``local_ip`` (the relay's own address a connection
        arrived on), or None."""
        try:
            ip = ipaddress.ip_address(local_ip)
        except ValueError:
            return None
        for cidr, region in self.networks.items():
            if ip in ipaddress.ip_network(cidr):
                return region
        return None

    def resolve(self, listener: Listener, local_ip: str | None) -> Listener | None:
        """A mesh listener as seen by one connection: its source region filled in from the
        arrival address (None when no network holds it); any other listener unchanged."""
        if listener.src != ANY_REGION:
            return listener
        region = self.region_of(local_ip) if local_ip else None
        return None if region is None else dataclasses.replace(listener, src=region)

    def is_cut(self, listener: Listener, peer_ip: str | None = None) -> bool:
        if listener.src == listener.dst:
            return False  # inside a region: no WAN to cut (mesh traffic that would have gone direct)
        names = {listener.src, listener.dst, listener.target_node}
        if peer_ip is not None and peer_ip in self.peers:
            names.add(self.peers[peer_ip])
        return not names.isdisjoint(self.partitioned)


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _unknown(where: str, item: dict[Any, Any], known: Iterable[str]) -> list[str]:
    return [f"{where}{k}: unknown field" for k in sorted(set(item) - set(known), key=str)]


def _parse(raw: object) -> tuple[RelayConfig | None, list[str]]:
    """Parse while collecting every problem, so `check` can report them all at once."""
    if not isinstance(raw, dict):
        return None, ["config: must be a JSON object"]
    errs = _unknown("", raw, _TOP_FIELDS)
    listeners: list[Listener] = []
    raw_listeners: Any = raw.get("listeners", [])
    if not isinstance(raw_listeners, list):
        errs, raw_listeners = [*errs, "listeners: must be a list"], []
    for i, item in enumerate(raw_listeners):
        where = f"listeners[{i}]"
        if not isinstance(item, dict):
            errs.append(f"{where}: must be an object")
            continue
        bad = _unknown(where + ".", item, _LISTENER_FIELDS)
        for name, typ in _LISTENER_FIELDS.items():
            v = item.get(name)
            if typ is int and not (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535):
                bad.append(f"{where}.{name}: must be a port number 1..65535")
            elif typ is str and not (isinstance(v, str) and v):
                bad.append(f"{where}.{name}: must be a non-empty string")
        if not bad and item["src"] == ANY_REGION and not raw.get("networks"):
            bad.append(f"{where}.src: '*' (the source region of each connection) needs the networks map")
        if not bad and any(x.port == item["port"] for x in listeners):
            bad.append(f"{where}.port: duplicate port {item['port']}")
        errs += bad
        if not bad:
            listeners.append(Listener(**item))
    links: dict[str, LinkShape] = {}
    raw_links: Any = raw.get("links", {})
    if not isinstance(raw_links, dict):
        errs, raw_links = [*errs, "links: must be an object"], {}
    for key, item in raw_links.items():
        where = f"links[{key!r}]"
        parts = key.split("|") if isinstance(key, str) else []
        if len(parts) != 2 or not all(parts) or key != link_key(*parts):
            errs.append(f"{where}: key must be two region names, sorted, joined by '|'")
        if not isinstance(item, dict):
            errs.append(f"{where}: must be an object")
            continue
        bad = _unknown(where + ".", item, _LINK_FIELDS)
        rtt: Any = item.get("rtt_ms")
        jitter, bw = item.get("jitter_ms", 0), item.get("bandwidth_kbps")
        if not _is_num(rtt):
            bad.append(f"{where}.rtt_ms: must be a number >= 0")
        if not _is_num(jitter):
            bad.append(f"{where}.jitter_ms: must be a number >= 0")
        if bw is not None and not (_is_num(bw) and bw > 0):
            bad.append(f"{where}.bandwidth_kbps: must be null or a number > 0")
        errs += bad
        if not bad:
            links[key] = LinkShape(float(rtt), float(jitter), None if bw is None else float(bw))
    peers: dict[str, str] = {}
    raw_peers: Any = raw.get("peers", {})
    if not isinstance(raw_peers, dict):
        errs, raw_peers = [*errs, "peers: must be an object mapping IP address to node name"], {}
    for ip, node in raw_peers.items():
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            errs.append(f"peers[{ip!r}]: key must be an IP address")
            continue
        if not (isinstance(node, str) and node):
            errs.append(f"peers[{ip!r}]: must be a non-empty node name")
            continue
        peers[ip] = node
    raw_cut: Any = raw.get("partitioned", [])
    if not (isinstance(raw_cut, list) and all(isinstance(x, str) and x for x in raw_cut)):
        errs, raw_cut = [*errs, "partitioned: must be a list of region/node names"], []
    networks: dict[str, str] = {}
    raw_nets: Any = raw.get("networks", {})
    if not isinstance(raw_nets, dict):
        errs, raw_nets = [*errs, "networks: must be an object mapping subnet (CIDR) to region"], {}
    for cidr, region in raw_nets.items():
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            errs.append(f"networks[{cidr!r}]: key must be a subnet in CIDR notation (host bits zero)")
            continue
        if not (isinstance(region, str) and region and region != ANY_REGION):
            errs.append(f"networks[{cidr!r}]: must be a region name")
            continue
        networks[cidr] = region
    return RelayConfig(tuple(listeners), links, peers, frozenset(raw_cut), networks), errs


def load_config(path: str) -> RelayConfig:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError([f"{path}: {e}"]) from e
    return RelayConfig.from_json(raw)


def _log(msg: str) -> None:
    print(f"relay: {msg}", file=sys.stderr, flush=True)


class _Bucket:
    """Shared token bucket per directed region pair; debt lets concurrent writers queue fairly."""

    def __init__(self, rate: float) -> None:
        self.rate, self.last = rate, time.monotonic()
        self.tokens = self.burst

    @property
    def burst(self) -> float:
        return max(16384.0, self.rate * 0.05)

    def reserve(self, n: int) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate) - n
        self.last = now
        return max(0.0, -self.tokens / self.rate)


class _Pipe:
    """One direction of a connection: read loop stamps chunks, write loop releases them."""

    def __init__(self, conn: _Conn, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                 frm: str, to: str, *, ready_at: float = 0.0) -> None:
        self.conn, self.src, self.dst, self.frm, self.to = conn, src, dst, frm, to
        self.queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        self.queued = 0
        self.space = asyncio.Event()
        self.last_release = 0.0
        self.ready_at = ready_at  # no byte counts as sent before the simulated handshake allows it

    async def read_loop(self) -> None:
        relay = self.conn.relay
        while True:
            if self.queued >= MAX_QUEUED_BYTES:
                self.space.clear()  # backpressure: the kernel buffers, then the sender, stall
                await self.space.wait()
                continue
            data = await self.src.read(CHUNK_SIZE)
            if not data:
                self.queue.put_nowait(None)
                return
            if self.conn.cut:
                continue
            # Delay is sampled at read time so a reload affects only chunks read after it.
            link = relay.config.link(self.frm, self.to)
            delay = link.one_way_s(relay.rng) if link else 0.0
            stamp = max(time.monotonic(), self.ready_at)
            self.last_release = max(self.last_release, stamp + delay)
            self.queued += len(data)
            self.queue.put_nowait((self.last_release, data))

    async def write_loop(self) -> None:
        have_carry, carry = False, None
        while True:
            item = carry if have_carry else await self.queue.get()
            have_carry, carry = False, None
            if item is None:
                break
            release, data = item
            parts, size = [data], len(data)
            try:
                await asyncio.sleep(max(0.0, release - time.monotonic()))
                bucket = self.conn.relay.bucket(self.frm, self.to)
                # Chunks already due go out together: one write and one drain per batch, not per
                # chunk (the relay's CPU per byte is what caps throughput on a small machine).
                now = time.monotonic()
                while bucket is None and not self.queue.empty():
                    nxt = self.queue.get_nowait()
                    if nxt is None or nxt[0] > now:
                        have_carry, carry = True, nxt
                        break
                    parts.append(nxt[1])
                    size += len(nxt[1])
                if self.conn.cut:
                    continue  # partitioned while in flight: the packets are lost
                if bucket is not None:
                    await asyncio.sleep(bucket.reserve(size))
                self.dst.writelines(parts)
                await self.dst.drain()
                self.conn.nbytes += size
            finally:
                self.queued -= size
                self.space.set()
        # A FIN crossing a partition is lost, like any other packet.
        if not self.conn.cut and self.dst.can_write_eof():
            self.dst.write_eof()


class _Conn:
    _ids = itertools.count(1)

    def __init__(self, relay: Relay, listener: Listener,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.relay, self.listener, self.reader, self.writer = relay, listener, reader, writer
        self.id = next(self._ids)
        self.accepted_at = time.monotonic()
        peer = writer.get_extra_info("peername")
        self.peer_ip: str | None = peer[0] if peer else None
        self.cut = self.was_cut = relay.config.is_cut(listener, self.peer_ip)
        self.killed: str | None = None
        self.nbytes = 0
        self.pipes: tuple[_Pipe, ...] = ()
        self.task = asyncio.current_task()  # the server's handler task for this connection

    def kill(self, reason: str) -> None:
        if self.killed is None and self.task is not None:
            self.killed = reason
            self.task.cancel()

    def set_cut(self, cut: bool) -> None:
        if self.was_cut and not cut:
            self.kill("healed")  # bytes were dropped mid-stream, so the stream is corrupt
        self.cut = cut
        self.was_cut |= cut

    def handshake(self) -> tuple[float, float]:
        """The one-way delays of the SYN (client to server) and the SYN-ACK (back), sampled
        from the link as it is when the connection is accepted."""
        lst = self.listener
        there, back = self.relay.config.link(lst.src, lst.dst), self.relay.config.link(lst.dst, lst.src)
        return (there.one_way_s(self.relay.rng) if there else 0.0,
                back.one_way_s(self.relay.rng) if back else 0.0)

    async def run(self) -> None:
        lst = self.listener
        label = f"#{self.id} :{lst.port} {lst.src}->{lst.dst} {lst.target_node}:{lst.target_port}"
        _log(f"open {label} from {self.peer_ip}{' (blackholed)' if self.cut else ''}")
        reason, t0 = "eof", time.monotonic()
        target: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            if self.cut:
                # A partitioned new connection never reaches the target; read and drop.
                while await self.reader.read(CHUNK_SIZE):
                    pass
            else:
                try:
                    target = await asyncio.wait_for(
                        asyncio.open_connection(lst.target_host, lst.target_port, limit=STREAM_LIMIT),
                        CONNECT_TIMEOUT_S)
                except (TimeoutError, OSError) as e:
                    reason = f"connect failed: {str(e) or 'timeout'}"
                    if isinstance(e, ConnectionRefusedError | socket.gaierror):
                        self.relay.target_down(lst.port)
                else:
                    syn, syn_ack = self.handshake()
                    self.pipes = (_Pipe(self, self.reader, target[1], lst.src, lst.dst,
                                        ready_at=self.accepted_at + syn + syn_ack),
                                  _Pipe(self, target[0], self.writer, lst.dst, lst.src,
                                        ready_at=self.accepted_at + syn))
                    async with asyncio.TaskGroup() as tg:
                        for p in self.pipes:
                            tg.create_task(p.read_loop())
                            tg.create_task(p.write_loop())
        except asyncio.CancelledError:
            if self.killed is None:
                raise
            reason = self.killed
        except Exception as e:  # any failure on either side closes both
            first = e.exceptions[0] if isinstance(e, BaseExceptionGroup) else e
            reason = f"error: {type(first).__name__}: {first}"
        finally:
            for w in (self.writer, target[1] if target else None):
                if w is None:
                    continue
                if reason == "eof":
                    w.close()
                else:
                    w.transport.abort()  # no point flushing into a corrupt or dead stream
            _log(f"close {label}: {reason} ({self.nbytes} B, {time.monotonic() - t0:.1f}s)")


class Relay:
    """All listeners and connections; `reload()` applies a changed config in place."""

    def __init__(self, config_path: str, bind: str = "0.0.0.0") -> None:
        self.config_path, self.bind = config_path, bind
        self.config = RelayConfig()
        self.servers: dict[int, asyncio.Server] = {}
        self.conns: set[_Conn] = set()
        self.buckets: dict[tuple[str, str], _Bucket] = {}
        self.rng = random.Random()
        self._lock = asyncio.Lock()
        self.down: set[int] = set()  # listeners closed while their target is down
        self._watchers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        async with self._lock:
            await self._apply(load_config(self.config_path), strict=True)

    async def reload(self) -> bool:
        # Reading under the lock makes the last applied config the newest file content.
        async with self._lock:
            try:
                config = load_config(self.config_path)
            except ConfigError as e:
                _log(f"reload rejected, keeping old config: {e}")
                return False
            await self._apply(config)
            return True

    async def _apply(self, config: RelayConfig, strict: bool = False) -> None:
        new_ports = {x.port for x in config.listeners}
        for port in sorted(set(self.servers) - new_ports):
            self.servers.pop(port).close()
            for conn in [c for c in self.conns if c.listener.port == port]:
                conn.kill("listener removed")
        self.config = config
        for conn in list(self.conns):
            conn.set_cut(config.is_cut(conn.listener, conn.peer_ip))
        for port in sorted(new_ports - set(self.servers) - self.down):
            try:
                accept = functools.partial(self._accept, port)
                self.servers[port] = await asyncio.start_server(accept, self.bind, port, limit=STREAM_LIMIT)
            except OSError as e:
                if strict:
                    raise
                _log(f"cannot listen on {port}: {e}")
        cut = ",".join(sorted(config.partitioned)) or "none"
        _log(f"config: {len(self.servers)} listeners, {len(config.links)} links, cut={cut}")

    def target_down(self, port: int) -> None:
        """Stop listening on ``port`` until its target accepts connections again."""
        if port in self.down or port not in self.servers:
            return
        self.servers.pop(port).close()
        self.down.add(port)
        _log(f"listener :{port} closed: its target is down (connections are refused until it is back)")
        task = asyncio.get_running_loop().create_task(self._watch_target(port))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch_target(self, port: int) -> None:
        while True:
            await asyncio.sleep(TARGET_RETRY_S)
            lst = self.config.listener(port)
            if lst is None:  # removed by a reload meanwhile
                self.down.discard(port)
                return
            try:
                _r, w = await asyncio.wait_for(asyncio.open_connection(lst.target_host, lst.target_port),
                                               CONNECT_TIMEOUT_S)
            except (TimeoutError, OSError):
                continue
            w.close()
            async with self._lock:
                self.down.discard(port)
                if port not in self.servers and self.config.listener(port) is not None:
                    try:
                        accept = functools.partial(self._accept, port)
                        self.servers[port] = await asyncio.start_server(accept, self.bind, port, limit=STREAM_LIMIT)
                    except OSError as e:  # the port is not free yet: still down, tried again
                        _log(f"cannot listen on {port} again yet: {e}")
                        self.down.add(port)
                        continue
            _log(f"listener :{port} open again: its target accepts connections")
            return

    def bucket(self, frm: str, to: str) -> _Bucket | None:
        link = self.config.link(frm, to)
        if link is None or link.bandwidth_kbps is None:
            return None
        rate = link.bandwidth_kbps * 1000 / 8
        b = self.buckets.setdefault((frm, to), _Bucket(rate))
        b.rate = rate
        return b

    async def _accept(self, port: int, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        listener = self.config.listener(port)
        if listener is None:  # removed between accept and this callback
            w.transport.abort()
            return
        local = w.get_extra_info("sockname")
        resolved = self.config.resolve(listener, local[0] if local else None)
        if resolved is None:
            _log(f"refused :{port} from {w.get_extra_info('peername')}: arrived on {local[0] if local else '?'}, "
                 "which no network of the config holds")
            w.transport.abort()
            return
        listener = resolved
        conn = _Conn(self, listener, r, w)
        self.conns.add(conn)
        try:
            await conn.run()
        finally:
            self.conns.discard(conn)

    async def close(self) -> None:
        for task in list(self._watchers):
            task.cancel()
        for server in self.servers.values():
            server.close()
        self.servers.clear()
        conns = list(self.conns)
        for conn in conns:
            conn.kill("shutdown")
        await asyncio.gather(*(c.task for c in conns if c.task), return_exceptions=True)


async def serve(config_path: str, bind: str = "0.0.0.0") -> int:
    relay = Relay(config_path, bind)
    loop, stop = asyncio.get_running_loop(), asyncio.Event()
    reloads: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        task = loop.create_task(relay.reload())
        reloads.add(task)  # keep a reference until done, else the task may be collected
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await relay.start()
    except (ConfigError, OSError) as e:
        _log(f"cannot start: {e}")
        return 1
    _log(f"serving on {bind}")
    await stop.wait()
    await relay.close()
    return 0


class ProbeError(RuntimeError):
    pass


def startup_message(user: str, database: str) -> bytes:
    """A protocol 3.0 StartupMessage."""
    params = (("user", user), ("database", database), ("application_name", "pgtopo-probe"))
    body = struct.pack("!i", 196608) + b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


PROBE_STARTUP = startup_message("pgtopo", "postgres")


def probe_once(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> float:
    """One round trip in ms on a fresh connection, without the connection's set-up.

    The answer to the SSLRequest (it must come first) waits for the TCP handshake (a round
    trip, simulated by the relay) and the server's new backend; the exchange timed is the next
    one: the startup message, which the server answers with an authentication request. The
    probe then hangs up, which PostgreSQL does not log. A server that accepts TLS ('S') can
    say nothing more in clear: half the time from connect to its answer is taken instead.
    """
    try:
        t0 = time.perf_counter()
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(SSL_REQUEST)
            answer = s.recv(1)
            if answer == b"S":
                return round((time.perf_counter() - t0) * 1000 / 2, 3)
            if answer != b"N":
                what = f"unexpected answer {answer!r}" if answer else "closed before answering"
                raise ProbeError(f"{host}:{port}: {what}")
            t1 = time.perf_counter()
            s.sendall(PROBE_STARTUP)
            if not s.recv(1):
                raise ProbeError(f"{host}:{port}: closed before answering the startup message")
            return round((time.perf_counter() - t1) * 1000, 3)
    except TimeoutError as e:
        raise ProbeError(f"{host}:{port}: timed out after {timeout:g} s") from e
    except ConnectionRefusedError as e:
        raise ProbeError(f"{host}:{port}: connection refused") from e
    except OSError as e:
        raise ProbeError(f"{host}:{port}: {e}") from e


def probe_ports(host: str, ports: list[int], count: int = 5,
                timeout: float = PROBE_TIMEOUT_S) -> dict[int, list[float] | str]:
    """Every sample of every port at once, each on its own connection and thread: the whole
    run takes about the slowest round trip (three with the connection's set-up), not their sum.
    Per port: the samples in ms, or the first error's message."""
    samples: dict[int, list[float | ProbeError]] = {port: [] for port in ports}

    def one(port: int) -> None:
        try:
            got: float | ProbeError = probe_once(host, port, timeout)
        except ProbeError as e:
            got = e
        samples[port].append(got)  # list.append is atomic

    # Plain threads (not concurrent.futures, whose import the probe would pay at every start).
    threads = [threading.Thread(target=one, args=(port,), daemon=True) for port in ports for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results: dict[int, list[float] | str] = {}
    for port in ports:
        errors = [x for x in samples[port] if isinstance(x, ProbeError)]
        results[port] = str(errors[0]) if errors else [x for x in samples[port] if not isinstance(x, ProbeError)]
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="relay.py", description="pgtopo latency relay")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_serve = sub.add_parser("serve", help="run the relay")
    p_serve.add_argument("config")
    p_serve.add_argument("--bind", default="0.0.0.0")
    p_probe = sub.add_parser("probe", help="measure round trips through one or more ports, in parallel")
    p_probe.add_argument("--host", required=True)
    p_probe.add_argument("--port", type=int, required=True, action="append",
                         help="a port to probe (repeat for more)")
    p_probe.add_argument("--count", type=int, default=5)
    p_probe.add_argument("--timeout", type=float, default=PROBE_TIMEOUT_S)
    p_check = sub.add_parser("check", help="validate a config file")
    p_check.add_argument("config")
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        # SIGHUP's default action kills the process; until the loop's handler is installed,
        # ignoring it is safe because the config file is read after that point.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        return asyncio.run(serve(args.config, args.bind))
    if args.cmd == "probe":
        if args.count < 1:
            ap.error("--count must be >= 1")
        results = probe_ports(args.host, args.port, args.count, args.timeout)
        out: dict[str, Any] = {"ports": {}, "errors": {}}
        for port, got in results.items():
            if isinstance(got, str):
                out["errors"][str(port)] = got
                print(f"probe: {got}", file=sys.stderr)
            else:
                out["ports"][str(port)] = {"samples_ms": got, "median_ms": statistics.median(got), "min_ms": min(got)}
        print(json.dumps(out))
        return 0 if out["ports"] else 1
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print("\n".join(e.problems))
        return 1
    print(f"ok: {len(config.listeners)} listeners, {len(config.links)} links")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
