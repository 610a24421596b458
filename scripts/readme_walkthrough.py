"""Refresh the README's walkthrough outputs from a run of scripts/walkthrough.sh.

    scripts/walkthrough.sh > /tmp/walk.out && .venv/bin/python scripts/readme_walkthrough.py /tmp/walk.out

Every ```console block in README.md whose first line is `$ <command>` gets that command's
output from the run (the Nth block of a command repeated in the README takes the Nth run of
it). Passwords are elided.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def runs(text: str) -> dict[str, list[str]]:
    text = re.sub(r"app:[A-Za-z0-9_-]+@", "app:<password>@", text)
    out: dict[str, list[str]] = {}
    for chunk in re.split(r"^\$ ", text, flags=re.MULTILINE)[1:]:
        cmd, _, body = chunk.partition("\n")
        body = re.sub(r"\n*\[exit \d+\]\s*$", "", body.rstrip())
        out.setdefault(cmd.strip(), []).append(body)
    return out


def main() -> int:
    found = runs(Path(sys.argv[1]).read_text())
    seen: dict[str, int] = {}
    missing: list[str] = []

    def replace(m: re.Match[str]) -> str:
        cmd = m.group(1).strip()
        n = seen.get(cmd, 0)
        seen[cmd] = n + 1
        if cmd not in found or n >= len(found[cmd]):
            missing.append(cmd)
            return m.group(0)
        return f"```console\n$ {cmd}\n{found[cmd][n]}\n```"

    text = re.sub(r"```console\n\$ ([^\n]+)\n.*?\n```", replace, README.read_text(), flags=re.DOTALL)
    README.write_text(text)
    for cmd in missing:
        print(f"not in the run: {cmd}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
