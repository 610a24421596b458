"""scripts/readme_walkthrough.py: the documented outputs are filled from a walkthrough run.

Pure: captured text in, replaced blocks out; no container is started.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_walkthrough", REPO / "scripts" / "readme_walkthrough.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rw = _load()

CAPTURED = """\
$ pgtopo validate global-saas.yaml
✓ valid
[exit 0]

$ pgtopo env global-saas.yaml --region eu-west
export PRIMARY_DATABASE_URL='postgresql://app:s3cr-et_X@127.0.0.1:39155/production'
[exit 0]

$ pgtopo status global-saas.yaml
first status
[exit 0]

$ pgtopo status global-saas.yaml
second status
line two
[exit 1]

"""

DOC = """\
# doc

```console
$ pgtopo status global-saas.yaml
old first
```

An example that is not part of the run:

```sh
pgtopo latency set global-saas.yaml us-east eu-west 200ms
```

```console
$ pgtopo status global-saas.yaml
old second
```

```console
$ pgtopo env global-saas.yaml --region eu-west
old env
```
"""


def _console_blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```console\n\$ ([^\n]+)\n(.*?)\n```", text, flags=re.DOTALL)]


def _walkthrough_commands() -> list[str]:
    """The commands scripts/walkthrough.sh runs, as its `run` helper prints them."""
    script = (REPO / "scripts" / "walkthrough.sh").read_text()
    topo = re.search(r"^T=(\S+)$", script, flags=re.MULTILINE)
    assert topo is not None
    return [line.removeprefix("run ").replace("$T", topo.group(1)).strip()
            for line in script.splitlines() if line.startswith("run pgtopo ")]


def test_runs_splits_commands_strips_exit_codes_and_elides_passwords() -> None:
    found = rw.runs(CAPTURED)
    assert found == {
        "pgtopo validate global-saas.yaml": ["✓ valid"],
        "pgtopo env global-saas.yaml --region eu-west": [
            "export PRIMARY_DATABASE_URL='postgresql://app:<password>@127.0.0.1:39155/production'"],
        "pgtopo status global-saas.yaml": ["first status", "second status\nline two"],
    }


def test_fill_gives_the_nth_block_the_nth_run_and_leaves_other_blocks_alone() -> None:
    text, missing = rw.fill(DOC, rw.runs(CAPTURED))
    assert missing == []
    assert _console_blocks(text) == [
        ("pgtopo status global-saas.yaml", "first status"),
        ("pgtopo status global-saas.yaml", "second status\nline two"),
        ("pgtopo env global-saas.yaml --region eu-west",
         "export PRIMARY_DATABASE_URL='postgresql://app:<password>@127.0.0.1:39155/production'"),
    ]
    assert "```sh\npgtopo latency set global-saas.yaml us-east eu-west 200ms\n```" in text
    assert text.startswith("# doc\n\n") and "An example that is not part of the run:" in text


def test_fill_counts_each_document_on_its_own() -> None:
    # The README shows only the first status: a second document starts counting from one again.
    found = rw.runs(CAPTURED)
    first, _ = rw.fill(DOC, found)
    again, missing = rw.fill("```console\n$ pgtopo status global-saas.yaml\nold\n```\n", found)
    assert missing == []
    assert _console_blocks(again) == [("pgtopo status global-saas.yaml", "first status")]
    assert _console_blocks(first)[0][1] == "first status"


def test_fill_reports_commands_the_run_lacks_and_keeps_their_blocks() -> None:
    doc = DOC + "\n```console\n$ pgtopo status global-saas.yaml\nold third\n```\n```console\n$ pgtopo ls\nold ls\n```\n"
    text, missing = rw.fill(doc, rw.runs(CAPTURED))
    assert missing == ["pgtopo status global-saas.yaml (block 3)", "pgtopo ls"]
    assert "old third" in text and "old ls" in text


def test_fill_reports_a_document_without_any_block() -> None:
    _, missing = rw.fill("# no output here\n", rw.runs(CAPTURED))
    assert missing == ["(no ```console block starting with `$ `)"]


def test_main_refreshes_every_document_from_a_saved_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "docs").mkdir()
    readme, commands = tmp_path / "README.md", tmp_path / "docs" / "commands.md"
    readme.write_text("```console\n$ pgtopo validate global-saas.yaml\nold\n```\n")
    commands.write_text(DOC)
    run = tmp_path / "walk.out"
    run.write_text(CAPTURED)
    monkeypatch.setattr(rw, "ROOT", tmp_path)
    monkeypatch.setattr(rw, "DOCUMENTS", (readme, commands))
    assert rw.main(["readme_walkthrough.py", str(run)]) == 0
    assert _console_blocks(readme.read_text()) == [("pgtopo validate global-saas.yaml", "✓ valid")]
    assert [out for _, out in _console_blocks(commands.read_text())][:2] == ["first status", "second status\nline two"]
    assert capsys.readouterr().err == ""

    run.write_text(CAPTURED.replace("$ pgtopo validate global-saas.yaml\n", "$ pgtopo graph global-saas.yaml\n"))
    assert rw.main(["readme_walkthrough.py", str(run)]) == 1
    assert "README.md: not in the run: pgtopo validate global-saas.yaml" in capsys.readouterr().err


def test_the_documents_are_the_ones_the_script_refreshes() -> None:
    assert {p.relative_to(REPO).as_posix() for p in rw.DOCUMENTS} == {"README.md", "docs/commands.md"}


def test_every_documented_output_comes_from_a_command_the_walkthrough_runs() -> None:
    ran = _walkthrough_commands()
    for doc in rw.DOCUMENTS:
        blocks = _console_blocks(doc.read_text())
        assert blocks, doc
        for cmd, _ in blocks:
            assert cmd in ran, f"{doc.name}: `{cmd}` is not run by scripts/walkthrough.sh"
        for cmd in {c for c, _ in blocks}:
            shown = sum(1 for c, _ in blocks if c == cmd)
            assert shown <= ran.count(cmd), f"{doc.name}: {shown} outputs of `{cmd}`, the walkthrough runs it {ran.count(cmd)}x"


def test_commands_md_shows_every_command_of_the_walkthrough_and_the_readme_the_same_run() -> None:
    commands = (REPO / "docs" / "commands.md").read_text()
    shown = {cmd for cmd, _ in _console_blocks(commands)}
    assert set(_walkthrough_commands()) <= shown
    # A run rebuilt from docs/commands.md fills both documents without changing a byte: the
    # README's selection is the same run, not other output.
    rebuilt = "".join(f"$ {cmd}\n{out}\n[exit 0]\n\n" for cmd, out in _console_blocks(commands))
    found = rw.runs(rebuilt)
    for doc in rw.DOCUMENTS:
        text = doc.read_text()
        filled, missing = rw.fill(text, found)
        assert missing == [], (doc.name, missing)
        assert filled == text, doc.name


def test_latency_is_shown_with_its_subcommand_syntax() -> None:
    for path in (REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))):
        for line in path.read_text().splitlines():
            for m in re.finditer(r"(?:pgtopo |`)latency ([A-Za-z0-9_.-]+)", line):
                assert m.group(1) in ("show", "set", "reset"), f"{path.name}: {line}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_the_documents_lead_somewhere() -> None:
    pages = [REPO / "README.md", REPO / "ARCHITECTURE.md", *sorted((REPO / "docs").glob("*.md"))]
    checked = 0
    for page in pages:
        for target, anchor in re.findall(r"\]\(([^)#:\s]*)(?:#([^)\s]+))?\)", page.read_text()):
            dest = (page.parent / target).resolve() if target else page
            assert dest.exists(), f"{page.name}: link to missing {target}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", dest.read_text(), flags=re.MULTILINE)
                assert anchor in {_slug(h) for h in headings}, f"{page.name}: no heading #{anchor} in {dest.name}"
            checked += 1
    assert checked >= 20
