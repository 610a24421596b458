"""The command lock between real processes: the second command waits or refuses naming the holder,
and a lock whose holder died is free."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtopo.runtime import lock, state
from tests.support.locks import held_elsewhere, release

NAME = "t-lock"
@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def holder(state_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of NAME until told to release it."""
    with held_elsewhere(NAME, state_dir=state_dir) as proc:
        yield proc


def test_a_free_lock_is_taken_and_records_its_holder(state_dir: Path) -> None:
    with lock.command_lock(NAME, command="pgtopo up t.yaml", create=True):
        h = lock.holder(NAME)
        assert h is not None and (h.pid, h.command) == (os.getpid(), "pgtopo up t.yaml")
        assert abs(h.started - time.time()) < 5
    assert lock.holder(NAME) is None  # released: nobody is named any more
    assert (state_dir / NAME / "command.lock").stat().st_mode & 0o777 == 0o600


def test_without_create_a_topology_with_no_state_directory_is_not_locked(state_dir: Path) -> None:
    with lock.command_lock(NAME, command="pgtopo partition t.yaml pg-xx"):
        pass
    assert not state_dir.exists()  # refusing bad input leaves nothing behind


def test_no_wait_refuses_naming_the_holder(holder: subprocess.Popen[str]) -> None:
    with pytest.raises(lock.TopologyBusy) as err, lock.command_lock(NAME, command="pgtopo up t.yaml", wait=False):
        pytest.fail("the lock is held by the other process")
    message = err.value.lines()
    assert message[0].startswith(f"topology '{NAME}' is busy: `pgtopo failover t.yaml --yes` (pid {holder.pid}, "
                                 "started ")
    assert message[0].endswith(" s ago) is changing it")
    assert message[1:] == ["try again when it has finished, or leave out --no-wait to wait for it"]


def test_waiting_says_for_what_and_gives_up_at_the_bound(holder: subprocess.Popen[str]) -> None:
    said: list[tuple[str, str]] = []
    with pytest.raises(lock.TopologyBusy) as err, lock.command_lock(
            NAME, command="pgtopo up t.yaml", timeout=1.0, progress=lambda s, m: said.append((s, m))):
        pytest.fail("the lock is held by the other process")
    assert len(said) == 1
    assert said[0][0] == "lock"
    assert said[0][1].startswith(f"waiting for `pgtopo failover t.yaml --yes` (pid {holder.pid}, started ")
    assert said[0][1].endswith(" to finish")
    assert err.value.message.startswith("gave up after 1 s waiting for `pgtopo failover t.yaml --yes`")


def test_the_waiting_command_goes_on_when_the_holder_finishes(holder: subprocess.Popen[str]) -> None:
    assert holder.stdout is not None
    said: list[str] = []
    threading.Timer(0.5, release, args=(holder,)).start()
    with lock.command_lock(NAME, command="pgtopo up t.yaml", timeout=30, progress=lambda s, m: said.append(m)):
        assert holder.stdout.readline().strip() == "released"  # it had to finish first
        h = lock.holder(NAME)
        assert h is not None and h.pid == os.getpid()
    assert len(said) == 1 and said[0].startswith("waiting for `pgtopo failover t.yaml --yes`")


def test_a_lock_whose_holder_died_is_free(holder: subprocess.Popen[str]) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    with lock.command_lock(NAME, command="pgtopo up t.yaml", wait=False):
        h = lock.holder(NAME)
        assert h is not None and h.pid == os.getpid()


def test_nested_in_one_thread_does_not_wait_for_itself_but_another_thread_waits(state_dir: Path) -> None:
    events: list[str] = []

    def other() -> None:
        with lock.command_lock(NAME, command="pgtopo heal t.yaml", timeout=30):
            events.append("other thread")

    with lock.command_lock(NAME, command="pgtopo up t.yaml", create=True):
        with lock.command_lock(NAME, command="pgtopo up t.yaml", wait=False):
            events.append("nested")
        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.5)
        events.append("outer done")
    t.join(timeout=10)
    assert events == ["nested", "outer done", "other thread"]


def test_the_state_lock_is_a_different_lock(holder: subprocess.Popen[str]) -> None:
    # A command waiting for the command lock never keeps the other from recording its state.
    state.update(NAME, lambda rt: rt.model_copy(update={"primaries": {"main": "pg-b"}}))
    assert state.load(NAME).primaries == {"main": "pg-b"}
