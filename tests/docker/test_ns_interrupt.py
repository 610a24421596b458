"""Ctrl-C is prompt and safe: `pgtopo up` and `pgtopo failover`, run as real processes, are sent
SIGINT in a long wait; they answer at once (exit 130) saying what is done and what is not, and
running the command again finishes the work."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from pgtopo.errors import Interrupted
from pgtopo.ha import promotion
from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.model.topology import HOLD_SLOT
from pgtopo.observe import snapshot
from pgtopo.postgres import instance
from pgtopo.runtime import gateway, state
from tests.support.docker import wait_for
from tests.support.processes import Pgtopo, pgtopo

PROMPT_S = 10.0  # "about two seconds", with room for a loaded machine

# billing's copy of `items` already has row 1: the initial copy of items_sub fails on it and is
# retried, so `up` waits in the subscription wait until the row is removed.
UP_TOPOLOGY = """
name: ns-int-up
regions: {dc1: {}}
clusters:
  main:
    databases:
      shop:
        schema: |
          CREATE TABLE items (id bigint PRIMARY KEY, v text);
          INSERT INTO items SELECT g, 'x' FROM generate_series(1, 1000) g;
    nodes:
      pg-a: {region: dc1, role: primary}
      pg-b: {region: dc1, upstream: pg-a}
    publications:
      items_pub: {database: shop, tables: [items]}
  billing:
    databases:
      shop:
        schema: |
          CREATE TABLE items (id bigint PRIMARY KEY, v text);
          INSERT INTO items VALUES (1, 'in the way');
    nodes:
      pg-s: {region: dc1, role: primary}
    subscriptions:
      items_sub: {publisher: main, publication: items_pub}
"""

# pg-c, in the other region, is cut off when the failover re-points it: the failover waits for it
# to stream from the new primary.
FAILOVER_TOPOLOGY = """
name: ns-int-fo
regions: {dc1: {}, dc2: {}}
latency:
  - {between: [dc1, dc2], rtt_ms: 2}
clusters:
  main:
    databases:
      shop: {schema: "CREATE TABLE items (id bigint PRIMARY KEY);"}
    nodes:
      pg-a: {region: dc1, role: primary}
      pg-b: {region: dc1, upstream: pg-a}
      pg-c: {region: dc2, upstream: pg-a}
