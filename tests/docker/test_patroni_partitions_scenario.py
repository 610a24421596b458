"""One scenario, in file order: Patroni and etcd under network partitions, watched from the host.

Topology ``pc-partitions`` (module-scoped): cluster main (``ha: patroni``, lab-tuned: ttl 20 s,
Patroni's minimum; loop_wait 2 s; retry_timeout 4 s) with pg-us (leader) in us-east, pg-eu in
eu-west (its quorum standby: ``synchronous: ANY 1 (pg-eu)``) and pg-ap in ap-south, a cascade
behind pg-eu (Patroni's ``replicatefrom`` tag, never promoted); one etcd member per region.

Throughout, from the host through the published ports (which no partition cuts): a sampler asks
every member ``pg_is_in_recovery()`` every 0.2 s, and a writer with a multi-host connection
(``target_session_attrs=read-write``) records when each commit was acknowledged.

1. ap-south (an etcd member and the cascade) is cut off: for 2 x ttl nothing fails over (leader
   and timeline unchanged, pg-us the only writable member), the writer keeps committing; after
   ``heal`` pg-ap streams again.
2. us-east (the leader and one etcd member) is cut off from the etcd majority, while a second
   writer tied to pg-us commits with ``synchronous_commit = local`` (so that its commits do not
   wait for pg-eu across the partition): pg-us demotes itself within ttl (+ SLACK_S) of the
   partition, no sample sees two writable members, Patroni promotes pg-eu, the isolated pg-us
   acknowledges no commit after ttl from the partition nor after pg-eu became writable; pg-ap
   follows the new timeline; after ``heal`` pg-us comes back as a replica by itself (pg_rewind
   by Patroni), and every commit the synchronous writer saw acknowledged is on the new leader.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtopo.model.topology import Topology
from pgtopo.postgres import connect
from pgtopo.runtime import gateway
from tests.support.docker import cli, up_from_text, wait_for
from tests.support.patroni_lab import (
    LedgerWriter,
    Sampler,
    acked_between,
    first_read_only,
    first_writable,
    largest_gap,
    last_writable,
    patroni_view,
    rows,
    split_brain,
    view_or_none,
    watch,
)

TTL, LOOP_WAIT, RETRY_TIMEOUT = 20, 2, 4
# Beyond ttl, what the demotion itself may take: Patroni stops PostgreSQL (fast) and starts it in
# recovery; the sampler sees it at its next round (0.2 s).
SLACK_S = 5.0
TOPOLOGY = f"""
name: pc-partitions
postgres:
  version: 17
regions:
  us-east: {{}}
  eu-west: {{}}
  ap-south: {{}}
latency:
  - {{between: [us-east, eu-west], rtt_ms: 20}}
  - {{between: [us-east, ap-south], rtt_ms: 30}}
  - {{between: [eu-west, ap-south], rtt_ms: 30}}
dcs:
  regions: [us-east, eu-west, ap-south]
clusters:
  main:
    ha: patroni
    patroni: {{ttl: {TTL}, loop_wait: {LOOP_WAIT}, retry_timeout: {RETRY_TIMEOUT}}}
    databases:
      production:
        schema: |
          CREATE TABLE products (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, sku text NOT NULL UNIQUE,
                                 name text NOT NULL, price_cents integer NOT NULL);
    nodes:
      pg-us: {{region: us-east, role: primary}}
      pg-eu: {{region: eu-west, upstream: pg-us, failover_priority: 200}}
      pg-ap: {{region: ap-south, upstream: pg-eu, failover_priority: 0}}
    synchronous: {{method: any, count: 1, standbys: [pg-eu]}}
"""
MEMBERS = ("pg-us", "pg-eu", "pg-ap")
DB = "production"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, state_env: Path) -> Iterator[tuple[Topology, Path]]:
    with up_from_text(tmp_path_factory.mktemp("pc-partitions"), TOPOLOGY, file="partitions.yaml") as t:
        yield t


def settled(topo: Topology, leader: str, *, ask: tuple[str, ...] = MEMBERS) -> int | None:
    """The leader's timeline when Patroni (asked of ``ask``) shows ``leader`` running and every
    other member streaming on that timeline; else None."""
    v = view_or_none(topo, "main", ask=ask)
    lead = v.leader if v is not None else None
    if v is None or lead is None or lead.name != leader or lead.state != "running" or len(v.members) != 3:
        return None
    if all(m.state == "streaming" and m.timeline == lead.timeline for m in v.members if m is not lead):
        return lead.timeline
    return None


def kept(seen: list[int], timeline: int | None) -> bool:
    """For wait_for: remember what a poll returned (the timeline), true once it is one."""
    if timeline is not None:
        seen.append(timeline)
    return timeline is not None


def senders_to(topo: Topology, member: str) -> set[str]:
    """The application names ``member`` streams WAL to."""
    try:
        with connect.connect(topo.name, member) as conn:
            return {str(r[0]) for r in conn.execute("SELECT application_name FROM pg_stat_replication "
                                                    "WHERE state = 'streaming'").fetchall()}
    except Exception:  # polling
        return set()


def received_timeline(topo: Topology, member: str) -> tuple[str | None, int | None]:
    """(status, received_tli) of ``member``'s WAL receiver."""
    try:
        with connect.connect(topo.name, member) as conn:
            row = conn.execute("SELECT status, received_tli FROM pg_stat_wal_receiver").fetchone()
    except Exception:  # polling
        return None, None
    return (str(row[0]), int(str(row[1]))) if row else (None, None)


