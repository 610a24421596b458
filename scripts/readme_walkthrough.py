"""Refresh the documented command outputs from a run of scripts/walkthrough.sh.

    scripts/walkthrough.sh > /tmp/walk.out && .venv/bin/python scripts/readme_walkthrough.py /tmp/walk.out

Two documents show real output: README.md (a short selection) and docs/commands.md (every
command of the run). In each, every ```console block whose first line is `$ <command>` gets
that command's output from the run. Documents are counted separately: the Nth block of a
command in one document takes the Nth run of it, so the README can show the first `status`
while docs/commands.md shows all of them. Passwords are elided. Example commands that are not
part of the run go in ```sh blocks, which are left alone.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "commands.md")
BLOCK = re.compile(r"```console\n\$ ([^\n]+)\n.*?\n```", flags=re.DOTALL)


def runs(text: str) -> dict[str, list[str]]:
    """Command line -> its outputs in the order the run printed them (`$ cmd`, output, `[exit N]`)."""
    text = re.sub(r"app:[A-Za-z0-9_-]+@", "app:<password>@", text)
    out: dict[str, list[str]] = {}
    for chunk in re.split(r"^\$ ", text, flags=re.MULTILINE)[1:]:
        cmd, _, body = chunk.partition("\n")
        body = re.sub(r"\n*\[exit \d+\]\s*$", "", body.rstrip())
        out.setdefault(cmd.strip(), []).append(body)
    return out


def fill(document: str, found: dict[str, list[str]]) -> tuple[str, list[str]]:
    """The document with each console block's output taken from the run, and the commands the run lacks."""
    seen: dict[str, int] = {}
    missing: list[str] = []

    def replace(m: re.Match[str]) -> str:
        cmd = m.group(1).strip()
        n = seen.get(cmd, 0)
        seen[cmd] = n + 1
        if cmd not in found or n >= len(found[cmd]):
            missing.append(cmd if n == 0 else f"{cmd} (block {n + 1})")
            return m.group(0)
        return f"```console\n$ {cmd}\n{found[cmd][n]}\n```"

    text, count = BLOCK.subn(replace, document)
    if count == 0:
        missing.append("(no ```console block starting with `$ `)")
    return text, missing


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    found = runs(Path(argv[1]).read_text())
    status = 0
    for doc in DOCUMENTS:
        text, missing = fill(doc.read_text(), found)
        doc.write_text(text)
        for cmd in missing:
            print(f"{doc.relative_to(ROOT)}: not in the run: {cmd}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
