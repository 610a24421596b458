"""Patroni's REST API, called from the host through each member's published port 8008.

One call per function, stdlib urllib, basic auth with the topology's generated REST password,
explicit timeouts: a GET answers in milliseconds or the member is in trouble; a switchover or
failover is answered when Patroni has done it (its handler waits), so those wait longer. A
member that cannot be reached, a refusal (Patroni's 4xx/5xx text) and an answer of the wrong
shape become OperationFailed naming the node and the call.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

from pgtopo.errors import OperationFailed
from pgtopo.model import patroni as model
from pgtopo.patroni.views import ClusterView, Malformed, MemberStatus, parse_cluster, parse_member_status
from pgtopo.runtime import gateway, state

REST_PORT_KEY = f"{model.PATRONI_API_PORT}/tcp"
GET_TIMEOUT_S = 3.0
# Patroni's switchover/failover handler answers once the new leader holds the lock (or gives up):
# bounded by its own loop; ours is a ceiling above it, not a wait we rely on.
CHANGE_TIMEOUT_S = 90.0
RESTART_TIMEOUT_S = 90.0
REINIT_TIMEOUT_S = 10.0  # answered at once ("reinitialize started"); the copy runs afterwards


@dataclass(frozen=True)
class Endpoint:
    node: str
    url: str  # http://127.0.0.1:<published port>
    user: str
    password: str


@dataclass(frozen=True)
class Response:
    status: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def rest_password(topology: str) -> str:
    """The REST API's password, stored with the topology's other secrets."""
    return state.patroni_passwords(topology)[model.REST_API_USER]


def endpoint(topology: str, node: str, *, password: str) -> Endpoint:
    """Where the host reaches ``node``'s REST API; fails when its container does not run."""
    found = [c for c in gateway.listed(topology, node=node) if c.labels.get(gateway.LABEL_KIND) == "node"]
    if not found or found[0].status != "running":
        raise OperationFailed("its container is not running: Patroni's REST API cannot be reached",
                              node=node, step="REST API")
    port = found[0].ports.get(REST_PORT_KEY)
    if port is None:
        raise OperationFailed(f"port {model.PATRONI_API_PORT} is not published: not a Patroni member?",
                              node=node, step="REST API")
    return Endpoint(node=node, url=f"http://127.0.0.1:{port}", user=model.REST_API_USER, password=password)


def request(ep: Endpoint, method: str, path: str, *, body: dict[str, object] | None = None,
            timeout: float = GET_TIMEOUT_S) -> Response:
    """One call; any HTTP status is returned, a member that does not answer raises."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{ep.url}{path}", data=data, method=method)
    token = base64.b64encode(f"{ep.user}:{ep.password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, resp.read().decode(errors="replace"))
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read().decode(errors="replace"))
    # Refused, reset, timed out (TimeoutError is an OSError), or an answer cut short.
    except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise OperationFailed(f"Patroni's REST API did not answer ({reason or type(exc).__name__})",
                              node=ep.node, step=f"{method} {path}") from None


def _json(ep: Endpoint, method: str, path: str, resp: Response) -> object:
    try:
        return json.loads(resp.text)
    except ValueError:
        raise OperationFailed(f"answered {resp.status} with something that is not JSON: {resp.text[:120]!r}",
                              node=ep.node, step=f"{method} {path}") from None


def cluster(ep: Endpoint) -> ClusterView:
    """``GET /cluster``: the member's view of its whole cluster, read from the DCS."""
    resp = request(ep, "GET", "/cluster")
    if resp.status != 200:
        raise OperationFailed(f"answered {resp.status}: {resp.text[:200]}", node=ep.node, step="GET /cluster")
    try:
        return parse_cluster(_json(ep, "GET", "/cluster", resp))
    except Malformed as exc:
        raise OperationFailed(f"unexpected answer: {exc}", node=ep.node, step="GET /cluster") from None


def member_status(ep: Endpoint) -> MemberStatus:
    """``GET /patroni``: the member about itself (200 or 503 both carry the status)."""
    resp = request(ep, "GET", "/patroni")
    try:
        return parse_member_status(_json(ep, "GET", "/patroni", resp))
    except Malformed as exc:
        raise OperationFailed(f"unexpected answer: {exc}", node=ep.node, step="GET /patroni") from None


def leader_check(ep: Endpoint) -> int:
    """``GET /leader``: 200 when this member holds the leader lock and runs, else 503."""
    return request(ep, "GET", "/leader").status