def test_a_region_with_an_etcd_member_and_a_replica_cut_off_fails_nothing_over(lab: tuple[Topology, Path]) -> None:
    topo, path = lab
    seen: list[int] = []
    wait_for(lambda: kept(seen, settled(topo, "pg-us")), timeout=90,
             what="pg-us leading, pg-eu and pg-ap streaming")
    timeline = seen[-1]
    sampler = Sampler(topo, MEMBERS)
    writer = LedgerWriter(topo, MEMBERS, db=DB, start_id=1_000_000)
    sampler.start()
    writer.start()
    try:
        wait_for(lambda: len(writer.acks) > 20, what="the writer's first commits")
        code, out = cli("partition", str(path), "ap-south")
        assert code == 0, out
        start = time.time()
        try:
            def unchanged() -> str | None:
                v = view_or_none(topo, "main", ask=("pg-us", "pg-eu"))
                if v is None:
                    return None  # no answer this round: the sampler still watches PostgreSQL
                lead = v.leader
                if lead is None or (lead.name, lead.timeline) != ("pg-us", timeline):
                    return (f"{time.time() - start:.1f} s after cutting ap-south off, Patroni's leader is "
                            f"{lead and (lead.name, lead.timeline)}, not (pg-us, {timeline})")
                return None

            watch(unchanged, seconds=2 * TTL)
            end = time.time()
            window = sampler.samples[:]
            assert split_brain(window) == []
            assert all(s.writable.get("pg-us") is True for s in window if s.at >= start), \
                "pg-us stopped accepting writes while only ap-south was cut off"
            assert first_writable(window, "pg-eu", after=start) is None
            assert first_writable(window, "pg-ap", after=start) is None
            gap = largest_gap(writer.acks, start=start, end=end)
            # No outage of a failover's size: Patroni's leader keeps its lock (it renews it within
            # loop_wait through the majority) and the writer keeps committing.
            assert gap < LOOP_WAIT + RETRY_TIMEOUT, \
                f"the writer had no commit acknowledged for {gap:.1f} s while ap-south was cut off"
            committed = len(acked_between(writer.acks, start=start, end=end))
        finally:
            code, out = cli("heal", str(path))
            assert code == 0, out
        wait_for(lambda: settled(topo, "pg-us") == timeline, timeout=90, what="pg-ap streaming again after the heal")
        last = max(writer.acked)
        wait_for(lambda: last in rows(topo, "pg-ap", DB), timeout=60, what=f"row {last} on pg-ap after the heal")
    finally:
        writer.stop()
        sampler.stop()
    print(f"\nmeasured (ap-south cut off {2 * TTL} s): {committed} commits acknowledged, largest gap {gap:.2f} s, "
          f"leader pg-us on timeline {timeline} throughout")


