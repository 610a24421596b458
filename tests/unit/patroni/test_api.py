"""The REST client against a local HTTP server answering what Patroni 4.0.7 answered (recorded):
basic auth sent, refusals and silence become OperationFailed naming the node and the call."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pgtopo.errors import OperationFailed
from pgtopo.patroni import api

DATA = Path(__file__).parent / "data"
SEEN: list[tuple[str, str, str, object]] = []
ANSWERS: dict[tuple[str, str], tuple[int, str]] = {
    ("GET", "/cluster"): (200, (DATA / "cluster_two.json").read_text()),
    ("GET", "/patroni"): (200, (DATA / "patroni_two_replica.json").read_text()),
    ("GET", "/leader"): (503, (DATA / "patroni_two_replica.json").read_text()),
    ("POST", "/switchover"): (412, (DATA / "post_switchover_wrongleader.txt").read_text()),
    ("POST", "/failover"): (200, (DATA / "post_failover.txt").read_text()),
    ("POST", "/restart"): (200, (DATA / "post_restart.txt").read_text()),
    ("POST", "/reinitialize"): (503, (DATA / "post_reinitialize_leader.txt").read_text()),
    # Patroni answers PATCH /config with the whole merged configuration.
    ("PATCH", "/config"): (200, json.dumps({"ttl": 30, "loop_wait": 10, "slots": {
        "pg1": {"type": "physical"}, "orders_sub": {"type": "logical", "database": "shop", "plugin": "pgoutput"}}})),
}


class Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        SEEN.append((self.command, self.path, self.headers.get("Authorization", ""), body))
        status, text = ANSWERS.get((self.command, self.path), (404, "not found"))
        self.send_response(status)
        self.end_headers()
        self.wfile.write(text.encode())

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def ep() -> Iterator[api.Endpoint]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    SEEN.clear()
    yield api.Endpoint(node="pg2", url=f"http://127.0.0.1:{server.server_port}", user="patroni", password="s3cret")
    server.shutdown()
    server.server_close()


def test_get_cluster_with_basic_auth(ep: api.Endpoint) -> None:
    view = api.cluster(ep)
    assert view.names() == ["pg1", "pg2"]
    assert SEEN[0][:3] == ("GET", "/cluster", "Basic " + base64.b64encode(b"patroni:s3cret").decode())


def test_status_codes_and_member_status(ep: api.Endpoint) -> None:
    assert api.leader_check(ep) == 503
    assert api.member_status(ep).role == "replica"


def test_a_refusal_names_node_call_and_patroni_s_reason(ep: api.Endpoint) -> None:
    with pytest.raises(OperationFailed) as err:
        api.switchover(ep, leader="pg2", candidate="pg1")
    assert err.value.message == ("node pg2 step 'POST /switchover': Patroni refused (412): leader name does "
                                 "not match")
    assert SEEN[-1][3] == {"leader": "pg2", "candidate": "pg1"}


def test_failover_sends_the_candidate(ep: api.Endpoint) -> None:
    assert api.failover(ep, candidate="pg1") == 'Successfully failed over to "pg1"'
    assert SEEN[-1][3] == {"candidate": "pg1"}


@pytest.mark.parametrize(("answer", "accepted"), [
    ("Failover status unknown", True),  # Patroni saw no new leader while it polled: it still carries it out
    ("Failover failed", False),  # the failover key is gone with no new leader: refused
])
def test_a_failover_patroni_has_not_seen_done_yet_is_an_answer_not_a_refusal(
        ep: api.Endpoint, answer: str, accepted: bool) -> None:
    ANSWERS[("POST", "/failover")], saved = (503, answer), ANSWERS[("POST", "/failover")]
    try:
        if accepted:
            assert api.failover(ep, candidate="pg1") == answer
        else:
            with pytest.raises(OperationFailed, match=r"Patroni refused \(503\): Failover failed"):
                api.failover(ep, candidate="pg1")
        # Any other call keeps treating a 503 as a refusal.
        with pytest.raises(OperationFailed, match=r"Patroni refused \(503\)"):
            api.reinitialize(ep)
    finally:
        ANSWERS[("POST", "/failover")] = saved


def test_an_answer_that_is_not_json(ep: api.Endpoint) -> None:
    ANSWERS[("GET", "/cluster")], saved = (200, "<html>"), ANSWERS[("GET", "/cluster")]
    try:
        with pytest.raises(OperationFailed, match=r"GET /cluster.*not JSON"):
            api.cluster(ep)
    finally:
        ANSWERS[("GET", "/cluster")] = saved


def test_a_member_that_does_not_answer(ep: api.Endpoint) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_port
    server.server_close()  # nothing listens there any more
    dead = api.Endpoint(node="pg1", url=f"http://127.0.0.1:{port}", user="patroni", password="x")
    with pytest.raises(OperationFailed, match=r"node pg1 step 'GET /cluster': Patroni's REST API did not answer"):
        api.cluster(dead)


def test_restart_and_reinitialize(ep: api.Endpoint) -> None:
    assert api.restart(ep, only_pending=True) == "restarted successfully"
    assert SEEN[-1][:2] == ("POST", "/restart") and SEEN[-1][3] == {"restart_pending": True}
    with pytest.raises(OperationFailed, match=r"step 'POST /reinitialize': Patroni refused \(503\): I am the leader, "
                                              "can not reinitialize"):
        api.reinitialize(ep, force=True)
    assert SEEN[-1][3] == {"force": True}


def test_patch_config_sends_the_change_and_returns_the_merged_config(ep: api.Endpoint) -> None:
    change: dict[str, object] = {"slots": {"orders_sub": {"type": "logical", "database": "shop", "plugin": "pgoutput"}}}
    merged = api.patch_config(ep, change)
    assert SEEN[-1][:2] == ("PATCH", "/config") and SEEN[-1][3] == change
    assert merged["slots"] == {"pg1": {"type": "physical"},
                               "orders_sub": {"type": "logical", "database": "shop", "plugin": "pgoutput"}}


def test_patch_config_refused_or_not_an_object(ep: api.Endpoint) -> None:
    saved = ANSWERS[("PATCH", "/config")]
    try:
        ANSWERS[("PATCH", "/config")] = (400, "Invalid config")
        with pytest.raises(OperationFailed, match=r"node pg2 step 'PATCH /config': Patroni refused \(400\): Invalid"):
            api.patch_config(ep, {"slots": {"x": None}})
        assert SEEN[-1][3] == {"slots": {"x": None}}
        ANSWERS[("PATCH", "/config")] = (200, "[1, 2]")
        with pytest.raises(OperationFailed, match=r"PATCH /config.*not an object"):
            api.patch_config(ep, {"slots": {"x": None}})
    finally:
        ANSWERS[("PATCH", "/config")] = saved
