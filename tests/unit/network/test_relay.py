"""Tests for the latency relay, on 127.0.0.1 with ephemeral ports (no Docker).

Timing assertions are lower bounds, with only generous upper bounds, so they hold
on a loaded 2-core machine.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import queue
import random
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from pgtopo.network import relay as R

RELAY_PY = Path(R.__file__)
SRC, DST = "eu-west", "us-east"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listener(port: int, target_port: int, src: str = SRC, dst: str = DST, node: str = "pg-us") -> dict[str, Any]:
    return {"port": port, "src": src, "dst": dst, "target_node": node,
            "target_host": "127.0.0.1", "target_port": target_port}


def write_config(path: Path, listeners: list[dict[str, Any]], rtt_ms: float | None = None,
                 bandwidth_kbps: float | None = None, peers: dict[str, str] | None = None,
                 partitioned: tuple[str, ...] = ()) -> None:
    links = {} if rtt_ms is None else {
        R.link_key(SRC, DST): {"rtt_ms": rtt_ms, "jitter_ms": 0, "bandwidth_kbps": bandwidth_kbps}}
    raw = {"listeners": listeners, "links": links, "peers": peers or {}, "partitioned": list(partitioned)}
    path.write_text(json.dumps(raw))


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


class Target:
    """Local echo server that records what it accepted and received."""

    def __init__(self) -> None:
        self.accepted = 0
        self.received = bytearray()
        self.open_conns = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Target:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open_conns += 1
        try:
            while data := await r.read(65536):
                self.received += data
                w.write(data)
                await w.drain()
            w.write_eof()  # echo the half-close back once all data is echoed
            await r.read()
        except OSError:
            pass
        finally:
            self.open_conns -= 1
            w.close()

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


async def with_relay(tmp_path: Path, body: Callable[[R.Relay, Target, Path], Awaitable[None]],
                     **config: Any) -> None:
    target = await Target().start()
    cfg = tmp_path / "relay.json"
    write_config(cfg, [listener(free_port(), target.port)], **config)
    relay = R.Relay(str(cfg), bind="127.0.0.1")
    await relay.start()
    try:
        await body(relay, target, cfg)
    finally:
        await relay.close()
        target.close()


def relay_port(relay: R.Relay) -> int:
    return relay.config.listeners[0].port


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def roundtrip(r: asyncio.StreamReader, w: asyncio.StreamWriter, data: bytes) -> float:
    t0 = time.monotonic()
    w.write(data)
    await w.drain()
    assert await asyncio.wait_for(r.readexactly(len(data)), 5) == data
    return time.monotonic() - t0


async def assert_silent(r: asyncio.StreamReader, seconds: float = 0.5) -> None:
    """Nothing arrives and the socket is not closed (a read would return b'' or raise)."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(r.read(100), seconds)


async def assert_closed(r: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionResetError):  # healed/killed connections are aborted
        assert await asyncio.wait_for(r.read(100), 5) == b""


# --- config -----------------------------------------------------------------

EXAMPLE: dict[str, Any] = {
    "listeners": [listener(10001, 5432, node="pg-us") | {"target_host": "pg-us"}],
    "links": {"eu-west|us-east": {"rtt_ms": 80, "jitter_ms": 2, "bandwidth_kbps": None}},
    "peers": {"10.213.1.3": "pg-eu"},
    "partitioned": ["pg-eu", "ap-south"],
}


def test_config_roundtrip_is_deterministic() -> None:
    config = R.RelayConfig.from_json(EXAMPLE)
    assert config.listeners[0] == R.Listener(10001, SRC, DST, "pg-us", "pg-us", 5432)
    assert config.link(DST, SRC) == R.LinkShape(80.0, 2.0, None)
    assert config.partitioned == {"ap-south", "pg-eu"}
    out = config.to_json()
    assert out["partitioned"] == ["ap-south", "pg-eu"]
    assert json.dumps(out) == json.dumps(out, sort_keys=True)
    assert R.RelayConfig.from_json(out) == config
    assert R.link_key("us-east", "eu-west") == R.link_key("eu-west", "us-east") == "eu-west|us-east"
    hash(config)


