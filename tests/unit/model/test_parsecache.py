"""What a topology file parsed to, kept between commands (``parsecache``) and checked again on every load."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest

from pgtopo.errors import ValidationFailed
from pgtopo.model import loader, parsecache
from tests.support.topologies import SAAS


def test_a_valid_files_text_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, cache = tmp_path / "t.yaml", tmp_path / "cache"
    path.write_text(SAAS)
    first = loader.load(path, cache=cache)
    [entry] = cache.iterdir()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600 and stat.S_IMODE(cache.stat().st_mode) == 0o700
    parsed: list[str] = []
    real = loader._parse

    def counted(p: Path, text: str) -> object:
        parsed.append(text)
        return real(p, text)

    monkeypatch.setattr(loader, "_parse", counted)
    assert loader.load(path, cache=cache) == first
    assert parsed == []  # from the cache
    path.write_text(SAAS.replace("eu-west", "eu-north"))  # another text: parsed, and kept too
    assert "eu-north" in loader.load(path, cache=cache).regions
    assert len(parsed) == 1 and len(list(cache.iterdir())) == 2


def test_a_refused_file_leaves_nothing_and_a_cached_text_is_checked_again(tmp_path: Path) -> None:
    path, cache = tmp_path / "t.yaml", tmp_path / "cache"
    path.write_text(SAAS.replace("role: primary", "role: boss", 1))
    with pytest.raises(ValidationFailed):
        loader.load(path, cache=cache)
    assert not cache.exists()
    # An entry says what a text parsed to, never that it is valid: the model and rules decide.
    path.write_text(SAAS)
    loader.load(path, cache=cache)
    [entry] = cache.iterdir()
    entry.write_text(entry.read_text().replace('"primary"', '"boss"', 1))
    with pytest.raises(ValidationFailed, match="role"):
        loader.load(path, cache=cache)


@pytest.mark.parametrize("data", [{"when": datetime.date(2026, 1, 1)}, {1: "an integer key"}, {"x": float("nan")}],
                         ids=["timestamp", "integer key", "nan"])
def test_what_json_would_change_is_not_kept(tmp_path: Path, data: dict[object, object]) -> None:
    parsecache.put(tmp_path / "cache", "text", data)
    assert parsecache.get(tmp_path / "cache", "text") is None


def test_what_json_keeps_exactly_is_kept_with_its_types(tmp_path: Path) -> None:
    data = {"n": [1, True, 1.0, None, "1"], "m": {"k": -0.5}}
    parsecache.put(tmp_path / "cache", "text", data)
    got = parsecache.get(tmp_path / "cache", "text")
    assert got == data and [type(v) for v in got["n"]] == [int, bool, float, type(None), str]


def test_an_unreadable_entry_is_a_miss_and_old_entries_go(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    parsecache.put(cache, "a", {"a": 1})
    next(cache.iterdir()).write_text("{not json")
    assert parsecache.get(cache, "a") is None
    for i in range(parsecache.KEEP + 5):
        parsecache.put(cache, f"text {i}", {"i": i})
    assert len(list(cache.glob("*.json"))) == parsecache.KEEP
    assert parsecache.get(cache, f"text {parsecache.KEEP + 4}") == {"i": parsecache.KEEP + 4}


def test_the_cli_keeps_the_text_only_of_a_topology_that_has_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pgtopo.cli.app import PARSED_CACHE, load_topology
    from pgtopo.runtime import state

    monkeypatch.setenv("PGTOPO_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "t.yaml"
    path.write_text(SAAS)
    topo = load_topology(path)
    assert not (tmp_path / "state").exists()  # never brought up: nothing created
    state.topology_dir(topo.name).mkdir(parents=True)
    load_topology(path)
    assert len(list((tmp_path / "state" / PARSED_CACHE).glob("*.json"))) == 1
