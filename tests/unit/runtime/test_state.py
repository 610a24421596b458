"""The state directory: private files, passwords never regenerated, clear errors."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pgtopo.errors import InputError, OperationFailed
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


def test_patroni_secrets_are_added_beside_the_roles_and_kept(state_dir: Path) -> None:
    roles = state.passwords("lab")
    first = state.patroni_passwords("lab")
    assert set(first) == {"postgres", "patroni"} and len(set(first.values()) | set(roles.values())) == 5
    path = state_dir / "lab" / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert state.patroni_passwords("lab") == first and state.passwords("lab") == roles
    assert "patroni" not in state.pgpass(roles)


def test_a_missing_password_is_never_regenerated(state_dir: Path) -> None:
    pw = state.passwords("lab")
    path = state_dir / "lab" / "secrets.json"
    path.write_text(json.dumps({"pgtopo": pw["pgtopo"]}))
    with pytest.raises(OperationFailed) as exc:
        state.passwords("lab")
    assert "no password for replicator, app" in exc.value.message
    assert json.loads(path.read_text()) == {"pgtopo": pw["pgtopo"]}


def _fence(node: str) -> Callable[[state.RuntimeState], state.RuntimeState]:
    rec = state.FenceRecord(method="stopped", detail=f"fenced by {node}", at="2025-01-01T00:00:00+00:00")
    return lambda rt: rt.model_copy(update={"fenced": {**rt.fenced, node: rec}})


FULL = {
    "topology_file": "/srv/lab.yaml",
    "primaries": {"main": "pg-eu"},
    "links": {"eu-west|us-east": {"rtt_ms": 150.0, "jitter_ms": 3.0, "bandwidth_kbps": 1000.0}},
    "partitioned": ["ap-south", "pg-billing"],
    "fenced": {"pg-us": {"method": "disconnected", "detail": "container paused", "at": "2025-01-01T00:00:00+00:00"}},
    "last_known": {"pg-us": {"lsn": "0/3000060", "timeline": 1, "at": "2025-01-01T00:00:00+00:00"}},
    "synchronous": {"main": {"method": "ANY", "count": 1, "standbys": ["pg-eu2", "pg-us2"]}, "billing": None},
    "last_change": {"mode": "failover", "cluster": "main", "from": "pg-us", "to": "pg-eu",
                    "at": "2025-01-01T00:00:01+00:00", "recovery_s": 1.234, "timeline": 2, "lost_bytes": 0},
    "netem": {"available": False, "detail": "no sch_netem module"},
    "pending": {"main": {"mode": "failover", "cluster": "main", "from": "pg-us", "to": "pg-eu",
                         "at": "2025-01-01T00:00:01+00:00", "done": ["fenced"], "recovery_s": None,
                         "plan": {"mode": "failover", "candidate": "pg-eu"}}},
    "moved": {"pg-eu2": "pg-eu"},
}


def test_every_field_round_trips_through_the_file(state_dir: Path) -> None:
    assert state.load("lab") == state.RuntimeState() and not state.exists("lab")
    new = state.update("lab", lambda rt: state.RuntimeState.model_validate(FULL))
    path = state_dir / "lab" / "runtime.json"
    assert json.loads(path.read_text()) == FULL
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert state.load("lab") == new
    assert new.last_change is not None and new.last_change.from_ == "pg-us"
    assert new.synchronous["main"] == state.SyncRecord(method="ANY", count=1, standbys=("pg-eu2", "pg-us2"))
    assert new.partitioned == ("ap-south", "pg-billing")
    assert new.links_json() == FULL["links"]
    assert new.pending["main"].from_ == "pg-us" and new.pending["main"].done == ("fenced",)


def test_updates_merge_and_only_a_change_is_written(state_dir: Path) -> None:
    state.update("lab", lambda rt: rt.model_copy(update={"primaries": {"main": "pg-eu"}}))
    after = state.update("lab", lambda rt: rt.model_copy(update={"partitioned": ("eu",)}))
    assert after == state.load("lab")
    assert (after.primaries, after.partitioned) == ({"main": "pg-eu"}, ("eu",))

    def refuse(rt: state.RuntimeState) -> state.RuntimeState:
        raise InputError("refused")

    with pytest.raises(InputError):
        state.update("lab", refuse)
    assert state.load("lab") == after
    path = state_dir / "lab" / "runtime.json"
    mtime = path.stat().st_mtime_ns
    assert state.update("lab", lambda rt: rt) == after and path.stat().st_mtime_ns == mtime
    assert state.update("other", lambda rt: rt) == state.RuntimeState() and not state.exists("other")
    # model_copy does not validate: update does, before writing.
    with pytest.raises(ValueError), pytest.warns(UserWarning, match="Expected `FenceRecord`"):
        state.update("lab", lambda rt: rt.model_copy(update={"fenced": {"pg-us": "stopped"}}))
    assert state.load("lab") == after
    state.forget("lab")
    assert not state.exists("lab") and state.passwords("lab", create=False) == {}


def test_unknown_keys_are_ignored_and_kept(state_dir: Path) -> None:
    """A newer pgtopo's facts neither fail an older one nor get lost when the older one writes."""
    path = state_dir / "lab" / "runtime.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"primaries": {"main": "pg-eu"}, "from_the_future": {"x": [1, 2]},
                                "fenced": {"pg-us": {"method": "stopped", "detail": "", "at": "t", "why": "new"}}}))
    rt = state.load("lab")
    assert rt.primaries == {"main": "pg-eu"} and rt.fenced["pg-us"].method == "stopped"
    state.update("lab", _fence("pg-eu"))
    data = json.loads(path.read_text())
    assert data["from_the_future"] == {"x": [1, 2]} and data["fenced"]["pg-us"]["why"] == "new"
    assert set(data["fenced"]) == {"pg-us", "pg-eu"}