def test_is_cut_by_region_target_or_peer_node() -> None:
    lst = R.RelayConfig.from_json(EXAMPLE).listeners[0]
    for names, peer, cut in [((), None, False), ((SRC,), None, True), ((DST,), None, True),
                             (("pg-us",), None, True), (("pg-eu",), "10.213.1.3", True),
                             (("pg-eu",), "10.213.1.4", False)]:
        config = R.RelayConfig(peers={"10.213.1.3": "pg-eu"}, partitioned=frozenset(names))
        assert config.is_cut(lst, peer) is cut, (names, peer)


def test_jitter_is_the_range_of_the_one_way_delay() -> None:
    rng = random.Random(1)
    samples = [R.LinkShape(100, 10).one_way_s(rng) for _ in range(500)]
    assert 0.040 <= min(samples) < 0.042 and 0.058 < max(samples) <= 0.060
    assert R.LinkShape(2, 50).one_way_s(rng) >= 0


@pytest.mark.parametrize(("patch", "field"), [
    ({"listeners": [{"port": 0}]}, "listeners[0].port"),
    ({"listeners": [listener(10001, 5432) | {"target_host": ""}]}, "listeners[0].target_host"),
    ({"listeners": [listener(10001, 5432), listener(10001, 5433)]}, "listeners[1].port: duplicate"),
    ({"listeners": [listener(10001, 5432) | {"extra": 1}]}, "listeners[0].extra: unknown field"),
    ({"links": {"us-east|eu-west": {"rtt_ms": 1}}}, "links['us-east|eu-west']"),
    ({"links": {"eu-west|us-east": {"rtt_ms": -1}}}, "links['eu-west|us-east'].rtt_ms"),
    ({"links": {"eu-west|us-east": {"rtt_ms": 1, "jitter_ms": "2"}}}, "links['eu-west|us-east'].jitter_ms"),
    ({"links": {"eu-west|us-east": {"rtt_ms": 1, "bandwidth_kbps": 0}}}, ".bandwidth_kbps"),
    ({"peers": {"not-an-ip": "pg-eu"}}, "peers['not-an-ip']"),
    ({"partitioned": "eu-west"}, "partitioned"),
    ({"bogus": 1}, "bogus: unknown field"),
])
def test_config_validation_names_the_field(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(R.ConfigError) as exc:
        R.RelayConfig.from_json(EXAMPLE | patch)
    assert any(field in p for p in exc.value.problems), exc.value.problems


def test_check_subcommand(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(EXAMPLE))
    bad.write_text(json.dumps(EXAMPLE | {"listeners": [{"port": "x"}], "partitioned": 3}))
    ok = subprocess.run([sys.executable, RELAY_PY, "check", good], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    res = subprocess.run([sys.executable, RELAY_PY, "check", bad], capture_output=True, text=True)
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert "listeners[0].port: must be a port number 1..65535" in lines
    assert any(line.startswith("partitioned:") for line in lines)
    (tmp_path / "broken.json").write_text("{")
    broken = subprocess.run([sys.executable, RELAY_PY, "check", tmp_path / "broken.json"], capture_output=True)
    assert broken.returncode == 1 and b"broken.json" in broken.stdout


def test_script_uses_only_the_standard_library() -> None:
    tree = ast.parse(RELAY_PY.read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules - {"__future__"} <= set(sys.stdlib_module_names)


# --- data path ----------------------------------------------------------------

def test_round_trip_takes_at_least_the_rtt(tmp_path: Path) -> None:
    async def body(relay: R.Relay, target: Target, cfg: Path) -> None:
        r, w = await connect(relay_port(relay))
        elapsed = min([await roundtrip(r, w, b"ping %d" % i) for i in range(3)])
        assert 0.099 <= elapsed < 2.0
        w.close()
    run(with_relay(tmp_path, body, rtt_ms=100))


def test_a_new_connection_pays_the_handshake_round_trip(tmp_path: Path) -> None:
    """Over a WAN the client's first bytes leave only after the SYN-ACK is back: the first
    request of a new connection costs two round trips, the next ones one."""
    async def body(relay: R.Relay, target: Target, cfg: Path) -> None:
        r, w = await connect(relay_port(relay))
        first = await roundtrip(r, w, b"hello")
        rest = min([await roundtrip(r, w, b"ping %d" % i) for i in range(3)])
        assert first >= 0.199
        assert rest >= 0.099 and first - rest >= 0.08, (first, rest)
        w.close()
    run(with_relay(tmp_path, body, rtt_ms=100))


def test_bytes_sent_well_after_the_handshake_pay_only_the_one_way_delay(tmp_path: Path) -> None:
    async def body(relay: R.Relay, target: Target, cfg: Path) -> None:
        r, w = await connect(relay_port(relay))
        await asyncio.sleep(0.3)  # the simulated handshake (100 ms) is long over
        assert 0.099 <= await roundtrip(r, w, b"late") < 0.199 + 1.0
        w.close()
    run(with_relay(tmp_path, body, rtt_ms=100))


def test_a_server_speaking_first_is_heard_after_a_round_trip(tmp_path: Path) -> None:
    """The server could send only once the client's SYN reached it (one way); its bytes take
    another way back: the client hears it one round trip after connecting, as over a WAN."""
    async def greet(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 hello\r\n")
        await w.drain()
        await r.read()
        w.close()

    async def body() -> None:
        server = await asyncio.start_server(greet, "127.0.0.1", 0)
        cfg = tmp_path / "relay.json"
        write_config(cfg, [listener(free_port(), server.sockets[0].getsockname()[1])], rtt_ms=100)
        relay = R.Relay(str(cfg), bind="127.0.0.1")
        await relay.start()
        try:
            t0 = time.monotonic()
            r, w = await connect(relay_port(relay))
            assert await asyncio.wait_for(r.readline(), 5) == b"220 hello\r\n"
            assert time.monotonic() - t0 >= 0.099
            w.close()
        finally:
            await relay.close()
            server.close()
    run(body())


def test_throughput_is_not_capped_by_the_delay(tmp_path: Path) -> None:
    chunks = [bytes([i % 251]) * 8192 + i.to_bytes(4, "big") for i in range(200)]
    expected = b"".join(chunks)

    async def body(relay: R.Relay, target: Target, cfg: Path) -> None:
        r, w = await connect(relay_port(relay))
        t0 = time.monotonic()
        reading = asyncio.create_task(r.readexactly(len(expected)))
        for chunk in chunks:
            w.write(chunk)
            await w.drain()
            await asyncio.sleep(0.002)  # separate chunks, so a per-read sleep would add up
        got = await reading
        elapsed = time.monotonic() - t0
        assert got == expected
        assert 0.1 <= elapsed < 3.0, elapsed  # a per-chunk delay would need >= 200 * 50 ms
        w.close()
    run(with_relay(tmp_path, body, rtt_ms=100))


def test_half_close_is_delivered_after_queued_data(tmp_path: Path) -> None:
    async def body(relay: R.Relay, target: Target, cfg: Path) -> None:
        r, w = await connect(relay_port(relay))
        w.write(b"last words")
        w.write_eof()
        assert await asyncio.wait_for(r.read(), 5) == b"last words"
        w.close()
    run(with_relay(tmp_path, body, rtt_ms=100))


def test_bandwidth_limit(tmp_path: Path) -> None:
    payload = b"x" * 150_000

    async def body(relay: R.Relay, target: Target, cfg: Path) -> None:
        r, w = await connect(relay_port(relay))
        t0 = time.monotonic()
        reading = asyncio.create_task(r.readexactly(len(payload)))
        w.write(payload)
        await reading
        # 800 kbps = 100 kB/s; the bucket's burst is small next to 150 kB.
        assert time.monotonic() - t0 >= 0.9
        w.close()
    run(with_relay(tmp_path, body, rtt_ms=0, bandwidth_kbps=800))


def test_backpressure_bounds_the_queue(tmp_path: Path) -> None:
    async def body(relay: R.Relay, target: Target, cfg: Path) -> None:
        stalled = asyncio.Event()

        async def sink(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await stalled.wait()  # never reads, so everything piles up in front of it
            w.close()
        server = await asyncio.start_server(sink, "127.0.0.1", 0)
        port = free_port()
        write_config(cfg, [listener(port, server.sockets[0].getsockname()[1])], rtt_ms=10)
        await relay.reload()
        _, w = await connect(port)
        w.write(b"y" * (64 << 20))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(w.drain(), 2)
        (conn,) = relay.conns
        assert conn.pipes and conn.pipes[0].queued <= R.MAX_QUEUED_BYTES + R.CHUNK_SIZE
        w.transport.abort()
        stalled.set()
        server.close()
    run(with_relay(tmp_path, body, rtt_ms=10))


def test_connect_failure_closes_the_client(tmp_path: Path) -> None:
    async def body(relay: R.Relay, target: Target, cfg: Path) -> None:
        port = free_port()
        write_config(cfg, [listener(port, free_port())])
        await relay.reload()
        r, w = await connect(port)
        await assert_closed(r)
        w.close()
    run(with_relay(tmp_path, body))


def test_a_down_target_refuses_connections_until_it_is_back(tmp_path: Path) -> None:
    """As from a host that is down: a multi-host client moves on to its next host on a refusal."""
    async def body(relay: R.Relay, target: Target, cfg: Path) -> None:
        port, target_port = free_port(), free_port()
        write_config(cfg, [listener(port, target_port)])
        await relay.reload()
        r, w = await connect(port)
        await assert_closed(r)  # the first one finds out
        w.close()
        with pytest.raises(ConnectionRefusedError):
            await connect(port)
        assert await relay.reload()  # a reload does not open it while the target is down
        with pytest.raises(ConnectionRefusedError):
            await connect(port)
        back = await asyncio.start_server(target._handle, "127.0.0.1", target_port)
        try:
            for _ in range(100):  # the relay tries the target every TARGET_RETRY_S
                if port in relay.servers:
                    break
                await asyncio.sleep(0.1)
            r, w = await connect(port)
            assert await roundtrip(r, w, b"hello again") >= 0
            w.close()
        finally:
            back.close()
    run(with_relay(tmp_path, body))


# --- reload and partitions ------------------------------------------------------

def test_partition_blackholes_then_heal_closes(tmp_path: Path) -> None:
    async def body(relay: R.Relay, target: Target, cfg: Path) -> None:
        listeners = [listener(relay_port(relay), target.port)]
        r, w = await connect(relay_port(relay))
        await roundtrip(r, w, b"before")
        write_config(cfg, listeners, rtt_ms=20, partitioned=(DST,))
        assert await relay.reload()
        w.write(b"lost")
        await w.drain()
        await assert_silent(r)
        assert target.received == b"before" and target.open_conns == 1  # target side stays open too

        r2, w2 = await connect(relay_port(relay))  # new connection: accepted, never forwarded
        w2.write(b"also lost")
        await w2.drain()
        await assert_silent(r2)
        assert target.accepted == 1

        write_config(cfg, listeners, rtt_ms=20)
        assert await relay.reload()
        await assert_closed(r)
        await assert_closed(r2)
        r3, w3 = await connect(relay_port(relay))
        await roundtrip(r3, w3, b"after")
        for writer in (w, w2, w3):
            writer.close()
    run(with_relay(tmp_path, body, rtt_ms=20))


def test_partition_by_source_node(tmp_path: Path) -> None:
    async def body(relay: R.Relay, target: Target, cfg: Path) -> None:
        r, w = await connect(relay_port(relay))
        w.write(b"hello")
        await w.drain()
        await assert_silent(r)
        assert target.accepted == 0
        w.close()
    run(with_relay(tmp_path, body, peers={"127.0.0.1": "pg-eu"}, partitioned=("pg-eu",)))


def test_reload_adds_and_removes_listeners(tmp_path: Path) -> None:
    async def body(relay: R.Relay, target: Target, cfg: Path) -> None:
        old, new = relay_port(relay), free_port()
        r, w = await connect(old)
        await roundtrip(r, w, b"old")
        write_config(cfg, [listener(new, target.port)])
        assert await relay.reload()
        with pytest.raises(ConnectionRefusedError):
            await connect(old)
        await assert_closed(r)
        r2, w2 = await connect(new)
        await roundtrip(r2, w2, b"new")
        cfg.write_text("{not json")
        assert not await relay.reload()  # a broken file keeps the running config
        await roundtrip(r2, w2, b"still")
        w.close()
        w2.close()
    run(with_relay(tmp_path, body))


# --- the script: serve + SIGHUP, probe ------------------------------------------

class FakePostgres(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                if self.request.recv(8) != R.SSL_REQUEST:
                    return
                self.request.sendall(b"N")
                if self.request.recv(len(R.PROBE_STARTUP)) == R.PROBE_STARTUP:
                    self.request.sendall(b"R\0\0\0\x17\0\0\0\x0a")  # AuthenticationSASL, cut short
                self.request.recv(1)
        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def fake_pg() -> Iterator[int]:
    server = FakePostgres()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def probe(*ports: int, count: int = 3) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(RELAY_PY), "probe", "--host", "127.0.0.1", "--count", str(count)]
    for port in ports:
        cmd += ["--port", str(port)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def probed(res: subprocess.CompletedProcess[str], port: int) -> dict[str, Any]:
    assert res.returncode == 0, res.stderr
    return dict(json.loads(res.stdout)["ports"][str(port)])


def test_serve_probe_and_sighup(tmp_path: Path, fake_pg: int) -> None:
    cfg, p1, p2 = tmp_path / "relay.json", free_port(), free_port()
    write_config(cfg, [listener(p1, fake_pg)], rtt_ms=60)
    proc = subprocess.Popen([sys.executable, str(RELAY_PY), "serve", str(cfg), "--bind", "127.0.0.1"],
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    stderr = proc.stderr

    def pump() -> None:
        for line in stderr:
            lines.put(line)
    threading.Thread(target=pump, daemon=True).start()

    def wait_for(prefix: str) -> None:
        deadline = time.monotonic() + 20
        while (line := lines.get(timeout=max(0.1, deadline - time.monotonic()))):
            if line.startswith(f"relay: {prefix}"):
                return

    try:
        wait_for("serving")
        t0 = time.monotonic()
        out = probed(probe(p1), p1)
        # The samples run at once, each on its own connection: set-up (two round trips through
        # the relay) plus the timed one, not three times that.
        assert time.monotonic() - t0 < 0.18 * 3 + 2.0
        # The timed round trip is one RTT: the connection's simulated handshake is not in it.
        assert len(out["samples_ms"]) == 3 and 60 <= out["min_ms"] < 110 and out["median_ms"] >= 60

        write_config(cfg, [listener(p2, fake_pg)], rtt_ms=120)
        proc.send_signal(signal.SIGHUP)
        wait_for("config:")
        assert 120 <= probed(probe(p2, count=1), p2)["min_ms"] < 230
        res = probe(p1, count=1)
        assert res.returncode == 1 and "connection refused" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        # Several ports in one run: each answers for itself; one refused does not fail the rest.
        res = probe(p1, p2, count=2)
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert list(out["ports"]) == [str(p2)] and len(out["ports"][str(p2)]["samples_ms"]) == 2
        assert "connection refused" in out["errors"][str(p1)]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        stderr.close()


def test_probe_direct_and_refused(fake_pg: int) -> None:
    assert probed(probe(fake_pg, count=2), fake_pg)["median_ms"] >= 0
    res = probe(free_port())
    assert res.returncode == 1 and res.stderr.startswith("probe: ") and "refused" in res.stderr


# --- the mesh: listeners from any region --------------------------------------

MESH_EXAMPLE: dict[str, Any] = EXAMPLE | {
    "listeners": [listener(10001, 5432, src="*", dst="us-east") | {"target_host": "pg-us"}],
    "networks": {"10.213.1.0/24": "eu-west", "10.213.2.0/24": "us-east"},
}


@pytest.mark.parametrize(("patch", "field"), [
    ({"networks": {"10.213.1.0/33": "eu-west"}}, "networks['10.213.1.0/33']: key must be a subnet"),
    ({"networks": {"10.213.1.5/24": "eu-west"}}, "networks['10.213.1.5/24']: key must be a subnet"),
    ({"networks": {"10.213.1.0/24": ""}}, "networks['10.213.1.0/24']: must be a region name"),
    ({"networks": {"10.213.1.0/24": "*"}}, "networks['10.213.1.0/24']: must be a region name"),
    ({"networks": ["10.213.1.0/24"]}, "networks: must be an object"),
    ({"networks": {}}, "listeners[0].src: '*' (the source region of each connection) needs the networks map"),
])
def test_mesh_config_validation_names_the_field(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(R.ConfigError) as exc:
        R.RelayConfig.from_json(MESH_EXAMPLE | patch)
    assert any(field in p for p in exc.value.problems), exc.value.problems


def test_mesh_source_region_comes_from_the_arrival_address() -> None:
    config = R.RelayConfig.from_json(MESH_EXAMPLE)
    assert config.to_json()["networks"] == MESH_EXAMPLE["networks"]
    mesh = config.listeners[0]
    assert config.region_of("10.213.1.2") == "eu-west"
    assert config.region_of("10.213.3.2") is None and config.region_of("nonsense") is None
    from_eu = config.resolve(mesh, "10.213.1.2")
    assert from_eu is not None and (from_eu.src, from_eu.dst, from_eu.port) == ("eu-west", "us-east", 10001)
    assert config.resolve(mesh, "10.213.9.9") is None
    assert config.resolve(mesh, None) is None
    plain = R.Listener(10002, "eu-west", "us-east", "pg-us", "pg-us", 5432)
    assert config.resolve(plain, "10.213.9.9") is plain  # only "*" is resolved


def test_partitions_cut_mesh_connections_across_regions_only() -> None:
    config = R.RelayConfig.from_json(MESH_EXAMPLE | {"partitioned": ["us-east"], "peers": {}})
    mesh = config.listeners[0]
    from_eu, from_us = config.resolve(mesh, "10.213.1.2"), config.resolve(mesh, "10.213.2.2")
    assert from_eu is not None and from_us is not None
    assert config.is_cut(from_eu)
    assert not config.is_cut(from_us)  # inside us-east: as if direct, never cut
    by_node = R.RelayConfig.from_json(MESH_EXAMPLE | {"partitioned": ["etcd-eu"], "peers": {"10.213.1.7": "etcd-eu"}})
    assert by_node.is_cut(from_eu, "10.213.1.7") and not by_node.is_cut(from_eu, "10.213.1.8")


def _mesh_config(path: Path, target_port: int, *, network: str, partitioned: tuple[str, ...] = ()) -> int:
    port = free_port()
    raw = {"listeners": [listener(port, target_port, src="*", dst=DST)],
           "links": {R.link_key(SRC, DST): {"rtt_ms": 100, "jitter_ms": 0, "bandwidth_kbps": None}},
           "peers": {}, "partitioned": list(partitioned), "networks": {"127.0.0.0/8": network}}
    path.write_text(json.dumps(raw))
    return port


def test_mesh_listener_delays_by_the_link_of_the_arrival_network(tmp_path: Path) -> None:
    async def body() -> None:
        target = await Target().start()
        cfg = tmp_path / "relay.json"
        port = _mesh_config(cfg, target.port, network=SRC)
        relay = R.Relay(str(cfg), bind="127.0.0.1")
        await relay.start()
        try:
            r, w = await connect(port)
            await roundtrip(r, w, b"hello")
            assert min([await roundtrip(r, w, b"ping %d" % i) for i in range(3)]) >= 0.099
            w.close()
            raw = json.loads(cfg.read_text())
            raw["networks"] = {"127.0.0.0/8": DST}  # now the same region as the target
            cfg.write_text(json.dumps(raw))
            await relay.reload()
            r, w = await connect(port)
            assert await roundtrip(r, w, b"hello") < 0.099
            w.close()
        finally:
            await relay.close()
            target.close()
    run(body())


def test_mesh_connection_from_an_unknown_network_is_refused(tmp_path: Path) -> None:
    async def body() -> None:
        target = await Target().start()
        cfg = tmp_path / "relay.json"
        port = _mesh_config(cfg, target.port, network=SRC)
        raw = json.loads(cfg.read_text())
        raw["networks"] = {"10.213.1.0/24": SRC}
        cfg.write_text(json.dumps(raw))
        relay = R.Relay(str(cfg), bind="127.0.0.1")
        await relay.start()
        try:
            r, w = await connect(port)
            w.write(b"hello")
            await assert_closed(r)
            assert target.accepted == 0
        finally:
            await relay.close()
            target.close()
    run(body())


def test_mesh_partition_blackholes_across_regions(tmp_path: Path) -> None:
    async def body() -> None:
        target = await Target().start()
        cfg = tmp_path / "relay.json"
        port = _mesh_config(cfg, target.port, network=SRC, partitioned=(DST,))
        relay = R.Relay(str(cfg), bind="127.0.0.1")
        await relay.start()
        try:
            r, w = await connect(port)
            w.write(b"hello")
            await assert_silent(r)
            assert target.accepted == 0
            w.close()
        finally:
            await relay.close()
            target.close()
    run(body())