def health_check(ep: Endpoint) -> int:
    """``GET /health``: 200 when PostgreSQL runs on this member, else 503."""
    return request(ep, "GET", "/health").status


def _change(ep: Endpoint, path: str, body: dict[str, object], *, timeout: float, pending_ok: bool = False) -> str:
    """POST a change; its answer, or OperationFailed when Patroni refuses it. ``pending_ok``: a
    failover or switchover Patroni accepted but has not seen done when it answers (503 "... status
    unknown": it polls its DCS for twice its loop_wait, at least 20 s, and the leader key of a
    crashed leader lives until its ttl runs out) is an answer, not a refusal: the request stays in
    the DCS and Patroni carries it out; the caller waits for the new leader."""
    resp = request(ep, "POST", path, body=body, timeout=timeout)
    text = resp.text.strip()
    if not resp.ok and not (pending_ok and resp.status == 503 and text.endswith("status unknown")):
        raise OperationFailed(f"Patroni refused ({resp.status}): {text[:300]}", node=ep.node, step=f"POST {path}")
    return text


def failover(ep: Endpoint, *, candidate: str, leader: str | None = None) -> str:
    """``POST /failover``: Patroni promotes ``candidate`` (its own checks apply)."""
    body: dict[str, object] = {"candidate": candidate}
    if leader is not None:
        body["leader"] = leader
    return _change(ep, "/failover", body, timeout=CHANGE_TIMEOUT_S, pending_ok=True)


def switchover(ep: Endpoint, *, leader: str, candidate: str | None = None, scheduled_at: str | None = None) -> str:
    """``POST /switchover``: planned; the old leader becomes a replica of the new one."""
    body: dict[str, object] = {"leader": leader}
    if candidate is not None:
        body["candidate"] = candidate
    if scheduled_at is not None:
        body["scheduled_at"] = scheduled_at
    return _change(ep, "/switchover", body, timeout=CHANGE_TIMEOUT_S, pending_ok=True)


def restart(ep: Endpoint, *, only_pending: bool = False) -> str:
    """``POST /restart`` of this member's PostgreSQL (with ``only_pending``: only if a parameter waits)."""
    body: dict[str, object] = {"restart_pending": True} if only_pending else {}
    return _change(ep, "/restart", body, timeout=RESTART_TIMEOUT_S)


def reinitialize(ep: Endpoint, *, force: bool = False) -> str:
    """``POST /reinitialize``: Patroni wipes this replica and clones it afresh from the leader."""
    return _change(ep, "/reinitialize", {"force": force}, timeout=REINIT_TIMEOUT_S)


def patch_config(ep: Endpoint, changes: dict[str, object]) -> dict[str, object]:
    """``PATCH /config``: merge ``changes`` into the cluster's dynamic configuration in the DCS
    (a key set to ``None`` is removed); every member applies it on its next loop. Returns the
    whole configuration as Patroni now holds it."""
    resp = request(ep, "PATCH", "/config", body=changes)
    if not resp.ok:
        raise OperationFailed(f"Patroni refused ({resp.status}): {resp.text.strip()[:300]}",
                              node=ep.node, step="PATCH /config")
    config = _json(ep, "PATCH", "/config", resp)
    if not isinstance(config, dict):
        raise OperationFailed(f"unexpected answer: not an object: {resp.text[:120]!r}", node=ep.node,
                              step="PATCH /config")
    return config


def config(ep: Endpoint) -> dict[str, object]:
    """``GET /config``: the cluster's dynamic configuration as the DCS holds it."""
    resp = request(ep, "GET", "/config")
    if resp.status != 200:
        raise OperationFailed(f"answered {resp.status}: {resp.text[:200]}", node=ep.node, step="GET /config")
    found = _json(ep, "GET", "/config", resp)
    if not isinstance(found, dict):
        raise OperationFailed(f"unexpected answer: not an object: {resp.text[:120]!r}", node=ep.node,
                              step="GET /config")
    return found


def first_answer(topology: str, nodes: Iterable[str], *, password: str) -> tuple[str, ClusterView]:
    """``GET /cluster`` from the first of ``nodes`` that answers (any member speaks for the whole
    cluster: the DCS holds it); fails naming every member tried when none does."""
    tried: list[str] = []
    for node in nodes:
        try:
            return node, cluster(endpoint(topology, node, password=password))
        except OperationFailed as exc:
            tried.append(exc.message)
    raise OperationFailed("no member's REST API answered: " + "; ".join(tried), step="GET /cluster")
