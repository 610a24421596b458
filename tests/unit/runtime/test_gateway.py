"""The gateway's one-call views of a topology's containers, against a fake Docker API."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest

from pgtopo.runtime import gateway


class FakeAPI:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def containers(self, *, all: bool, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        self.calls.append(("containers", filters))
        return [
            {"Id": "abc", "State": "running", "Labels": {"pgtopo.node": "pg-us", "pgtopo.kind": "node"},
             "Ports": [{"IP": "127.0.0.1", "PrivatePort": 5432, "PublicPort": 33806, "Type": "tcp"},
                       {"PrivatePort": 8080, "Type": "tcp"}]},  # exposed, not published
            {"Id": "def", "State": "exited", "Labels": {"pgtopo.node": "pg-eu"}, "Ports": []},
        ]

    def get_archive(self, container: str, path: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        self.calls.append(("get_archive", (container, path)))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            folder = tarfile.TarInfo("pgtopo")
            folder.type = tarfile.DIRTYPE
            tar.addfile(folder)
            for name, text in (("postgresql.conf", "port = 5432\n"), ("pg_hba.conf", "local all all peer\n")):
                info = tarfile.TarInfo(f"pgtopo/{name}")
                info.size = len(text.encode())
                tar.addfile(info, io.BytesIO(text.encode()))
            sub = tarfile.TarInfo("pgtopo/nested/deeper.conf")
            sub.size = 1
            tar.addfile(sub, io.BytesIO(b"x"))
        return iter([buf.getvalue()]), {}


class FakeContainers:
    def __init__(self, api: FakeAPI) -> None:
        self.api = api

    def list(self, *, all: bool, filters: dict[str, list[str]]) -> list[str]:
        self.api.calls.append(("list", filters))
        return ["the container"] if "pgtopo.node=pg-us" in filters["label"] else []


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeAPI()
        self.containers = FakeContainers(self.api)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeAPI:
    fake = FakeClient()
    monkeypatch.setattr(gateway, "client", lambda: fake)
    return fake.api


def test_listed_is_one_call_with_states_and_published_ports(api: FakeAPI) -> None:
    found = gateway.listed("lab", kind="node")
    assert api.calls == [("containers", {"label": ["pgtopo.topology=lab", "pgtopo.kind=node"]})]
    assert [(c.node, c.id, c.status, c.ports) for c in found] == [
        ("pg-us", "abc", "running", {"5432/tcp": 33806}), ("pg-eu", "def", "exited", {})]


def test_listed_filters_one_cluster_s_containers_on_the_daemon(api: FakeAPI) -> None:
    gateway.listed("lab", kind="node", cluster="main")
    assert api.calls == [("containers", {"label": ["pgtopo.topology=lab", "pgtopo.kind=node", "pgtopo.cluster=main"]})]


def test_read_directory_reads_its_files_in_one_call(api: FakeAPI) -> None:
    assert gateway.read_directory("abc", "/etc/pgtopo") == {
        "postgresql.conf": "port = 5432\n", "pg_hba.conf": "local all all peer\n"}
    assert api.calls == [("get_archive", ("abc", "/etc/pgtopo"))]


def test_find_asks_the_daemon_for_the_one_node(api: FakeAPI) -> None:
    # The SDK inspects every container a list returns: the filter keeps that to the one wanted.
    assert gateway.find("lab", "pg-us") == "the container"
    assert gateway.find("lab", "pg-xx") is None
    assert api.calls == [("list", {"label": ["pgtopo.topology=lab", "pgtopo.node=pg-us"]}),
                         ("list", {"label": ["pgtopo.topology=lab", "pgtopo.node=pg-xx"]})]
