"""The state directory: generated passwords and what a running topology learned at run time.

Kept outside the topology file (which users commit) with mode 0700 / 0600.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets as _secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def pgpass(pw: dict[str, str]) -> str:
    return "".join(f"*:*:*:{role}:{pw[role]}\n" for role in ROLES)


def load_runtime(name: str) -> dict[str, Any]:
    path = topology_dir(name) / "runtime.json"
    if not path.exists():
        return {}
    return _read_json(path)


def save_runtime(name: str, data: dict[str, Any]) -> None:
    _write_private(topology_dir(name) / "runtime.json", data)


def update_runtime(name: str, **changes: Any) -> dict[str, Any]:
    with _locked(name):
        data = load_runtime(name)
        data.update(changes)
        save_runtime(name, data)
    return data


def forget(name: str) -> None:
    """Remove runtime facts (kept: passwords, so a volume kept by `down` still opens)."""
    path = topology_dir(name) / "runtime.json"
    if path.exists():
        path.unlink()


def current_primaries(topo: Topology) -> dict[str, str]:
    """Cluster -> primary node: the file's, unless a failover recorded another in the state."""
    recorded: dict[str, str] = load_runtime(topo.name).get("primaries", {})
    return {c: recorded.get(c, cl.primary_name) for c, cl in topo.clusters.items()}
