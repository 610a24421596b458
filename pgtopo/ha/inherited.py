"""When a subscriber cluster fails over: the subscriptions its promoted standby inherits.

A subscription lives in its database's catalogue, so a physical standby of the subscriber's
primary holds it too, with its replication origin: how far the standby's copy of the data has
applied the publisher's changes (replayed from the primary's WAL). Once promoted, its apply
worker connects to the same slot on the publisher and asks to start from that origin; the
publisher starts from the later of that and the slot's confirmed position, which the old primary
advanced as it flushed. When the promoted standby lacks some of the old primary's WAL, changes
the old primary applied and confirmed can be in neither: a gap nothing reports.

So, once the old primary is fenced and before the promotion (nothing uses the slot then), for each
subscription of the cluster: the publisher's walsender still holding the slot for the old primary
is ended (otherwise the new worker is refused until wal_sender_timeout), and the candidate's origin
and the slot's confirmed position are read. After the promotion, once the loss is measured
(:func:`decide`, pure): the subscription carries on from its slot when the new primary lost none of
the old primary's WAL or its origin reaches the slot's confirmed position; otherwise it is
re-synchronised (dropped, its tables emptied and copied again: no gap, no duplicate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pgtopo.errors import PgtopoError
from pgtopo.ha.moves import SubscriberMove
from pgtopo.ha.replication import end_slot_holder
from pgtopo.ha.subscribers import SubscriberResult, resync_subscription, wait_subscription_streaming
from pgtopo.model.topology import Topology
from pgtopo.postgres.lsn import fmt_bytes, format_lsn, parse_lsn
from pgtopo.postgres.sql import query
from pgtopo.progress import Progress
from pgtopo.runtime import state

_ORIGIN_SQL = ("SELECT s.subslotname, o.remote_lsn::text FROM pg_subscription s LEFT JOIN pg_replication_origin_status o "
               "ON o.external_id = 'pg_' || s.oid WHERE s.subname = %s")
_SLOT_SQL = "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s"


@dataclass(frozen=True)
class Inherited:
    """A subscription of the failing-over cluster, as its candidate holds it before the promotion."""

    subscription: str
    node: str  # the candidate
    cluster: str
    database: str
    publisher: str  # the publishing cluster's primary
    slot: str | None
    origin_lsn: int | None  # the publisher's position the candidate's data has applied
    confirmed_lsn: int | None  # the slot's confirmed position on the publisher
    ended: int | None = None  # the walsender ended for the old primary (its pid)
    problem: str = ""  # what could not be read

    def move(self, action: str, reason: str) -> SubscriberMove:
        return SubscriberMove(self.subscription, self.cluster, self.node, self.database, self.slot or self.subscription,
                              action, reason)


def _lsn(value: object) -> int | None:
    return parse_lsn(str(value)) if value is not None else None


def read(topo: Topology, *, cluster: str, candidate: str) -> list[Inherited]:
    """Before the promotion, the old primary fenced: each subscription's positions; the stale walsender
    ended. A failure to read is recorded in the result, never raised."""
    out = []
    primaries = state.current_primaries(topo)
    for name, sub in topo.clusters[cluster].subscriptions.items():
        pub_cluster = topo.clusters[sub.publisher]
        db = sub.database or pub_cluster.publications[sub.publication].database
        publisher = primaries[sub.publisher]
        try:
            rows = query(topo, candidate, _ORIGIN_SQL, (name,), db=db, step=f"read subscription {name}")
            if not rows:
                out.append(Inherited(name, candidate, cluster, db, publisher, None, None, None,
                                     problem=f"no subscription {name} on {candidate}"))
                continue
            slot, origin = (str(rows[0][0]) if rows[0][0] is not None else None), _lsn(rows[0][1])
            ended = None
            if slot is not None:
                ended = end_slot_holder(topo, on=publisher, slot=slot, wait_ms=5000)
                got = query(topo, publisher, _SLOT_SQL, (slot,), step=f"read slot {slot}")
            confirmed = _lsn(got[0][0]) if slot is not None and got else None
            out.append(Inherited(name, candidate, cluster, db, publisher, slot, origin, confirmed, ended,
                                 "" if slot is None or got else f"no slot {slot} on {publisher}"))
        except PgtopoError as exc:
            out.append(Inherited(name, candidate, cluster, db, publisher, None, None, None, problem=exc.message))
    return out


def decide(s: Inherited, *, lost_bytes: int | None) -> tuple[str, str]:
    """``("continue" | "resync" | "skip", why)`` for one inherited subscription (pure)."""
    if s.slot is None and not s.problem:
        return "skip", f"subscription {s.subscription} has no slot (slot_name = NONE): nothing to carry on"
    if s.problem:
        return "skip", f"{s.problem}: check it with `pgtopo verify`"
    if lost_bytes == 0:
        return "continue", f"{s.node} has all of the old primary's WAL, so everything the slot confirmed"
    if s.origin_lsn is not None and s.confirmed_lsn is not None and s.origin_lsn >= s.confirmed_lsn:
        return "continue", (f"{s.node} applied up to {format_lsn(s.origin_lsn)}, at or past what slot {s.slot} "
                            f"confirmed ({format_lsn(s.confirmed_lsn)})")
    lost = "an unknown amount" if lost_bytes is None else fmt_bytes(lost_bytes)
    applied = format_lsn(s.origin_lsn) if s.origin_lsn is not None else "nothing"
    confirmed = format_lsn(s.confirmed_lsn) if s.confirmed_lsn is not None else "an unknown position"
    return "resync", (f"{s.node} lacks {lost} of the old primary's WAL and applied up to {applied} while slot {s.slot} "
                      f"confirmed {confirmed}: changes in between may be missing")


def carry_on(topo: Topology, inherited: Sequence[Inherited], *, lost_bytes: int | None,
             progress: Progress) -> list[SubscriberResult]:
    """After the promotion: each subscription continues from its slot (checked connected) or is
    re-synchronised; each has a result (a failure is a result, not an error)."""
    out = []
    for s in inherited:
        action, why = decide(s, lost_bytes=lost_bytes)
        try:
            if action == "skip":
                out.append(SubscriberResult(s.subscription, s.node, "skipped", why))
            elif action == "continue":
                progress(s.node, f"subscription {s.subscription} continues from slot {s.slot} on {s.publisher} ({why})")
                wait_subscription_streaming(topo, s.move("move", why), publisher=s.publisher)
                ended = f" (ended walsender {s.ended}, which held it for the old primary)" if s.ended else ""
                out.append(SubscriberResult(s.subscription, s.node, "continued",
                                            f"continues from slot {s.slot} on {s.publisher}{ended}: {why}"))
            else:
                progress(s.node, f"subscription {s.subscription}: RE-SYNCHRONISING ({why})")
                tables = resync_subscription(topo, s.move("resync", why), new_primary=s.publisher)
                out.append(SubscriberResult(s.subscription, s.node, "resynced",
                                            f"RE-SYNCHRONISED because {why}: truncated and re-copied {', '.join(tables)}"))
        except PgtopoError as exc:
            out.append(SubscriberResult(s.subscription, s.node, "failed", exc.message))
    return out