"""


def write(tmp_path: Path, text: str) -> Path:
    topo_name = text.split("name: ", 1)[1].split("\n", 1)[0]
    deploy.down(topo_name, volumes=True)  # whatever an interrupted earlier run left
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return path


def test_ctrl_c_during_the_subscription_wait_of_up_then_up_again(tmp_path: Path, state_dir: Path) -> None:
    name = "ns-int-up"
    path = write(tmp_path, UP_TOPOLOGY)
    try:
        up = Pgtopo("up", str(path))
        up.wait_for_line(r"pg-b +ready")
        up.wait_for_line(r"pg-s +initial copy of items_sub")
        time.sleep(1.0)  # well inside the wait (the copy cannot finish: row 1 is in the way)
        sent = up.interrupt()
        rc = up.finish(timeout=60)
        took = time.monotonic() - sent
        assert rc == 130, up.output()
        assert took < PROMPT_S, f"answered Ctrl-C after {took:.1f} s"
        assert up.err[-4:] == [
            f"interrupted: `up` of topology '{name}' stopped before it finished",
            "ready: pg-a, pg-b, pg-s",
            "subscriptions begun: items_sub (PostgreSQL goes on with their initial copy; the next `up` waits for it)",
            f"run `pgtopo up {path}` again: it keeps what is ready and does the rest"], up.output()

        # `up` again waits for the copy the first one began (not "already up"): once the row is out
        # of the way, the copy ends and so does `up`.
        subscriber = gateway.find(name, "pg-s")
        assert subscriber is not None
        assert not instance.subscription_ready(subscriber, "items_sub", db="shop")
        again = Pgtopo("up", str(path))
        again.wait_for_line(r"pg-s +initial copy of items_sub \(begun by an earlier `up`\)")
        instance.psql(subscriber, "DELETE FROM items WHERE id = 1", db="shop")
        assert again.finish() == 0, again.output()
        assert f"topology '{name}' is up in" in again.output()
        assert instance.subscription_ready(subscriber, "items_sub", db="shop")
        assert instance.psql(subscriber, "SELECT count(*) FROM items", db="shop") == "1000"
    finally:
        deploy.down(name, volumes=True)


def test_ctrl_c_during_a_failover_then_failover_again_finishes_it(tmp_path: Path, state_dir: Path) -> None:
    name = "ns-int-fo"
    path = write(tmp_path, FAILOVER_TOPOLOGY)
    topo = load(path)
    file = str(path.resolve())  # as `up` recorded it
    try:
        assert pgtopo("up", str(path))[0] == 0
        assert pgtopo("kill", str(path), "pg-a")[0] == 0
        assert pgtopo("partition", str(path), "dc2")[0] == 0

        fo = Pgtopo("failover", str(path), "--to", "pg-b", "--yes")
        # pg-c is behind the partition, so nothing waits for it: Ctrl-C comes while the steps after the
        # promotion run (the loss measurement alone reads the old primary's volume in a container).
        fo.wait_for_line(r"pg-b +accepts writes")
        sent = fo.interrupt()
        rc = fo.finish(timeout=60)
        took = time.monotonic() - sent
        assert rc == 130, fo.output()
        assert took < PROMPT_S, f"answered Ctrl-C after {took:.1f} s"
        assert fo.err[-3:] == [
            "interrupted: the failover of cluster main did not finish: pg-b is its primary (promoted, accepts writes)",
            "not done: moving the subscribers to pg-b, checking that its replicas follow it, its synchronous settings",
            f"finish it with `pgtopo failover {file} --cluster main`"], fo.output()
        assert state.current_primaries(topo) == {"main": "pg-b"}
        assert state.load(name).pending["main"].done == ("fenced", "re-pointed", "promoted")

        # `status` says what is left; while it is, a failover to another node is refused.
        rc, out = pgtopo("status", str(path))
        assert rc == 1
        assert ("error: the failover of cluster main did not finish: pg-b is its primary (promoted, accepts writes); "
                "not done: moving the subscribers to pg-b") in out
        rc, out = pgtopo("failover", str(path), "--to", "pg-c", "--yes")
        assert rc == 2, out
        assert (f"error: --to pg-c: the failover of cluster main that promoted pg-b did not finish; finish it first "
                f"with `pgtopo failover {file} --cluster main`") in out

        # pg-c reachable again, the command the message gave finishes the failover.
        assert pgtopo("heal", str(path))[0] == 0
        rc, out = pgtopo("failover", file, "--cluster", "main", "--yes")
        assert rc == 0, out
        assert "this run finishes it (begun at " in out
        assert "cluster main: every replica and subscriber that can follows pg-b" in out
        assert re.search(r"pg-c: .*streams from pg-b", out), out
        assert state.load(name).pending == {}
        wait_for(lambda: snapshot.collect(topo).nodes["pg-c"].receiver_status == "streaming", what="pg-c streaming")
        rc, out = pgtopo("status", str(path))
        assert "did not finish" not in out
        # The slot that held pg-c's WAL through the promotion is gone, whether the interrupted run or
        # this one dropped it; pg-c streams through its own.
        on_b = {s.name: s.active for s in snapshot.collect(topo, nodes=["pg-b"]).nodes["pg-b"].slots}
        assert HOLD_SLOT not in on_b and on_b.get("pg_c") is True, on_b

        # Stopped between fencing and promotion (Ctrl-C as the fence is reported): nothing is
        # writable, it says so, and `failover` again promotes the node that was chosen.
        assert pgtopo("kill", str(path), "pg-b")[0] == 0
        plan = promotion.plan_live(topo, mode="failover", cluster=None, to=None)
        assert plan.candidate == "pg-c"

        def ctrl_c_once_fenced(subject: str, message: str) -> None:
            if message.startswith("fenced:"):
                raise KeyboardInterrupt

        with pytest.raises(Interrupted) as err:
            promotion.execute_failover(topo, plan, started=time.monotonic(), progress=ctrl_c_once_fenced)
        assert err.value.lines() == [
            "the failover of cluster main from pg-b to pg-c stopped while re-pointing the replicas to pg-c",
            "done: pg-b is fenced",
            "cluster main has NO writable primary: pg-b is fenced and pg-c is not promoted",
            f"finish it with `pgtopo failover {file} --cluster main --to pg-c`"]
        rc, out = pgtopo("status", str(path))
        assert rc == 1 and "cluster main has NO writable primary: pg-b is fenced and pg-c is not promoted" in out
        rc, out = pgtopo("failover", str(path), "--yes")
        assert rc == 0, out
        assert "this run finishes it (begun at " in out
        assert "pg-c is the primary of cluster main (timeline 3); recovery time " in out
        assert state.current_primaries(topo) == {"main": "pg-c"} and state.load(name).pending == {}
    finally:
        deploy.down(name, volumes=True)
