"""What Patroni's REST API answers, parsed into frozen views: pure, tested on recorded JSON.

``GET /cluster`` (any member answers for the whole cluster, from the DCS): `ClusterView` with
one `Member` per registered member, the leader and a scheduled switchover. ``GET /patroni`` (a
member about itself, from its own PostgreSQL): `MemberStatus`. Anything of the wrong shape raises
`Malformed` naming the field; the API client turns it into OperationFailed naming node and call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

LEADER_ROLES = frozenset({"leader", "standby_leader"})
# States of a member whose PostgreSQL serves: the leader "running", a replica "streaming" (or
# "running" while it replays from the archive or has not connected yet).
REPLICA_OK_STATES = frozenset({"streaming"})
LEADER_OK_STATES = frozenset({"running"})
SYNC_ROLES = frozenset({"sync_standby", "quorum_standby"})


class Malformed(ValueError):
    """The REST API answered something of an unexpected shape."""


@dataclass(frozen=True)
class Member:
    name: str
    role: str  # leader | standby_leader | sync_standby | quorum_standby | replica
    state: str  # running | streaming | starting | stopped | crashed | restarting | creating replica ...
    host: str
    port: int
    api_url: str
    timeline: int | None  # None while PostgreSQL does not run
    lag: int | None  # bytes behind the leader; None for the leader or when Patroni says "unknown"
    tags: dict[str, object] = field(default_factory=dict, hash=False, compare=False)
    pending_restart: bool = False
    pending_restart_reason: tuple[str, ...] = ()  # the parameters that wait for a restart

    @property
    def is_leader(self) -> bool:
        return self.role in LEADER_ROLES

    @property
    def healthy(self) -> bool:
        """Running as a leader, or streaming as a replica."""
        return self.state in (LEADER_OK_STATES if self.is_leader else REPLICA_OK_STATES)

    def tags_text(self) -> str:
        return ", ".join(f"{k}={_tag(v)}" for k, v in sorted(self.tags.items())) or "-"


def _tag(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def counted_synchronous(members: Sequence[Member], node: str, *, count: int) -> bool:
    """Whether Patroni counts ``node`` as a synchronous standby, or already counts ``count`` others.

    A replica that may be synchronous (no ``nosync`` tag) streams before the leader adds it, on a
    later loop (loop_wait): until then a crash of the leader finds no synchronous candidate and
    Patroni promotes nobody."""
    m = next((x for x in members if x.name == node), None)
    if m is not None and m.role in SYNC_ROLES:
        return True
    return sum(1 for x in members if x.role in SYNC_ROLES) >= count


@dataclass(frozen=True)
class ScheduledSwitchover:
    at: str
    from_member: str | None
    to_member: str | None


@dataclass(frozen=True)
class ClusterView:
    scope: str
    members: tuple[Member, ...]
    scheduled_switchover: ScheduledSwitchover | None = None

    @property
    def leader(self) -> Member | None:
        return next((m for m in self.members if m.is_leader), None)

    @property
    def leaders(self) -> list[Member]:
        return [m for m in self.members if m.is_leader]

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def names(self) -> list[str]:
        return [m.name for m in self.members]


@dataclass(frozen=True)
class MemberStatus:
    """``GET /patroni``: a member about itself."""

    name: str
    scope: str
    state: str
    role: str  # primary | replica | standby_leader
    timeline: int | None
    replication_state: str | None  # "streaming" on a replica connected to its upstream
    pending_restart: bool
    cluster_unlocked: bool  # no leader lock in the DCS as this member last saw it
    wal_position: int | None  # primary: current location; replica: replayed location
    version: str
    postmaster_start_time: str | None = None  # changes when Patroni restarts or re-creates PostgreSQL


def _dict(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise Malformed(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _str(d: dict[str, object], key: str, what: str, *, default: str | None = None) -> str:
    value = d.get(key, default)
    if not isinstance(value, str):
        raise Malformed(f"{what}.{key}: expected a string, got {_shown(value)}")
    return value


def _int(d: dict[str, object], key: str, what: str) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{what}.{key}: expected an integer, got {_shown(value)}")
    return value


def _shown(value: object) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]


def parse_member(data: object, *, what: str = "member") -> Member:
    d = _dict(data, what)
    name = _str(d, "name", what)
    where = f"members[{name}]"
    lag = d.get("lag")
    if lag is not None and lag != "unknown" and (isinstance(lag, bool) or not isinstance(lag, int)):
        raise Malformed(f"{where}.lag: expected bytes or 'unknown', got {_shown(lag)}")
    port = _int(d, "port", where)
    tags = _dict(d.get("tags", {}), f"{where}.tags")
    reason = _dict(d.get("pending_restart_reason", {}), f"{where}.pending_restart_reason")
    return Member(
        name=name, role=_str(d, "role", where), state=_str(d, "state", where),
        host=_str(d, "host", where, default=""), port=port if port is not None else 0,
        api_url=_str(d, "api_url", where, default=""), timeline=_int(d, "timeline", where),
        lag=lag if isinstance(lag, int) else None, tags=dict(tags),
        pending_restart=d.get("pending_restart") is True, pending_restart_reason=tuple(sorted(reason)),
    )


def parse_cluster(data: object) -> ClusterView:
    """The answer of ``GET /cluster``."""
    d = _dict(data, "cluster")
    members = d.get("members")
    if not isinstance(members, list):
        raise Malformed(f"cluster.members: expected a list, got {_shown(members)}")
    parsed = tuple(parse_member(m, what=f"cluster.members[{i}]") for i, m in enumerate(members))
    seen: set[str] = set()
    for m in parsed:
        if m.name in seen:
            raise Malformed(f"cluster.members: {m.name} listed twice")
        seen.add(m.name)
    scheduled = None
    if "scheduled_switchover" in d:
        s = _dict(d["scheduled_switchover"], "cluster.scheduled_switchover")
        scheduled = ScheduledSwitchover(at=_str(s, "at", "cluster.scheduled_switchover"),
                                        from_member=_optional_str(s.get("from")), to_member=_optional_str(s.get("to")))
    return ClusterView(scope=_str(d, "scope", "cluster", default=""), members=parsed, scheduled_switchover=scheduled)


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_member_status(data: object) -> MemberStatus:
    """The answer of ``GET /patroni`` (also the body of ``GET /leader`` and ``/health``)."""
    d = _dict(data, "patroni")
    info = _dict(d.get("patroni", {}), "patroni.patroni")
    xlog = _dict(d.get("xlog", {}), "patroni.xlog")
    position = _int(xlog, "location", "patroni.xlog")
    if position is None:
        position = _int(xlog, "replayed_location", "patroni.xlog")
    replication_state = d.get("replication_state")
    return MemberStatus(
        name=_str(info, "name", "patroni.patroni", default=""), scope=_str(info, "scope", "patroni.patroni", default=""),
        state=_str(d, "state", "patroni"), role=_str(d, "role", "patroni"), timeline=_int(d, "timeline", "patroni"),
        replication_state=replication_state if isinstance(replication_state, str) else None,
        pending_restart=d.get("pending_restart") is True, cluster_unlocked=d.get("cluster_unlocked") is True,
        wal_position=position, version=_str(info, "version", "patroni.patroni", default=""),
        postmaster_start_time=_optional_str(d.get("postmaster_start_time")),
    )