def test_the_leader_cut_off_from_the_etcd_majority_demotes_itself(lab: tuple[Topology, Path]) -> None:
    topo, path = lab
    seen: list[int] = []
    wait_for(lambda: kept(seen, settled(topo, "pg-us")), timeout=90,
             what="pg-us leading, every member streaming")
    old_timeline = seen[-1]
    # pg-ap is a cascade: Patroni's replicatefrom tag, and pg-eu (not the leader) sends it WAL.
    ap = patroni_view(topo, "main").member("pg-ap")
    assert ap is not None and ap.tags.get("replicatefrom") == "pg-eu", ap
    wait_for(lambda: "pg-ap" in senders_to(topo, "pg-eu"), timeout=30, what="pg-eu sending WAL to pg-ap")
    sampler = Sampler(topo, MEMBERS)
    writer = LedgerWriter(topo, MEMBERS, db=DB, start_id=2_000_000)
    isolated = LedgerWriter(topo, ["pg-us"], db=DB, start_id=3_000_000, synchronous_commit="local")
    for thread in (sampler, writer, isolated):
        thread.start()
    healed = False
    try:
        wait_for(lambda: len(writer.acks) > 20 and len(isolated.acks) > 20, what="both writers' first commits")
        cut = time.time()  # before the partition takes effect: every bound below is measured from here
        code, out = cli("partition", str(path), "us-east")
        assert code == 0, out

        def new_leader() -> int | None:
            v = view_or_none(topo, "main", ask=("pg-eu", "pg-ap"))
            lead = v.leader if v is not None else None
            if lead is not None and lead.name == "pg-eu" and lead.state == "running" and lead.timeline and \
                    lead.timeline > old_timeline:
                return lead.timeline
            return None

        promoted: list[int] = []
        wait_for(lambda: kept(promoted, new_leader()), timeout=120,
                 what="Patroni to promote pg-eu in the majority")
        new_timeline = promoted[-1]
        wait_for(lambda: first_read_only(sampler.samples, "pg-us", after=cut) is not None, timeout=60,
                 what="pg-us to answer read-only")
        wait_for(lambda: len(acked_between(writer.acks, start=cut, end=time.time() + 1)) > 20, timeout=60,
                 what="the writer's commits on the new leader")
        # The cascade follows the new timeline: its WAL receiver is on it and a new commit reaches it.
        wait_for(lambda: received_timeline(topo, "pg-ap") == ("streaming", new_timeline), timeout=90,
                 what=f"pg-ap streaming on timeline {new_timeline}")
        after_failover = max(writer.acked)
        wait_for(lambda: after_failover in rows(topo, "pg-ap", DB), timeout=60,
                 what=f"row {after_failover} (committed on pg-eu) on pg-ap")
        isolated.stop()
        samples = sampler.samples[:]

        assert split_brain(samples) == [], f"two writable members at {split_brain(samples)[:3]}"
        last_us = last_writable(samples, "pg-us", after=cut) or cut
        read_only_us = first_read_only(samples, "pg-us", after=cut)
        first_eu = first_writable(samples, "pg-eu", after=cut)
        assert read_only_us is not None and first_eu is not None
        assert last_us - cut <= TTL + SLACK_S, (
            f"pg-us was last seen writable {last_us - cut:.1f} s after the partition (ttl {TTL} s + {SLACK_S} s)")
        assert last_us < first_eu, (f"pg-us writable until {last_us - cut:.1f} s, pg-eu writable from "
                                    f"{first_eu - cut:.1f} s after the partition")
        last_isolated = max(a.at for a in isolated.acks)
        assert last_isolated <= cut + TTL, (
            f"the isolated pg-us acknowledged a commit {last_isolated - cut:.1f} s after the partition (ttl {TTL} s)")
        assert last_isolated < first_eu, (f"the isolated pg-us acknowledged a commit {last_isolated - cut:.1f} s "
                                          f"after the partition, pg-eu writable from {first_eu - cut:.1f} s")
        diverged = len(acked_between(isolated.acks, start=cut, end=last_isolated))

        code, out = cli("heal", str(path))
        assert code == 0, out
        healed = True
        wait_for(lambda: settled(topo, "pg-eu") == new_timeline, timeout=150,
                 what=f"pg-us back as a replica of pg-eu on timeline {new_timeline}")
        us = gateway.find(topo.name, "pg-us")
        assert us is not None
        assert "pg_rewind" in gateway.logs(us, tail=3000), "Patroni brought pg-us back without pg_rewind"
        after_heal = len(writer.acks)
        wait_for(lambda: len(writer.acks) > after_heal + 20, what="commits after the heal")
    finally:
        if not healed:
            cli("heal", str(path))
        isolated.stop()
        writer.stop()
        sampler.stop()

    acked = writer.acked
    before_cut = {a.row for a in writer.acks if a.at < cut}
    assert before_cut and acked
    assert before_cut - rows(topo, "pg-eu", DB) == set(), "commits acknowledged before the partition lost"
    assert acked - rows(topo, "pg-eu", DB) == set(), "acknowledged commits missing on the new leader"
    wait_for(lambda: acked <= rows(topo, "pg-us", DB), timeout=60, what="pg-us to replay every acknowledged commit")
    # The isolated leader's local commits after the cut that pg-eu never received were rewound away.
    local_after_cut = {a.row for a in isolated.acks if a.at >= cut}
    survived = len(local_after_cut & rows(topo, "pg-eu", DB))
    print(f"\nmeasured (us-east cut off): pg-us last writable {last_us - cut:.2f} s and first read-only "
          f"{read_only_us - cut:.2f} s after the partition (ttl {TTL} s); pg-eu writable after {first_eu - cut:.2f} s "
          f"(timeline {old_timeline} -> {new_timeline}); the isolated pg-us's last local commit acknowledged "
          f"{last_isolated - cut:.2f} s after; of its {diverged} local commits after the partition, {survived} reached "
          f"pg-eu, the rest were rewound away; "
          f"{len(acked)} synchronous commits acknowledged, {len(before_cut)} before the partition, 0 lost; "
          f"{len(writer.unknown)} with unknown outcome; {len(samples)} samples, none with two writable members")
