"""The state directory: generated passwords and what a running topology learned at run time.

Kept outside the topology file (which users commit) with mode 0700 / 0600.
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
from pathlib import Path
from typing import Any

from pgtopo.render import ROLES


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
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def passwords(name: str, *, create: bool = True) -> dict[str, str]:
    """The topology's role passwords, generated on first use."""
    path = topology_dir(name) / "secrets.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        if all(r in data for r in ROLES):
            return data
    if not create:
        return {}
    data = {role: _secrets.token_urlsafe(24) for role in ROLES}
    _write_private(path, data)
    return data


def pgpass(pw: dict[str, str]) -> str:
    return "".join(f"*:*:*:{role}:{pw[role]}\n" for role in ROLES)


def load_runtime(name: str) -> dict[str, Any]:
    path = topology_dir(name) / "runtime.json"
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def save_runtime(name: str, data: dict[str, Any]) -> None:
    _write_private(topology_dir(name) / "runtime.json", data)


def update_runtime(name: str, **changes: Any) -> dict[str, Any]:
    data = load_runtime(name)
    data.update(changes)
    save_runtime(name, data)
    return data


def forget(name: str) -> None:
    """Remove runtime facts (kept: passwords, so a volume kept by `down` still opens)."""
    path = topology_dir(name) / "runtime.json"
    if path.exists():
        path.unlink()
