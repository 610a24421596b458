"""Fixtures of the end-to-end tests: real Docker, real PostgreSQL 17 (helpers: tests/support/docker.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgtopo.errors import DockerUnavailable
from pgtopo.runtime import gateway, image


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


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = tmp_path / "state"
    monkeypatch.setenv("PGTOPO_STATE_DIR", str(d))
    yield d


@pytest.fixture(scope="module")
def state_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One state directory for a whole module, whose topology lives as long as the module."""
    d = tmp_path_factory.mktemp("module-state")
    old = os.environ.get("PGTOPO_STATE_DIR")
    os.environ["PGTOPO_STATE_DIR"] = str(d)
    yield d
    if old is None:
        os.environ.pop("PGTOPO_STATE_DIR", None)
    else:
        os.environ["PGTOPO_STATE_DIR"] = old
