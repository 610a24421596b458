"""Shared helpers for the end-to-end tests: real Docker, real PostgreSQL 17."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pgtopo.errors import DockerUnavailable
from pgtopo.lifecycle import deploy
from pgtopo.model.loader import load
from pgtopo.runtime import gateway, image

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/docker/" in str(item.fspath):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session", autouse=True)
def docker_ready() -> None:
    """Docker and the image must be there; in CI (PGTOPO_REQUIRE_DOCKER=1) their absence fails."""
    try:
        gateway.client()
        image.ensure("pgtopo/postgres:17", version=17, progress=lambda m: None)
    except DockerUnavailable as exc:
        if os.environ.get("PGTOPO_REQUIRE_DOCKER"):
            raise
        pytest.skip(f"Docker is not available: {exc.message}")


def copy_topology(dest: Path, source: str, *, name: str, replace: dict[str, str] | None = None) -> Path:
    """A copy of a shipped topology under another name, so test modules never collide.

    Whatever an interrupted earlier run left under that name is removed first (by label)."""
    deploy.down(name, volumes=True)
    src = REPO / "topologies" / source
    text = src.read_text()
    first = text.split("name: ", 1)[1].split("\n", 1)[0]
    text = text.replace(f"name: {first}", f"name: {name}", 1)
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / source
    out.write_text(text)
    if (REPO / "topologies" / "schemas").exists():
        (dest / "schemas").mkdir(exist_ok=True)
        for f in (REPO / "topologies" / "schemas").iterdir():
            (dest / "schemas" / f.name).write_text(f.read_text())
    return out


@contextmanager
def running(tmp: Path, source: str, *, name: str) -> Iterator[Path]:
    """A copy of a shipped topology, up for the duration, with its own state directory."""
    path = copy_topology(tmp, source, name=name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGTOPO_STATE_DIR", str(tmp / "state"))
        try:
            deploy.up(load(path), topo_path=path, progress=lambda *a: None)
            yield path
        finally:
            deploy.down(name, volumes=True)


def wait_for(check: Callable[[], bool], *, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = tmp_path / "state"
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(d))
    yield d
