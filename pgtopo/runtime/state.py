"""The state directory: generated passwords and what a running topology learned at run time.

Kept outside the topology file (which users commit) with mode 0700 / 0600: ``secrets.json``
(`passwords`) and ``runtime.json`` (`RuntimeState`: read with `load`, changed with `update`).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets as _secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pgtopo.errors import OperationFailed
from pgtopo.model.render import ROLES
from pgtopo.model.topology import Topology


def state_root() -> Path:
    env = os.environ.get("PGTOPO_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pgtopo"


def topology_dir(name: str) -> Path:
    return state_root() / name


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600, unique
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OperationFailed(f"{path}: unreadable state file ({exc}); fix or remove it") from None
    if not isinstance(data, dict):
        raise OperationFailed(f"{path}: unreadable state file (not a JSON object); fix or remove it")
    return data


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """Serialise read-modify-write of a topology's state between concurrent pgtopo commands."""
    d = topology_dir(name)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    with open(d / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def passwords(name: str, *, create: bool = True) -> dict[str, str]:
    """The topology's role passwords, generated on first use."""
    path = topology_dir(name) / "secrets.json"
    if path.exists():
        data = _read_json(path)
        missing = [r for r in ROLES if r not in data]
        if missing:
            # Never regenerate: the volumes of this topology were initialised with these.
            raise OperationFailed(f"{path}: no password for {', '.join(missing)}; restore the file or "
                                  f"remove the topology with `pgtopo down --volumes` and the file")
        return {r: str(data[r]) for r in ROLES}
    if not create:
        return {}
    with _locked(name):
        if path.exists():
            return passwords(name, create=False)
        pw = {role: _secrets.token_urlsafe(24) for role in ROLES}
        _write_private(path, pw)
    return pw


# Secrets of ha: patroni clusters beside the roles' (secrets.json): PostgreSQL's superuser, which
# Patroni's bootstrap creates, and the user of Patroni's REST API. Generated when first needed.
PATRONI_SECRETS = ("postgres", "patroni")


def patroni_passwords(name: str) -> dict[str, str]:
    """The superuser's and the REST API's passwords of a topology, generated on first use."""
    passwords(name)  # the roles' first: secrets.json exists, complete
    path = topology_dir(name) / "secrets.json"
    with _locked(name):
        data = _read_json(path)
        missing = [k for k in PATRONI_SECRETS if k not in data]
        if missing:
            data.update({k: _secrets.token_urlsafe(24) for k in missing})
            _write_private(path, data)
    return {k: str(data[k]) for k in PATRONI_SECRETS}


def pgpass(pw: dict[str, str]) -> str:
    return "".join(f"*:*:*:{role}:{pw[role]}\n" for role in ROLES)


# -- run-time facts: runtime.json --------------------------------------------------------------------

class _Record(BaseModel):
    """A frozen part of runtime.json.

    Unknown keys (written by a newer pgtopo, or retired by an older one) are neither validated nor
    used, and they are written back unchanged by `update`: mixing versions never loses the other's
    facts, and never fails on them. A null where a value has a non-null default (an older
    pgtopo wrote ``"links": null`` when it undid a change) reads as that default.
    """

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        defaults = {f.alias or k for k, f in cls.model_fields.items() if not f.is_required() and
                    f.get_default(call_default_factory=True) is not None}
        return {k: v for k, v in data.items() if not (v is None and k in defaults)}


class LinkOverride(_Record):
    """A link set at run time (`pgtopo latency set`, the routing bench's slowed link)."""

    rtt_ms: float
    jitter_ms: float = 0.0
    bandwidth_kbps: float | None = None


class FenceRecord(_Record):
    """How a node was fenced (or left stopped); `unfence` removes it once the node streams again."""

    method: str
    detail: str
    at: str


class LastKnown(_Record):
    """A primary's WAL position read just before `kill_node` crashed it (bounds a failover's loss)."""

    lsn: str
    timeline: int | None = None
    at: str


class SyncRecord(_Record):
    """The synchronous settings pgtopo last gave a cluster's primary."""

    method: str
    count: int
    standbys: tuple[str, ...]


class ChangeRecord(_Record):
    """The last failover or switchover."""

    mode: str
    cluster: str
    from_: str = Field(alias="from")
    to: str
    at: str
    recovery_s: float
    timeline: int | None = None
    lost_bytes: int | None = None


class PendingChange(_Record):
    """A failover begun and not finished (interrupted, or failed halfway); gone once one finishes.

    ``done`` lists the steps behind it, in order: ``fenced``, ``re-pointed``, ``promoted``; after
    the promotion come moving the subscribers, checking the replicas and the synchronous settings.
    ``plan`` is the plan being carried out (``pgtopo.ha.pending`` writes and reads it), so that a
    rerun finishes that failover instead of planning another.
    """

    mode: str
    cluster: str
    from_: str = Field(alias="from")
    to: str
    at: str
    done: tuple[str, ...] = ()
    recovery_s: float | None = None
    plan: dict[str, Any] = Field(default_factory=dict)

    def summary(self, *, file: str) -> list[str]:
        """What is done, what is not, and the command that finishes it (for Ctrl-C and `status`)."""
        c, old, new = self.cluster, self.from_, self.to
        if "promoted" in self.done:
            return [f"the failover of cluster {c} did not finish: {new} is its primary (promoted, accepts writes)",
                    f"not done: moving the subscribers to {new}, checking that its replicas follow it, "
                    "its synchronous settings",
                    f"finish it with `pgtopo failover {file} --cluster {c}`"]
        doing = [f"fencing {old}", f"re-pointing the replicas to {new}", f"promoting {new}"][min(len(self.done), 2)]
        lines = [f"the failover of cluster {c} from {old} to {new} stopped while {doing}"]
        if "fenced" in self.done:
            lines.append(f"done: {old} is fenced" + (f"; the replicas stream from {new}" if "re-pointed" in self.done
                                                      else ""))
        if doing.startswith("promoting"):
            lines.append(f"{new} may be promoted already (`pgtopo status {file}` shows it); if not, cluster {c} has "
                         "NO writable primary")
        elif "fenced" in self.done:
            lines.append(f"cluster {c} has NO writable primary: {old} is fenced and {new} is not promoted")
        else:
            lines.append(f"{old} may be stopped already and nothing is promoted: cluster {c} may have no writable "
                         "primary")
        lines.append(f"finish it with `pgtopo failover {file} --cluster {c} --to {new}`")
        return lines


class NetemRecord(_Record):
    """The kernel's answer to "is netem available", cached for a running topology."""

    available: bool
    detail: str = ""


class RuntimeState(_Record):
    """What a running topology learned at run time (``runtime.json``); the default when there is none.

    Read with `load`, changed only with `update` (under the topology's lock). The dicts inside are
    shared with the instance: build new ones (``{**old.fenced, node: rec}``), never mutate them.
    """

    topology_file: str | None = None  # written by `up`; `pgtopo ls` shows it
    primaries: dict[str, str] = Field(default_factory=dict)  # cluster -> node, after a failover
    links: dict[str, LinkOverride] = Field(default_factory=dict)  # "a|b" regions -> override
    partitioned: tuple[str, ...] = ()  # regions and nodes cut off by `pgtopo partition`
    fenced: dict[str, FenceRecord] = Field(default_factory=dict)  # node -> fence
    last_known: dict[str, LastKnown] = Field(default_factory=dict)  # node -> position when killed
    synchronous: dict[str, SyncRecord | None] = Field(default_factory=dict)  # cluster -> settings (None: async)
    last_change: ChangeRecord | None = None
    netem: NetemRecord | None = None
    pending: dict[str, PendingChange] = Field(default_factory=dict)  # cluster -> a failover not finished
    # replica -> the node a failover or a rejoin pointed it at, where the file puts it behind another
    # replica: the next failover asks it with the direct replicas (a hint; see failover.deferrable)
    moved: dict[str, str] = Field(default_factory=dict)

    def links_json(self) -> dict[str, dict[str, Any]]:
        """The link overrides as the relay's config spells them (which refuses unknown fields)."""
        return {k: {"rtt_ms": v.rtt_ms, "jitter_ms": v.jitter_ms, "bandwidth_kbps": v.bandwidth_kbps}
                for k, v in self.links.items()}

    def after_down(self) -> RuntimeState:
        """What `down` keeps with the volumes: the facts about the data (the current primaries, fenced
        nodes, last positions, synchronous settings, the last change, the moved cascades), so that
        `up` starts every node again as the role it had; the running network's facts (link
        overrides, partitions, netem) go with the containers."""
        return self.model_copy(update={"links": {}, "partitioned": (), "netem": None})

    def primaries_of(self, topo: Topology) -> dict[str, str]:
        """Cluster -> primary node: the file's, unless a failover recorded another."""
        return {c: self.primaries.get(c, cl.primary_name) for c, cl in topo.clusters.items()}


def _runtime_path(name: str) -> Path:
    return topology_dir(name) / "runtime.json"


def _parse(path: Path, data: dict[str, Any]) -> RuntimeState:
    try:
        return RuntimeState.model_validate(data)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise OperationFailed(f"{path}: unreadable state file ({where}); fix or remove it") from None


def exists(name: str) -> bool:
    """Whether a run-time state was written (by `up`, or a command on the running topology)."""
    return _runtime_path(name).exists()


def load(name: str) -> RuntimeState:
    """The run-time state; no lock needed, since writes are atomic renames."""
    path = _runtime_path(name)
    if not path.exists():
        return RuntimeState()
    return _parse(path, _read_json(path))


def update(name: str, fn: Callable[[RuntimeState], RuntimeState]) -> RuntimeState:
    """Read, change with ``fn`` and write the run-time state under the topology's lock; the new state.

    Every read-modify-write goes through here, so concurrent pgtopo commands never lose each
    other's changes. ``fn`` should be quick and do no I/O (it holds the lock); when it raises
    nothing is written, and when it returns a state equal to the old one the file is left alone
    (not even created).
    """
    path = _runtime_path(name)
    with _locked(name):
        old = load(name)
        new = fn(old)
        if new == old:
            return old
        data = new.model_dump(mode="json", by_alias=True)
        # model_copy(update=...) does not validate: what is written must read back, checked before writing.
        checked = RuntimeState.model_validate(data)
        _write_private(path, data)
    return checked


def forget(name: str) -> None:
    """Remove runtime facts (kept: passwords, so a volume kept by `down` still opens)."""
    if not _runtime_path(name).exists():
        return  # and no state directory created for a topology that never had one
    with _locked(name):  # an `update` in flight would write the old facts back
        _runtime_path(name).unlink(missing_ok=True)


def current_primaries(topo: Topology) -> dict[str, str]:
    """Cluster -> primary node: the file's, unless a failover recorded another in the state."""
    return load(topo.name).primaries_of(topo)