def test_a_file_written_by_the_dict_era_reads() -> None:
    """Older pgtopo wrote null for `links`/`partitioned` when it undid a change, and fewer keys."""
    rt = state.RuntimeState.model_validate({"links": None, "partitioned": None, "primaries": {"main": "pg-us"},
                                            "synchronous": {"main": None}, "netem": {"available": True, "detail": "ok"}})
    assert (rt.links, rt.partitioned, rt.synchronous) == ({}, (), {"main": None})
    assert rt.netem == state.NetemRecord(available=True, detail="ok")
    assert state.RuntimeState.model_validate({"links": {"a|b": {"rtt_ms": 3, "jitter_ms": None}}}).links == {
        "a|b": state.LinkOverride(rtt_ms=3.0, jitter_ms=0.0)}


def test_a_corrupt_file_names_itself_and_the_field(state_dir: Path) -> None:
    path = state_dir / "lab" / "runtime.json"
    path.parent.mkdir()
    path.write_text("{not json")
    with pytest.raises(OperationFailed) as exc:
        state.load("lab")
    assert exc.value.message.startswith(f"{path}: unreadable state file (")
    assert exc.value.message.endswith("); fix or remove it")
    with pytest.raises(OperationFailed):
        state.update("lab", _fence("pg-eu"))
    assert path.read_text() == "{not json"  # never overwritten
    path.write_text(json.dumps(["primaries"]))
    with pytest.raises(OperationFailed) as exc:
        state.load("lab")
    assert exc.value.message == f"{path}: unreadable state file (not a JSON object); fix or remove it"
    path.write_text(json.dumps({"primaries": {"main": 3}, "fenced": {"pg-us": {"method": "stopped"}}}))
    with pytest.raises(OperationFailed) as exc:
        state.load("lab")
    assert exc.value.message == (
        f"{path}: unreadable state file (primaries.main: Input should be a valid string; "
        "fenced.pg-us.detail: Field required; fenced.pg-us.at: Field required); fix or remove it")


def _append_fences(state_dir: str, worker: str, count: int, start: Any) -> None:
    os.environ["PGTOPO_STATE_DIR"] = state_dir
    start.wait()
    for i in range(count):
        state.update("lab", _fence(f"{worker}-{i}"))


def test_concurrent_processes_lose_no_update(state_dir: Path) -> None:
    """Real processes, one state file: every read-modify-write holds the topology's lock."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_append_fences, args=(str(state_dir), w, 40, start)) for w in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    fenced = state.load("lab").fenced
    assert len(fenced) == 80
    assert set(fenced) == {f"{w}-{i}" for w in ("a", "b") for i in range(40)}


def test_down_keeps_the_facts_about_the_data_and_drops_the_running_networks() -> None:
    """`down` without --volumes: `up` must start pg-eu again as the primary it became, pg-us fenced."""
    rt = state.RuntimeState.model_validate(FULL)
    kept = rt.after_down()
    assert (kept.primaries, kept.fenced, kept.last_known, kept.synchronous, kept.last_change, kept.topology_file) == (
        rt.primaries, rt.fenced, rt.last_known, rt.synchronous, rt.last_change, rt.topology_file)
    assert (kept.links, kept.partitioned, kept.netem) == ({}, (), None)
    assert kept.moved == rt.moved  # where a replica streams from is in its volume (postgresql.auto.conf)
