"""The state directory: private files, passwords never regenerated, clear errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from pgtopo.errors import OperationFailed
from pgtopo.runtime import state


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path))
    return tmp_path


def test_passwords_are_private_and_stable(state_dir: Path) -> None:
    first = state.passwords("lab")
    assert set(first) == {"pgtopo", "replicator", "app"} and len(set(first.values())) == 3
    path = state_dir / "lab" / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert state.passwords("lab") == first
    assert state.pgpass(first).splitlines()[0] == f"*:*:*:pgtopo:{first['pgtopo']}"


def test_a_missing_password_is_never_regenerated(state_dir: Path) -> None:
    pw = state.passwords("lab")
    path = state_dir / "lab" / "secrets.json"
    path.write_text(json.dumps({"pgtopo": pw["pgtopo"]}))
    with pytest.raises(OperationFailed) as exc:
        state.passwords("lab")
    assert "no password for replicator, app" in exc.value.message
    assert json.loads(path.read_text()) == {"pgtopo": pw["pgtopo"]}


def test_runtime_updates_merge_and_corruption_is_reported(state_dir: Path) -> None:
    state.update_runtime("lab", primaries={"main": "pg-eu"})
    state.update_runtime("lab", partitioned=["eu"])
    assert state.load_runtime("lab") == {"primaries": {"main": "pg-eu"}, "partitioned": ["eu"]}
    assert stat.S_IMODE((state_dir / "lab" / "runtime.json").stat().st_mode) == 0o600
    (state_dir / "lab" / "runtime.json").write_text("{not json")
    with pytest.raises(OperationFailed) as exc:
        state.load_runtime("lab")
    assert "unreadable state file" in exc.value.message
